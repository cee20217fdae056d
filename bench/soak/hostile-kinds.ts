/** The soak's hostile input (issue 9): spelled paths, strange model names, stalled and unfinished bodies, other methods on the gateway's own paths, pipelining, slow and stuck readers, a full body budget. */
import { performance } from 'node:perf_hooks';
import { fixture } from '../../test/helpers/fixtures';
import { samples } from '../../test/helpers/fuzz';
import { CHAT_SPELLINGS } from '../../test/helpers/spellings';
import { expectFull, expectRaw, expectStatus, head, hold, post, raw, request, slowRead } from './clients';
import { big, bigDigest, chatStream, mSlowReader, mSpelled, mStuckReader } from './fake';
import { CHAT, chatFor } from './kinds';
import { c, L, type Kind, type Outcome, type Verdict } from './types';

/** Spellings of /api/chat the gateway must measure as /api/chat (and forward as /api/chat). */
const SPELLINGS = [...CHAT_SPELLINGS, '/%2E/api/chat', 'http://127.0.0.1:1/api/chat?x=1'];
/**
 * Names recorded as model="invalid": over 256 characters, or with a control character. At most
 * 5 KB: the body budget cycle leaves less than one 64 KB read of room while it refuses its fourth
 * body, and a big body arriving just then would be refused too.
 */
const STRANGE_NAMES = ['m'.repeat(257), 'n'.repeat(5_000), 'tab\there', 'nul\u0000', 'esc\u001b[31m', 'del\u007f', 'line\nbreak', `${'k'.repeat(300)}:latest`];
const OWN_METHODS: [string, string][] = [
  ['POST', '/healthz'],
  ['PUT', '/metrics'],
  ['DELETE', '/readyz'],
  ['PATCH', '//metrics'],
  ['OPTIONS', '/healthz'],
  ['POST', '/metrics'],
  ['PROPFIND', '/readyz'],
  ['POST', '/%68ealthz'],
];
let spelling = 0;
let strange = 0;
let ownMethod = 0;

function expectDigest(r: { status: number; outcome: Outcome; bytes: number; sha256: string }): Verdict {
  return r.outcome === 'full' && r.status === 200 && r.sha256 === bigDigest ? { ok: true } : { ok: false, why: `${r.outcome} ${r.status} ${r.bytes}B` };
}

