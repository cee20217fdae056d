/**
 * An Ollama that misbehaves at the HTTP level — trailers, resets, `101` to a POST, unparseable
 * heads, endless and gigantic streams — and clients that stop reading or ask to close. For each
 * scenario: what the client receives, the exact counts in /metrics, and that the gateway (and the
 * process) keeps serving afterwards. Every scenario gets its own upstream and gateway.
 *
 * Long by design: each limit on what Ollama may send has its scenario here (the README's limits
 * table and docs/ARCHITECTURE.md point limits at test/integration/hostile-*.test.ts), and the
 * scenarios share the crash watch, the stack and the metric readers.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { metricsText, sample, startGatewayFor, type GatewayOnly } from '../helpers/gateway';
import {
  chunk,
  chunkedReply,
  HostileUpstream,
  lastChunk,
  raw,
  repeat,
  reply,
  reset,
  streamHead,
  switchingProtocols,
  wait,
  write,
  type Script,
} from '../helpers/hostile-upstream';
import { RawConnection, rawRequest, type RawResponse } from '../helpers/raw-client';
import { sleep } from '../helpers/wait';
import { ERROR_REASONS } from '../../otel/instruments';

// ---------------------------------------------------------------------------------------------
// Crashes: the gateway runs in this process, so an exception it does not catch surfaces here.

const crashes: Error[] = [];
let crashWatchers: ((err: Error) => void)[] = [];
const onUncaught = (err: Error) => {
  crashes.push(err);
  for (const w of crashWatchers) w(err);
};
before(() => {
  process.on('uncaughtException', onUncaught);
});
after(() => {
  process.off('uncaughtException', onUncaught);
});

function assertNoCrash(): void {
  assert.deepEqual(
    crashes.map((e) => String(e.stack ?? e)),
    [],
    'the gateway threw an exception it did not catch (the process would have died)',
  );
}

/** `p`, or a rejection after `ms` (or as soon as the gateway throws an uncaught exception). */
function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      crashWatchers = crashWatchers.filter((w) => w !== crash);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what}: nothing within ${ms} ms`));
    }, ms);
    const crash = (err: Error) => {
      done();
      reject(new Error(`the gateway threw while ${what} (the process would have died): ${err.stack ?? err}`));
    };
    crashWatchers.push(crash);
    p.then(
      (v) => {
        done();
        resolve(v);
      },
      (e: unknown) => {
        done();
        reject(e);
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------
// One scenario: a fresh hostile upstream and a gateway in front of it.

interface Stack {
  up: HostileUpstream;
  gw: GatewayOnly;
  url: string;
  /** Client sockets to destroy when the scenario ends. */
  sockets: Set<net.Socket>;
}

/** A valid non-streamed chat answer, for the check that the gateway still serves. */
const PROBE_ANSWER = JSON.stringify({
  model: 'probe',
  created_at: '2026-01-01T00:00:00Z',
  message: { role: 'assistant', content: 'ok' },
  done: true,
  done_reason: 'stop',
  total_duration: 1000,
  load_duration: 10,
  prompt_eval_count: 3,
  prompt_eval_duration: 100,
  eval_count: 1,
  eval_duration: 500,
});

async function withStack(env: Record<string, string>, body: (s: Stack) => Promise<void>): Promise<void> {
  crashes.length = 0; // each scenario answers for its own
  const up = await new HostileUpstream().start();
  up.on('/api/chat', () => reply(200, 'application/json; charset=utf-8', PROBE_ANSWER));
  const gw = await startGatewayFor(up.origin, { UPSTREAM_IDLE_TIMEOUT_SECONDS: '30', ...env });
  const s: Stack = { up, gw, url: gw.url, sockets: new Set() };
  try {
    await body(s);
  } finally {
    for (const sock of s.sockets) sock.destroy();
    await up.close();
    await gw.close();
  }
}

/** The gateway answers its health check and proxies a well-formed call. */
async function stillServing(s: Stack): Promise<void> {
  const health = await deadline(fetch(`${s.url}/healthz`), 5000, 'GET /healthz');
  assert.equal(health.status, 200);
  await health.arrayBuffer();
  const res = await deadline(
    post(s, '/api/chat', '{"model":"probe","stream":false,"messages":[{"role":"user","content":"hi"}]}'),
    5000,
    'a normal call afterwards',
  );
  assert.equal(res.status, 200, 'a normal call after the scenario');
  assert.equal(res.body.toString(), PROBE_ANSWER);
  assertNoCrash();
}

// ---------------------------------------------------------------------------------------------
// Metrics, read with sample() for exact values.

const REASONS = ERROR_REASONS;
const STATUSES = ['200', '400', '404', '408', '413', '499', '500', '502', '503', '504'];

interface Series {
  model: string;
  endpoint: string;
}

/** Every error count of one model and endpoint, by reason (absent and zero reasons left out). */
function errorsOf(m: string, s: Series): Record<string, number> {
  const out: Record<string, number> = {};
  for (const reason of REASONS) {
    const v = sample(m, 'ollama_request_errors_total', { ...s, reason });
    if (v !== undefined && v > 0) out[reason] = v;
  }
  return out;
}

/** Every request count of one model and endpoint, by status (absent statuses left out). */
function statusesOf(m: string, s: Series): Record<string, number> {
  const out: Record<string, number> = {};
  for (const status of STATUSES) {
    const v = sample(m, 'ollama_requests_total', { ...s, status });
    if (v !== undefined) out[status] = v;
  }
  return out;
}

/** /metrics once the call of `s` has been counted (or as it is after `ms`). */
async function metricsAfterCall(s: Stack, series: Series, ms = 3000): Promise<string> {
  const until = Date.now() + ms;
  for (;;) {
    const m = await metricsText(s.url);
    if (Object.keys(statusesOf(m, series)).length > 0 || Date.now() > until) return m;
    await sleep(20);
  }
}

/** The call of `series` is counted with exactly these error reasons and statuses, and nothing is left in flight. */
async function countedOnce(s: Stack, series: Series, errors: Record<string, number>, statuses: Record<string, number>): Promise<void> {
  const m = await metricsAfterCall(s, series);
  assert.deepEqual(errorsOf(m, series), errors);
  assert.deepEqual(statusesOf(m, series), statuses);
  assert.equal(sample(m, 'ollama_requests_in_flight', { ...series }), 0);
}

// ---------------------------------------------------------------------------------------------
// Clients

interface Result {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** Set when the response broke off instead of ending. */
  error?: string;
}

/** A POST with node:http; resolves when the response ends or breaks off. */
function post(s: Stack, path: string, body: string, onResponse?: (res: http.IncomingMessage, req: http.ClientRequest) => void): Promise<Result> {
  return new Promise((resolve, reject) => {
    const req = http.request(s.url + path, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      let settled = false;
      const settle = (error?: string) => {
        if (settled) return;
        settled = true;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), error });
      };
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => settle());
      res.on('error', (err) => settle(err.message));
      res.on('close', () => settle(res.complete ? undefined : 'closed before the end'));
      onResponse?.(res, req);
    });
    req.on('socket', (sock) => s.sockets.add(sock));
    req.on('error', reject);
    req.end(body);
  });
}

/** A raw-socket client (for what node:http cannot do: speak HTTP/1.0, stop reading, see the headers exactly as sent), closed with the scenario. */
async function rawClient(s: Stack): Promise<RawConnection> {
  const client = await RawConnection.open(Number(new URL(s.url).port));
  s.sockets.add(client.socket);
  return client;
}

/** The response on `client`, complete or cut by the close; rejects after `ms`, or as soon as the gateway throws. */
function rawResponse(client: RawConnection, ms: number, what: string): Promise<RawResponse> {
  return deadline(client.response(ms), ms + 1000, what);
}

/** Polls /healthz until `run` settles; returns how many answers came, the slowest, and what failed. */
async function healthzWhile<T>(s: Stack, run: Promise<T>): Promise<{ result: T; answered: number; slowest: number; failures: string[] }> {
  let running = true;
  const times: number[] = [];
  const failures: string[] = [];
  const polling = (async () => {
    while (running) {
      const t0 = Date.now();
      try {
        const res = await fetch(`${s.url}/healthz`, { signal: AbortSignal.timeout(10_000) });
        await res.arrayBuffer();
        if (res.status !== 200) failures.push(`/healthz answered ${res.status}`);
        else if (running) times.push(Date.now() - t0);
      } catch (err) {
        failures.push(`/healthz failed: ${(err as Error).message}`);
      }
      await sleep(50);
    }
  })();
  try {
    const result = await run;
    return { result, answered: times.length, slowest: Math.max(0, ...times), failures };
  } finally {
    running = false;
    await polling;
  }
}

// ---------------------------------------------------------------------------------------------
// Fixtures made up for these scenarios

const TAGS = '{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest","size":2019393189}]}';

function ndjsonLine(model: string, content: string): string {
  return JSON.stringify({ model, created_at: '2026-01-01T00:00:00Z', message: { role: 'assistant', content }, done: false }) + '\n';
}

function ndjsonDone(model: string): string {
  return (
    JSON.stringify({
      model,
      created_at: '2026-01-01T00:00:01Z',
      message: { role: 'assistant', content: '' },
      done: true,
      done_reason: 'stop',
      total_duration: 1_000_000,
      load_duration: 10_000,
      prompt_eval_count: 5,
      prompt_eval_duration: 100_000,
      eval_count: 7,
      eval_duration: 800_000,
    }) + '\n'
  );
}

function sseEvent(model: string, delta: Record<string, string>, finish: string | null = null): string {
  return `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model, system_fingerprint: 'fp_ollama', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
}

