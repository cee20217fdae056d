/** The books a fuzz run must balance, read once the traffic has stopped and the gateway has settled. */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { LLM_ROUTES } from '../../../src/routes';
import { sleep } from '../wait';
import { FUZZ_ENV, type Book, type FuzzResult } from './config';
import { runPlan, type ClientResult } from './delivery';
import { getCapped, readMetrics, type MetricsRead } from './metrics';
import { ID_HEADER } from './records';
import { API_KEY } from './requests';
import type { FuzzRun } from './run';
import type { Violation } from './upstream';

/** Reading /metrics stops here (a gateway that labels series with 5 MB names makes it huge). */
const METRICS_CAP = 512 * 1024 * 1024;
/** Larger expositions are not kept for promtool. */
const METRICS_TEXT_CAP = 16 * 1024 * 1024;
const CHECK_BODY = '{"model":"llama3.2","stream":true}';
const METRICS_LIMIT = 1024 * 1024;
const WANTED = new Set([
  'ollama_requests_in_flight',
  'ollama_requests_total',
  'ollama_model_loads_total',
  'ollama_model_unloads_total',
  'ollama_gateway_buffered_body_bytes',
]);

/** Calls that only loaded or unloaded a model: counted apart from requests, with no endpoint label. */
const lifecycleCalls = (m: MetricsRead): number => sum(m, 'ollama_model_loads_total') + sum(m, 'ollama_model_unloads_total');

/** The native endpoints on which a call can be a load or an unload. */
const NATIVE_GENERATION = new Set(['/api/chat', '/api/generate']);

type AddBook = (b: string, expected: string, actual: string, ok: boolean) => void;

const sum = (m: MetricsRead, name: string) => m.samples.filter((x) => x.name === name).reduce((n, x) => n + x.value, 0);
const alive = (run: FuzzRun) => run.exitCode === undefined && run.gw.child.exitCode === null && run.gw.child.signalCode === null;

export async function judge(run: FuzzRun): Promise<FuzzResult> {
  const books: Book[] = [];
  const book: AddBook = (b, expected, actual, ok) => books.push({ book: b, expected, actual, ok });
  const scrape = () => readMetrics(run.port, WANTED, { cap: METRICS_CAP, textCap: METRICS_TEXT_CAP, ms: 20_000 });

  await settle(run, scrape);
  const health = await getCapped(run.port, '/healthz', 1 << 16, 5000);
  const chat = await validCall(run.port);
  await sleep(1200); // one more pino flush
  const metrics = await scrape();
  run.upstream.take(run.fake);

  processBooks(book, run, health, chat);
  const read = expositionBooks(book, metrics);
  // The books below are read from whatever /metrics gave, even when it was too big.
  countBooks(book, run, metrics, read);
  violationBooks(book, run);
  outputBooks(book, run, metrics, read);

  return {
    seed: run.opts.seed,
    planned: run.opts.requests,
    sent: run.done,
    seconds: (performance.now() - run.t0) / 1000,
    books,
    kinds: run.kinds,
    statuses: run.statuses,
    env: run.env,
    stderrTail: run.gw.stderr.slice(-1500),
  };
}

/** Waits (10 s at most) for in-flight back to 0, the fake idle, every log line written (pino flushes every 500 ms). */
async function settle(run: FuzzRun, scrape: () => Promise<MetricsRead>): Promise<void> {
  const settleUntil = performance.now() + 10_000;
  let metrics = await scrape();
  while (alive(run) && !metrics.error && performance.now() < settleUntil) {
    run.upstream.take(run.fake);
    if (
      sum(metrics, 'ollama_requests_in_flight') === 0 &&
      run.fake.active === 0 &&
      sum(metrics, 'ollama_requests_total') + lifecycleCalls(metrics) === run.logs.llmCalls
    )
      break;
    await sleep(400);
    metrics = await scrape();
  }
}

/** A valid call still works (and is counted like any other). */
function validCall(port: number): Promise<ClientResult> {
  return runPlan(port, {
    index: -1,
    kind: 'check',
    parts: [
      {
        t: 'write',
        data: Buffer.from(
          `POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Length: ${CHECK_BODY.length}\r\nConnection: close\r\n\r\n${CHECK_BODY}`,
        ),
      },
    ],
    expect: 1,
    methods: ['POST'],
    records: new Map(),
    notes: [],
  });
}

