/**
 * One list of settings (src/settings.ts) serves `--help` and the README: it names every variable the
 * configuration reads, and its documented defaults are the real ones.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config';
import { SETTINGS } from '../../src/settings';

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
});