function sseUsage(model: string): string {
  return `data: ${JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model, system_fingerprint: 'fp_ollama', choices: [], usage: { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 } })}\n\n`;
}

/** Cuts `body` into pieces of `size` bytes. */
function pieces(body: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < body.length; at += size) out.push(body.subarray(at, at + size));
  return out;
}

function sameBytes(got: Buffer, want: Buffer, what: string): void {
  if (got.equals(want)) return;
  let i = 0;
  while (i < got.length && i < want.length && got[i] === want[i]) i++;
  assert.fail(`${what}: got ${got.length} bytes, expected ${want.length}; first difference at byte ${i}`);
}

// ---------------------------------------------------------------------------------------------

describe('a pass-through response carrying a Trailer header', () => {
  const cases: { name: string; version: 'HTTP/1.1' | 'HTTP/1.0'; script: () => Script }[] = [
    {
      name: 'with Content-Length, to an HTTP/1.1 client',
      version: 'HTTP/1.1',
      script: () => reply(200, 'application/json; charset=utf-8', TAGS, { Trailer: 'X-Checksum' }),
    },
    {
      name: 'chunked with a trailer field, to an HTTP/1.1 client',
      version: 'HTTP/1.1',
      script: () =>
        chunkedReply(200, 'application/json; charset=utf-8', [TAGS.slice(0, 20), TAGS.slice(20)], {
          extra: { Trailer: 'X-Checksum' },
          trailers: { 'X-Checksum': 'abc' },
        }),
    },
    {
      name: 'with Content-Length, to an HTTP/1.0 client',
      version: 'HTTP/1.0',
      script: () => reply(200, 'application/json; charset=utf-8', TAGS, { Trailer: 'X-Checksum' }),
    },
    {
      name: 'chunked with a trailer field, to an HTTP/1.0 client',
      version: 'HTTP/1.0',
      script: () =>
        chunkedReply(200, 'application/json; charset=utf-8', [TAGS.slice(0, 20), TAGS.slice(20)], {
          extra: { Trailer: 'X-Checksum' },
          trailers: { 'X-Checksum': 'abc' },
        }),
    },
  ];
  for (const c of cases) {
    it(`is relayed without the Trailer header ${c.name}, and the process stays up`, { timeout: 15_000 }, () =>
      withStack({}, async (s) => {
        s.up.next(c.script(), { path: '/api/tags' });
        const client = await rawClient(s);
        await client.send(`GET /api/tags ${c.version}\r\nHost: 127.0.0.1\r\n\r\n`);
        const res = await rawResponse(client, 5000, `GET /api/tags over ${c.version}`);
        assertNoCrash();
        assert.equal(res.status, 200);
        assert.ok(!res.incomplete, 'the response must arrive whole');
        assert.equal(res.body.toString(), TAGS);
        assert.equal(res.headers.trailer, undefined, 'the Trailer header is dropped');
        if (c.version === 'HTTP/1.0') assert.equal(res.headers['transfer-encoding'], undefined, 'an HTTP/1.0 client cannot read chunked encoding');
        assert.equal(s.up.last('/api/tags')?.method, 'GET');
        await stillServing(s);
      }),
    );
  }
});