function processBooks(book: AddBook, run: FuzzRun, health: { status: number; error?: string }, chat: ClientResult): void {
  const { gw } = run;
  const up = alive(run);
  book('gateway process alive', 'running', up ? 'running' : `exited ${gw.child.exitCode ?? gw.child.signalCode}`, up);
  book('/healthz answers 200', '200', String(health.status || health.error), health.status === 200);
  book(
    'a valid /api/chat stream after the fuzz',
    '200, whole response',
    `${chat.end} ${chat.statuses.join('+') || '-'}`,
    chat.statuses[0] === 200 && chat.end === 'answered',
  );
}

/** /metrics answered, its size, and promtool's verdict; returns whether it was read whole. */
function expositionBooks(book: AddBook, metrics: MetricsRead): boolean {
  const read = !metrics.error && metrics.status === 200;
  book('/metrics answers 200', '200', metrics.error ? `${metrics.status} ${metrics.error}` : String(metrics.status), read);
  book('/metrics size', `< ${METRICS_LIMIT} B`, `${metrics.bytes} B${metrics.error ? ' or more' : ''}`, read && metrics.bytes < METRICS_LIMIT);
  if (metrics.text === undefined) {
    book('promtool check metrics', 'exit 0', read ? `not run: /metrics is ${metrics.bytes} B` : 'no /metrics to check', false);
  } else if (spawnSync('sh', ['-c', 'command -v promtool']).status === 0) {
    const r = spawnSync('promtool', ['check', 'metrics'], { input: metrics.text, encoding: 'utf8', timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });
    const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(0, 3).join(' | ').slice(0, 300);
    book('promtool check metrics', 'exit 0', `exit ${r.status}${out ? ': ' + out : ''}`, r.status === 0);
  } else {
    const ci = !!process.env.CI;
    book('promtool check metrics', 'exit 0', ci ? 'promtool not installed' : 'skipped: promtool not installed', !ci);
  }
  return read;
}

/** (a)–(e): nothing in flight, no body held, every LLM call Ollama received counted, counts = log lines. */
function countBooks(book: AddBook, run: FuzzRun, metrics: MetricsRead, read: boolean): void {
  const partial = metrics.error ? ' (from a partial /metrics)' : '';
  const nonZero = metrics.samples.filter((x) => x.name === 'ollama_requests_in_flight' && x.value !== 0);
  book(
    '(a) ollama_requests_in_flight, every series',
    '0',
    nonZero.length
      ? `${nonZero.length} series: ` +
          nonZero
            .slice(0, 3)
            .map((x) => `${x.value} {model=${JSON.stringify(x.labels.model?.slice(0, 40))},endpoint=${x.labels.endpoint}}`)
            .join(', ') +
          partial
      : `0${partial}`,
    read && nonZero.length === 0,
  );
  const buffered = metrics.samples.find((x) => x.name === 'ollama_gateway_buffered_body_bytes');
  book('(b) ollama_gateway_buffered_body_bytes', '0', buffered ? String(buffered.value) : 'absent', buffered?.value === 0);
  const totals = metrics.samples.filter((x) => x.name === 'ollama_requests_total');
  const lifecycle = lifecycleCalls(metrics);
  for (const route of LLM_ROUTES) {
    // A load or unload on /api/chat or /api/generate is counted in the lifecycle counters, which
    // have no endpoint: the two native endpoints are checked together against them.
    const paths = NATIVE_GENERATION.has(route.path) ? NATIVE_GENERATION : new Set([route.path]);
    if (NATIVE_GENERATION.has(route.path) && route.path !== '/api/chat') continue;
    const counted =
      totals.filter((x) => paths.has(x.labels.endpoint ?? '')).reduce((n, x) => n + x.value, 0) + (NATIVE_GENERATION.has(route.path) ? lifecycle : 0);
    const reached = [...paths].reduce((n, p) => n + (run.upstream.llmByEndpoint.get(p) ?? 0), 0);
    book(
      `(c) ${[...paths].join(' + ')}: calls Ollama received ≤ ollama_requests_total${NATIVE_GENERATION.has(route.path) ? ' + loads + unloads' : ''}`,
      `≤ ${counted}${partial}`,
      `${reached}${reached > counted ? ` (${reached - counted} reached Ollama uncounted)` : ''}`,
      read && reached <= counted,
    );
  }
  const total = totals.reduce((n, x) => n + x.value, 0) + lifecycle;
  const { llmCalls } = run.logs;
  book(
    '(d) sum of ollama_requests_total, model loads and unloads = LLM-call log lines',
    `${llmCalls} log lines`,
    `${total}${total !== llmCalls ? ` (off by ${total - llmCalls})` : ''}${partial}`,
    read && total === llmCalls,
  );
  book('(e) fake Ollama responses in flight', '0', String(run.fake.active), run.fake.active === 0);
}

