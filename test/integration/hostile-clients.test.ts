/**
 * Clients no SDK would be, over raw sockets: made-up model names megabytes long, odd spellings of
 * the LLM paths, bodies that never finish, heads that trickle in, broken framing, pipelined
 * requests, resets right after sending, writes to the gateway's own paths. For each: what the client
 * got, what /metrics counted, what Ollama (the fake) received, and that the gateway still serves.
 *
 * Long by design: each limit on what a client may send has its scenario here (the README's limits
 * table and docs/ARCHITECTURE.md point limits at test/integration/hostile-*.test.ts), and the
 * scenarios share the stack, the metric readers and the raw-socket client.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { FakeOllama } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { sample, startStack, type TestStack } from '../helpers/gateway';
import { runGateway, type GatewayProcess } from '../helpers/process';
import { closedPort, freePort } from '../helpers/procs';
import { exchange, RawConnection, rawRequest, type RawResponse } from '../helpers/raw-client';
import { CHAT_SPELLINGS } from '../helpers/spellings';
import { eventually, sleep } from '../helpers/wait';

const MiB = 1024 * 1024;
const CHAT_BODY = '{"model":"llama3.2","stream":false}';
const JSON_HEADERS = { 'content-type': 'application/json' };

// ---------------------------------------------------------------------------------------------
// Reading /metrics

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  assert.equal(res.status, 200, `/metrics answered ${res.status}: ${text.slice(0, 300)}`);
  return text;
}

interface Series {
  labels: Record<string, string>;
  value: number;
}

/** Every series of the metric `name` (exact name, so `_bucket` and friends are separate). */
function seriesOf(text: string, name: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    out.push({ labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum over the series of `name` whose labels include `match` (0 when there are none). */
function total(text: string, name: string, match: Record<string, string> = {}): number {
  return seriesOf(text, name)
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

const inFlight = (m: string): number => total(m, 'ollama_requests_in_flight');

// ---------------------------------------------------------------------------------------------
// Small helpers

/** A normal call works and /healthz answers. */
async function stillServing(stack: TestStack): Promise<void> {
  const res = await fetch(`${stack.url}/api/chat`, { method: 'POST', body: CHAT_BODY, signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200, 'a normal /api/chat call still works');
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), fixture('chat-nostream.json'));
  const health = await fetch(`${stack.url}/healthz`, { signal: AbortSignal.timeout(5000) });
  assert.equal(health.status, 200, '/healthz still answers');
}

async function withStack(env: Record<string, string>, fn: (stack: TestStack) => Promise<void>): Promise<void> {
  const stack = await startStack(env);
  try {
    await fn(stack);
  } finally {
    await stack.close();
  }
}

function postJson(url: string, path: string, body: unknown): Promise<{ status: number; body: Buffer }> {
  return fetch(url + path, { method: 'POST', headers: JSON_HEADERS, body: JSON.stringify(body), signal: AbortSignal.timeout(15_000) }).then(async (r) => ({
    status: r.status,
    body: Buffer.from(await r.arrayBuffer()),
  }));
}

function jsonOf(res: RawResponse): unknown {
  try {
    return JSON.parse(res.body.toString('utf8'));
  } catch {
    return undefined;
  }
}

/** Requests the fake received after index `from`, as `METHOD url`. */
const receivedSince = (stack: TestStack, from: number): string[] => stack.fake.requests.slice(from).map((r) => `${r.method} ${r.url}`);

// ---------------------------------------------------------------------------------------------

describe('model names clients make up', () => {
  const huge = 'm'.repeat(5 * MiB);

  it('a 5 MB model name is recorded as model="invalid", three times in a row, and /metrics stays small', { timeout: 60_000 }, async () => {
    await withStack({}, async (stack) => {
      for (let i = 0; i < 3; i++) {
        const res = await postJson(stack.url, '/api/chat', { model: huge, messages: [{ role: 'user', content: 'hi' }], stream: false });
        assert.equal(res.status, 404, `call ${i + 1}: Ollama's "model not found", passed through`);
      }
      const chats = stack.fake.requests.filter((r) => r.url === '/api/chat');
      assert.equal(chats.length, 3, 'all three went to Ollama');
      assert.ok(
        chats.every((r) => r.bodyLength > 5 * MiB),
        'with their bodies unchanged',
      );
      const m = await scrape(stack.url);
      assert.ok(m.length < 200_000, `/metrics is ${m.length} bytes`);
      assert.ok(!m.includes('m'.repeat(300)), 'the name itself is nowhere in /metrics');
      assert.equal(sample(m, 'ollama_requests_total', { model: 'invalid', endpoint: '/api/chat', status: '404' }), 3);
      assert.equal(sample(m, 'ollama_request_errors_total', { model: 'invalid', endpoint: '/api/chat', reason: 'upstream_4xx' }), 3);
      assert.equal(
        total(m, 'gen_ai_client_operation_duration_seconds_count', { gen_ai_request_model: 'invalid' }),
        0,
        'a name nobody serves buys no histogram',
      );
      assert.equal(inFlight(m), 0);
      const access = stack.logs.filter((l) => l.path === '/api/chat' && typeof l.status === 'number');
      assert.deepEqual(
        access.map((l) => l.model),
        ['invalid', 'invalid', 'invalid'],
        'access log lines carry the label',
      );
      const longest = Math.max(...stack.logs.map((l) => JSON.stringify(l).length));
      assert.ok(longest < 64 * 1024, `no log line carries the name: the longest is ${longest} characters`);
      await stillServing(stack);
    });
  });

  it('a 5 MB model name with Ollama down is recorded as model="invalid" with its 502s, and /metrics stays small', { timeout: 60_000 }, async () => {
    await withStack({ OLLAMA_HOST: `http://127.0.0.1:${await closedPort()}` }, async (stack) => {
      for (let i = 0; i < 3; i++) {
        const res = await postJson(stack.url, '/api/chat', { model: huge, messages: [{ role: 'user', content: 'hi' }] });
        assert.equal(res.status, 502, `call ${i + 1}`);
        assert.match((JSON.parse(res.body.toString()) as { error: string }).error, /refused the connection/);
      }
      const m = await scrape(stack.url);
      assert.ok(m.length < 200_000, `/metrics is ${m.length} bytes`);
      assert.equal(sample(m, 'ollama_requests_total', { model: 'invalid', endpoint: '/api/chat', status: '502' }), 3);
      assert.equal(sample(m, 'ollama_request_errors_total', { model: 'invalid', endpoint: '/api/chat', reason: 'upstream_unreachable' }), 3);
      assert.equal(inFlight(m), 0);
      assert.equal((await fetch(`${stack.url}/healthz`)).status, 200);
    });
  });

  it('names over 256 characters or with a control character are "invalid"; a 256-character name keeps its name', { timeout: 20_000 }, async () => {
    await withStack({}, async (stack) => {
      // Tagged names, so `:latest` is not appended and the length is the label's length.
      const name256 = `${'a'.repeat(249)}:latest`;
      const name257 = `${'b'.repeat(250)}:latest`;
      assert.equal(name256.length, 256);
      assert.equal(name257.length, 257);
      const bad = [name257, 'llama3.2\u0001:latest', 'llama\u007f3:latest', 'x\u0000y:latest', 'tab\there:latest', 'line\nbreak:latest', '\u001f:latest'];
      assert.equal((await postJson(stack.url, '/api/chat', { model: name256, messages: [{ role: 'user', content: 'hi' }], stream: false })).status, 404);
      for (const model of bad)
        assert.equal(
          (await postJson(stack.url, '/api/chat', { model, messages: [{ role: 'user', content: 'hi' }], stream: false })).status,
          404,
          JSON.stringify(model),
        );
      assert.equal((await postJson(stack.url, '/v1/chat/completions', { model: name257, messages: [{ role: 'user', content: 'hi' }] })).status, 404);
      assert.equal(stack.fake.requests.length, bad.length + 2, 'all were forwarded');

      const m = await scrape(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { model: name256, endpoint: '/api/chat', status: '404' }), 1, 'the 256-character name keeps its label');
      assert.equal(sample(m, 'ollama_requests_total', { model: 'invalid', endpoint: '/api/chat', status: '404' }), bad.length);
      assert.equal(sample(m, 'ollama_requests_total', { model: 'invalid', endpoint: '/v1/chat/completions', status: '404' }), 1);
      const models = [...new Set(seriesOf(m, 'ollama_requests_total').map((s) => s.labels.model))].sort();
      assert.deepEqual(models, [name256, 'invalid'].sort(), 'no other model label');
      const genAiModels = [...new Set(seriesOf(m, 'gen_ai_client_operation_duration_seconds_count').map((s) => s.labels.gen_ai_request_model))].sort();
      assert.deepEqual(genAiModels, [], 'names nobody serves buy no GenAI histogram');
      await stillServing(stack);
    });
  });

  it('"invalid" names use up no MAX_MODEL_LABELS slot', { timeout: 20_000 }, async () => {
    await withStack({ MAX_MODEL_LABELS: '2' }, async (stack) => {
      for (const model of ['c'.repeat(300), 'bad\u0001name', 'x'.repeat(100_000)]) {
        assert.equal((await postJson(stack.url, '/api/chat', { model, messages: [{ role: 'user', content: 'hi' }], stream: false })).status, 404);
      }
      assert.equal((await postJson(stack.url, '/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false })).status, 200);
      assert.equal((await postJson(stack.url, '/api/generate', { model: 'qwen3:8b', prompt: 'hi', stream: false })).status, 200);
      assert.equal((await postJson(stack.url, '/api/chat', { model: 'mistral', messages: [{ role: 'user', content: 'hi' }], stream: false })).status, 404);
      const m = await scrape(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { model: 'invalid', endpoint: '/api/chat', status: '404' }), 3);
      assert.equal(
        sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }),
        1,
        'the first normal name has its own label',
      );
      assert.equal(
        sample(m, 'ollama_requests_total', { model: 'qwen3:8b', endpoint: '/api/generate', status: '200' }),
        1,
        'the second normal name has its own label',
      );
      assert.equal(
        sample(m, 'ollama_requests_total', { model: 'other', endpoint: '/api/chat', status: '404' }),
        1,
        'the third normal name is over the cap of 2',
      );
    });
  });
});

// ---------------------------------------------------------------------------------------------

/** Ways of writing `/api/chat` that must all be measured and limited as `/api/chat`. */
const SPELLINGS = [...CHAT_SPELLINGS, '/%61pi/chat', 'https://evil.example/api/chat'];

function spelled(target: string, body: string | Buffer, headers: Record<string, string> = {}): Buffer {
  const host = /^https?:\/\//.test(target) ? 'evil.example' : '127.0.0.1';
  return rawRequest('POST', target, { body, host, headers: { ...JSON_HEADERS, ...headers } });
}

describe('spellings of the LLM paths', () => {
  it('every spelling of /api/chat is measured as endpoint="/api/chat" and forwarded as /api/chat', { timeout: 30_000 }, async () => {
    await withStack({}, async (stack) => {
      const problems: string[] = [];
      for (const target of SPELLINGS) {
        const from = stack.fake.requests.length;
        const ex = await exchange(stack.gw.port, spelled(target, CHAT_BODY));
        const status = ex.responses[0]?.status;
        if (status !== 200) problems.push(`${target}: client got ${status ?? ex.describe()}`);
        const got = receivedSince(stack, from);
        if (got.join() !== 'POST /api/chat') problems.push(`${target}: Ollama received ${JSON.stringify(got)}`);
      }
      // The query string is kept as sent.
      const from = stack.fake.requests.length;
      await exchange(stack.gw.port, spelled('//api/./chat?x=%2F&y=1', CHAT_BODY));
      const withQuery = receivedSince(stack, from).join();
      if (withQuery !== 'POST /api/chat?x=%2F&y=1') problems.push(`//api/./chat?x=%2F&y=1: Ollama received ${withQuery}`);
      assert.deepEqual(problems, []);

      const m = await scrape(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }), SPELLINGS.length + 1);
      assert.deepEqual([...new Set(seriesOf(m, 'ollama_requests_total').map((s) => s.labels.endpoint))], ['/api/chat']);
      assert.equal(inFlight(m), 0);
    });
  });

  it('every spelling is held to MAX_REQUEST_BODY_MB: 413, and Ollama receives nothing', { timeout: 30_000 }, async () => {
    await withStack({ MAX_REQUEST_BODY_MB: '0.001' }, async (stack) => {
      const big = JSON.stringify({ model: 'llama3.2', stream: false, prompt: 'x'.repeat(4000) });
      const problems: string[] = [];
      for (const target of SPELLINGS) {
        const ex = await exchange(stack.gw.port, spelled(target, big));
        if (ex.responses[0]?.status !== 413) problems.push(`${target}: client got ${ex.responses[0]?.status ?? ex.describe()}`);
      }
      // Chunked, with no declared length.
      const chunked = Buffer.concat([
        Buffer.from(
          `POST //api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${big.length.toString(16)}\r\n`,
        ),
        Buffer.from(big),
        Buffer.from('\r\n0\r\n\r\n'),
      ]);
      const ex = await exchange(stack.gw.port, chunked);
      if (ex.responses[0]?.status !== 413) problems.push(`//api/chat chunked: client got ${ex.responses[0]?.status ?? ex.describe()}`);
      assert.deepEqual(problems, []);
      assert.deepEqual(receivedSince(stack, 0), [], 'Ollama received nothing');
      const m = await scrape(stack.url);
      assert.equal(total(m, 'ollama_request_errors_total', { endpoint: '/api/chat', reason: 'body_too_large' }), SPELLINGS.length + 1);
      assert.equal(total(m, 'ollama_requests_total', { status: '413' }), SPELLINGS.length + 1);
    });
  });

  it('every spelling waits for a MAX_CONCURRENT_REQUESTS slot, then gets 503 with Retry-After', { timeout: 30_000 }, async () => {
    await withStack({ MAX_CONCURRENT_REQUESTS: '1', QUEUE_TIMEOUT_SECONDS: '0.2' }, async (stack) => {
      stack.fake.next({ kind: 'hang' });
      const first = await RawConnection.open(stack.gw.port);
      try {
        await first.send(spelled('/api/chat', CHAT_BODY));
        await eventually(() => stack.fake.active === 1, 'the first call reached Ollama and hangs there');
        const problems: string[] = [];
        for (const target of SPELLINGS) {
          const ex = await exchange(stack.gw.port, spelled(target, CHAT_BODY), { ms: 3000 });
          const res = ex.responses[0];
          if (res?.status !== 503 || res.headers['retry-after'] !== '1') {
            problems.push(`${target}: client got ${res ? `${res.status} retry-after=${res.headers['retry-after']}` : ex.describe()}`);
          }
        }
        assert.deepEqual(problems, []);
        assert.deepEqual(receivedSince(stack, 0), ['POST /api/chat'], 'only the first call reached Ollama');
        const m = await scrape(stack.url);
        assert.equal(total(m, 'ollama_request_errors_total', { endpoint: '/api/chat', reason: 'queue_timeout' }), SPELLINGS.length);
      } finally {
        first.destroy();
      }
      await eventually(() => stack.fake.active === 0, 'the hanging upstream call was abandoned');
      await stillServing(stack);
    });
  });

  it('every spelling needs an API key: 401 without one, and Ollama receives nothing', { timeout: 20_000 }, async () => {
    await withStack({ GATEWAY_API_KEYS: 'sekret' }, async (stack) => {
      const problems: string[] = [];
      for (const target of SPELLINGS) {
        const ex = await exchange(stack.gw.port, spelled(target, CHAT_BODY));
        if (ex.responses[0]?.status !== 401) problems.push(`${target}: client got ${ex.responses[0]?.status ?? ex.describe()}`);
      }
      assert.deepEqual(problems, []);
      assert.deepEqual(receivedSince(stack, 0), [], 'Ollama received nothing');
      const ok = await exchange(stack.gw.port, spelled('/api/chat', CHAT_BODY, { authorization: 'Bearer sekret' }));
      assert.equal(ok.responses[0]?.status, 200, 'with the key the call goes through');
      const m = await scrape(stack.url);
      assert.equal(sample(m, 'ollama_gateway_auth_failures_total', { reason: 'missing', scope: 'api' }), SPELLINGS.length);
    });
  });

  it('a target that is neither origin-form nor an http(s) URL gets 400 and is not forwarded', { timeout: 20_000 }, async () => {
    await withStack({}, async (stack) => {
      const problems: string[] = [];
      // Node's parser itself refuses a target like `api/chat`; the others reach the gateway, which
      // must refuse them with a JSON error.
      const targets: [string, string, 'parser' | 'gateway'][] = [
        ['POST', 'api/chat', 'parser'],
        ['GET', 'api/tags', 'parser'],
        ['POST', 'ftp://evil.example/api/chat', 'gateway'],
        ['GET', 'ftp://evil.example/api/tags', 'gateway'],
        ['GET', '*', 'gateway'],
      ];
      for (const [method, target, by] of targets) {
        const ex = await exchange(stack.gw.port, rawRequest(method, target, method === 'POST' ? { body: CHAT_BODY, headers: JSON_HEADERS } : {}));
        const res = ex.responses[0];
        if (res?.status !== 400) problems.push(`${method} ${target}: client got ${res?.status ?? ex.describe()}`);
        else if (by === 'gateway' && typeof (jsonOf(res) as { error?: unknown } | undefined)?.error !== 'string')
          problems.push(`${method} ${target}: 400 without a JSON error: ${ex.describe()}`);
      }
      assert.deepEqual(problems, []);
      assert.deepEqual(receivedSince(stack, 0), [], 'Ollama received nothing');
      await stillServing(stack);
    });
  });
});

