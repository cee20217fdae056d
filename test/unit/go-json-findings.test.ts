/**
 * Two findings of an attacker's pass on the Go-compatible reader: a later `null` must clear a Go
 * `any` field, and numbers too large for a float64 must not make the read quadratic.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import { readRequest } from '../../src/request/read';
import { LLM_ROUTES } from '../../src/routes';

const route = (p: string) => LLM_ROUTES.find((r) => r.path === p)!;
const read = (p: string, body: string | Buffer) => readRequest(route(p), Buffer.from(body));

describe('the Go reader, as an attacker found it', () => {
  it('a later null sets an OpenAI message content (Go `any`) to nil, as Go does', () => {
    // Go: Content is `any`; `null` sets an interface to nil. The gateway kept the earlier string.
    const chat = read('/v1/chat/completions', '{"model":"a","messages":[{"role":"user","content":"hi","content":null}]}');
    assert.equal(chat.firstUser, null);
    const sys = read('/v1/chat/completions', '{"model":"a","messages":[{"role":"system","content":"s","content":null},{"role":"user","content":"u"}]}');
    assert.equal(sys.system, null);
    const resp = read('/v1/responses', '{"model":"a","input":[{"role":"user","content":"y","content":null}]}');
    assert.equal(resp.firstUser, null);
  });

  it('numbers Go cannot hold in a float64 cost linear time however many `any` containers hold them', () => {
    const body = (entries: number) => '{"model":"a","options":{' + Array(entries).fill('"a":[1e999]').join(',') + '}}';
    // Best of three, so one preempted run on a busy machine does not decide.
    const time = (entries: number) => {
      const b = Buffer.from(body(entries));
      let best = Infinity;
      for (let i = 0; i < 3; i++) {
        const t = performance.now();
        readRequest(route('/api/chat'), b);
        best = Math.min(best, performance.now() - t);
      }
      return best;
    };
    time(2000); // warm up
    const small = Math.max(time(10_000), 1);
    const large = time(80_000); // ~1 MB: 8x the entries
    // Linear: ~8x. Quadratic (one scan of every huge number per container): ~64x.
    assert.ok(large / small < 32, `8x the entries cost ${(large / small).toFixed(1)}x the time (${small.toFixed(0)} ms → ${large.toFixed(0)} ms)`);
  });
});
