/**
 * The hostile-backend fuzz: several scripted backends (raw TCP, test/helpers/hostile-upstream) that
 * answer the gateway's polls, the listings clients ask for and the LLM calls with structured
 * hostile JSON (nesting depth, key counts, string sizes, numeric edge cases) and broken framing,
 * while clients keep calling through a gateway process with `ROUTING_AFFINITY=prefix`. Then the
 * books: the process alive with nothing on stderr, `/healthz` 200, `/metrics` valid for promtool,
 * nothing left in flight.
 *
 * Every answer is drawn from (seed, backend, request index), so a seed replays the same answers in
 * the same order at each backend (which request meets which answer depends on timing).
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { chunk, HostileUpstream, lastChunk, reply, reset, write, type Script } from '../hostile-upstream';
import { runGateway } from '../process';
import { freePort } from '../procs';
import type { Book } from './config';
import { readMetrics } from './metrics';
import { Rng } from './rng';

export interface BackendFuzzOptions {
  seed: number;
  /** Client requests to send. */
  requests: number;
  /** Backends (at least 2: the listings are unions, calls are routed). */
  backends?: number;
  concurrency?: number;
  /** Stop sending after this long; the books are still judged. */
  maxSeconds?: number;
  progress?: (line: string) => void;
}

export interface BackendFuzzResult {
  seed: number;
  sent: number;
  seconds: number;
  /** Answers the backends played, by kind. */
  answers: Map<string, number>;
  /** Client outcomes: status, or the error's name. */
  outcomes: Map<string, number>;
  books: Book[];
  stderrTail: string;
}

// ---------------------------------------------------------------------------------------------
// Hostile JSON, written as text: a serializer would refuse the depths on purpose.

const NUMBERS = [
  '0',
  '-0',
  '1e308',
  '-1e308',
  '1e309',
  '5e-324',
  '9007199254740993',
  '-9007199254740993',
  '1.7976931348623157e308',
  '0.1',
  '123456789012345678901234567890',
];
const STRINGS = [
  '""',
  '"\\u0000"',
  '"\\ud800"',
  '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
  '"\u00e9\u4e2d\ud83d\ude00"',
  '"llama3.2:latest"',
  '"../../etc/passwd"',
  '"\\u001b[31m"',
];

/**
 * One hostile JSON value, as text; objects nest further hostile values `depthLeft` more times.
 * `big`: strings of megabytes and objects of 50,000 keys may come (a document's top level only, so
 * a body stays a few MB).
 */
function hostileValue(rng: Rng, depthLeft: number, big = false): string {
  const kind = rng.weighted([
    [4, 'number'],
    [4, 'string'],
    [2, 'bigString'],
    [2, 'deep'],
    [2, 'wide'],
    [2, 'object'],
    [1, 'literal'],
  ] as const);
  switch (kind) {
    case 'number':
      return rng.pick(NUMBERS);
    case 'string':
      return rng.pick(STRINGS);
    case 'bigString':
      return `"${'x'.repeat(rng.pick(big ? [1024, 70_000, 2_000_000] : [16, 1024, 20_000]))}"`;
    case 'deep': {
      const d = rng.pick([32, 65, 1000, 20_000]);
      const [open, close] = rng.chance(0.5) ? ['[', ']'] : ['{"a":', '}'];
      return open.repeat(d) + '1' + close.repeat(d);
    }
    case 'wide': {
      const n = rng.pick(big ? [100, 5000, 50_000] : [10, 100, 1000]);
      const dupes = rng.chance(0.3);
      return `{${Array.from({ length: n }, (_, i) => `"${dupes ? 'k' : `k${i}`}":${i}`).join(',')}}`;
    }
    case 'object':
      return depthLeft <= 0 ? '{}' : `{"a":${hostileValue(rng, depthLeft - 1)},"b":[${hostileValue(rng, depthLeft - 1)}]}`;
    case 'literal':
      return rng.pick(['null', 'true', 'false', '[]', '{}']);
  }
}

/** A model entry as Ollama lists it, with hostile values in some fields. */
function modelEntry(rng: Rng, i: number, plain: boolean): string {
  const name = rng.chance(0.7) ? `"m${i % 7}:latest"` : plain ? rng.pick(STRINGS) : hostileValue(rng, 2);
  const field = () => (!plain && rng.chance(0.6) ? hostileValue(rng, 2) : rng.pick(plain && rng.chance(0.5) ? STRINGS : NUMBERS));
  return `{"name":${name},"model":${name},"size":${field()},"size_vram":${field()},"digest":${rng.chance(0.5) ? '"abc"' : field()},"expires_at":${rng.chance(0.5) ? '"2026-01-01T00:00:00Z"' : field()},"details":{"family":${field()},"families":${field()},"parameter_size":${field()}}}`;
}