// ---------------------------------------------------------------------------------------------

/** Polls ollama_gateway_buffered_body_bytes every 25 ms until `stop()`, which resolves with the highest reading. */
function watchHeld(url: string): { stop(): Promise<number | undefined> } {
  let maxHeld: number | undefined;
  let polling = true;
  const poller = (async () => {
    while (polling) {
      // A failing scrape shows in the scrapes below; here it only skips a reading.
      const v = sample(await scrape(url).catch(() => ''), 'ollama_gateway_buffered_body_bytes');
      if (v !== undefined) maxHeld = Math.max(maxHeld ?? 0, v);
      await sleep(25);
    }
  })();
  return {
    stop: async () => {
      polling = false;
      await poller;
      return maxHeld;
    },
  };
}

/** Twelve connections, 50 ms apart, each declaring a 2 MiB body and sending 1.5 MiB of it; pushed onto `conns`. */
async function stallBodies(port: number, conns: RawConnection[]): Promise<void> {
  const head = rawRequest('POST', '/api/generate', { headers: { ...JSON_HEADERS, 'content-length': String(2 * MiB) } });
  const start = Buffer.from('{"model":"llama3.2","prompt":"');
  const part = Buffer.concat([head, start, Buffer.alloc(1.5 * MiB - start.length, 'x')]);
  for (let i = 0; i < 12; i++) {
    const c = await RawConnection.open(port);
    conns.push(c);
    await c.send(part);
    await sleep(50);
  }
}

