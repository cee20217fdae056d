/**
 * npm run bench:fairness — the figures behind "Fair queueing": how long an interactive tenant's
 * calls wait while a batch tenant keeps a flood queued, with the fair queue and first-come, and
 * whether fairness costs any of Ollama's slots.
 *
 * One generating fake Ollama (each chat streams OUTPUT_TOKENS tokens TOKEN_MS apart, so one
 * generation takes about a second) behind the gateway with BACKEND_PARALLEL=SLOTS. A batch tenant
 * keeps BATCH_QUEUED calls waiting (each finished call is replaced); an interactive tenant sends one
 * call a second. An interactive call's wait is the time from its send to its arrival at the fake;
 * "overtaken" counts the batch calls that reached the fake in between. Calls per second count each
 * call by the share of its generation inside the measured span (the span over which the interactive
 * calls are sent), so the figure does not move in whole calls. Three modes: first-come
 * (QUEUE_ORDER=fifo, what Ollama's own queue does), fair shares of tokens with both tenants
 * interactive, and fair with the batch tenant in the batch class.
 *
 * Calls per second on a shared machine swing with its load (the fake's timers and the gateway both
 * slow down), so the benchmark also reports slot utilisation: the time slots were held at the fake
 * (from a call's arrival to its last line) over the slots times the measured span. The generation
 * itself is timers, so what is missing from 100 % is time a slot stood empty between one call's end
 * and the next one's arrival: the waste of the queue and the relay, whatever the machine's speed.
 * The modes run interleaved, `--rounds` times each (each round starting with the next mode), and
 * the table gives each figure's median over the rounds with its range. Then the scheduler's own
 * cost per call, measured on the queue alone with the flood waiting: the median over many batches.
 *
 * `--quick`: a short run (small flood, fast generations, one round) for the test suite, which
 * asserts order. `--json`: print the results as JSON instead of the table. `--cost-only`: the
 * scheduler's cost alone.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FairQueue, type QueueOrder, type Slot } from '../src/scheduler/fair-queue';
import { keyFingerprint, type TenantPolicy, type TenantPolicies } from '../src/scheduler/tenant';
import { startGatewayFor } from '../test/helpers/gateway';

const QUICK = process.argv.includes('--quick');

/** A whole number `--name=N` or `--name N`, at least 1; `def` when absent. */
function arg(name: string, def: number): number {
  const argv = process.argv;
  const i = argv.findIndex((a) => a === `--${name}` || a.startsWith(`--${name}=`));
  if (i === -1) return def;
  const raw = argv[i]!.includes('=') ? argv[i]!.slice(argv[i]!.indexOf('=') + 1) : argv[i + 1];
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--${name} wants a whole number of at least 1, not ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}

const SLOTS = arg('slots', 4);
const BATCH_QUEUED = arg('batch', QUICK ? 20 : 200);
const INTERACTIVE_CALLS = arg('calls', QUICK ? 4 : 30);
const ROUNDS = arg('rounds', QUICK ? 1 : 3);
const INTERACTIVE_EVERY_MS = QUICK ? 250 : 1000;
const OUTPUT_TOKENS = QUICK ? 5 : 40;
const TOKEN_MS = 25;
const PROMPT_TOKENS = 200;
const GENERATION_MS = OUTPUT_TOKENS * TOKEN_MS;

const BATCH_KEY = 'bench-batch-key';
const INTER_KEY = 'bench-interactive-key';

if (process.argv.includes('--help')) {
  console.log('npm run bench:fairness [-- --rounds=N --slots=N --batch=N --calls=N --quick --json --cost-only]');
  process.exit(0);
}

/** When one call held a slot at the fake: from its arrival to its last line (or its connection's end). */
interface Held {
  start: number;
  end?: number;
}