describe('a 200 stream that Ollama resets', () => {
  const NDJSON_LINES = [ndjsonLine('reset-ndjson', 'Hello'), ndjsonLine('reset-ndjson', ' there')];
  const SSE_EVENTS = [sseEvent('reset-sse', { role: 'assistant', content: 'Hello' }), sseEvent('reset-sse', { content: ' there' })];
  const cases: { name: string; path: string; model: string; request: string; contentType: string; sent: string[] }[] = [
    {
      name: 'an NDJSON stream on /api/chat right after the headers',
      path: '/api/chat',
      model: 'reset-ndjson',
      request: '{"model":"reset-ndjson","messages":[{"role":"user","content":"hi"}]}',
      contentType: 'application/x-ndjson',
      sent: [],
    },
    {
      name: 'an NDJSON stream on /api/chat after some lines',
      path: '/api/chat',
      model: 'reset-ndjson',
      request: '{"model":"reset-ndjson","messages":[{"role":"user","content":"hi"}]}',
      contentType: 'application/x-ndjson',
      sent: NDJSON_LINES,
    },
    {
      name: 'an SSE stream on /v1/chat/completions right after the headers',
      path: '/v1/chat/completions',
      model: 'reset-sse',
      request: '{"model":"reset-sse","stream":true,"messages":[{"role":"user","content":"hi"}]}',
      contentType: 'text/event-stream',
      sent: [],
    },
    {
      name: 'an SSE stream on /v1/chat/completions after some events',
      path: '/v1/chat/completions',
      model: 'reset-sse',
      request: '{"model":"reset-sse","stream":true,"messages":[{"role":"user","content":"hi"}]}',
      contentType: 'text/event-stream',
      sent: SSE_EVENTS,
    },
  ];
  for (const c of cases) {
    it(`is passed on cut and counted as status 200 with a stream error (not upstream_unreachable): ${c.name}`, { timeout: 15_000 }, () =>
      withStack({}, async (s) => {
        s.up.next([...streamHead(c.contentType), ...c.sent.map((p) => write(chunk(p))), wait(100), reset()], { path: c.path });
        const res = await deadline(post(s, c.path, c.request), 5000, `POST ${c.path}`);
        assert.equal(res.status, 200, "the client got the stream's 200, not a 502");
        assert.ok(res.error, 'the client must see the body break off');
        assert.equal(res.body.toString(), c.sent.join(''));
        const series = { model: `${c.model}:latest`, endpoint: c.path };
        await countedOnce(s, series, { stream_error: 1 }, { '200': 1 });
        await stillServing(s);
      }),
    );
  }
});