function listingBody(rng: Rng, path: string): string {
  if (rng.chance(0.1)) return hostileValue(rng, 3, true);
  const n = rng.pick([0, 1, 3, 20, 5000]);
  // Many entries, each of plain hostile values; a few, of anything.
  const entries = Array.from({ length: n }, (_, i) => modelEntry(rng, i, n > 20)).join(',');
  if (path === '/v1/models') return `{"object":"list","data":[${entries.replace(/"name":/g, '"id":')}]}`;
  return `{"models":[${entries}]}`;
}

function versionBody(rng: Rng): string {
  return rng.chance(0.5) ? `{"version":${rng.chance(0.5) ? '"0.12.0"' : hostileValue(rng, 3)}}` : hostileValue(rng, 3, true);
}

/** A stream's lines or events, with hostile values where the parsers read. */
function streamLines(rng: Rng, sse: boolean): string[] {
  const n = rng.range(1, 30);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const v = () => (rng.chance(0.5) ? hostileValue(rng, 2) : rng.pick(NUMBERS));
    const line = sse
      ? `data: {"id":"c","object":"chat.completion.chunk","model":${v()},"choices":[{"index":0,"delta":{"content":${v()}}}],"usage":{"prompt_tokens":${v()},"completion_tokens":${v()}}}\n\n`
      : `{"model":${v()},"message":{"role":"assistant","content":${v()}},"done":${i === n - 1},"prompt_eval_count":${v()},"eval_count":${v()},"eval_duration":${v()},"total_duration":${v()}}\n`;
    lines.push(line);
  }
  if (sse && rng.chance(0.7)) lines.push('data: [DONE]\n\n');
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Framing: the body whole, or broken in one of the ways a backend can break it.

type Framing = 'length' | 'chunked' | 'short' | 'long' | 'badChunk' | 'resetMid' | 'garbageHead' | 'earlyHints';

function frame(rng: Rng, contentType: string, body: string): { kind: Framing; script: Script } {
  const b = Buffer.from(body);
  const kind = rng.weighted([
    [6, 'length'],
    [4, 'chunked'],
    [1, 'short'],
    [1, 'long'],
    [1, 'badChunk'],
    [1, 'resetMid'],
    [1, 'garbageHead'],
    [1, 'earlyHints'],
  ] as const);
  const head = (extra: string) => `HTTP/1.1 200 OK\r\nContent-Type: ${contentType}\r\n${extra}\r\n`;
  switch (kind) {
    case 'length':
      return { kind, script: reply(200, contentType, b) };
    case 'chunked': {
      const pieces: Buffer[] = [];
      for (let at = 0; at < b.length;) {
        const step = rng.range(1, 65_536);
        pieces.push(chunk(b.subarray(at, at + step)));
        at += step;
      }
      return { kind, script: [write(head('Transfer-Encoding: chunked\r\n')), ...pieces.map((p) => write(p)), write(lastChunk())] };
    }
    case 'short':
      return { kind, script: [write(head(`Content-Length: ${b.length + 10}\r\n`)), write(b), reset()] };
    case 'long':
      return { kind, script: [write(head(`Content-Length: ${Math.max(0, b.length - 3)}\r\n`)), write(b)] };
    case 'badChunk':
      return { kind, script: [write(head('Transfer-Encoding: chunked\r\n')), write(`zz\r\n${body.slice(0, 100)}\r\n`), reset()] };
    case 'resetMid':
      return { kind, script: [write(head('Transfer-Encoding: chunked\r\n')), write(chunk(b.subarray(0, b.length >> 1))), reset()] };
    case 'garbageHead':
      return { kind, script: [write(`HTTP/1.1 2x0 \u0000\r\nContent-Length: -5\r\n\r\n`), reset()] };
    case 'earlyHints':
      return {
        kind,
        script: [write('HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n'), write('HTTP/1.1 103 Early Hints\r\n\r\n'), ...reply(200, contentType, b)],
      };
  }
}

const LISTINGS = new Set(['/api/tags', '/api/ps', '/v1/models']);