/** An Ollama that generates: one NDJSON line per token, TOKEN_MS apart; records when each call held a slot. */
class GeneratingFake {
  readonly server: http.Server;
  port = 0;
  /** By the call's mark, in arrival order (performance.now() times). */
  readonly held = new Map<string, Held>();
  /** Most calls generating at once: the gateway must never send more than its slots. */
  maxConcurrent = 0;
  private concurrent = 0;
  constructor() {
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }
  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.url !== '/api/chat') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(req.url === '/api/version' ? '{"version":"0.12.0"}' : '{"models":[]}');
      return;
    }
    const body = JSON.parse(Buffer.concat(chunks).toString()) as { messages: { content: string }[] };
    const held: Held = { start: performance.now() };
    this.held.set(body.messages[0]!.content, held);
    this.maxConcurrent = Math.max(this.maxConcurrent, ++this.concurrent);
    // The slot is free once the last line is written, or once the connection went without it.
    const free = () => {
      if (held.end !== undefined) return;
      held.end = performance.now();
      this.concurrent--;
    };
    res.on('close', free);
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    let sent = 0;
    const line = (o: unknown) => res.write(JSON.stringify(o) + '\n');
    const timer = setInterval(() => {
      if (res.destroyed) return clearInterval(timer);
      if (sent < OUTPUT_TOKENS) {
        sent++;
        line({ model: 'llama3.2', created_at: '2026-01-01T00:00:00Z', message: { role: 'assistant', content: 'tok ' }, done: false });
        return;
      }
      clearInterval(timer);
      line({
        model: 'llama3.2',
        created_at: '2026-01-01T00:00:00Z',
        message: { role: 'assistant', content: '' },
        done: true,
        done_reason: 'stop',
        total_duration: GENERATION_MS * 1e6,
        load_duration: 1e6,
        prompt_eval_count: PROMPT_TOKENS,
        prompt_eval_duration: 1e6,
        eval_count: OUTPUT_TOKENS,
        eval_duration: GENERATION_MS * 1e6,
      });
      free();
      res.end();
    }, TOKEN_MS);
  }
}

const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

/** One chat through the gateway; resolves with its status once the whole answer is read. */
function chat(port: number, key: string, mark: string): Promise<number> {
  const body = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: mark }] });
  return new Promise((resolve) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/api/chat',
        method: 'POST',
        agent,
        headers: { authorization: `Bearer ${key}`, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', () => resolve(0));
      },
    );
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The three ways the queue is run, in the order of the table. */
const MODES = [
  { key: 'fifo', label: 'first-come (QUEUE_ORDER=fifo)', order: 'fifo' as QueueOrder, batchClass: false },
  { key: 'fair', label: 'fair, both tenants interactive', order: 'fair' as QueueOrder, batchClass: false },
  { key: 'fair-batch-class', label: 'fair, batch tenant in the batch class', order: 'fair' as QueueOrder, batchClass: true },
] as const;
type ModeKey = (typeof MODES)[number]['key'];

export interface RunResult {
  key: ModeKey;
  mode: string;
  round: number;
  waitsMs: number[];
  overtaken: number[];
  batchPerSecond: number;
  totalPerSecond: number;
  /** Slot-seconds held at the fake within the measured span. */
  busySlotSeconds: number;
  /** SLOTS times the measured span, in seconds. */
  availableSlotSeconds: number;
  /** busySlotSeconds / availableSlotSeconds. */
  utilisation: number;
  /** Most calls the fake ran at once over the whole run. */
  maxConcurrent: number;
  errors: number;
}

/**
 * Calls served per second within [t0, t1], each counted by the share of its time at the fake that
 * falls inside. Whole calls started inside would move in steps of the slots: they all began with
 * the flood and each generation takes the same time, so the slots start their calls in step.
 */
function servedPerSecond(held: Held[], t0: number, t1: number): number {
  let n = 0;
  for (const h of held) {
    if (h.end === undefined || h.end <= h.start) continue;
    const from = Math.max(h.start, t0);
    const to = Math.min(h.end, t1);
    if (to > from) n += (to - from) / (h.end - h.start);
  }
  return n / ((t1 - t0) / 1000);
}

/** The time within [t0, t1] that the calls held slots, in seconds; a call not yet ended still holds one. */
function busySeconds(held: Iterable<Held>, t0: number, t1: number, now: number): number {
  let ms = 0;
  for (const h of held) {
    const from = Math.max(h.start, t0);
    const to = Math.min(h.end ?? now, t1);
    if (to > from) ms += to - from;
  }
  return ms / 1000;
}