export const HOSTILE: Kind[] = [
  {
    name: 'path spellings',
    weight: 3,
    counts: [c(L(mSpelled), '/api/chat')],
    run: async (c) => expectFull(await request(c, 'POST', SPELLINGS[spelling++ % SPELLINGS.length], chatFor(mSpelled)), chatStream),
  },
  {
    name: 'long or control-character model name',
    weight: 2,
    counts: [c('invalid', '/api/chat')],
    run: async (c) => {
      const name = STRANGE_NAMES[strange++ % STRANGE_NAMES.length];
      return expectStatus(await request(c, 'POST', '/api/chat', chatFor(name)), 404);
    },
  },
  {
    name: 'long model name, /v1',
    weight: 1,
    counts: [c('invalid', '/v1/chat/completions')],
    run: async (c) =>
      expectStatus(
        await request(c, 'POST', '/v1/chat/completions', JSON.stringify({ model: 'v'.repeat(5000), messages: [{ role: 'user', content: 'hi' }] })),
        404,
      ),
  },
  {
    name: 'stalled body',
    weight: 1,
    slowWarmup: true,
    counts: [c('unknown', '/api/generate', 408, 'body_timeout')],
    run: async (c) => {
      const body = '{"model":"llama3.2","prompt":"This body never arrives in full."}';
      const r = await raw(c, [{ t: 'write', data: Buffer.from(post('/api/generate', body).slice(0, -30)) }], 1, ['POST']);
      return expectRaw(r, 408, { connection: /close/i });
    },
  },
  {
    name: 'stalled chunked body',
    weight: 1,
    slowWarmup: true,
    counts: [c('unknown', '/v1/completions', 408, 'body_timeout')],
    run: async (c) => {
      const r = await raw(
        c,
        [{ t: 'write', data: Buffer.from(head('POST', '/v1/completions', { 'Transfer-Encoding': 'chunked' }) + '10\r\n{"model":"llama3\r\n') }],
        1,
        ['POST'],
      );
      return expectRaw(r, 408, { connection: /close/i });
    },
  },
  {
    name: 'unfinished body, client leaves',
    weight: 1,
    slowWarmup: true,
    counts: [c('unknown', '/api/chat')],
    run: async (c) => {
      const r = await raw(c, [{ t: 'write', data: Buffer.from(post('/api/chat', CHAT).slice(0, -20)) }, { t: 'wait', ms: 250 }, { t: 'reset' }], 0, ['POST']);
      return r.end === 'client reset' ? { ok: true } : { ok: false, why: `${r.end} ${r.statuses.join('+')}` };
    },
  },
  {
    name: 'own path, other method',
    weight: 2,
    run: async (c) => {
      const [method, p] = OWN_METHODS[ownMethod++ % OWN_METHODS.length];
      const r = await raw(c, [{ t: 'write', data: Buffer.from(head(method, p, { 'Content-Length': 2, Authorization: 'Bearer x' }) + '{}') }], 1, [method]);
      return expectRaw(r, 405, { allow: /^GET,\s*HEAD$/i });
    },
  },
  {
    name: 'pipelined pair',
    weight: 2,
    counts: [c('llama3.2:latest', '/api/chat'), c('llama3.2:latest', '/api/generate')],
    run: async (c) => {
      const two = post('/api/chat', CHAT) + post('/api/generate', '{"model":"llama3.2","prompt":"Why?","stream":false}');
      const r = await raw(c, [{ t: 'write', data: Buffer.from(two) }], 2, ['POST', 'POST'], true);
      const ok =
        r.statuses.join('+') === '200+200' && r.bodies.length === 2 && r.bodies[0].equals(chatStream) && r.bodies[1].equals(fixture('generate-nostream.json'));
      return ok ? { ok } : { ok, why: `${r.end} ${r.statuses.join('+')} ${r.bodies.map((b) => b.length).join('+')}B` };
    },
  },
  {
    name: 'pipelined own path + chat',
    weight: 1,
    counts: [c('llama3.2:latest', '/api/chat')],
    run: async (c) => {
      const two = head('GET', '/healthz', {}) + post('/api/chat', chatFor('llama3.2').replace('{', '{"stream":false,'));
      const r = await raw(c, [{ t: 'write', data: Buffer.from(two) }], 2, ['GET', 'POST'], true);
      const ok = r.statuses.join('+') === '200+200' && r.bodies[1]?.equals(fixture('chat-nostream.json'));
      return ok ? { ok } : { ok: false, why: `${r.end} ${r.statuses.join('+')}` };
    },
  },
  {
    name: 'slow reader (pauses past the idle timeout)',
    slowWarmup: true,
    weight: 0.3,
    needsMs: 4000,
    counts: [c(L(mSlowReader), '/api/chat', 200)],
    warmup: {
      name: 'slow reader warm-up',
      weight: 0,
      counts: [c(L(mSlowReader), '/api/chat', 200)],
      run: async (c) => expectDigest(await slowRead(c, chatFor(mSlowReader), 0, 10_000)),
    },
    run: async (c) => expectDigest(await slowRead(c, chatFor(mSlowReader), 1600, 12_000)),
  },
  {
    name: 'stuck reader (cut by CLIENT_WRITE_TIMEOUT)',
    slowWarmup: true,
    weight: 0.15,
    needsMs: 7000,
    counts: [c(L(mStuckReader), '/api/chat', 200, 'client_timeout')],
    warmup: {
      name: 'stuck reader warm-up',
      weight: 0,
      counts: [c(L(mStuckReader), '/api/chat', 200)],
      run: async (c) => expectDigest(await slowRead(c, chatFor(mStuckReader), 0, 10_000)),
    },
    run: async (c) => {
      // Stops reading for longer than CLIENT_WRITE_TIMEOUT_SECONDS (3 s): the gateway must cut it.
      const r = await slowRead(c, chatFor(mStuckReader), 4500, 12_000);
      return r.outcome === 'broken' && r.status === 200 && r.bytes < big.length ? { ok: true } : { ok: false, why: `${r.outcome} ${r.status} ${r.bytes}B` };
    },
  },
];

// The body budget: three bodies of 0.9 MB held (stalled) and a fourth refused with 503, then the
// three answered 408 when REQUEST_BODY_TIMEOUT_SECONDS passes. One cycle at a time, in its own
// lane, so the budget is never full for anyone else (every other body is far smaller).
const bufferedBytes = async (url: string): Promise<number | undefined> => {
  const text = await (await fetch(`${url}/metrics`)).text().catch(() => '');
  return samples(text, new Set(['ollama_gateway_buffered_body_bytes']))[0]?.value;
};
export const BUDGET: Kind = {
  name: 'body buffer budget (3 held, 1 refused)',
  weight: 0,
  counts: [...Array.from({ length: 3 }, () => c('unknown', '/api/chat', 408, 'body_timeout')), c('unknown', '/api/chat', 503, 'body_buffer_full')],
  run: async (cx) => {
    const full = Buffer.from(post('/api/chat', JSON.stringify({ model: 'llama3.2', prompt: 'h'.repeat(900_000) })));
    const held = full.subarray(0, full.length - 100);
    const heldBody = held.length - (full.indexOf('\r\n\r\n') + 4);
    const holds = Array.from({ length: 3 }, () => hold(cx, held, full.subarray(held.length)));
    // Send the fourth once the gateway holds the three (they keep trickling until it is answered).
    const by = performance.now() + 3000;
    while (performance.now() < by && ((await bufferedBytes(cx.url)) ?? 0) < 3 * heldBody) await new Promise((r) => setTimeout(r, 50));
    const refused = await raw(cx, [{ t: 'write', data: full }], 1, ['POST']);
    // Then silence: each held body gets its 408 after REQUEST_BODY_TIMEOUT_SECONDS.
    for (const h of holds) h.stop();
    const answers = await Promise.all(holds.map((h) => h.answer));
    const r503 = expectRaw(refused, 503, { 'retry-after': /^1$/, connection: /close/i });
    if (!r503.ok) return { ok: false, why: `fourth: ${r503.why}` };
    for (const a of answers) {
      if (a.status !== 408 || !/close/i.test(a.headers.get('connection') ?? ''))
        return { ok: false, why: `held: ${a.status} connection: ${a.headers.get('connection') ?? 'absent'}` };
    }
    return { ok: true };
  },
};
