/**
 * `npm run soak`: drives the gateway (a separate process, as users run it) for a bounded time with
 * a mix of traffic against a fake Ollama that misbehaves on a schedule, then checks the books:
 *
 * - every instrumented request is counted exactly once in ollama_requests_total: per model, per
 *   endpoint (a spelled path such as `//api/chat` under its normalised endpoint), and per status and
 *   error reason where the answer is known (408 body_timeout, 503 body_buffer_full, 413,
 *   client_timeout);
 * - every client got its full response or a clean error of the expected kind (405 with `Allow` on
 *   the gateway's own paths, 408 for a stalled body, 503 when the body budget is full);
 * - nothing reached Ollama on the gateway's own paths, and spelled paths reached it normalised;
 * - no upstream request keeps running after its client left;
 * - the gateway's open sockets and active handles return to their baseline;
 * - its memory after the run stays within a margin of before (RSS and heap: before, peak, after).
 *
 * Loopback only. Prints one summary table; exits 1 when a book does not balance.
 *
 *   node dist/bench/soak.js [--seconds 180] [--concurrency 48] [--slow-streams 200]
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FakeOllama, withoutUsageEvent, type Behavior } from '../test/helpers/fake-ollama';
import { fixture } from '../test/helpers/fixtures';
import { runPlan, samples, type ClientResult, type Plan } from '../test/helpers/fuzz';
import { freePort, startNode, waitForPort } from './procs';

interface Stats {
  heapUsedMb: number;
  rssMb: number;
  handles: number;
  sockets: number;
}

type Outcome = 'full' | 'status' | 'broken' | 'cancelled';

/** One request a kind makes that the gateway counts in ollama_requests_total. */
interface Count {
  model: string;
  endpoint: string;
  /** The status it is counted with, where known. */
  status?: number;
  /** The error reason it is counted with, where known (checked for the reasons in REASON_BOOKS). */
  reason?: string;
}

interface Kind {
  name: string;
  weight: number;
  /** What one run adds to ollama_requests_total (none: not instrumented). */
  counts?: Count[];
  /** Run instead in the warm-up (long kinds), with its own counts. */
  warmup?: Kind;
  /** Not started when less than this is left of the run (kinds that take seconds). */
  needsMs?: number;
  /** Warmed up beside the other slow kinds instead of one after another (they wait on timeouts). */
  slowWarmup?: boolean;
  run(ctx: Ctx): Promise<{ ok: boolean; why?: string }>;
}

interface Ctx {
  url: string;
  port: number;
  agent: http.Agent;
}

const c = (model: string, endpoint: string, status?: number, reason?: string): Count => ({ model, endpoint, status, reason });
/** Statuses and error reasons whose totals are checked (every kind that can produce them says so). */
const STATUS_BOOKS = [408, 413, 503];
const REASON_BOOKS = ['body_timeout', 'body_buffer_full', 'client_timeout'];

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : Number(process.argv[i + 1]);
};

interface Reply {
  status: number;
  body: Buffer;
  outcome: Outcome;
}

/** One request. `hangUp` makes the client leave: before the response, after the first chunk, or on the last. */
function request(
  ctx: Ctx,
  method: string,
  p: string,
  body: Buffer | string | undefined,
  hangUp?: 'before' | 'mid' | 'end',
  headers: Record<string, string> = {},
): Promise<Reply> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    let settled = false;
    const done = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      resolve({ status, body: Buffer.concat(chunks), outcome });
    };
    // `path` as given, byte for byte: a URL would resolve `..` and `%2E` and refuse absolute form.
    const req = http.request({ host: '127.0.0.1', port: ctx.port, path: p, method, agent: hangUp ? false : ctx.agent, headers }, (res) => {
      status = res.statusCode ?? 0;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        if (hangUp === 'mid' && chunks.length === 1) {
          req.destroy();
          done('cancelled');
        }
      });
      res.on('end', () => {
        done('full');
      });
      res.on('error', () => done('broken'));
      res.on('aborted', () => done('broken'));
    });
    req.on('error', () => done(hangUp ? 'cancelled' : 'broken'));
    if (hangUp === 'before') {
      // Late enough that the gateway has read the request even under load (a request it never
      // read is not one it can count), early enough that Ollama (hanging) has not answered.
      req.end(body);
      setTimeout(() => {
        req.destroy();
        done('cancelled');
      }, 250);
      return;
    }
    if (hangUp === 'end') {
      // Leave as the last line arrives: after reading, before the response is consumed.
      req.on('response', (res) =>
        res.on('data', (c: Buffer) => {
          if (c.includes('"done":true')) {
            req.destroy();
            done('cancelled');
          }
        }),
      );
    }
    req.end(body);
  });
}