async function runMode(mode: (typeof MODES)[number], round: number): Promise<RunResult> {
  const policies: TenantPolicies = mode.batchClass ? new Map([[keyFingerprint(BATCH_KEY), { priority: 'batch' as const }]]) : new Map();
  const fake = await new GeneratingFake().start();
  const gw = await startGatewayFor(
    `http://127.0.0.1:${fake.port}`,
    {
      BACKEND_PARALLEL: String(SLOTS),
      QUEUE_ORDER: mode.order,
      QUEUE_TIMEOUT_SECONDS: '3600',
      QUEUE_MAX_WAITING: '100000',
      GATEWAY_API_KEYS: `${BATCH_KEY},${INTER_KEY}`,
      LOG_LEVEL: 'WARN',
      CONSOLE: 'false',
    },
    { tenantPolicies: policies },
  );
  const port = gw.gw.port;
  let running = true;
  let errors = 0;
  let n = 0;
  // The flood: BATCH_QUEUED waiting plus the SLOTS running, each replaced as it finishes.
  const workers = Array.from({ length: BATCH_QUEUED + SLOTS }, async () => {
    while (running) {
      const status = await chat(port, BATCH_KEY, `batch-${n++}`);
      if (!running) return;
      if (status !== 200) errors++;
    }
  });
  // Let the flood fill the queue and a few generations pass.
  await sleep(GENERATION_MS * 2);
  const t0 = performance.now();
  const sent: number[] = [];
  const calls: Promise<void>[] = [];
  for (let i = 0; i < INTERACTIVE_CALLS; i++) {
    sent.push(performance.now());
    calls.push(
      chat(port, INTER_KEY, `inter-${i}`).then((status) => {
        if (status !== 200) errors++;
      }),
    );
    await sleep(INTERACTIVE_EVERY_MS);
  }
  const t1 = performance.now();
  await Promise.all(calls);
  const held = fake.held;
  // The calls generating at t1 count by their share inside the window, which needs their end.
  const ends = performance.now() + GENERATION_MS * 10;
  while ([...held.values()].some((h) => h.start <= t1 && h.end === undefined) && performance.now() < ends) await sleep(TOKEN_MS);
  running = false;
  const batchStarts = [...held].filter(([m]) => m.startsWith('batch-')).map(([, h]) => h.start);
  const waitsMs: number[] = [];
  const overtaken: number[] = [];
  for (let i = 0; i < INTERACTIVE_CALLS; i++) {
    const at = held.get(`inter-${i}`)!.start;
    waitsMs.push(at - sent[i]!);
    overtaken.push(batchStarts.filter((t) => t > sent[i]! && t < at).length);
  }
  const window = (t1 - t0) / 1000;
  const busySlotSeconds = busySeconds(held.values(), t0, t1, performance.now());
  const availableSlotSeconds = SLOTS * window;
  const result: RunResult = {
    key: mode.key,
    mode: mode.label,
    round,
    waitsMs,
    overtaken,
    batchPerSecond: servedPerSecond(
      [...held].filter(([m]) => m.startsWith('batch-')).map(([, h]) => h),
      t0,
      t1,
    ),
    totalPerSecond: servedPerSecond([...held.values()], t0, t1),
    busySlotSeconds,
    availableSlotSeconds,
    utilisation: busySlotSeconds / availableSlotSeconds,
    maxConcurrent: fake.maxConcurrent,
    errors,
  };
  await gw.close();
  await fake.close();
  await Promise.race([Promise.all(workers), sleep(2000)]);
  return result;
}

export interface Cost {
  /** CPU µs per call (enqueue + release): median over the batches, and the quartiles. */
  medianUs: number;
  p25Us: number;
  p75Us: number;
  batches: number;
  callsPerBatch: number;
}

/**
 * The queue alone: CPU µs per call (enqueue + release) with BATCH_QUEUED calls waiting. CPU time,
 * not wall time, so the time other processes hold the cores is left out; the two orders are timed
 * in alternating batches of many calls after a warm-up, and each is the median of its batches, so
 * a burst of other work on the machine spoils a few batches rather than the figure.
 */
