/**
 * One list of settings (src/settings.ts) serves `--help` and the README: it names every variable the
 * configuration reads, its documented defaults are the real ones, and the README's table is it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config';
import { SETTINGS } from '../../src/settings';
import { REPO } from '../helpers/tools';

describe('the settings list', () => {
  it('names every variable the configuration reads', () => {
    const read = new Set<string>();
    const env = new Proxy({} as Record<string, string | undefined>, {
      get: (_t, name) => {
        if (typeof name === 'string') read.add(name);
        return undefined;
      },
    });
    loadConfig(env);
    assert.deepEqual([...read].sort(), SETTINGS.map((s) => s.name).sort());
  });

  it('gives the real defaults: setting each one explicitly changes nothing', () => {
    const defaults = loadConfig({});
    for (const s of SETTINGS) {
      if (s.default === '') continue;
      assert.deepEqual(loadConfig({ [s.name]: s.default }), defaults, s.name);
    }
  });

  it("is the README's configuration table, in order, with the same defaults", () => {
    const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('\n## ', readme.indexOf('## Configuration') + 1));
    const rows = [...section.matchAll(/^\| `([A-Z_]+)` \| ([^|]*) \|/gm)].map((m) => ({ name: m[1], default: m[2].trim().replace(/^`|`$/g, '').replace('—', '') }));
    assert.deepEqual(
      rows,
      SETTINGS.map((s) => ({ name: s.name, default: s.default })),
    );
  });
});
