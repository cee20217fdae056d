/**
 * Clients that try to take what every client shares: the memory for request bodies (slow uploads
 * that hold it), the connections (idle sockets up to the file-descriptor limit), the log (a stdout
 * nobody reads), and stderr (Node's own warnings). Each scenario is one client against the
 * gateway, over raw sockets from loopback addresses of their own (127.0.0.2 …), with a legitimate
 * client beside it that must still be served.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { FakeOllama } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { sample, startStack, type TestStack } from '../helpers/gateway';
import { MAIN, runGateway } from '../helpers/process';
import { freePort, rssBytes, tracked, waitForPort } from '../helpers/procs';
import { RawConnection, rawRequest, type RawResponse } from '../helpers/raw-client';
import { eventually, sleep } from '../helpers/wait';

const MiB = 1024 * 1024;
const CHAT_BODY = '{"model":"llama3.2","stream":false}';
const JSON_HEADERS = { 'content-type': 'application/json' };

async function scrape(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200);
  return res.text();
}

/** A chat from 127.0.0.1 over a fresh connection: its response. */
async function chat(port: number): Promise<RawResponse> {
  const c = await RawConnection.open(port);
  try {
    await c.send(rawRequest('POST', '/api/chat', { body: CHAT_BODY, headers: JSON_HEADERS }));
    return await c.response(5000);
  } finally {
    c.destroy();
  }
}

function errorOf(res: RawResponse): string {
  const body = JSON.parse(res.body.toString('utf8')) as { error?: unknown };
  return typeof body.error === 'string' ? body.error : '';
}

// ---------------------------------------------------------------------------------------------