function schedulerCost(): Record<QueueOrder, Cost> {
  const batches = QUICK ? 10 : 200;
  const callsPerBatch = QUICK ? 1000 : 5000;
  const batch: TenantPolicy = { name: 'batch', weight: 1, priority: 'batch' };
  const inter: TenantPolicy = { name: 'inter', weight: 1, priority: 'interactive' };
  const setUp = (order: QueueOrder) => {
    const q = new FairQueue({ slots: new Map([['a', SLOTS]]), maxWaiting: 1e6, maxWaitMs: 3_600_000, order });
    const running: Slot[] = [];
    const ticket = { onRelease: (g: { slot: Slot }) => running.push(g.slot), onRefuse: () => {} };
    for (let i = 0; i < BATCH_QUEUED + SLOTS; i++) q.enqueue(batch, ['a'], ticket);
    let i = 0;
    // One interactive call in twenty, as the flood's share leaves it; every release makes way for one.
    return (calls: number): number => {
      const start = process.cpuUsage();
      for (let k = 0; k < calls; k++, i++) {
        q.enqueue(i % 20 === 0 ? inter : batch, ['a'], ticket);
        running.shift()!.release(240);
      }
      const used = process.cpuUsage(start);
      return (used.user + used.system) / calls;
    };
  };
  const run = { fair: setUp('fair'), fifo: setUp('fifo') };
  const times: Record<QueueOrder, number[]> = { fair: [], fifo: [] };
  for (let b = 0; b < batches + 5; b++) {
    for (const order of ['fair', 'fifo'] as const) {
      const us = run[order](callsPerBatch);
      if (b >= 5) times[order].push(us);
    }
  }
  const cost = (xs: number[]): Cost => ({ medianUs: pct(xs, 50), p25Us: pct(xs, 25), p75Us: pct(xs, 75), batches, callsPerBatch });
  return { fair: cost(times.fair), fifo: cost(times.fifo) };
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1))]!;
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** A figure over the rounds: its median and range. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}
const spread = (xs: number[]): Spread => ({ median: median(xs), min: Math.min(...xs), max: Math.max(...xs) });

export interface ModeSummary {
  key: ModeKey;
  mode: string;
  waitP50Ms: Spread;
  waitP95Ms: Spread;
  waitMaxMs: Spread;
  waitMeanMs: Spread;
  overtakenMean: Spread;
  batchPerSecond: Spread;
  totalPerSecond: Spread;
  utilisation: Spread;
  errors: number;
}

function summarise(runs: RunResult[]): ModeSummary[] {
  return MODES.map((m) => {
    const rs = runs.filter((r) => r.key === m.key);
    const of = (f: (r: RunResult) => number) => spread(rs.map(f));
    return {
      key: m.key,
      mode: m.label,
      waitP50Ms: of((r) => pct(r.waitsMs, 50)),
      waitP95Ms: of((r) => pct(r.waitsMs, 95)),
      waitMaxMs: of((r) => Math.max(...r.waitsMs)),
      waitMeanMs: of((r) => mean(r.waitsMs)),
      overtakenMean: of((r) => mean(r.overtaken)),
      batchPerSecond: of((r) => r.batchPerSecond),
      totalPerSecond: of((r) => r.totalPerSecond),
      utilisation: of((r) => r.utilisation),
      errors: rs.reduce((a, r) => a + r.errors, 0),
    };
  });
}

/** A fair mode against first-come, round by round (the runs of one round are close in time). */
export interface VersusFirstCome {
  key: ModeKey;
  /** (fair − first-come) / first-come, total calls/s. */
  throughputRelative: Spread;
  /** fair − first-come, slot utilisation (a fraction; × 100 for points). */
  utilisationDifference: Spread;
}

function versusFirstCome(runs: RunResult[]): VersusFirstCome[] {
  const fifo = new Map(runs.filter((r) => r.key === 'fifo').map((r) => [r.round, r]));
  return (['fair', 'fair-batch-class'] as const).map((key) => {
    const pairs = runs.filter((r) => r.key === key && fifo.has(r.round)).map((r) => [r, fifo.get(r.round)!] as const);
    return {
      key,
      throughputRelative: spread(pairs.map(([r, f]) => (r.totalPerSecond - f.totalPerSecond) / f.totalPerSecond)),
      utilisationDifference: spread(pairs.map(([r, f]) => r.utilisation - f.utilisation)),
    };
  });
}

