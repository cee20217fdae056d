/** The run: the fake and the gateway process started, the plans sent on parallel lanes, the books judged, everything stopped. */
import { performance } from 'node:perf_hooks';
import { FakeOllama } from '../fake-ollama';
import { runGateway, type GatewayProcess } from '../process';
import { freePort } from '../procs';
import { FUZZ_ENV, type FuzzOptions, type FuzzResult } from './config';
import { runPlan, type ClientResult } from './delivery';
import { judge } from './judge';
import { LogBooks } from './logs';
import { makePlan } from './plan';
import type { Ctx, Oracle, Plan, SentRecord } from './records';
import { installFaults, UpstreamBooks, type Violation } from './upstream';

/** One fuzz run: the fake, the gateway process, and the books kept while sending. */
export interface FuzzRun {
  opts: FuzzOptions;
  t0: number;
  fake: FakeOllama;
  port: number;
  env: Record<string, string>;
  gw: GatewayProcess;
  logs: LogBooks;
  /** What was sent, by id. */
  sent: Map<string, SentRecord>;
  upstream: UpstreamBooks;
  /** kind → outcomes → count */
  kinds: Map<string, Map<string, number>>;
  statuses: Map<number, number>;
  oracles: { checked: number; wrong: Violation };
  /** Plans run to their end. */
  done: number;
  /** Set once the gateway process exited. */
  exitCode?: number | null;
}

export async function runFuzz(opts: FuzzOptions): Promise<FuzzResult> {
  const run = await start(opts);
  const drain = setInterval(() => run.upstream.take(run.fake), 200);
  try {
    await run.gw.waitFor('gateway listening', 15_000);
    await sendAll(run);
    return await judge(run);
  } finally {
    clearInterval(drain);
    await stop(run);
  }
}

async function start(opts: FuzzOptions): Promise<FuzzRun> {
  const t0 = performance.now();
  const fake = await new FakeOllama().start();
  installFaults(fake);
  const port = await freePort();
  const env: Record<string, string> = { ...FUZZ_ENV, OLLAMA_HOST: fake.origin, HOST: '127.0.0.1', PORT: String(port) };
  const gw = runGateway(env);
  const logs = new LogBooks();
  logs.attach(gw);
  const sent = new Map<string, SentRecord>();
  const run: FuzzRun = {
    opts,
    t0,
    fake,
    port,
    env,
    gw,
    logs,
    sent,
    upstream: new UpstreamBooks(sent),
    kinds: new Map(),
    statuses: new Map(),
    oracles: { checked: 0, wrong: { count: 0, examples: [] } },
    done: 0,
  };
  void gw.exit.then((c) => (run.exitCode = c));
  return run;
}

/** Sends the plans on `concurrency` lanes until all are sent, time is up, or the gateway exited. */
async function sendAll(run: FuzzRun): Promise<void> {
  const { opts } = run;
  const progress = opts.progress ?? (() => {});
  const ctx: Ctx = { seed: opts.seed, port: run.port, hugeEvery: opts.hugeEvery ?? 250, bigBodyEvery: opts.bigBodyEvery ?? 97 };
  const until = performance.now() + (opts.maxSeconds ?? 1e9) * 1000;
  let next = 0;
  const lane = async () => {
    while (next < opts.requests && performance.now() < until && run.exitCode === undefined) {
      const plan = makePlan(ctx, next++);
      for (const [id, rec] of plan.records) run.sent.set(id, rec);
      const res = await runPlan(run.port, plan);
      run.done++;
      tally(run, plan, res);
      if (run.done % 1000 === 0) progress(`${run.done} requests, ${((performance.now() - run.t0) / 1000).toFixed(1)} s`);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 32 }, lane));
}

/** Counts the client-side outcome and statuses of one plan, and checks the spec's exact answer where it has one. */
function tally(run: FuzzRun, plan: Plan, res: ClientResult): void {
  const k = run.kinds.get(plan.kind) ?? new Map<string, number>();
  run.kinds.set(plan.kind, k);
  const outcome = res.end === 'answered' || res.end === 'server closed' ? `${res.end} ${res.statuses.join('+') || '-'}` : res.end;
  k.set(outcome, (k.get(outcome) ?? 0) + 1);
  for (const s of res.statuses) run.statuses.set(s, (run.statuses.get(s) ?? 0) + 1);
  if (plan.oracle) judgeOracle(run, plan, plan.oracle, res);
}

function judgeOracle(run: FuzzRun, plan: Plan, o: Oracle, res: ClientResult): void {
  const { oracles } = run;
  oracles.checked++;
  const status = res.statuses[0];
  const badHeader = Object.entries(o.headers ?? {}).find(([h, re]) => !re.test(res.first?.get(h) ?? ''));
  if (status === o.status && !badHeader) return;
  oracles.wrong.count++;
  if (oracles.wrong.examples.length < 3) {
    const got =
      status === undefined ? res.end : badHeader ? `${status} with ${badHeader[0]}: ${JSON.stringify(res.first?.get(badHeader[0]) ?? null)}` : String(status);
    oracles.wrong.examples.push(`#${plan.index} ${o.what}: want ${o.status}, got ${got}`);
  }
}

async function stop(run: FuzzRun): Promise<void> {
  const { gw } = run;
  if (gw.child.exitCode === null && gw.child.signalCode === null) {
    gw.child.kill('SIGTERM');
    const killer = setTimeout(() => gw.child.kill('SIGKILL'), 5000);
    await gw.exit;
    clearTimeout(killer);
  }
  await run.fake.close();
}
