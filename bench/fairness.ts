/**
 * npm run bench:fairness — the figures behind "Fair queueing": how long an interactive tenant's
 * calls wait while a batch tenant keeps a flood queued, with the fair queue and first-come.
 *
 * One generating fake Ollama (each chat streams OUTPUT_TOKENS tokens TOKEN_MS apart, so one
 * generation takes about a second) behind the gateway with BACKEND_PARALLEL=SLOTS. A batch tenant
 * keeps BATCH_QUEUED calls waiting (each finished call is replaced); an interactive tenant sends one
 * call a second. An interactive call's wait is the time from its send to its arrival at the fake;
 * "overtaken" counts the batch calls that reached the fake in between. Runs three orders: first-come
 * (QUEUE_ORDER=fifo, what Ollama's own queue does), fair shares of tokens with both tenants
 * interactive, and fair with the batch tenant in the batch class. Then the scheduler's own cost per
 * call, measured on the queue alone with the flood waiting.
 *
 * `--quick`: a short run (small flood, fast generations) for the test suite, which asserts order.
 * `--json`: print the results as JSON instead of the table.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { FairQueue, type QueueOrder, type Slot } from '../src/scheduler/fair-queue';
import { keyFingerprint, type TenantPolicy, type TenantPolicies } from '../src/scheduler/tenant';
import { startGatewayFor } from '../test/helpers/gateway';

const QUICK = process.argv.includes('--quick');
const arg = (name: string, def: number): number => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def);
const SLOTS = arg('slots', 4);
const BATCH_QUEUED = arg('batch', QUICK ? 20 : 200);
const INTERACTIVE_CALLS = arg('calls', QUICK ? 4 : 30);
const INTERACTIVE_EVERY_MS = QUICK ? 250 : 1000;
const OUTPUT_TOKENS = QUICK ? 5 : 40;
const TOKEN_MS = 25;
const PROMPT_TOKENS = 200;
const GENERATION_MS = OUTPUT_TOKENS * TOKEN_MS;

const BATCH_KEY = 'bench-batch-key';
const INTER_KEY = 'bench-interactive-key';

if (process.argv.includes('--help')) {
  console.log('npm run bench:fairness [-- --slots=N --batch=N --calls=N --quick --json]');
  process.exit(0);
}

/** An Ollama that generates: one NDJSON line per token, TOKEN_MS apart; records when each call arrived. */
class GeneratingFake {
  readonly server: http.Server;
  port = 0;
  /** Arrival time (performance.now()) by the call's mark. */
  readonly arrivals = new Map<string, number>();
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
    this.arrivals.set(body.messages[0]!.content, performance.now());
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

export interface RunResult {
  mode: string;
  waitsMs: number[];
  overtaken: number[];
  batchPerSecond: number;
  totalPerSecond: number;
  errors: number;
}

async function runMode(mode: string, order: QueueOrder, policies: TenantPolicies): Promise<RunResult> {
  const fake = await new GeneratingFake().start();
  const gw = await startGatewayFor(
    `http://127.0.0.1:${fake.port}`,
    {
      BACKEND_PARALLEL: String(SLOTS),
      QUEUE_ORDER: order,
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
  running = false;
  const arrivals = fake.arrivals;
  const batchArrivals = [...arrivals].filter(([m]) => m.startsWith('batch-')).map(([, t]) => t);
  const waitsMs: number[] = [];
  const overtaken: number[] = [];
  for (let i = 0; i < INTERACTIVE_CALLS; i++) {
    const at = arrivals.get(`inter-${i}`)!;
    waitsMs.push(at - sent[i]!);
    overtaken.push(batchArrivals.filter((t) => t > sent[i]! && t < at).length);
  }
  // Throughput as the slots saw it: calls that started generating within the window.
  const window = (t1 - t0) / 1000;
  const inWindow = (ts: number[]) => ts.filter((t) => t >= t0 && t <= t1).length;
  const result = {
    mode,
    waitsMs,
    overtaken,
    batchPerSecond: inWindow(batchArrivals) / window,
    totalPerSecond: inWindow([...arrivals.values()]) / window,
    errors,
  };
  await gw.close();
  await fake.close();
  await Promise.race([Promise.all(workers), sleep(2000)]);
  return result;
}

/** The queue alone: µs per call (enqueue + release) with the flood waiting, over many calls. */
function schedulerCost(order: QueueOrder): number {
  const q = new FairQueue({ slots: new Map([['a', SLOTS]]), maxWaiting: 1e6, maxWaitMs: 3_600_000, order });
  const batch: TenantPolicy = { name: 'batch', weight: 1, priority: 'batch' };
  const inter: TenantPolicy = { name: 'inter', weight: 1, priority: 'interactive' };
  const running: Slot[] = [];
  const ticket = { onRelease: (g: { slot: Slot }) => running.push(g.slot), onRefuse: () => {} };
  for (let i = 0; i < 200 + SLOTS; i++) q.enqueue(batch, ['a'], ticket);
  const calls = 200_000;
  const start = performance.now();
  for (let i = 0; i < calls; i++) {
    q.enqueue(i % 20 === 0 ? inter : batch, ['a'], ticket);
    running.shift()!.release(240);
  }
  return ((performance.now() - start) * 1000) / calls;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function main(): Promise<void> {
  const batchClass: TenantPolicies = new Map([[keyFingerprint(BATCH_KEY), { priority: 'batch' as const }]]);
  const results = [
    await runMode('first-come (QUEUE_ORDER=fifo)', 'fifo', new Map()),
    await runMode('fair, both tenants interactive', 'fair', new Map()),
    await runMode('fair, batch tenant in the batch class', 'fair', batchClass),
  ];
  const cost = { fair: schedulerCost('fair'), fifo: schedulerCost('fifo') };
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ slots: SLOTS, batchQueued: BATCH_QUEUED, generationMs: GENERATION_MS, results, costUs: cost }));
    return;
  }
  console.log(
    `${SLOTS} slots, generation ${GENERATION_MS} ms (${OUTPUT_TOKENS} tokens), batch tenant keeps ${BATCH_QUEUED} queued, interactive tenant ${INTERACTIVE_CALLS} calls, one per ${INTERACTIVE_EVERY_MS} ms\n`,
  );
  console.log(
    '| queue order | interactive wait p50 | p95 | max | mean | batch calls overtaking each (mean) | batch calls started/s | all calls started/s | errors |',
  );
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const r of results) {
    const ms = (x: number) => `${Math.round(x)} ms`;
    console.log(
      `| ${r.mode} | ${ms(pct(r.waitsMs, 50))} | ${ms(pct(r.waitsMs, 95))} | ${ms(Math.max(...r.waitsMs))} | ${ms(mean(r.waitsMs))} | ${mean(r.overtaken).toFixed(1)} | ${r.batchPerSecond.toFixed(2)} | ${r.totalPerSecond.toFixed(2)} | ${r.errors} |`,
    );
  }
  console.log(`\nscheduler cost per call (enqueue + release, ${200} waiting): fair ${cost.fair.toFixed(2)} µs, fifo ${cost.fifo.toFixed(2)} µs`);
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