describe('Ollama answers 101 Switching Protocols to a POST', () => {
  it('answers an LLM call with a 502 at once, counted as upstream_invalid_response', { timeout: 15_000 }, () =>
    withStack({ UPSTREAM_IDLE_TIMEOUT_SECONDS: '30' }, async (s) => {
      s.up.next(switchingProtocols(), { path: '/api/chat' });
      const res = await deadline(
        post(s, '/api/chat', '{"model":"upgrader","messages":[{"role":"user","content":"hi"}]}'),
        5000,
        'POST /api/chat answered by 101 (the idle timeout is 30 s)',
      );
      assert.equal(res.status, 502);
      assert.match(res.headers['content-type'] ?? '', /^application\/json/);
      assert.equal(typeof (JSON.parse(res.body.toString()) as { error: unknown }).error, 'string');
      const series = { model: 'upgrader:latest', endpoint: '/api/chat' };
      await countedOnce(s, series, { upstream_invalid_response: 1 }, { '502': 1 });
      await stillServing(s);
    }),
  );

  it('answers a pass-through POST with a 502 at once', { timeout: 15_000 }, () =>
    withStack({ UPSTREAM_IDLE_TIMEOUT_SECONDS: '30' }, async (s) => {
      s.up.next(switchingProtocols(), { path: '/api/pull' });
      const res = await deadline(post(s, '/api/pull', '{"model":"upgrader"}'), 5000, 'POST /api/pull answered by 101 (the idle timeout is 30 s)');
      assert.equal(res.status, 502);
      assert.match(res.headers['content-type'] ?? '', /^application\/json/);
      assert.equal(typeof (JSON.parse(res.body.toString()) as { error: unknown }).error, 'string');
      assert.equal(s.up.last('/api/pull')?.method, 'POST');
      await stillServing(s);
    }),
  );
});

