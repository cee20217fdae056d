/** The soak's runner: the fake and the gateway started, a warm-up and a baseline, the mixed traffic for a bounded time, then the books. */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { FakeOllama } from '../../test/helpers/fake-ollama';
import type { Book } from '../../test/helpers/fuzz';
import { Expected, readBooks, report, type Tally } from './books';
import { installFaults, UpstreamBooks } from './fake';
import { startGateway, type SoakGateway, type Stats } from './gateway';
import { BUDGET, HOSTILE } from './hostile-kinds';
import { SLOW_WAVE, TRAFFIC } from './kinds';
import { c, L, type Ctx, type Kind } from './types';

export interface SoakOptions {
  seconds: number;
  concurrency: number;
  slowStreams: number;
}

const KINDS: Kind[] = [...TRAFFIC, ...HOSTILE];
const totalWeight = KINDS.reduce((n, k) => n + k.weight, 0);
const pick = () => {
  let r = Math.random() * totalWeight;
  for (const k of KINDS) if ((r -= k.weight) < 0) return k;
  return KINDS[0];
};

/** Runs the soak; resolves with the summary and whether every book balanced. */
export async function soak(o: SoakOptions): Promise<{ text: string; ok: boolean }> {
  const fake = await new FakeOllama().start();
  // Recorded, and drained every 250 ms into the two upstream books (bodies are small).
  fake.recordRequests = true;
  const upstream = new UpstreamBooks();
  const drainer = setInterval(() => upstream.drain(fake), 250);
  installFaults(fake);
  const gw = await startGateway(fake.origin);
  const agent = new http.Agent({ keepAlive: true, maxSockets: o.concurrency + o.slowStreams });
  const ctx: Ctx = { url: gw.url, port: gw.port, agent };
  const expected = new Expected();

  await warmUp(ctx, expected);
  agent.destroy();
  await new Promise((r) => setTimeout(r, 500));
  const before = await gw.stats();
  // The baseline of the legitimate calls and of the event loop: the gateway with nothing else to do.
  const idle = await legitimateCalls(ctx.url, expected, QUIET_MS, gw);
  const { tally, peakRss, peakHeap, loaded } = await traffic(o, ctx, gw, expected, before);
  if (gw.exited() !== undefined) throw new Error(`the gateway process died during the run (${gw.exited()}); its stderr is above`);

  // Traffic has stopped: let connections close, then read the books.
  agent.destroy();
  const after = await settle(gw, fake, before);
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  gw.child.kill('SIGTERM');
  clearInterval(drainer);
  upstream.drain(fake);
  await fake.close();

  const books: Book[] = [...readBooks({ metrics, expected, upstream, tally, fake, before, after, peakRss, peakHeap }), ...latencyBooks(idle, loaded)];
  return { text: report(o.seconds, o.concurrency, o.slowStreams, tally, books), ok: books.every((b) => b.ok) };
}

/** Every kind once (its warm-up variant where it has one): the quick ones one after another, the slow ones side by side. */
async function warmUp(ctx: Ctx, expected: Expected): Promise<void> {
  const warm = (k: Kind) => {
    const w = k.warmup ?? k;
    expected.account(w.counts);
    return w.run(ctx);
  };
  for (const k of KINDS) if (!k.slowWarmup) await warm(k);
  await Promise.all(KINDS.filter((k) => k.slowWarmup).map(warm));
}

/** How long the quiet baseline lasts. */
const QUIET_MS = 3000;
/** The gap between two legitimate calls (one at a time, beside the traffic). */
const LEGIT_GAP_MS = 50;
const LEGIT_BODY = '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false}';

/** What the legitimate calls and the event loop showed over a stretch of time. */
interface Latency {
  /** Each legitimate call's time to its whole answer, ms, in order; a failed call counts as Infinity. */
  calls: number[];
  /** The event-loop delay's 99th percentile, per second, ms. */
  eldP99: number[];
  eldMax: number;
}

const percentile = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};
const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'failed');

/**
 * Plain /api/chat calls, one at a time every LEGIT_GAP_MS until `until()` says stop (or for `forMs`),
 * over keep-alive as an SDK sends them; and, when `gw` is given, the event-loop
 * delay (and, to `onStats`, the rest of its stats) sampled every second meanwhile. The only
 * reader of the delay while it runs: each read starts the delay's histogram afresh.
 */
async function legitimateCalls(
  url: string,
  expected: Expected,
  forMs: number,
  gw?: SoakGateway,
  until?: () => boolean,
  onStats?: (st: Stats) => void,
): Promise<Latency> {
  const end = performance.now() + forMs;
  const going = until ?? (() => performance.now() < end);
  const out: Latency = { calls: [], eldP99: [], eldMax: 0 };
  let sampling = gw !== undefined;
  const sampler = (async () => {
    if (!gw) return;
    await gw.stats(false); // starts the first second afresh
    while (sampling) {
      await new Promise((r) => setTimeout(r, 1000));
      const st = await gw.stats(false).catch(() => undefined);
      if (!st) break;
      onStats?.(st);
      out.eldP99.push(st.eldP99Ms);
      out.eldMax = Math.max(out.eldMax, st.eldMaxMs);
    }
  })();
  while (going()) {
    const t0 = performance.now();
    expected.account([c(L('llama3.2'), '/api/chat', 200)]);
    const ok = await fetch(`${url}/api/chat`, { method: 'POST', body: LEGIT_BODY, signal: AbortSignal.timeout(30_000) }).then(
      async (r) => (await r.arrayBuffer(), r.status === 200),
      () => false,
    );
    out.calls.push(ok ? performance.now() - t0 : Infinity);
    await new Promise((r) => setTimeout(r, LEGIT_GAP_MS));
  }
  sampling = false;
  await sampler;
  return out;
}