describe('bodies that never finish', () => {
  it('bodies held at once never exceed MAX_BUFFERED_BODY_MB; the excess gets 503 with Retry-After (body_buffer_full)', { timeout: 40_000 }, async () => {
    await withStack({ MAX_BUFFERED_BODY_MB: '4', MAX_REQUEST_BODY_MB: '2' }, async (stack) => {
      const conns: RawConnection[] = [];
      const watch = watchHeld(stack.url);
      try {
        await stallBodies(stack.gw.port, conns);
        const answered = () => conns.filter((c) => c.responses().length > 0);
        const summary = () => conns.map((c, i) => `#${i}: ${c.responses()[0]?.status ?? (c.closed ? 'closed' : 'waiting')}`).join(', ');
        await eventually(
          () => answered().length >= 10,
          () => `at least 10 of the 12 stalled bodies refused (2 fit in 4 MiB); ${summary()}`,
          5000,
        );
        await sleep(300);
        const maxHeld = await watch.stop();

        const refused = answered();
        const survivors = conns.length - refused.length;
        assert.ok(survivors >= 1 && survivors <= 2, `${survivors} bodies still held; ${summary()}`);
        for (const c of refused) {
          const res = c.responses()[0];
          assert.equal(res.status, 503, summary());
          assert.equal(res.headers['retry-after'], '1');
          assert.match(res.headers.connection ?? '', /close/i);
          assert.equal(typeof (jsonOf(res) as { error?: unknown } | undefined)?.error, 'string', `JSON error body: ${c.describe()}`);
        }
        for (const c of refused) assert.ok(await c.closedWithin(3000), `a refused connection is closed: ${c.describe()}`);
        assert.notEqual(maxHeld, undefined, 'ollama_gateway_buffered_body_bytes is exported');
        assert.ok(maxHeld! <= 4 * MiB, `held ${maxHeld} bytes at most, over 4 MiB`);
        const m = await scrape(stack.url);
        const held = sample(m, 'ollama_gateway_buffered_body_bytes')!;
        assert.ok(held > 0 && held <= 4 * MiB, `the stalled bodies hold ${held} bytes`);
        assert.equal(total(m, 'ollama_request_errors_total', { reason: 'body_buffer_full' }), refused.length);
        assert.equal(total(m, 'ollama_requests_total', { status: '503' }), refused.length);
        assert.deepEqual(receivedSince(stack, 0), [], 'Ollama received nothing');
      } finally {
        await watch.stop();
        for (const c of conns) c.destroy();
      }
      await eventually(
        async () => sample(await scrape(stack.url), 'ollama_gateway_buffered_body_bytes') === 0,
        'the held bytes return to 0 once the clients left',
        3000,
      );
      await eventually(async () => inFlight(await scrape(stack.url)) === 0, 'nothing in flight', 3000);
      await stillServing(stack);
    });
  });

  it(
    'a body that goes silent for REQUEST_BODY_TIMEOUT_SECONDS gets 408 (body_timeout) and its memory is released; a slow but steady body is not cut',
    { timeout: 30_000 },
    async () => {
      await withStack({ REQUEST_BODY_TIMEOUT_SECONDS: '1' }, async (stack) => {
        const endpoints = ['/api/chat', '/api/generate', '/v1/chat/completions'];
        const conns: RawConnection[] = [];
        try {
          // A body sent in five pieces 400 ms apart: never silent for 1 s, though it takes 1.6 s.
          const steady = (async () => {
            const c = await RawConnection.open(stack.gw.port);
            conns.push(c);
            const bytes = rawRequest('POST', '/api/chat', { body: CHAT_BODY, headers: JSON_HEADERS });
            const size = Math.ceil(bytes.length / 5);
            await c.sendPieces(
              [0, 1, 2, 3, 4].map((i) => bytes.subarray(i * size, (i + 1) * size)),
              400,
            );
            return c.response(5000);
          })();
          for (const path of endpoints) {
            const c = await RawConnection.open(stack.gw.port);
            conns.push(c);
            const head = rawRequest('POST', path, { headers: { ...JSON_HEADERS, 'content-length': '200000' } });
            await c.send(Buffer.concat([head, Buffer.from('{"model":"llama3.2","prompt":"'), Buffer.alloc(100_000, 'y')]));
          }
          const stalled = conns.slice(-3);
          for (const [i, c] of stalled.entries()) {
            const res = await c.response(6000);
            assert.equal(res.status, 408, `${endpoints[i]}: ${c.describe()}`);
            assert.match(res.headers.connection ?? '', /close/i);
            const body = jsonOf(res) as { error?: unknown } | undefined;
            if (endpoints[i].startsWith('/v1/')) assert.equal(typeof (body?.error as { message?: unknown } | undefined)?.message, 'string', c.describe());
            else assert.equal(typeof body?.error, 'string', c.describe());
            assert.ok(await c.closedWithin(3000), `the connection is closed after the 408: ${c.describe()}`);
          }
          const ok = await steady;
          assert.equal(ok.status, 200, 'the slow but steady body was served');

          const m = await scrape(stack.url);
          for (const path of endpoints) assert.equal(total(m, 'ollama_request_errors_total', { endpoint: path, reason: 'body_timeout' }), 1, path);
          assert.equal(total(m, 'ollama_requests_total', { status: '408' }), 3);
          assert.equal(sample(m, 'ollama_gateway_buffered_body_bytes'), 0, 'ollama_gateway_buffered_body_bytes is exported and back to 0');
          assert.equal(inFlight(m), 0);
          assert.deepEqual(receivedSince(stack, 0), ['POST /api/chat'], 'only the complete body reached Ollama');
        } finally {
          for (const c of conns) c.destroy();
        }
        await stillServing(stack);
      });
    },
  );
});