/** Makes `up` answer every request from `rng`, counting the kinds of answer in `answers`. */
function armBackend(up: HostileUpstream, rng: Rng, answers: Map<string, number>): void {
  up.otherwise = (req) => {
    let body: string;
    let type = 'application/json; charset=utf-8';
    if (LISTINGS.has(req.path)) body = listingBody(rng, req.path);
    else if (req.path === '/api/version') body = versionBody(rng);
    else if (req.path === '/v1/chat/completions') {
      type = 'text/event-stream';
      body = streamLines(rng, true).join('');
    } else if (req.path === '/api/chat' || req.path === '/api/generate') {
      type = 'application/x-ndjson';
      body = streamLines(rng, false).join('');
    } else body = hostileValue(rng, 3, true);
    const { kind, script } = frame(rng, type, body);
    const key = `${req.path} ${kind}`;
    answers.set(key, (answers.get(key) ?? 0) + 1);
    return script;
  };
}

// ---------------------------------------------------------------------------------------------
// Clients: listings, versions and conversations (so affinity keys are made and kept).

interface ClientCall {
  method: string;
  path: string;
  body?: string;
}

function clientCall(rng: Rng): ClientCall {
  const kind = rng.weighted([
    [3, 'listing'],
    [1, 'version'],
    [4, 'chat'],
    [2, 'openai'],
  ] as const);
  if (kind === 'listing') return { method: 'GET', path: rng.pick(['/api/tags', '/api/ps', '/v1/models']) };
  if (kind === 'version') return { method: 'GET', path: '/api/version' };
  const conversation = rng.int(8);
  const turns = rng.range(0, 4);
  const messages = [
    { role: 'system', content: `be brief ${conversation}` },
    { role: 'user', content: `conversation ${conversation}` },
    ...Array.from({ length: turns }, (_, i) => ({ role: i % 2 ? 'user' : 'assistant', content: `turn ${i}` })),
  ];
  const model = `m${rng.int(7)}`;
  if (kind === 'openai') return { method: 'POST', path: '/v1/chat/completions', body: JSON.stringify({ model, stream: true, messages }) };
  return { method: 'POST', path: '/api/chat', body: JSON.stringify({ model, stream: rng.chance(0.7), messages }) };
}

// ---------------------------------------------------------------------------------------------
// One run.