/** Reported, not judged: the event-loop delay and the legitimate calls' latency, quiet and under the traffic. */
function latencyBooks(idle: Latency, loaded: Latency): Book[] {
  const row = (l: Latency) => `${ms(percentile(l.eldP99, 50))} / ${ms(Math.max(0, ...l.eldP99))} / ${ms(l.eldMax)}`;
  const calls = (l: Latency) =>
    `${ms(percentile(l.calls, 50))} / ${ms(percentile(l.calls, 99))} / ${ms(Math.max(0, ...l.calls))} (${l.calls.length} calls, ${l.calls.filter((x) => !Number.isFinite(x)).length} failed)`;
  return [
    { book: 'event-loop delay ms, per-second p99: median / worst, and the largest delay (quiet)', expected: 'reported', actual: row(idle), ok: true },
    {
      book: 'event-loop delay ms, per-second p99: median / worst, and the largest delay (under the traffic and attacks)',
      expected: 'reported',
      actual: row(loaded),
      ok: true,
    },
    { book: 'a legitimate /api/chat beside nothing: p50 / p99 / max ms', expected: 'reported', actual: calls(idle), ok: true },
    { book: 'a legitimate /api/chat beside the traffic and attacks: p50 / p99 / max ms', expected: 'reported', actual: calls(loaded), ok: true },
  ];
}

/**
 * The run: `concurrency` workers picking kinds by weight, waves of `slowStreams` slow streams, and
 * the body budget cycle in its own lane (so the budget is never full for anyone else), with one
 * legitimate caller beside them, while the gateway's event loop and memory are sampled every second.
 */
async function traffic(
  o: SoakOptions,
  ctx: Ctx,
  gw: SoakGateway,
  expected: Expected,
  before: Stats,
): Promise<{ tally: Tally; peakRss: number; peakHeap: number; loaded: Latency }> {
  const tally: Tally = new Map();
  let peakRss = before.rssMb;
  let peakHeap = before.heapUsedMb;
  const until = performance.now() + o.seconds * 1000;
  const going = (marginMs = 0) => performance.now() < until - marginMs && gw.exited() === undefined;
  const runOne = async (k: Kind) => {
    const t = tally.get(k.name) ?? { sent: 0, failed: 0, why: new Map<string, number>() };
    tally.set(k.name, t);
    t.sent++;
    expected.account(k.counts);
    const r = await k.run(ctx).catch((err: Error) => ({ ok: false, why: err.message }));
    if (!r.ok) {
      t.failed++;
      t.why.set(r.why ?? '?', (t.why.get(r.why ?? '?') ?? 0) + 1);
    }
  };
  // Every kind runs once first, then by weight: on a slow machine a short run would otherwise
  // leave a rare kind out.
  const unseen = KINDS.filter((k) => k.weight > 0);
  const worker = async () => {
    while (going()) {
      const k = unseen.shift() ?? pick();
      if (k.needsMs && performance.now() + k.needsMs > until) continue;
      await runOne(k);
    }
  };
  const waves = async () => {
    while (going(2000)) await Promise.all(Array.from({ length: o.slowStreams }, () => runOne(SLOW_WAVE)));
  };
  const budget = async () => {
    while (going(2000)) await runOne(BUDGET);
  };
  // Beside the traffic, one legitimate caller, and the gateway's event loop and memory read every
  // second (without a forced GC, so a collection does not show as event-loop delay).
  const onStats = (st: Stats) => {
    peakRss = Math.max(peakRss, st.rssMb);
    peakHeap = Math.max(peakHeap, st.heapUsedMb);
  };
  const legit = legitimateCalls(ctx.url, expected, 0, gw, () => going(2000), onStats);
  await Promise.all([waves(), budget(), ...Array.from({ length: o.concurrency }, worker)]);
  const loaded = await legit;
  return { tally, peakRss, peakHeap, loaded };
}

/** Waits (15 s at most) for the gateway's handles to return near their baseline and the fake to be idle. */
async function settle(gw: SoakGateway, fake: FakeOllama, before: Stats): Promise<Stats> {
  const settleUntil = Date.now() + 15_000;
  let after = await gw.stats();
  while ((after.handles > before.handles + 2 || fake.active > 0) && Date.now() < settleUntil) {
    await new Promise((r) => setTimeout(r, 250));
    after = await gw.stats();
  }
  return after;
}
