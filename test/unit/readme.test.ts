/**
 * The README's tables are derived from the code's: the configuration table is the settings list,
 * the endpoint table names exactly the gateway's own endpoints and the instrumented routes, and the
 * dashboard table names exactly the dashboard's panels. The quick start has the shape it promises,
 * and the LICENSE is the one package.json names.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { GATEWAY_ENDPOINTS, LLM_ROUTES } from '../../src/routes';
import { SETTINGS } from '../../src/settings';
import { quickStartCommands } from '../../bench/quick-start';
import { REPO } from '../helpers/tools';

const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');

function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start !== -1, `README has a "## ${title}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

describe('the README', () => {
  it('lists every setting in order, with its default', () => {
    const rows = [...section('Configuration').matchAll(/^\| `([A-Z_]+)` \| ([^|]*) \|/gm)].map((m) => ({
      name: m[1],
      default: m[2].trim().replace(/^`|`$/g, '').replace('—', ''),
    }));
    assert.deepEqual(
      rows,
      SETTINGS.map((s) => ({ name: s.name, default: s.default })),
    );
  });

  it("lists the gateway's own endpoints and every instrumented route, and no other", () => {
    const rows = [...section('Endpoints').matchAll(/^\| (.+?) \| .* \|$/gm)].map((m) => m[1]).filter((c) => c !== 'Path' && !c.startsWith('---'));
    const own = rows.flatMap((r) => [...r.matchAll(/`GET (\/[a-z]+)`/g)].map((m) => m[1]));
    assert.deepEqual(own.sort(), [...GATEWAY_ENDPOINTS.keys()].sort());
    const llmRow = rows.find((r) => r.startsWith('`POST '));
    assert.ok(llmRow, 'a row of POST routes');
    const llm = [...llmRow.matchAll(/`(?:POST )?(\/[a-z0-9/]+)`/g)].map((m) => m[1]);
    assert.deepEqual(llm.sort(), LLM_ROUTES.map((r) => r.path).sort());
  });

  it('has every table in one piece: each run of rows starts with a header and a delimiter row', () => {
    let fence = false;
    const lines = readme.split('\n').map((l) => {
      if (/^(```|~~~)/.test(l)) {
        fence = !fence;
        return '';
      }
      return fence ? '' : l;
    });
    const cut = lines.flatMap((l, i) =>
      l.startsWith('|') && !lines[i - 1]?.startsWith('|') && !/^\|(?:\s*:?-+:?\s*\|)+$/.test(lines[i + 1] ?? '') ? [i + 1] : [],
    );
    assert.deepEqual(cut, [], 'table rows with no header and delimiter row above them (a blank line inside a table?)');
  });

  it("lists exactly the dashboard's panels, in the dashboard table", () => {
    type Panel = { type: string; title: string; panels?: Panel[] };
    const dashboard = JSON.parse(readFileSync(path.join(REPO, 'grafana', 'dashboards', 'ollama-gateway.json'), 'utf8')) as { panels: Panel[] };
    const walk = (ps: Panel[]): Panel[] => ps.flatMap((p) => [p, ...walk(p.panels ?? [])]);
    const panels = walk(dashboard.panels)
      .filter((p) => p.type !== 'row')
      .map((p) => p.title);
    const table = section('Dashboard and alerts');
    const rows = [...table.slice(table.indexOf('| Panel | Shows |')).matchAll(/^\| ([^|]+) \| [^|]+ \|$/gm)].map((m) => m[1]!);
    const listed = rows.filter((r) => r !== 'Panel' && !r.startsWith('---')).flatMap((r) => r.split(', '));
    assert.deepEqual([...listed].sort(), [...panels].sort());
  });

  it('opens with a quick start of two commands, then one curl to the gateway', () => {
    const blocks = quickStartCommands(readme);
    assert.equal(blocks.length, 2);
    assert.equal(blocks[0]!.length, 2);
    assert.equal(blocks[0]![0], 'npm ci');
    assert.match(blocks[0]![1]!, /^OLLAMA_HOST=\S+ npm start$/);
    assert.equal(blocks[1]!.length, 1);
    assert.match(blocks[1]![0]!, /^curl http:\/\/127\.0\.0\.1:8000\/api\/chat /);
    assert.ok(readme.indexOf('\n## Quick start\n') < readme.indexOf('\n## Configuration\n'), 'before the reference');
  });

  it('ships the license package.json names, in full', () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as { license: string };
    assert.equal(pkg.license, 'Apache-2.0');
    const license = readFileSync(path.join(REPO, 'LICENSE'), 'utf8');
    assert.match(license, /^\s*Apache License\s+Version 2\.0, January 2004/);
    assert.match(license, /END OF TERMS AND CONDITIONS/);
    for (let n = 1; n <= 9; n++) assert.match(license, new RegExp(`^ {3}${n}\\. [A-Z]`, 'm'), `section ${n}`);
  });
});

describe('the dashboard', () => {
  it('does not filter ollama_requests_in_flight by backend: a call is in flight before a backend is chosen, so the series has no backend label', () => {
    const text = readFileSync(path.join(REPO, 'grafana', 'dashboards', 'ollama-gateway.json'), 'utf8');
    const uses = [...text.matchAll(/ollama_requests_in_flight\{([^}]*)\}/g)].map((m) => m[1]!);
    assert.ok(uses.length > 0);
    for (const u of uses) assert.doesNotMatch(u, /backend/, `ollama_requests_in_flight{${u}}: empty whenever a backend is selected`);
  });
});