// ---------------------------------------------------------------------------------------------

describe('heads that never finish', () => {
  it('a request head not complete within HEADERS_TIMEOUT_SECONDS gets the connection closed, trickled or stalled', { timeout: 20_000 }, async () => {
    await withStack({ HEADERS_TIMEOUT_SECONDS: '1' }, async (stack) => {
      const stalled = await RawConnection.open(stack.gw.port);
      const trickled = await RawConnection.open(stack.gw.port);
      try {
        await stalled.send('POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty');
        await trickled.send('GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
        // One byte every 250 ms: never silent, but the head never ends.
        const trickling = (async () => {
          for (let i = 0; i < 30 && !trickled.closed; i++) {
            await sleep(250);
            await trickled.send('x');
          }
        })();
        const [a, b] = await Promise.all([stalled.closedWithin(5000), trickled.closedWithin(5000)]);
        await trickling;
        assert.ok(a, `the stalled head was not disconnected within 5 s: ${stalled.describe()}`);
        assert.ok(b, `the trickled head was not disconnected within 5 s: ${trickled.describe()}`);
        for (const c of [stalled, trickled]) {
          const res = c.responses()[0];
          if (res) assert.ok(res.status >= 400 && res.status < 500, `answered ${res.status}: ${c.describe()}`);
        }
        assert.deepEqual(receivedSince(stack, 0), [], 'Ollama received nothing');
      } finally {
        stalled.destroy();
        trickled.destroy();
      }
      await stillServing(stack);
    });
  });
});

// ---------------------------------------------------------------------------------------------

const chunkedHead = (path: string) => `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;

/** Requests whose framing is broken, most aimed at the instrumented paths; `end`: the client then half-closes. */
const MALFORMED: { name: string; bytes: Buffer; end?: boolean }[] = [
  { name: 'an invalid chunk size', bytes: Buffer.from(`${chunkedHead('/api/chat')}zz\r\n${CHAT_BODY}\r\n0\r\n\r\n`) },
  { name: 'a valid chunk, then an invalid chunk size', bytes: Buffer.from(`${chunkedHead('/api/chat')}10\r\n${CHAT_BODY.slice(0, 16)}\r\nnot-hex\r\n`) },
  { name: 'a chunk longer than its size', bytes: Buffer.from(`${chunkedHead('/v1/chat/completions')}2\r\n${CHAT_BODY}\r\n0\r\n\r\n`) },
  { name: 'a chunk size too large for any number', bytes: Buffer.from(`${chunkedHead('/api/generate')}ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n`) },
  { name: "a chunked body cut short by the client's FIN", bytes: Buffer.from(`${chunkedHead('/api/chat')}23\r\n${CHAT_BODY.slice(0, 10)}`), end: true },
  {
    name: 'Content-Length and Transfer-Encoding both',
    bytes: Buffer.from(`POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n23\r\n${CHAT_BODY}\r\n0\r\n\r\n`),
  },
  {
    name: 'two different Content-Lengths',
    bytes: Buffer.from(`POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 35\r\n\r\n${CHAT_BODY}`),
  },
  { name: 'a line that is not HTTP', bytes: Buffer.from('HELLO THERE\r\n\r\n') },
  { name: 'a bad request line', bytes: Buffer.from('POST /api/chat HTTP/9.9 please\r\nHost: 127.0.0.1\r\n\r\n') },
  { name: 'TLS bytes', bytes: Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, ...Buffer.alloc(64, 7), 0x0d, 0x0a, 0x0d, 0x0a]) },
  { name: 'a NUL byte in the request line', bytes: Buffer.from(`POST /api/ch\0at HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 35\r\n\r\n${CHAT_BODY}`) },
  {
    name: 'a NUL byte in a header value',
    bytes: Buffer.from(`POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\0b\r\nContent-Length: 35\r\n\r\n${CHAT_BODY}`),
  },
  {
    name: 'a NUL byte in a header name',
    bytes: Buffer.from(`POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nX\0A: b\r\nContent-Length: 35\r\n\r\n${CHAT_BODY}`),
  },
];

describe('broken framing', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack();
  });
  after(() => stack.close());

  for (const c of MALFORMED) {
    it(`${c.name}: a 4xx or a closed connection, nothing forwarded, and the gateway keeps serving`, { timeout: 15_000 }, async () => {
      const from = stack.fake.requests.length;
      const ex = await exchange(stack.gw.port, c.bytes, { ms: 3000, end: c.end });
      const res = ex.responses[0];
      if (res) assert.ok(res.status >= 400 && res.status < 500, `answered ${res.status}: ${ex.describe()}`);
      else assert.ok(ex.closed, `neither answered nor closed within 3 s: ${ex.describe()}`);
      assert.deepEqual(receivedSince(stack, from), [], 'nothing reached Ollama');
      await eventually(async () => inFlight(await scrape(stack.url)) === 0, 'ollama_requests_in_flight back to 0', 3000);
      const m = await scrape(stack.url);
      const fiveHundreds = seriesOf(m, 'ollama_requests_total').filter((s) => Number(s.labels.status) >= 500);
      assert.deepEqual(fiveHundreds, [], 'no request counted with a 5xx');
      assert.deepEqual(
        stack.logs.filter((l) => l.level === 'error'),
        [],
        'no ERROR log line',
      );
      await stillServing(stack);
    });
  }
});

// ---------------------------------------------------------------------------------------------

describe('pipelined requests', () => {
  const req = (path: string, body: unknown) => rawRequest('POST', path, { body: JSON.stringify(body), headers: JSON_HEADERS });

  it('two LLM requests in one write are answered in order and counted once each', { timeout: 15_000 }, async () => {
    await withStack({}, async (stack) => {
      const conn = await RawConnection.open(stack.gw.port);
      try {
        await conn.send(
          Buffer.concat([req('/api/chat', { model: 'llama3.2', stream: false }), req('/api/generate', { model: 'llama3.2', prompt: 'x', stream: false })]),
        );
        const responses = await conn.waitForResponses(2, 5000);
        assert.deepEqual(
          responses.map((r) => r.status),
          [200, 200],
          conn.describe(),
        );
        assert.deepEqual(responses[0].body, fixture('chat-nostream.json'));
        assert.deepEqual(responses[1].body, fixture('generate-nostream.json'));
      } finally {
        conn.destroy();
      }
      // Node runs pipelined requests' handlers side by side: only the answers are ordered.
      assert.deepEqual(receivedSince(stack, 0).sort(), ['POST /api/chat', 'POST /api/generate']);
      const m = await scrape(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }), 1);
      assert.equal(sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/generate', status: '200' }), 1);
      assert.equal(total(m, 'ollama_requests_total'), 2);
      assert.equal(inFlight(m), 0);
    });
  });

  it('three LLM requests in one write, a stream among them, are answered in order and counted once each', { timeout: 15_000 }, async () => {
    await withStack({}, async (stack) => {
      const conn = await RawConnection.open(stack.gw.port);
      try {
        await conn.send(
          Buffer.concat([
            req('/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }),
            req('/api/embed', { model: 'all-minilm', input: 'x' }),
            req('/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false }),
          ]),
        );
        const responses = await conn.waitForResponses(3, 5000);
        assert.deepEqual(
          responses.map((r) => r.status),
          [200, 200, 200],
          conn.describe(),
        );
        assert.match(responses[0].headers['transfer-encoding'] ?? '', /chunked/);
        assert.deepEqual(responses[0].body, fixture('chat-stream.ndjson'));
        assert.deepEqual(responses[1].body, fixture('embed.json'));
        assert.deepEqual(responses[2].body, fixture('chat-nostream.json'));
      } finally {
        conn.destroy();
      }
      assert.deepEqual(receivedSince(stack, 0).sort(), ['POST /api/chat', 'POST /api/chat', 'POST /api/embed']);
      const m = await scrape(stack.url);
      assert.equal(sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }), 2);
      assert.equal(sample(m, 'ollama_requests_total', { model: 'all-minilm:latest', endpoint: '/api/embed', status: '200' }), 1);
      assert.equal(total(m, 'ollama_requests_total'), 3);
      assert.equal(total(m, 'ollama_request_errors_total'), 0);
      assert.equal(inFlight(m), 0);
    });
  });

  it(
    'a pipelined stream that Ollama resets while the one before it still streams: its client sees the break, and each call is counted as what it was',
    { timeout: 15_000 },
    async () => {
      await withStack({}, async (stack) => {
        const stream = fixture('chat-stream.ndjson');
        // The first answer streams slowly; the second breaks off while waiting behind it.
        stack.fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: stream, gapMs: 60 }, '/api/chat');
        stack.fake.next({ kind: 'reset-after', status: 200, contentType: 'application/x-ndjson', body: stream, bytes: 40 }, '/api/generate');
        const conn = await RawConnection.open(stack.gw.port);
        try {
          await conn.send(
            Buffer.concat([
              req('/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }),
              req('/api/generate', { model: 'llama3.2', prompt: 'x' }),
            ]),
          );
          assert.ok(await conn.closedWithin(8000), `the connection ends once the broken answer's turn comes; received ${conn.describe()}`);
          const responses = conn.responses();
          assert.ok(responses[0] !== undefined && !responses[0].incomplete, conn.describe());
          assert.deepEqual(responses[0]?.body, stream);
          assert.ok(responses[1] === undefined || responses[1].incomplete, `the broken stream does not look complete: ${conn.describe()}`);
        } finally {
          conn.destroy();
        }
        let m = '';
        await eventually(async () => inFlight((m = await scrape(stack.url))) === 0, 'ollama_requests_in_flight back to 0', 3000);
        assert.equal(sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }), 1);
        assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/generate', reason: 'stream_error' }), 1);
        assert.equal(total(m, 'ollama_request_errors_total'), 1);
      });
    },
  );

  it('own paths, pass-through and LLM requests pipelined together are answered in order', { timeout: 15_000 }, async () => {
    await withStack({}, async (stack) => {
      const conn = await RawConnection.open(stack.gw.port);
      try {
        await conn.send(
          Buffer.concat([
            rawRequest('GET', '/healthz'),
            rawRequest('GET', '/api/tags'),
            req('/api/chat', { model: 'llama3.2', stream: false }),
            rawRequest('HEAD', '/healthz'),
            rawRequest('GET', '/api/version'),
          ]),
        );
        const responses = await conn.waitForResponses(5, 5000, { head: [false, false, false, true, false] });
        assert.deepEqual(
          responses.map((r) => r.status),
          [200, 200, 200, 200, 200],
          conn.describe(),
        );
        assert.deepEqual(JSON.parse(responses[0].body.toString()), { status: 'ok' });
        assert.deepEqual(responses[1].body, fixture('tags.json'));
        assert.deepEqual(responses[2].body, fixture('chat-nostream.json'));
        assert.deepEqual(responses[4].body, fixture('version.json'));
      } finally {
        conn.destroy();
      }
      assert.deepEqual(receivedSince(stack, 0).sort(), ['GET /api/tags', 'GET /api/version', 'POST /api/chat']);
      assert.equal(total(await scrape(stack.url), 'ollama_requests_total'), 1);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('a client that resets right after sending', () => {
  /** Sends a chat request, waits until the gateway surely read it, then resets. */
  async function sendThenReset(stack: TestStack, body: unknown, untilBytes = 0): Promise<void> {
    const conn = await RawConnection.open(stack.gw.port);
    await conn.send(rawRequest('POST', '/api/chat', { body: JSON.stringify(body), headers: JSON_HEADERS }));
    await sleep(250);
    if (untilBytes > 0) await eventually(() => conn.received.length >= untilBytes, 'the stream started', 3000);
    conn.reset();
  }

  async function settled(stack: TestStack): Promise<string> {
    let m = '';
    await eventually(async () => total((m = await scrape(stack.url)), 'ollama_requests_total', { endpoint: '/api/chat' }) === 1, 'the call counted once', 3000);
    await eventually(async () => inFlight((m = await scrape(stack.url))) === 0, 'ollama_requests_in_flight back to 0', 3000);
    await eventually(
      () => stack.fake.active === 0,
      () => `the fake still has ${stack.fake.active} responses in progress`,
      3000,
    );
    return m;
  }

  it('while Ollama is still working: counted client_cancelled (499), and Ollama is told to stop', { timeout: 15_000 }, async () => {
    await withStack({}, async (stack) => {
      stack.fake.next({ kind: 'body', status: 200, contentType: 'application/json; charset=utf-8', body: fixture('chat-nostream.json'), delayMs: 2000 });
      await sendThenReset(stack, { model: 'llama3.2', stream: false });
      const m = await settled(stack);
      assert.equal(sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '499' }), 1);
      assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'client_cancelled' }), 1);
      assert.equal(stack.fake.abandoned, 1, 'the upstream call was abandoned');
      await stillServing(stack);
    });
  });

  it('mid-stream: counted once with client_cancelled, and the upstream stream is abandoned', { timeout: 15_000 }, async () => {
    await withStack({}, async (stack) => {
      stack.fake.next({ kind: 'stall', status: 200, contentType: 'application/x-ndjson', body: fixture('chat-stream.ndjson'), bytes: 300 });
      await sendThenReset(stack, { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }, 300);
      const m = await settled(stack);
      assert.equal(sample(m, 'ollama_request_errors_total', { model: 'llama3.2:latest', endpoint: '/api/chat', reason: 'client_cancelled' }), 1);
      assert.equal(stack.fake.abandoned, 1);
      await stillServing(stack);
    });
  });

  it('when Ollama answers at once: counted once, completed or client_cancelled', { timeout: 15_000 }, async () => {
    await withStack({}, async (stack) => {
      await sendThenReset(stack, { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
      const m = await settled(stack);
      const ok = sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }) ?? 0;
      const cancelled = total(m, 'ollama_request_errors_total', { endpoint: '/api/chat', reason: 'client_cancelled' });
      const errors = total(m, 'ollama_request_errors_total');
      assert.ok((ok === 1 && errors === 0) || cancelled === 1, `200=${ok}, client_cancelled=${cancelled}, errors=${errors}`);
      await stillServing(stack);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe("methods on the gateway's own paths", () => {
  const METHODS = ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];
  const PATHS = ['/healthz', '/readyz', '/metrics', '//healthz', '/metrics?x=1', '/./readyz'];
  const AUTHS: (string | undefined)[] = [undefined, 'Bearer anything', 'Basic Zm9vOmJhcg=='];

  it('anything but GET and HEAD gets 405 with Allow: GET, HEAD, and is never forwarded', { timeout: 30_000 }, async () => {
    await withStack({}, async (stack) => {
      const problems: string[] = [];
      let n = 0;
      for (const method of METHODS) {
        for (const path of PATHS) {
          const auth = AUTHS[n++ % AUTHS.length];
          const ex = await exchange(
            stack.gw.port,
            rawRequest(method, path, { body: '{"model":"llama3.2"}', headers: { ...JSON_HEADERS, ...(auth ? { authorization: auth } : {}) } }),
          );
          const res = ex.responses[0];
          const what = `${method} ${path}${auth ? ` (${auth.split(' ')[0]})` : ''}`;
          if (res?.status !== 405) problems.push(`${what}: ${res?.status ?? ex.describe()}`);
          else if (res.headers.allow !== 'GET, HEAD') problems.push(`${what}: Allow: ${res.headers.allow}`);
          else if (typeof (jsonOf(res) as { error?: unknown } | undefined)?.error !== 'string') problems.push(`${what}: no JSON error: ${ex.describe()}`);
        }
      }
      assert.deepEqual(problems, []);
      assert.deepEqual(receivedSince(stack, 0), [], 'Ollama received none of them');
    });
  });

  it('HEAD answers 200 without a body, and GET //healthz is /healthz', { timeout: 15_000 }, async () => {
    await withStack({}, async (stack) => {
      for (const path of ['/healthz', '/metrics', '/readyz']) {
        const ex = await exchange(stack.gw.port, rawRequest('HEAD', path), { head: [true] });
        assert.equal(ex.responses[0]?.status, 200, `HEAD ${path}: ${ex.describe()}`);
        assert.equal(ex.responses[0].body.length, 0);
      }
      const ex = await exchange(stack.gw.port, rawRequest('GET', '//healthz'));
      assert.equal(ex.responses[0]?.status, 200, ex.describe());
      assert.deepEqual(jsonOf(ex.responses[0]), { status: 'ok' });
      // /readyz asks Ollama for its version; nothing else reaches it.
      assert.deepEqual(
        receivedSince(stack, 0).filter((r) => r !== 'GET /api/version'),
        [],
      );
    });
  });

  it('with API keys and a metrics token, a right key still gets 405 and nothing is forwarded', { timeout: 15_000 }, async () => {
    await withStack({ GATEWAY_API_KEYS: 'sekret', METRICS_BEARER_TOKEN: 'scrape' }, async (stack) => {
      const problems: string[] = [];
      for (const [path, auth] of [
        ['/healthz', 'Bearer sekret'],
        ['/metrics', 'Bearer sekret'],
        ['/metrics', 'Bearer scrape'],
        ['//readyz', 'Bearer sekret'],
      ]) {
        const ex = await exchange(stack.gw.port, rawRequest('POST', path, { body: '{}', headers: { ...JSON_HEADERS, authorization: auth } }));
        if (ex.responses[0]?.status !== 405) problems.push(`POST ${path} (${auth}): ${ex.responses[0]?.status ?? ex.describe()}`);
      }
      for (const path of ['/healthz', '/metrics', '//metrics']) {
        const ex = await exchange(stack.gw.port, rawRequest('PUT', path, { body: '{}' }));
        const status = ex.responses[0]?.status;
        if (status !== 401 && status !== 405) problems.push(`PUT ${path} without a key: ${status ?? ex.describe()}`);
      }
      assert.deepEqual(problems, []);
      assert.deepEqual(receivedSince(stack, 0), [], 'Ollama received none of them');
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('the gateway process under hostile input', () => {
  it('stays up, prints no stack trace, and writes only JSON lines', { timeout: 45_000 }, async () => {
    const fake = await new FakeOllama().start();
    const port = await freePort();
    const p = runGateway({ OLLAMA_HOST: fake.origin, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'INFO', OLLAMA_POLL_INTERVAL_SECONDS: '0' });
    let stdout = '';
    p.child.stdout!.prependListener('data', (c: Buffer) => (stdout += c.toString()));
    try {
      await p.waitFor('gateway listening', 10_000);
      await hostileTraffic(port, fake);
      await sleep(800); // logs are flushed every 500 ms

      assert.equal(p.child.exitCode, null, `the process exited: ${p.stderr}`);
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) })).status, 200);
      const chat = await fetch(`http://127.0.0.1:${port}/api/chat`, { method: 'POST', body: CHAT_BODY, signal: AbortSignal.timeout(5000) });
      assert.equal(chat.status, 200);
      await chat.arrayBuffer();
      const m = await scrape(`http://127.0.0.1:${port}`);
      assert.equal(inFlight(m), 0, 'nothing left in flight');

      p.child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([p.exit, new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 10_000)))]);
      clearTimeout(timer);
      assert.equal(code, 0, 'exits 0 on SIGTERM');

      assertQuietOutput(p, stdout);
    } finally {
      p.child.kill('SIGKILL');
      await fake.close();
    }
  });
});

/** Malformed bodies, resets mid-stream and mid-response, an upload cut off, bad request lines and heads: all to the process on `port`. */
async function hostileTraffic(port: number, fake: FakeOllama): Promise<void> {
  // Malformed chunked bodies on the LLM routes.
  await exchange(port, `${chunkedHead('/api/chat')}zz\r\n{}\r\n0\r\n\r\n`);
  await exchange(port, `${chunkedHead('/v1/chat/completions')}4\r\n{"mo\r\nqq\r\n`);
  // A client that resets mid-stream.
  fake.next({ kind: 'stall', status: 200, contentType: 'application/x-ndjson', body: fixture('chat-stream.ndjson'), bytes: 300 });
  {
    const c = await RawConnection.open(port);
    await c.send(rawRequest('POST', '/api/chat', { body: '{"model":"llama3.2"}' }));
    await eventually(() => c.received.length > 300, 'the stream started', 5000);
    c.reset();
  }
  await leaveLargeResponses(port, fake);
  // An upload cut off half-way (a streamed pass-through body).
  {
    const c = await RawConnection.open(port);
    await c.send(rawRequest('POST', `/api/blobs/sha256:${'0'.repeat(64)}`, { headers: { 'content-length': String(MiB) } }));
    await c.send(Buffer.alloc(MiB / 2, 1));
    await sleep(200);
    c.reset();
  }
  // Bad request lines, oversized headers, NUL bytes, conflicting framing, TLS bytes.
  for (const bytes of [
    'GARBAGE\r\n\r\n',
    'GET / HTTP/1.1 extra words\r\n\r\n',
    `GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'x'.repeat(20_000)}\r\n\r\n`,
    `POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\0b\r\nContent-Length: 2\r\n\r\n{}`,
    `POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
    Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x0d, 0x0a, 0x0d, 0x0a]),
  ]) {
    await exchange(port, bytes, { ms: 2000 });
  }
}

/** No stack trace or error on stderr, only JSON on stdout, no ERROR log line. */
function assertQuietOutput(p: GatewayProcess, stdout: string): void {
  assert.doesNotMatch(p.stderr, /^\s+at /m, `a stack trace on stderr:\n${p.stderr}`);
  assert.doesNotMatch(p.stderr, /^\s*(\w+)?(Error|Exception)\b/m, `an error on stderr:\n${p.stderr}`);
  const notJson = stdout.split('\n').filter((l) => {
    if (l === '') return false;
    try {
      JSON.parse(l);
      return false;
    } catch {
      return true;
    }
  });
  assert.deepEqual(notJson, [], 'every stdout line is JSON');
  const errors = p.lines.filter((l) => l.level === 'error' || l.level === 'fatal');
  assert.deepEqual(errors, [], 'no ERROR log line for expected network errors');
}

/**
 * Clients that close while a large response is being written to them (EPIPE / ECONNRESET), on an
 * LLM route and on a pass-through path, by FIN and by RST.
 */
async function leaveLargeResponses(port: number, fake: FakeOllama): Promise<void> {
  const line = 'x'.repeat(200);
  const bigStream = Buffer.from(
    Array.from(
      { length: 40_000 },
      () => `{"model":"llama3.2","created_at":"2026-01-01T00:00:00Z","message":{"role":"assistant","content":"${line}"},"done":false}\n`,
    ).join(''),
  );
  for (const [path, method, close] of [
    ['/api/chat', 'POST', 'destroy'],
    ['/api/chat', 'POST', 'reset'],
    ['/api/tags', 'GET', 'destroy'],
    ['/api/tags', 'GET', 'reset'],
  ] as const) {
    fake.next(
      {
        kind: 'body',
        status: 200,
        contentType: method === 'POST' ? 'application/x-ndjson' : 'application/json; charset=utf-8',
        body: bigStream,
        chunking: { kind: 'every', size: 64 * 1024 },
      },
      path,
    );
    const c = await RawConnection.open(port);
    await c.send(rawRequest(method, path, method === 'POST' ? { body: '{"model":"llama3.2"}' } : {}));
    await eventually(() => c.received.length > 100_000, `the large ${path} response started`, 5000);
    if (close === 'reset') c.reset();
    else c.destroy();
  }
}

// ---------------------------------------------------------------------------------------------

describe('an Ollama that breaks off right after its final event', () => {
  const req = (path: string, body: unknown) => rawRequest('POST', path, { body: JSON.stringify(body), headers: JSON_HEADERS });

  it('is a complete call, and its client gets every byte of the answer before its connection is cut', { timeout: 15_000 }, async () => {
    await withStack({}, async (stack) => {
      const stream = fixture('chat-stream.ndjson');
      // Every line, the final one included, then a reset instead of the chunked terminator.
      stack.fake.next({ kind: 'reset-after', status: 200, contentType: 'application/x-ndjson', body: stream, bytes: stream.length }, '/api/chat');
      const conn = await RawConnection.open(stack.gw.port);
      try {
        await conn.send(req('/api/chat', { model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }));
        const res = await conn.response(5000);
        assert.deepEqual(res.body, stream, conn.describe());
        await eventually(() => conn.closed, 'the connection cut', 3000);
      } finally {
        conn.destroy();
      }
      let m = '';
      await eventually(async () => inFlight((m = await scrape(stack.url))) === 0, 'ollama_requests_in_flight back to 0', 3000);
      assert.equal(sample(m, 'ollama_requests_total', { model: 'llama3.2:latest', endpoint: '/api/chat', status: '200' }), 1);
      assert.equal(total(m, 'ollama_request_errors_total'), 0);
    });
  });
});