describe('Ollama sends a response head the gateway cannot parse', () => {
  const cases: { name: string; bytes: string }[] = [
    { name: 'a garbage status line', bytes: 'HTTP/1.1 2xx Fine\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}' },
    { name: 'bytes that are not HTTP at all', bytes: 'SSH-2.0-OpenSSH_9.6\r\n\r\n' },
    {
      name: 'both Content-Length and Transfer-Encoding',
      bytes: 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
    },
    { name: 'a head over 16 KB', bytes: `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Filler: ${'a'.repeat(20_000)}\r\nContent-Length: 2\r\n\r\n{}` },
  ];
  for (const c of cases) {
    it(`answers 502, counted as upstream_invalid_response: ${c.name}`, { timeout: 15_000 }, () =>
      withStack({}, async (s) => {
        s.up.next(raw(c.bytes), { path: '/api/chat' });
        const res = await deadline(post(s, '/api/chat', '{"model":"garbled","messages":[{"role":"user","content":"hi"}]}'), 5000, 'POST /api/chat');
        assert.equal(res.status, 502);
        assert.equal(typeof (JSON.parse(res.body.toString()) as { error: unknown }).error, 'string');
        const series = { model: 'garbled:latest', endpoint: '/api/chat' };
        await countedOnce(s, series, { upstream_invalid_response: 1 }, { '502': 1 });
        await stillServing(s);
      }),
    );
  }
});

describe('Ollama resets the connection before any response byte', () => {
  it('answers 502, still counted as upstream_unreachable', { timeout: 15_000 }, () =>
    withStack({}, async (s) => {
      s.up.next([reset()], { path: '/api/chat' });
      const res = await deadline(post(s, '/api/chat', '{"model":"unreachable","messages":[{"role":"user","content":"hi"}]}'), 5000, 'POST /api/chat');
      assert.equal(res.status, 502);
      assert.equal(typeof (JSON.parse(res.body.toString()) as { error: unknown }).error, 'string');
      const series = { model: 'unreachable:latest', endpoint: '/api/chat' };
      await countedOnce(s, series, { upstream_unreachable: 1 }, { '502': 1 });
      await stillServing(s);
    }),
  );
});

describe('a client that abandons an endless stream', () => {
  it('makes the gateway close the upstream connection, counted as client_cancelled', { timeout: 15_000 }, () =>
    withStack({}, async (s) => {
      s.up.next([...streamHead('application/x-ndjson'), repeat(chunk(ndjsonLine('endless', 'more')), 10)], { path: '/api/chat' });
      await deadline(
        new Promise<void>((resolve, reject) => {
          post(s, '/api/chat', '{"model":"endless","messages":[{"role":"user","content":"hi"}]}', (res, req) => {
            let n = 0;
            res.on('data', () => {
              if (++n === 3) {
                req.destroy();
                resolve();
              }
            });
          }).catch(() => {});
          setTimeout(() => reject(new Error('the stream never started')), 4000).unref();
        }),
        5000,
        'reading three chunks of the stream',
      );
      const conn = s.up.last('/api/chat')!.connection;
      await s.up.closedWithin(conn, 2000);
      assert.equal(conn.closedByPeer, true, 'the gateway closed it, not the upstream');
      const series = { model: 'endless:latest', endpoint: '/api/chat' };
      await countedOnce(s, series, { client_cancelled: 1 }, { '200': 1 });
      await stillServing(s);
    }),
  );
});