const seconds = (ms: number) => (ms / 1000).toFixed(2);
const percent = (x: number) => (x * 100).toFixed(1);
const signed = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(1)}`;
/** "median unit (min–max)", or the value alone after one round. */
const cell = (s: Spread, f: (x: number) => string, unit = '') => `${f(s.median)}${unit}${ROUNDS === 1 ? '' : ` (${f(s.min)}–${f(s.max)})`}`;

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  if (process.argv.includes('--cost-only')) {
    const cost = schedulerCost();
    console.log(json ? JSON.stringify({ slots: SLOTS, batchQueued: BATCH_QUEUED, cost }) : cost);
    return;
  }
  const runs: RunResult[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // Each round starts with the next mode, so none always runs first on a fresh machine.
    for (let i = 0; i < MODES.length; i++) {
      const mode = MODES[(round - 1 + i) % MODES.length]!;
      const r = await runMode(mode, round);
      runs.push(r);
      if (!json)
        console.error(
          `round ${round}/${ROUNDS}, ${r.key}: wait p50 ${seconds(pct(r.waitsMs, 50))} s, ${r.totalPerSecond.toFixed(2)} calls/s, utilisation ${percent(r.utilisation)} %`,
        );
    }
  }
  const summary = summarise(runs);
  const versus = versusFirstCome(runs);
  const cost = schedulerCost();
  if (json) {
    console.log(JSON.stringify({ slots: SLOTS, batchQueued: BATCH_QUEUED, generationMs: GENERATION_MS, rounds: ROUNDS, results: runs, summary, versus, cost }));
    return;
  }
  console.log(
    `\n${SLOTS} slots, generation ${GENERATION_MS} ms (${OUTPUT_TOKENS} tokens), batch tenant keeps ${BATCH_QUEUED} queued, interactive tenant ${INTERACTIVE_CALLS} calls, one per ${INTERACTIVE_EVERY_MS} ms; ${ROUNDS} round(s) of the three modes interleaved${ROUNDS > 1 ? ', each figure the median over the rounds (range)' : ''}\n`,
  );
  console.log(
    '| queue order | interactive wait p50 | p95 | max | mean | batch calls overtaking each (mean) | batch calls/s | all calls/s | slot utilisation | errors |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const s of summary) {
    console.log(
      `| ${s.mode} | ${cell(s.waitP50Ms, seconds, ' s')} | ${cell(s.waitP95Ms, seconds, ' s')} | ${cell(s.waitMaxMs, seconds, ' s')} | ${cell(s.waitMeanMs, seconds, ' s')} | ${cell(s.overtakenMean, (x) => x.toFixed(1))} | ${cell(s.batchPerSecond, (x) => x.toFixed(2))} | ${cell(s.totalPerSecond, (x) => x.toFixed(2))} | ${cell(s.utilisation, percent, ' %')} | ${s.errors} |`,
    );
  }
  console.log('');
  for (const v of versus) {
    const label = MODES.find((m) => m.key === v.key)!.label;
    const range = (s: Spread) => (ROUNDS === 1 ? '' : ` (${signed(s.min * 100)} to ${signed(s.max * 100)})`);
    const t = v.throughputRelative;
    const u = v.utilisationDifference;
    console.log(
      `${label} vs first-come, same round: all calls/s ${signed(t.median * 100)} %${range(t)}, slot utilisation ${signed(u.median * 100)} points${range(u)}`,
    );
  }
  const c = (x: Cost) => `${x.medianUs.toFixed(2)} µs (quartiles ${x.p25Us.toFixed(2)}–${x.p75Us.toFixed(2)})`;
  console.log(
    `\nscheduler CPU per call (enqueue + release, ${BATCH_QUEUED} waiting; median of ${cost.fair.batches} batches of ${cost.fair.callsPerBatch} calls): fair ${c(cost.fair)}, fifo ${c(cost.fifo)}`,
  );
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
