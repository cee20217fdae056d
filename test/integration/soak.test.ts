/**
 * The short variant of `npm run soak`: ten seconds of mixed traffic and scheduled faults against
 * the gateway process, then every book must balance (requests counted once, every client answered
 * as expected, no upstream request left running, handles and memory back to their baseline).
 * The traffic includes the hostile input of issue 9: spelled paths, long and control-character
 * model names, stalled and unfinished bodies, a full body budget, other methods on the gateway's
 * own paths, pipelined requests, and readers that pause or stop.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';

const SOAK = path.resolve(__dirname, '..', '..', 'bench', 'soak.js');

describe('npm run soak (short variant)', () => {
  it('balances every book after ten seconds of faults and floods', () => {
    const r = spawnSync(process.execPath, [SOAK, '--seconds', '10', '--concurrency', '16', '--slow-streams', '60'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `soak exited ${r.status}:\n${r.stdout}\n${r.stderr.slice(-2000)}`);
    assert.ok(!r.stdout.includes('NOT BALANCED'), r.stdout);
    const balanced = (r.stdout.match(/\| balanced \|/g) ?? []).length;
    assert.ok(balanced >= 15, `expected every book in the table, got ${balanced}:\n${r.stdout}`);
    for (const kind of [
      'upstream refuses',
      'upstream hangs',
      'client leaves mid-stream',
      'body over the limit',
      'random model name',
      'slow stream (concurrent wave)',
      // Hostile input (issue 9).
      'path spellings',
      'long or control-character model name',
      'stalled body',
      'unfinished body, client leaves',
      'own path, other method',
      'pipelined pair',
      'body buffer budget (3 held, 1 refused)',
      'slow reader (pauses past the idle timeout)',
    ]) {
      assert.match(r.stdout, new RegExp(`\\| ${kind.replace(/[()]/g, '\\$&')} \\| [1-9]`), `${kind} was exercised`);
    }
  });
});