const CHAT = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue?' }] });
/** Spellings of /api/chat the gateway must measure as /api/chat (and forward as /api/chat). */
const SPELLINGS = [
  '//api/chat',
  '/api//chat',
  '///api/chat',
  '/api/./chat',
  '/x/../api/chat',
  '/api/%63hat',
  '/api/%63%68at',
  '/api%2Fchat',
  '/api%2fchat',
  '/%2E/api/chat',
  '/../api/chat',
  'http://evil.example/api/chat',
  'http://127.0.0.1:1/api/chat?x=1',
];
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
const chatFor = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] });
const expectFull = (r: Reply, body: Buffer, status = 200) =>
  r.outcome === 'full' && r.status === status && r.body.equals(body) ? { ok: true } : { ok: false, why: `${r.outcome} ${r.status} ${r.body.length}B` };
const expectStatus = (r: Reply, status: number) =>
  r.outcome === 'full' && r.status === status ? { ok: true } : { ok: false, why: `${r.outcome} ${r.status}` };

/** A request written over a raw socket (pipelining, unfinished bodies), read by the fuzzer's client. */
function raw(ctx: Ctx, parts: Plan['parts'], expect: number, methods: string[], keepBodies = false): Promise<ClientResult> {
  return runPlan(ctx.port, { index: -1, kind: 'soak', parts, expect, methods, records: new Map(), notes: [], keepBodies });
}

const head = (method: string, p: string, headers: Record<string, string | number>) =>
  `${method} ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([h, v]) => `${h}: ${v}\r\n`)
    .join('')}\r\n`;
const post = (p: string, body: string) => head('POST', p, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }) + body;

/** The raw answer was `status` with headers matching `headers`. */
function expectRaw(r: ClientResult, status: number, headers: Record<string, RegExp> = {}): { ok: boolean; why?: string } {
  if (r.statuses[0] !== status) return { ok: false, why: `${r.end} ${r.statuses.join('+') || '-'}` };
  for (const [h, re] of Object.entries(headers))
    if (!re.test(r.first?.get(h) ?? '')) return { ok: false, why: `${status} ${h}: ${r.first?.get(h) ?? 'absent'}` };
  return { ok: true };
}

/**
 * An LLM body held open: `data` written, then one more byte every 300 ms (so the body timeout does
 * not fire) until `stop()`, then silence. Resolves with the status and headers of the answer.
 */
function hold(ctx: Ctx, data: Buffer, trickle: Buffer): { stop(): void; answer: Promise<{ status: number; headers: Map<string, string> }> } {
  const socket = net.connect({ port: ctx.port, host: '127.0.0.1' });
  let left = trickle;
  let giveUp: NodeJS.Timeout | undefined;
  let done: (status: number) => void = () => {};
  const timer = setInterval(() => {
    if (left.length > 1 && socket.writable) {
      socket.write(left.subarray(0, 1));
      left = left.subarray(1);
    }
  }, 300);
  const answer = new Promise<{ status: number; headers: Map<string, string> }>((resolve) => {
    let got = Buffer.alloc(0);
    done = (status: number) => {
      clearInterval(timer);
      clearTimeout(giveUp);
      const headers = new Map<string, string>();
      const text = got.toString('latin1');
      for (const line of text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n').slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
      }
      socket.destroy();
      resolve({ status, headers });
    };
    giveUp = setTimeout(() => done(0), 15_000);
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.includes('\r\n\r\n')) done(Number(/^HTTP\/1\.1 (\d{3})/.exec(got.toString('latin1'))?.[1] ?? -1));
    });
    socket.on('error', () => done(0));
    socket.on('close', () => done(0));
  });
  socket.write(data);
  return {
    stop: () => {
      clearInterval(timer);
      // The 408 is due REQUEST_BODY_TIMEOUT_SECONDS (1 s) from now.
      clearTimeout(giveUp);
      giveUp = setTimeout(() => done(0), 4000);
    },
    answer,
  };
}