describe('a single 30 MB event or line', () => {
  const BIG = 30 * 1024 * 1024;

  it('is forwarded byte for byte on an SSE stream the gateway does not rewrite, while /healthz keeps answering', { timeout: 40_000 }, () =>
    withStack({}, async (s) => {
      const model = 'huge-sse';
      const body = Buffer.from(
        sseEvent(model, { role: 'assistant', content: 'x'.repeat(BIG) }) + sseEvent(model, { content: '' }, 'stop') + sseUsage(model) + 'data: [DONE]\n\n',
      );
      s.up.next(chunkedReply(200, 'text/event-stream', pieces(body, 1024 * 1024), { gapMs: 20 }), { path: '/v1/chat/completions' });
      const request = JSON.stringify({ model, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
      const {
        result: res,
        answered,
        slowest,
        failures,
      } = await healthzWhile(s, deadline(post(s, '/v1/chat/completions', request), 30_000, 'the 30 MB stream'));
      assert.deepEqual(failures, []);
      assert.ok(answered >= 1, '/healthz answered while the event was streaming');
      assert.ok(slowest < 5000, `/healthz took ${slowest} ms to answer during the stream`);
      assert.equal(res.status, 200);
      assert.equal(res.error, undefined);
      sameBytes(res.body, body, 'the SSE stream');
      const series = { model: `${model}:latest`, endpoint: '/v1/chat/completions' };
      const m = await metricsAfterCall(s, series);
      assert.deepEqual(statusesOf(m, series), { '200': 1 });
      assert.equal(sample(m, 'ollama_tokens_generated_total', { model: `${model}:latest` }), 7);
      assert.equal(sample(m, 'ollama_requests_in_flight', series), 0);
      await stillServing(s);
    }),
  );

  it('is forwarded byte for byte on an NDJSON stream, while /healthz keeps answering', { timeout: 40_000 }, () =>
    withStack({}, async (s) => {
      const model = 'huge-ndjson';
      const body = Buffer.from(ndjsonLine(model, 'x'.repeat(BIG)) + ndjsonDone(model));
      s.up.next(chunkedReply(200, 'application/x-ndjson', pieces(body, 1024 * 1024), { gapMs: 20 }), { path: '/api/chat' });
      const {
        result: res,
        answered,
        slowest,
        failures,
      } = await healthzWhile(
        s,
        deadline(post(s, '/api/chat', JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] })), 30_000, 'the 30 MB stream'),
      );
      assert.deepEqual(failures, []);
      assert.ok(answered >= 1, '/healthz answered while the line was streaming');
      assert.ok(slowest < 5000, `/healthz took ${slowest} ms to answer during the stream`);
      assert.equal(res.status, 200);
      assert.equal(res.error, undefined);
      sameBytes(res.body, body, 'the NDJSON stream');
      const series = { model: `${model}:latest`, endpoint: '/api/chat' };
      const m = await metricsAfterCall(s, series);
      assert.deepEqual(statusesOf(m, series), { '200': 1 });
      assert.equal(sample(m, 'ollama_tokens_generated_total', { model: `${model}:latest` }), 7);
      assert.equal(sample(m, 'ollama_tokens_processed_total', { model: `${model}:latest` }), 5);
      assert.equal(sample(m, 'ollama_requests_in_flight', series), 0);
      await stillServing(s);
    }),
  );
});