/** Answers other than the spec's, and what must never reach Ollama. */
function violationBooks(book: AddBook, run: FuzzRun): void {
  const { upstream, oracles } = run;
  const v = (name: string, x: Violation, note = '') => book(name, '0', x.count ? `${x.count}: ${x.examples.join(' ; ')}` : `0${note}`, x.count === 0);
  v(
    "answers other than the spec's (405 + Allow, 408 + Connection: close, 400)",
    oracles.wrong,
    ` (of ${oracles.checked} requests with one exact answer; --show <#> prints one)`,
  );
  v('forwarded path ≠ normalised target', upstream.notNormalised, ` (of ${upstream.correlated} correlated by ${ID_HEADER})`);
  v('target in neither origin- nor absolute-form forwarded', upstream.badFormForwarded);
  v('own path (/healthz /readyz /metrics) forwarded to Ollama', upstream.ownForwarded);
  v('request without a valid API key forwarded', upstream.unauthenticated);
  v('Authorization header forwarded to Ollama', upstream.keyForwarded);
}

/** Model labels bounded and clean; stdout all JSON; no stack traces on stderr; what was logged at ERROR. */
function outputBooks(book: AddBook, run: FuzzRun, metrics: MetricsRead, read: boolean): void {
  const { logs, gw, upstream } = run;
  const partial = metrics.error ? ' (from a partial /metrics)' : '';
  const bad = [...metrics.models.values()].filter((m) => m.bad);
  book(
    'model labels longer than 256 chars or with control characters',
    '0',
    bad.length
      ? `${bad.length}: ${bad
          .slice(0, 3)
          .map((m) => `${JSON.stringify(m.preview.slice(0, 30))}…(${m.length})`)
          .join(', ')}${partial}`
      : `0${partial}`,
    read && bad.length === 0,
  );
  const maxLabels = Number(FUZZ_ENV.MAX_MODEL_LABELS) + 3;
  book(
    'distinct model labels',
    `≤ ${maxLabels} (MAX_MODEL_LABELS + unknown, other, invalid)`,
    `${metrics.models.size}${partial}`,
    read && metrics.models.size <= maxLabels,
  );
  book(
    'stdout lines that are not JSON',
    '0',
    logs.nonJson ? `${logs.nonJson}: ${logs.nonJsonExamples.map((l) => JSON.stringify(l)).join(' ; ')}` : '0',
    logs.nonJson === 0,
  );
  const stack = gw.stderr.split('\n').filter((l) => /^\s+at /.test(l));
  const firstErr = gw.stderr.split('\n').find((l) => l.trim()) ?? '';
  book(
    'stack-trace lines on stderr',
    '0',
    stack.length ? `${stack.length}, first stderr line: ${JSON.stringify(firstErr.trim().slice(0, 200))}` : '0',
    stack.length === 0,
  );
  const errors = [...logs.errorLines].filter(([m]) => m !== 'request failed upstream');
  book(
    'ERROR log lines other than upstream failures (reported)',
    'reported',
    errors.length ? errors.map(([m, n]) => `${JSON.stringify(m)} ×${n}`).join(', ') : 'none',
    true,
  );
  book('requests correlated at Ollama / received (reported)', 'reported', `${upstream.correlated} / ${upstream.received}`, true);
}