describe('slow uploads that hold the body budget', () => {
  let stack: TestStack;
  before(async () => {
    // 4 MiB for all bodies, 1 MiB for one client's; silence may last 30 s, a whole body 2 s.
    stack = await startStack({ MAX_BUFFERED_BODY_MB: '4', MAX_REQUEST_BODY_MB: '1', REQUEST_BODY_DEADLINE_SECONDS: '2' });
  });
  after(() => stack.close());

  it("five chunked uploads from one address cannot take the budget: the others' calls are served", { timeout: 30_000 }, async () => {
    const uploads: RawConnection[] = [];
    try {
      // Each upload sends a whole 1 MiB, the most one body may be, then a byte now and then
      // would follow: never silent, never finished. Four such would fill the 4 MiB.
      for (let i = 0; i < 5; i++) {
        const c = await RawConnection.open(stack.gw.port, 2000, '127.0.0.2');
        uploads.push(c);
        const head = rawRequest('POST', '/api/generate', { headers: { ...JSON_HEADERS, 'transfer-encoding': 'chunked' } });
        const piece = Buffer.concat([Buffer.from('{"model":"llama3.2","prompt":"'), Buffer.alloc(MiB - 30, 'x')]);
        await c.send(Buffer.concat([head, Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]));
        await sleep(50);
      }
      await sleep(200);
      // Meanwhile another client's calls go through.
      for (let i = 0; i < 3; i++) {
        const res = await chat(stack.gw.port);
        assert.equal(res.status, 200, `a call beside the uploads: ${res.status} ${res.body.toString()}`);
        assert.deepEqual(res.body, fixture('chat-nostream.json'));
      }
      const held = sample(await scrape(stack.url), 'ollama_gateway_buffered_body_bytes')!;
      assert.ok(held <= MiB, `one address holds ${held} bytes, more than its 1 MiB share`);
      const refused = uploads.filter((c) => c.responses()[0]?.status === 503);
      assert.equal(refused.length, 4, 'all but the first upload are refused');
      for (const c of refused) {
        assert.equal(c.responses()[0].headers['retry-after'], '1');
        assert.match(errorOf(c.responses()[0]), /MAX_BUFFERED_BODY_MB_PER_CLIENT/);
      }
    } finally {
      for (const c of uploads) c.destroy();
    }
    await eventually(async () => sample(await scrape(stack.url), 'ollama_gateway_buffered_body_bytes') === 0, 'the held bytes return to 0', 3000);
  });

  it('a body that trickles a byte at a time is cut at REQUEST_BODY_DEADLINE_SECONDS with 408, and its memory released', { timeout: 20_000 }, async () => {
    const c = await RawConnection.open(stack.gw.port, 2000, '127.0.0.3');
    const before = sample(await scrape(stack.url), 'ollama_request_errors_total', { model: 'unknown', endpoint: '/api/chat', reason: 'body_timeout' }) ?? 0;
    let trickling = true;
    try {
      await c.send(rawRequest('POST', '/api/chat', { headers: { ...JSON_HEADERS, 'content-length': '100000' } }));
      await c.send('{"model":"llama3.2","messages":[{"role":"user","content":"');
      const started = Date.now();
      void (async () => {
        while (trickling && !c.closed) {
          await c.send('x');
          await sleep(100);
        }
      })();
      const res = await c.response(8000);
      assert.equal(res.status, 408, c.describe());
      assert.match(errorOf(res), /REQUEST_BODY_DEADLINE_SECONDS/);
      assert.ok(Date.now() - started < 6000, 'cut by the deadline, long before the 30 s of silence');
      assert.ok(await c.closedWithin(3000), 'the connection is closed');
    } finally {
      trickling = false;
      c.destroy();
    }
    const m = await scrape(stack.url);
    assert.equal(sample(m, 'ollama_request_errors_total', { model: 'unknown', endpoint: '/api/chat', reason: 'body_timeout' }), before + 1);
    assert.equal(sample(m, 'ollama_gateway_buffered_body_bytes'), 0);
  });

  it('a steady body within the deadline is served', { timeout: 10_000 }, async () => {
    const c = await RawConnection.open(stack.gw.port);
    try {
      const bytes = rawRequest('POST', '/api/chat', { body: CHAT_BODY, headers: JSON_HEADERS });
      const size = Math.ceil(bytes.length / 4);
      await c.sendPieces(
        [0, 1, 2, 3].map((i) => bytes.subarray(i * size, (i + 1) * size)),
        200,
      );
      assert.equal((await c.response(5000)).status, 200);
    } finally {
      c.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('connection exhaustion', () => {
  let stack: TestStack;
  const held: RawConnection[] = [];
  before(async () => {
    stack = await startStack({ MAX_CONNECTIONS: '8', MAX_CONNECTIONS_PER_CLIENT: '4' });
  });
  after(async () => {
    for (const c of held) c.destroy();
    await stack.close();
  });

  /** Opens `n` idle connections from `from`, kept in `held`. */
  async function idle(from: string, n: number): Promise<RawConnection[]> {
    const out: RawConnection[] = [];
    for (let i = 0; i < n; i++) out.push(await RawConnection.open(stack.gw.port, 2000, from));
    held.push(...out);
    await sleep(100);
    return out;
  }

  it('one address gets MAX_CONNECTIONS_PER_CLIENT connections; the next is answered 503 and closed', { timeout: 15_000 }, async () => {
    const mine = await idle('127.0.0.2', 4);
    assert.ok(
      mine.every((c) => !c.closed),
      'the four within the cap stay open',
    );
    const [over] = await idle('127.0.0.2', 1);
    const res = await over.response(3000);
    assert.equal(res.status, 503);
    assert.equal(res.headers['retry-after'], '1');
    assert.match(errorOf(res), /MAX_CONNECTIONS_PER_CLIENT=4/);
    assert.ok(await over.closedWithin(3000), 'the refused connection is closed');
    // Another address is not affected.
    assert.equal((await chat(stack.gw.port)).status, 200);
  });

  it('with MAX_CONNECTIONS taken, /healthz, /readyz and /metrics still answer on the reserve; an LLM call there gets 503', { timeout: 20_000 }, async () => {
    await idle('127.0.0.3', 4); // with the four of 127.0.0.2: all eight taken
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const c = await RawConnection.open(stack.gw.port, 2000, '127.0.0.4');
      await c.send(rawRequest('GET', path));
      const res = await c.response(5000);
      assert.equal(res.status, 200, `${path}: ${c.describe()}`);
      assert.match(res.headers.connection ?? '', /close/i, 'a reserve connection is closed after its answer');
      assert.ok(await c.closedWithin(3000));
    }
    const c = await RawConnection.open(stack.gw.port, 2000, '127.0.0.4');
    await c.send(rawRequest('POST', '/api/chat', { body: CHAT_BODY, headers: JSON_HEADERS }));
    const res = await c.response(5000);
    assert.equal(res.status, 503, c.describe());
    assert.match(errorOf(res), /MAX_CONNECTIONS=8/);
    assert.ok(await c.closedWithin(3000));
    c.destroy();
  });

  it(
    'past the reserve too, the connection idle longest is closed to make room: /healthz answers; once the idle ones go, calls are served',
    { timeout: 30_000 },
    async () => {
      // The reserve (32) filled from eight more addresses: every connection taken, none busy.
      for (let i = 10; i < 18; i++) await idle(`127.0.0.${i}`, 4);
      const oldest = held.find((c) => !c.closed)!;
      const c = await RawConnection.open(stack.gw.port, 2000, '127.0.0.30');
      held.push(c);
      await c.send(rawRequest('GET', '/healthz'));
      assert.equal((await c.response(5000)).status, 200, c.describe());
      assert.ok(await oldest.closedWithin(3000), 'the connection held longest without a request was closed');
      for (const h of held.splice(0)) h.destroy();
      await eventually(async () => (await chat(stack.gw.port).catch(() => undefined))?.status === 200, 'a call is served once the idle connections left', 5000);
    },
  );
});

// ---------------------------------------------------------------------------------------------

describe('the gateway process', () => {
  let fake: FakeOllama;
  before(async () => {
    fake = await new FakeOllama().start();
  });
  after(() => fake.close());

  it('prints nothing on stderr when a connection pipelines 16 requests (no MaxListenersExceededWarning)', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const p = runGateway({ OLLAMA_HOST: fake.origin, HOST: '127.0.0.1', PORT: String(port), OLLAMA_POLL_INTERVAL_SECONDS: '0' });
    try {
      await p.waitFor('gateway listening', 10_000);
      const c = await RawConnection.open(port);
      const one = rawRequest('POST', '/api/chat', { body: CHAT_BODY, headers: JSON_HEADERS });
      await c.send(Buffer.concat(Array<Buffer>(16).fill(one)));
      const responses = await c.waitForResponses(16, 10_000);
      assert.deepEqual(
        responses.map((r) => r.status),
        Array<number>(16).fill(200),
      );
      c.destroy();
      await sleep(300);
      assert.equal(p.stderr, '', 'stderr stays empty');
    } finally {
      p.child.kill('SIGKILL');
    }
  });

  it('with OTEL_TRACES_EXPORTER=console, every span is one JSON log line among the others', { timeout: 30_000 }, async () => {
    const port = await freePort();
    const child = tracked(
      spawn(process.execPath, [MAIN], {
        env: {
          PATH: process.env.PATH,
          OLLAMA_HOST: fake.origin,
          HOST: '127.0.0.1',
          PORT: String(port),
          OLLAMA_POLL_INTERVAL_SECONDS: '0',
          OTEL_TRACES_EXPORTER: 'console',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    try {
      await waitForPort(port);
      assert.equal((await chat(port)).status, 200);
      await eventually(
        () => (stdout.match(/"msg":"span"/g) ?? []).length >= 2,
        () => `span lines; got ${stdout}`,
        5000,
      );
      const lines = stdout.split('\n').filter((l) => l !== '');
      const parsed = lines.map((l) => {
        try {
          return JSON.parse(l) as Record<string, unknown>;
        } catch {
          return assert.fail(`a stdout line that is not JSON: ${l}`);
        }
      });
      const spans = parsed.filter((l) => l.msg === 'span').map((l) => l.span as { trace_id: string; name: string });
      assert.ok(spans.every((sp) => /^[0-9a-f]{32}$/.test(sp.trace_id)));
      assert.ok(
        spans.some((sp) => sp.name.startsWith('chat')),
        JSON.stringify(spans),
      );
      assert.equal(stderr, '');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('with a stdout nobody reads, calls are served, the log held stays bounded and dropped lines are counted', { timeout: 90_000 }, async () => {
    const port = await freePort();
    const child = tracked(
      spawn(process.execPath, [MAIN], {
        env: {
          PATH: process.env.PATH,
          OLLAMA_HOST: fake.origin,
          HOST: '127.0.0.1',
          PORT: String(port),
          OLLAMA_POLL_INTERVAL_SECONDS: '0',
          LOG_LEVEL: 'DEBUG',
          LOG_BUFFER_MB: '0.25',
        },
        // stdout is a pipe this test never reads: once the pipe is full, the gateway's writes wait.
        stdio: ['ignore', 'pipe', 'ignore'],
      }),
    );
    try {
      await waitForPort(port);
      const url = `http://127.0.0.1:${port}`;
      const burst = async (n: number) => {
        for (let i = 0; i < n; i += 20) {
          const statuses = await Promise.all(
            Array.from({ length: 20 }, async () => {
              const res = await fetch(`${url}/api/chat`, { method: 'POST', body: CHAT_BODY, signal: AbortSignal.timeout(10_000) });
              await res.arrayBuffer();
              return res.status;
            }),
          );
          assert.deepEqual(statuses, Array<number>(20).fill(200));
        }
      };
      await burst(1000);
      const dropped = sample(await scrape(url), 'ollama_gateway_log_lines_dropped_total');
      assert.ok(dropped !== undefined && dropped > 0, `log lines dropped: ${dropped}`);
      const rssAfterFirst = rssBytes(child.pid!);
      await burst(600);
      const droppedLater = sample(await scrape(url), 'ollama_gateway_log_lines_dropped_total')!;
      assert.ok(droppedLater >= dropped + 600, `every further call's line is dropped: ${dropped} → ${droppedLater}`);
      const growth = rssBytes(child.pid!) - rssAfterFirst;
      // A loose bound on the whole process: the lines themselves are held to 0.25 MiB.
      assert.ok(growth < 64 * MiB, `RSS grew ${(growth / MiB).toFixed(1)} MiB over 600 calls`);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
