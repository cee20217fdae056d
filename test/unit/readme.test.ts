/**
 * The README's tables are derived from the code's: the configuration table is the settings list,
 * and the endpoint table names exactly the gateway's own endpoints and the instrumented routes.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { GATEWAY_ENDPOINTS, LLM_ROUTES } from '../../src/routes';
import { SETTINGS } from '../../src/settings';
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
});