describe('a client that stops reading for 3 s', () => {
  /** ~24 MB of NDJSON in 64 KiB chunks: more than the socket buffers between client and upstream hold. */
  function bigStream(model: string): { script: Script; body: Buffer } {
    const line = ndjsonLine(model, 'y'.repeat(900));
    const piece = line.repeat(Math.floor(65_536 / line.length));
    const count = Math.ceil((24 * 1024 * 1024) / piece.length);
    const script: Script = [...streamHead('application/x-ndjson')];
    for (let i = 0; i < count; i++) script.push(write(chunk(piece)));
    script.push(write(chunk(ndjsonDone(model))), write(lastChunk()));
    return { script, body: Buffer.from(piece.repeat(count) + ndjsonDone(model)) };
  }

  /** Sends the call on a paused socket, waits 3 s, checks the stream backed up to the upstream, resumes. */
  async function stalledCall(s: Stack, model: string): Promise<{ res: RawResponse; body: Buffer; client: RawConnection }> {
    const { script, body } = bigStream(model);
    s.up.next(script, { path: '/api/chat' });
    const client = await rawClient(s);
    client.socket.pause();
    await client.send(
      rawRequest('POST', '/api/chat', {
        body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
        headers: { 'content-type': 'application/json' },
      }),
    );
    const upstreamReq = await s.up.nextRequest('/api/chat', 3000);
    await sleep(3000);
    assert.equal(
      upstreamReq.answered,
      false,
      `precondition: the stalled client must back the stream up to the upstream, but all ${upstreamReq.bytesWritten} bytes went out (make the stream bigger)`,
    );
    client.socket.resume();
    return { res: await rawResponse(client, 15_000, 'the stalled client reading the stream'), body, client };
  }

  it('gets the whole stream once it reads again, and the upstream is not blamed (UPSTREAM_IDLE_TIMEOUT_SECONDS=1)', { timeout: 30_000 }, () =>
    withStack({ UPSTREAM_IDLE_TIMEOUT_SECONDS: '1' }, async (s) => {
      const model = 'slow-reader';
      const { res, body } = await stalledCall(s, model);
      const series = { model: `${model}:latest`, endpoint: '/api/chat' };
      const m = await metricsAfterCall(s, series);
      assert.deepEqual(errorsOf(m, series), {}, 'a client that does not read is not an upstream that does not send');
      assert.equal(res.status, 200);
      assert.ok(!res.incomplete, `the client must receive the whole stream (got ${res.body.length} of ${body.length} bytes)`);
      sameBytes(res.body, body, 'the stream');
      assert.deepEqual(statusesOf(m, series), { '200': 1 });
      assert.equal(sample(m, 'ollama_requests_in_flight', series), 0);
      await stillServing(s);
    }),
  );

  it('is cut and counted as client_timeout when CLIENT_WRITE_TIMEOUT_SECONDS=1', { timeout: 30_000 }, () =>
    withStack({ CLIENT_WRITE_TIMEOUT_SECONDS: '1' }, async (s) => {
      const model = 'stuck-reader';
      const { res, body, client } = await stalledCall(s, model);
      assert.equal(
        res.incomplete,
        true,
        `the gateway must cut a client that leaves its writes blocked for longer than CLIENT_WRITE_TIMEOUT_SECONDS (it got all ${body.length} bytes)`,
      );
      assert.equal(client.closed, true, 'cut by the gateway closing the connection');
      const series = { model: `${model}:latest`, endpoint: '/api/chat' };
      await countedOnce(s, series, { client_timeout: 1 }, { '200': 1 });
      await s.up.closedWithin(s.up.last('/api/chat')!.connection, 2000);
      await stillServing(s);
    }),
  );
});

describe('a pass-through request with Connection: close', () => {
  it('gets a response saying connection: close, and the socket is closed right after it', { timeout: 15_000 }, () =>
    withStack({}, async (s) => {
      s.up.next(reply(200, 'application/json; charset=utf-8', TAGS), { path: '/api/tags' });
      const client = await rawClient(s);
      await client.send('GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      const res = await rawResponse(client, 5000, 'GET /api/tags with Connection: close');
      assert.equal(res.status, 200);
      assert.ok(!res.incomplete);
      assert.equal(res.body.toString(), TAGS);
      assert.equal(res.headers.connection, 'close');
      assert.ok(await client.closedWithin(1000), 'the gateway kept the connection open for more than 1000 ms after the response');
      await stillServing(s);
    }),
  );
});
