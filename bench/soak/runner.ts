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
import type { Ctx, Kind } from './types';

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
  const { tally, peakRss, peakHeap } = await traffic(o, ctx, gw, expected, before);
  if (gw.exited() !== undefined) throw new Error(`the gateway process died during the run (${gw.exited()}); its stderr is above`);

  // Traffic has stopped: let connections close, then read the books.
  agent.destroy();
  const after = await settle(gw, fake, before);
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  gw.child.kill('SIGTERM');
  clearInterval(drainer);
  upstream.drain(fake);
  await fake.close();

  const books: Book[] = readBooks({ metrics, expected, upstream, tally, fake, before, after, peakRss, peakHeap });
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

/**
 * The run: `concurrency` workers picking kinds by weight, waves of `slowStreams` slow streams, and
 * the body budget cycle in its own lane (so the budget is never full for anyone else), while the
 * gateway's memory is sampled every second.
 */
async function traffic(
  o: SoakOptions,
  ctx: Ctx,
  gw: SoakGateway,
  expected: Expected,
  before: Stats,
): Promise<{ tally: Tally; peakRss: number; peakHeap: number }> {
  const tally: Tally = new Map();
  let peakRss = before.rssMb;
  let peakHeap = before.heapUsedMb;
  const sampler = setInterval(() => {
    gw.stats().then(
      (s) => {
        peakRss = Math.max(peakRss, s.rssMb);
        peakHeap = Math.max(peakHeap, s.heapUsedMb);
      },
      () => {},
    );
  }, 1000);
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
  const worker = async () => {
    while (going()) {
      const k = pick();
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
  await Promise.all([waves(), budget(), ...Array.from({ length: o.concurrency }, worker)]);
  clearInterval(sampler);
  return { tally, peakRss, peakHeap };
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