export async function runBackendFuzz(opts: BackendFuzzOptions): Promise<BackendFuzzResult> {
  const t0 = performance.now();
  const count = Math.max(2, opts.backends ?? 3);
  const answers = new Map<string, number>();
  const outcomes = new Map<string, number>();
  const ups = await Promise.all(Array.from({ length: count }, () => new HostileUpstream().start()));
  ups.forEach((up, i) => armBackend(up, new Rng(opts.seed, 100 + i), answers));
  const port = await freePort();
  const gw = runGateway({
    OLLAMA_HOST: ups.map((u) => u.origin).join(','),
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'INFO',
    ROUTING_AFFINITY: 'prefix',
    OLLAMA_POLL_INTERVAL_SECONDS: '1',
    UPSTREAM_IDLE_TIMEOUT_SECONDS: '2',
    CLIENT_WRITE_TIMEOUT_SECONDS: '3',
    SHUTDOWN_GRACE_SECONDS: '1',
  });
  const url = `http://127.0.0.1:${port}`;
  const books: Book[] = [];
  const book = (name: string, expected: string, actual: string, ok: boolean) => books.push({ book: name, expected, actual, ok });
  let sent = 0;
  try {
    await gw.waitFor('gateway listening', 15_000);
    const rng = new Rng(opts.seed, 1);
    const calls = Array.from({ length: opts.requests }, () => clientCall(rng));
    const until = performance.now() + (opts.maxSeconds ?? Infinity) * 1000;
    let next = 0;
    const lane = async () => {
      while (next < calls.length && performance.now() < until && gw.child.exitCode === null) {
        const c = calls[next++]!;
        sent++;
        let outcome: string;
        try {
          const res = await fetch(url + c.path, { method: c.method, body: c.body, signal: AbortSignal.timeout(15_000) });
          await res.arrayBuffer();
          outcome = String(res.status);
        } catch (err) {
          outcome = (err as Error).name === 'TimeoutError' ? 'timeout' : 'broken';
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
        if (sent % 200 === 0) opts.progress?.(`${sent} sent`);
      }
    };
    await Promise.all(Array.from({ length: opts.concurrency ?? 8 }, lane));
    await judge(url, port, gw.child.exitCode, book);
    book('no client waited 15 s for an answer', '0', String(outcomes.get('timeout') ?? 0), !outcomes.has('timeout'));
  } finally {
    gw.child.kill('SIGTERM');
    await gw.exit;
    await Promise.all(ups.map((u) => u.close()));
  }
  book('nothing on stderr (no stack traces, no warnings)', 'empty', gw.stderr === '' ? 'empty' : gw.stderr.slice(-300), gw.stderr === '');
  // The last resort and the catch-alls keep the process up; an error that reached them is a bug all the same.
  const uncaught = gw.lines.filter((l) => CATCH_ALLS.has(String(l.msg)));
  book(
    'no error reached a catch-all (last resort, request handling, listing union)',
    '0',
    uncaught.length === 0
      ? '0'
      : `${uncaught.length}: ${[...new Set(uncaught.map((l) => `${String(l.msg)} (${String(l.error ?? '')})`))].join('; ').slice(0, 400)}`,
    uncaught.length === 0,
  );
  return { seed: opts.seed, sent, seconds: (performance.now() - t0) / 1000, answers, outcomes, books, stderrTail: gw.stderr.slice(-2000) };
}

/** The log lines of the handlers of last resort: an error that reaches one is a bug the process survived. */
const CATCH_ALLS = new Set([
  'an error nothing caught ended its request; the gateway goes on',
  'an error nothing caught; the gateway goes on',
  'request handling failed',
  'answering a listing union failed',
]);

const IN_FLIGHT = new Set(['ollama_requests_in_flight', 'ollama_backend_in_flight']);

async function judge(
  url: string,
  port: number,
  exitCode: number | null,
  book: (name: string, expected: string, actual: string, ok: boolean) => void,
): Promise<void> {
  book('the process is alive', 'running', exitCode === null ? 'running' : `exited ${exitCode}`, exitCode === null);
  if (exitCode !== null) return;
  const health = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5000) }).then(
    (r) => r.status,
    () => 0,
  );
  book('/healthz', '200', String(health), health === 200);
  // In-flight calls end within the idle timeout of their backend; wait for them.
  let metrics = await readMetrics(port, IN_FLIGHT, { cap: 8 * 2 ** 20, textCap: 8 * 2 ** 20, ms: 5000 });
  const busy = () => metrics.samples.filter((s) => s.value !== 0);
  for (let i = 0; i < 40 && (metrics.status !== 200 || busy().length > 0); i++) {
    await new Promise((r) => setTimeout(r, 250));
    metrics = await readMetrics(port, IN_FLIGHT, { cap: 8 * 2 ** 20, textCap: 8 * 2 ** 20, ms: 5000 });
  }
  book('/metrics', '200', String(metrics.status), metrics.status === 200);
  book(
    'nothing in flight (ollama_requests_in_flight, ollama_backend_in_flight)',
    '0 everywhere',
    busy().length === 0
      ? '0 everywhere'
      : busy()
          .map((s) => `${s.name}${JSON.stringify(s.labels)}=${s.value}`)
          .join(', '),
    busy().length === 0,
  );
  if (metrics.text === undefined) book('promtool check metrics', 'exit 0', 'no /metrics text', false);
  else if (spawnSync('sh', ['-c', 'command -v promtool']).status === 0) {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: metrics.text, encoding: 'utf8', timeout: 30_000, maxBuffer: 64 * 2 ** 20 });
    const problems = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
    book('promtool check metrics', 'exit 0', `exit ${r.status}${problems ? ': ' + problems.slice(0, 300) : ''}`, r.status === 0);
  } else book('promtool check metrics', 'exit 0', 'skipped: promtool not installed', true);
}

/** The run as markdown lines. */
export function formatBackendReport(r: BackendFuzzResult): string {
  const rows = (m: Map<string, number>) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `  ${k}: ${v}`)
      .join('\n');
  return [
    `hostile-backend fuzz, seed ${r.seed}: ${r.sent} client requests in ${r.seconds.toFixed(1)} s`,
    ...r.books.map((b) => `${b.ok ? 'ok  ' : 'FAIL'} ${b.book}: expected ${b.expected}, got ${b.actual}`),
    'client outcomes:',
    rows(r.outcomes),
    'backend answers:',
    rows(r.answers),
  ].join('\n');
}