/** Reads a response while not reading for `pauseMs` after the headers (a slow reader); digests the body. */
function slowRead(ctx: Ctx, body: string, pauseMs: number, giveUpMs: number): Promise<{ status: number; outcome: Outcome; bytes: number; sha256: string }> {
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let status = 0;
    let settled = false;
    const done = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(giveUp);
      req.destroy();
      resolve({ status, outcome, bytes, sha256: hash.digest('hex') });
    };
    const giveUp = setTimeout(() => done('broken'), giveUpMs);
    const req = http.request(`${ctx.url}/api/chat`, { method: 'POST', agent: false }, (res) => {
      status = res.statusCode ?? 0;
      res.pause();
      setTimeout(() => {
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          hash.update(chunk);
        });
        res.on('end', () => done('full'));
        res.on('error', () => done('broken'));
        res.on('aborted', () => done('broken'));
        res.on('close', () => done(res.complete ? 'full' : 'broken'));
        res.resume();
      }, pauseMs);
    });
    req.on('error', () => done('broken'));
    req.end(body);
  });
}

function fault(fake: FakeOllama, model: string, make: () => Behavior): string {
  fake.byModel.set(model, make);
  return model;
}

async function main(): Promise<void> {
  const seconds = arg('seconds', 180);
  const concurrency = arg('concurrency', 48);
  const slowStreams = arg('slow-streams', 200);
  const dist = path.resolve(__dirname, '..');

  const fake = await new FakeOllama().start();
  // Recorded, and drained every 250 ms into the two upstream books below (bodies are small).
  fake.recordRequests = true;
  const ownPaths = new Set(['/healthz', '/readyz', '/metrics']);
  const upstreamBooks = { own: 0, ownExample: '', spelled: 0, spelledWrong: 0, spelledExample: '' };
  const drainFake = () => {
    for (const q of fake.requests.splice(0)) {
      const p = q.url.split('?')[0];
      if (ownPaths.has(p) || /^\/*(healthz|readyz|metrics)\b/.test(p)) {
        upstreamBooks.own++;
        upstreamBooks.ownExample ||= `${q.method} ${q.url}`;
      }
      if (q.body.subarray(0, 64).includes('"model":"spelled-path"')) {
        upstreamBooks.spelled++;
        if (p !== '/api/chat') {
          upstreamBooks.spelledWrong++;
          upstreamBooks.spelledExample ||= q.url;
        }
      }
    }
  };
  const drainer = setInterval(drainFake, 250);
  const chatStream = fixture('chat-stream.ndjson');
  const nl = chatStream.indexOf('\n') + 1;
  const garbage = Buffer.concat([chatStream.subarray(0, nl), Buffer.from('<html>oops</html>\n'), chatStream.subarray(nl)]);
  const truncated = chatStream.subarray(0, chatStream.lastIndexOf('\n', chatStream.length - 2) + 1);
  const ndjson = (body: Buffer, extra: Partial<Extract<Behavior, { kind: 'body' }>> = {}): Behavior => ({
    kind: 'body',
    status: 200,
    contentType: 'application/x-ndjson',
    body,
    ...extra,
  });
  const mReset = fault(fake, 'fault-reset', () => ({ kind: 'reset' }));
  const mResetMid = fault(fake, 'fault-reset-mid', () => ({
    kind: 'reset-after',
    status: 200,
    contentType: 'application/x-ndjson',
    body: chatStream,
    bytes: 600,
  }));
  const mHang = fault(fake, 'fault-hang', () => ({ kind: 'hang' }));
  const mStall = fault(fake, 'fault-stall', () => ({
    kind: 'stall',
    status: 200,
    contentType: 'application/x-ndjson',
    body: chatStream,
    bytes: 500,
    resumeAfterMs: 300,
  }));
  const mGarbage = fault(fake, 'fault-garbage', () => ndjson(garbage));
  const mErrorLine = fault(fake, 'fault-error-line', () => ndjson(fixture('error-midstream.ndjson')));
  const mTruncated = fault(fake, 'fault-truncated', () => ndjson(truncated));
  const mSlow = fault(fake, 'slow-stream', () => ndjson(chatStream, { gapMs: 40 }));
  const mSpelled = fault(fake, 'spelled-path', () => ndjson(chatStream));
  // Streams far larger than the socket buffers, so a client that stops reading blocks the gateway.
  const lines = chatStream.toString('utf8').split('\n').filter(Boolean);
  const big = Buffer.from(
    [lines[0], ...Array.from({ length: Math.ceil((8 * 1024 * 1024) / lines[1].length) }, () => lines[1]), lines[lines.length - 1]].join('\n') + '\n',
  );
  const bigDigest = createHash('sha256').update(big).digest('hex');
  const mSlowReader = fault(fake, 'slow-reader', () => ndjson(big, { chunking: { kind: 'every', size: 64 * 1024 } }));
  const mStuckReader = fault(fake, 'stuck-reader', () => ndjson(big, { chunking: { kind: 'every', size: 64 * 1024 } }));

  const port = await freePort();
  const child = startNode(
    path.join(dist, 'bench', 'gateway-probe.js'),
    [],
    {
      OLLAMA_HOST: fake.origin,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'ERROR',
      UPSTREAM_IDLE_TIMEOUT_SECONDS: '1',
      MAX_REQUEST_BODY_MB: '1',
      // Three held bodies of 0.9 MB leave room for everything else; a fourth does not fit.
      MAX_BUFFERED_BODY_MB: '3',
      REQUEST_BODY_TIMEOUT_SECONDS: '1',
      // Longer than the idle timeout: a reader that pauses 1.6 s must get its whole stream.
      CLIENT_WRITE_TIMEOUT_SECONDS: '3',
      OLLAMA_POLL_INTERVAL_SECONDS: '0',
      NODE_OPTIONS: '--expose-gc',
    },
    true,
  );
  // A gateway that dies mid-run ends the soak at once, saying so (its stderr is inherited).
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `exit code ${code ?? signal}`));
  child.on('error', () => {});
  const stats = (): Promise<Stats> =>
    new Promise((resolve, reject) => {
      if (exited !== undefined || !child.connected) return reject(new Error(`the gateway process is gone (${exited ?? 'IPC closed'}); its stderr is above`));
      const onExit = () => reject(new Error(`the gateway process exited (${exited ?? '?'}) while asked for its stats; its stderr is above`));
      child.once('exit', onExit);
      child.once('message', (m) => {
        child.off('exit', onExit);
        resolve(m as Stats);
      });
      child.send({ type: 'stats', gc: true });
    });
  await waitForPort(port);
  const url = `http://127.0.0.1:${port}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency + slowStreams });
  const ctx: Ctx = { url, port, agent };

  const upload = randomBytes(4 * 1024 * 1024);
  const uploadDigest = createHash('sha256').update(upload).digest('hex');
  const L = (m: string) => (m.includes(':') ? m : `${m}:latest`);

  const kinds: Kind[] = [
    {
      name: 'native chat stream',
      weight: 10,
      counts: [c('llama3.2:latest', '/api/chat')],
      run: async (c) => expectFull(await request(c, 'POST', '/api/chat', CHAT), chatStream),
    },
    {
      name: 'native chat json',
      weight: 6,
      counts: [c('llama3.2:latest', '/api/chat')],
      run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor('llama3.2').replace('{', '{"stream":false,')), fixture('chat-nostream.json')),
    },
    {
      name: 'native generate stream',
      weight: 6,
      counts: [c('llama3.2:latest', '/api/generate')],
      run: async (c) =>
        expectFull(
          await request(c, 'POST', '/api/generate', '{"model":"llama3.2","prompt":"Write a haiku about autumn leaves."}'),
          fixture('generate-stream.ndjson'),
        ),
    },
    {
      name: 'openai chat stream',
      weight: 6,
      counts: [c('llama3.2:latest', '/v1/chat/completions')],
      run: async (c) =>
        expectFull(
          await request(c, 'POST', '/v1/chat/completions', '{"model":"llama3.2","stream":true,"messages":[{"role":"user","content":"hi"}]}'),
          withoutUsageEvent(fixture('openai-chat-stream.sse')),
        ),
    },
    {
      name: 'openai chat json',
      weight: 4,
      counts: [c('llama3.2:latest', '/v1/chat/completions')],
      run: async (c) =>
        expectFull(
          await request(c, 'POST', '/v1/chat/completions', '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}'),
          fixture('openai-chat-nostream.json'),
        ),
    },
    {
      name: 'embed',
      weight: 4,
      counts: [c('all-minilm:latest', '/api/embed')],
      run: async (c) => expectFull(await request(c, 'POST', '/api/embed', '{"model":"all-minilm","input":["a","b"]}'), fixture('embed.json')),
    },
    { name: 'pass-through tags', weight: 4, run: async (c) => expectFull(await request(c, 'GET', '/api/tags', undefined), fixture('tags.json')) },
    { name: 'upload 4 MB blob', weight: 1, run: async (c) => expectStatus(await request(c, 'POST', `/api/blobs/sha256:${uploadDigest}`, upload), 201) },
    {
      name: 'upstream refuses',
      weight: 2,
      counts: [c(L(mReset), '/api/chat')],
      run: async (c) => expectStatus(await request(c, 'POST', '/api/chat', chatFor(mReset)), 502),
    },
    {
      name: 'upstream resets mid-stream',
      weight: 2,
      counts: [c(L(mResetMid), '/api/chat')],
      run: async (c) => {
        const r = await request(c, 'POST', '/api/chat', chatFor(mResetMid));
        return r.outcome === 'broken' ? { ok: true } : { ok: false, why: r.outcome };
      },
    },
    {
      name: 'upstream hangs',
      weight: 1,
      counts: [c(L(mHang), '/api/chat')],
      run: async (c) => expectStatus(await request(c, 'POST', '/api/chat', chatFor(mHang)), 504),
    },
    {
      name: 'upstream stalls, resumes',
      weight: 2,
      counts: [c(L(mStall), '/api/chat')],
      run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor(mStall)), chatStream),
    },
    {
      name: 'non-JSON line',
      weight: 2,
      counts: [c(L(mGarbage), '/api/chat')],
      run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor(mGarbage)), garbage),
    },
    {
      name: 'error line',
      weight: 2,
      counts: [c(L(mErrorLine), '/api/generate')],
      run: async (c) => expectFull(await request(c, 'POST', '/api/generate', chatFor(mErrorLine)), fixture('error-midstream.ndjson')),
    },
    {
      name: 'truncated stream',
      weight: 2,
      counts: [c(L(mTruncated), '/api/chat')],
      run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor(mTruncated)), truncated),
    },
    {
      name: 'client leaves before response',
      weight: 2,
      counts: [c(L(mHang), '/api/chat')],
      run: async (c) => {
        const r = await request(c, 'POST', '/api/chat', chatFor(mHang), 'before');
        return { ok: r.outcome === 'cancelled', why: r.outcome };
      },
    },
    {
      name: 'client leaves mid-stream',
      weight: 2,
      counts: [c(L(mSlow), '/api/chat')],
      run: async (c) => {
        const r = await request(c, 'POST', '/api/chat', chatFor(mSlow), 'mid');
        return { ok: r.outcome === 'cancelled', why: r.outcome };
      },
    },
    {
      name: 'client leaves at the end',
      weight: 2,
      counts: [c('llama3.2:latest', '/api/chat')],
      run: async (c) => {
        const r = await request(c, 'POST', '/api/chat', CHAT, 'end');
        return { ok: r.outcome === 'cancelled' || r.outcome === 'full', why: r.outcome };
      },
    },
    {
      name: 'body over the limit',
      weight: 1,
      counts: [c('unknown', '/api/generate', 413)],
      run: async (c) => expectStatus(await request(c, 'POST', '/api/generate', JSON.stringify({ model: 'llama3.2', prompt: 'x'.repeat(1_200_000) })), 413),
    },
    {
      name: 'malformed JSON',
      weight: 2,
      counts: [c('unknown', '/api/chat')],
      run: async (c) => expectStatus(await request(c, 'POST', '/api/chat', '{"model": "llama3.2", oops'), 400),
    },
    {
      name: 'random model name',
      weight: 3,
      counts: [c('random', '/api/chat')],
      run: async (c) => expectStatus(await request(c, 'POST', '/api/chat', chatFor(`random-${randomBytes(6).toString('hex')}`)), 404),
    },
    // Hostile input (issue 9).
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
          r.statuses.join('+') === '200+200' &&
          r.bodies.length === 2 &&
          r.bodies[0].equals(chatStream) &&
          r.bodies[1].equals(fixture('generate-nostream.json'));
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
  function expectDigest(r: { status: number; outcome: Outcome; bytes: number; sha256: string }): { ok: boolean; why?: string } {
    return r.outcome === 'full' && r.status === 200 && r.sha256 === bigDigest ? { ok: true } : { ok: false, why: `${r.outcome} ${r.status} ${r.bytes}B` };
  }
  const totalWeight = kinds.reduce((n, k) => n + k.weight, 0);
  const pick = () => {
    let r = Math.random() * totalWeight;
    for (const k of kinds) if ((r -= k.weight) < 0) return k;
    return kinds[0];
  };

  // The body budget: three bodies of 0.9 MB held (stalled) and a fourth refused with 503, then the
  // three answered 408 when REQUEST_BODY_TIMEOUT_SECONDS passes. One cycle at a time, in its own
  // lane, so the budget is never full for anyone else (every other body is far smaller).
  const bufferedBytes = async (): Promise<number | undefined> => {
    const text = await (await fetch(`${url}/metrics`)).text().catch(() => '');
    return samples(text, new Set(['ollama_gateway_buffered_body_bytes']))[0]?.value;
  };
  const budgetKind: Kind = {
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
      while (performance.now() < by && ((await bufferedBytes()) ?? 0) < 3 * heldBody) await new Promise((r) => setTimeout(r, 50));
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

  // What the gateway must count: per model, endpoint, and (where known) status and error reason.
  const expected = {
    model: new Map<string, number>(),
    endpoint: new Map<string, number>(),
    status: new Map<number, number>(),
    reason: new Map<string, number>(),
  };
  const inc = <K>(m: Map<K, number>, k: K) => m.set(k, (m.get(k) ?? 0) + 1);
  const account = (counts: Count[] = []) => {
    for (const x of counts) {
      inc(expected.model, x.model);
      inc(expected.endpoint, x.endpoint);
      if (x.status !== undefined) inc(expected.status, x.status);
      if (x.reason !== undefined) inc(expected.reason, x.reason);
    }
  };

  // Warm up, then take the baseline.
  const warm = (k: Kind) => {
    const w = k.warmup ?? k;
    account(w.counts);
    return w.run(ctx);
  };
  for (const k of kinds) if (!k.slowWarmup) await warm(k);
  await Promise.all(kinds.filter((k) => k.slowWarmup).map(warm));
  agent.destroy();
  await new Promise((r) => setTimeout(r, 500));
  const before = await stats();

  const tally = new Map<string, { sent: number; failed: number; why: Map<string, number> }>();
  let peakRss = before.rssMb;
  let peakHeap = before.heapUsedMb;
  const sampler = setInterval(() => {
    stats().then(
      (s) => {
        peakRss = Math.max(peakRss, s.rssMb);
        peakHeap = Math.max(peakHeap, s.heapUsedMb);
      },
      () => {},
    );
  }, 1000);
  const until = performance.now() + seconds * 1000;
  const going = (marginMs = 0) => performance.now() < until - marginMs && exited === undefined;
  const runOne = async (k: Kind) => {
    const t = tally.get(k.name) ?? { sent: 0, failed: 0, why: new Map<string, number>() };
    tally.set(k.name, t);
    t.sent++;
    account(k.counts);
    const r = await k.run(ctx).catch((err: Error) => ({ ok: false, why: err.message }));
    if (!r.ok) {
      t.failed++;
      t.why.set(r.why ?? '?', (t.why.get(r.why ?? '?') ?? 0) + 1);
    }
  };
  const worker = async () => {
    while (going()) {
      const k = pick();
      if (k.needsMs && performance.now() + k.needsMs > until) continue;
      await runOne(k);
    }
  };
  // Hundreds of concurrent slow streams, in waves, beside the mixed traffic.
  const slowKind: Kind = {
    name: 'slow stream (concurrent wave)',
    weight: 0,
    counts: [c(L(mSlow), '/api/chat')],
    run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor(mSlow)), chatStream),
  };
  const waves = async () => {
    while (going(2000)) await Promise.all(Array.from({ length: slowStreams }, () => runOne(slowKind)));
  };
  const budget = async () => {
    while (going(2000)) await runOne(budgetKind);
  };
  await Promise.all([waves(), budget(), ...Array.from({ length: concurrency }, worker)]);
  clearInterval(sampler);
  if (exited !== undefined) throw new Error(`the gateway process died during the run (${exited}); its stderr is above`);

  // Traffic has stopped: let connections close, then read the books.
  agent.destroy();
  const settleUntil = Date.now() + 15_000;
  let after = await stats();
  while ((after.handles > before.handles + 2 || fake.active > 0) && Date.now() < settleUntil) {
    await new Promise((r) => setTimeout(r, 250));
    after = await stats();
  }
  const metrics = await (await fetch(`${url}/metrics`)).text();
  child.kill('SIGTERM');
  clearInterval(drainer);
  drainFake();
  await fake.close();

  const m = samples(
    metrics,
    new Set(['ollama_requests_total', 'ollama_request_errors_total', 'ollama_requests_in_flight', 'ollama_gateway_buffered_body_bytes']),
  );
  const total = (f: (x: (typeof m)[number]) => boolean, name = 'ollama_requests_total') =>
    m.filter((x) => x.name === name && f(x)).reduce((n, x) => n + x.value, 0);
  const counted = new Map<string, number>();
  for (const x of m) if (x.name === 'ollama_requests_total') counted.set(x.labels.model, (counted.get(x.labels.model) ?? 0) + x.value);
  const books: { book: string; expected: string; actual: string; ok: boolean }[] = [];
  const book = (b: string, want: number, got: number) => books.push({ book: b, expected: String(want), actual: String(got), ok: got === want });
  for (const [label, want] of expected.model) if (label !== 'random') book(`requests counted, model ${label}`, want, counted.get(label) ?? 0);
  const knownLabels = new Set([...expected.model.keys()].filter((l) => l !== 'random'));
  const randomCounted = [...counted].filter(([l]) => !knownLabels.has(l)).reduce((n, [, v]) => n + v, 0);
  book('requests counted, random model names', expected.model.get('random') ?? 0, randomCounted);
  for (const [endpoint, want] of expected.endpoint)
    book(
      `requests counted, endpoint ${endpoint}`,
      want,
      total((x) => x.labels.endpoint === endpoint),
    );
  for (const status of STATUS_BOOKS)
    book(
      `requests counted, status ${status}`,
      expected.status.get(status) ?? 0,
      total((x) => x.labels.status === String(status)),
    );
  for (const reason of REASON_BOOKS)
    book(
      `errors counted, reason ${reason}`,
      expected.reason.get(reason) ?? 0,
      total((x) => x.labels.reason === reason, 'ollama_request_errors_total'),
    );
  book(
    `errors counted, model ${L(mSlowReader)} (paused, resumed)`,
    0,
    total((x) => x.labels.model === L(mSlowReader), 'ollama_request_errors_total'),
  );
  const inFlight = m.filter((x) => x.name === 'ollama_requests_in_flight' && x.value !== 0).length;
  book('ollama_requests_in_flight series not 0', 0, inFlight);
  const buffered = m.find((x) => x.name === 'ollama_gateway_buffered_body_bytes');
  books.push({ book: 'ollama_gateway_buffered_body_bytes', expected: '0', actual: buffered ? String(buffered.value) : 'absent', ok: buffered?.value === 0 });
  books.push({
    book: "requests that reached Ollama on the gateway's own paths",
    expected: '0',
    actual: `${upstreamBooks.own}${upstreamBooks.ownExample ? ` (${upstreamBooks.ownExample})` : ''}`,
    ok: upstreamBooks.own === 0,
  });
  books.push({
    book: 'spelled paths that reached Ollama as another path than /api/chat (query kept)',
    expected: '0',
    actual: `${upstreamBooks.spelledWrong} of ${upstreamBooks.spelled}${upstreamBooks.spelledExample ? ` (${upstreamBooks.spelledExample})` : ''}`,
    ok: upstreamBooks.spelledWrong === 0,
  });
  const failures = [...tally].reduce((n, [, t]) => n + t.failed, 0);
  books.push({ book: 'clients that got neither their response nor the expected error', expected: '0', actual: String(failures), ok: failures === 0 });
  books.push({ book: 'upstream requests still running', expected: '0', actual: String(fake.active), ok: fake.active === 0 });
  const cancelled = (tally.get('client leaves mid-stream')?.sent ?? 0) + (tally.get('client leaves before response')?.sent ?? 0);
  books.push({
    book: 'upstream requests abandoned ≥ clients that left',
    expected: `≥ ${cancelled}`,
    actual: String(fake.abandoned),
    ok: fake.abandoned >= cancelled,
  });
  books.push({
    book: 'active handles (before → after)',
    expected: `≤ ${before.handles + 2}`,
    actual: `${before.handles} → ${after.handles}`,
    ok: after.handles <= before.handles + 2,
  });
  books.push({
    book: 'open sockets (before → after)',
    expected: `≤ ${before.sockets + 2}`,
    actual: `${before.sockets} → ${after.sockets}`,
    ok: after.sockets <= before.sockets + 2,
  });
  const heapMargin = 24;
  books.push({
    book: 'heap used MB (before / peak / after GC)',
    expected: `after ≤ before + ${heapMargin}`,
    actual: `${before.heapUsedMb.toFixed(1)} / ${peakHeap.toFixed(1)} / ${after.heapUsedMb.toFixed(1)}`,
    ok: after.heapUsedMb <= before.heapUsedMb + heapMargin,
  });
  books.push({
    book: 'RSS MB (before / peak / after)',
    expected: 'reported',
    actual: `${before.rssMb.toFixed(0)} / ${peakRss.toFixed(0)} / ${after.rssMb.toFixed(0)}`,
    ok: true,
  });

  const out: string[] = [];
  out.push(`## Soak: ${seconds} s, ${concurrency} mixed clients, waves of ${slowStreams} slow streams`, '');
  out.push('| traffic | sent | failed | why |', '|---|---|---|---|');
  for (const [name, t] of tally) out.push(`| ${name} | ${t.sent} | ${t.failed} | ${[...t.why].map(([w, n]) => `${w} ×${n}`).join(', ')} |`);
  out.push('', '| book | expected | actual | |', '|---|---|---|---|');
  for (const b of books) out.push(`| ${b.book} | ${b.expected} | ${b.actual} | ${b.ok ? 'balanced' : 'NOT BALANCED'} |`);
  process.stdout.write(out.join('\n') + '\n');
  process.exit(books.every((b) => b.ok) ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`soak failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
