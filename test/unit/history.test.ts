/**
 * The console's history: calls land in the bucket of the time they finish, on the instruments' own
 * histogram boundaries; the ring rolls over after its hour; memory stays within its stated bound
 * whatever the traffic; and the snapshots of several processes merge into the one a single
 * process would have kept.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CallOutcome } from '../../otel/call';
import type { CallMeasures } from '../../otel/call-metrics';
import { COLD_LOAD_SECONDS, History, modelRingBytes, type FinishedCall } from '../../otel/history/history';
import { mergeSnapshots, retireSnapshot, type ConsoleSnapshot } from '../../otel/history/snapshot';
import { quantile, series, summaries } from '../../otel/history/view';
import { TOKENS_PER_SECOND_BUCKETS, TTFT_BUCKETS_SECONDS, type ErrorReason } from '../../otel/instruments';

interface CallSpec {
  wall?: number;
  ttft?: number;
  /** Generated tokens per second (Ollama's eval_count / eval_duration). */
  tps?: number;
  reason?: ErrorReason;
  status?: number;
  loadSeconds?: number;
  totalSeconds?: number;
  input?: number;
  output?: number;
  lifecycle?: 'load' | 'unload';
}

function call(model: string, c: CallSpec = {}): FinishedCall {
  const output = c.output ?? 10;
  const measures: CallMeasures = {
    model,
    endpoint: '/api/chat',
    wallSeconds: c.wall ?? 1,
    ttftSeconds: c.ttft,
    stalls: 0,
    wasInFlight: c.lifecycle === undefined,
    lifecycle: c.lifecycle,
  };
  const outcome: CallOutcome = {
    status: c.status ?? (c.reason ? 500 : 200),
    reason: c.reason,
    streamed: c.ttft !== undefined,
    summary:
      c.lifecycle !== undefined
        ? { finishReasons: [c.lifecycle] }
        : {
            inputTokens: c.input ?? 5,
            outputTokens: output,
            evalDurationNs: c.tps === undefined ? undefined : (output / c.tps) * 1e9,
            loadDurationNs: c.loadSeconds === undefined ? undefined : c.loadSeconds * 1e9,
            totalDurationNs: c.totalSeconds === undefined ? undefined : c.totalSeconds * 1e9,
          },
  };
  return { operation: 'chat', measures, outcome };
}

/** A history on a clock the test moves; `served` tells which models Ollama serves. */
function clocked(
  options: ConstructorParameters<typeof History>[0] = {},
  served: (model: string) => boolean = () => false,
): { h: History; at: (ms: number) => void } {
  let now = 0;
  const h = new History({ now: () => now, ...options }, served);
  return { h, at: (ms) => (now = ms) };
}

function feed(h: History, model: string, c: CallSpec = {}): void {
  const startedIn = c.lifecycle === undefined ? h.started(model) : undefined;
  h.finished({ ...call(model, c), startedIn });
}

describe('the history rings', () => {
  it('puts a call in the bucket of the time it finished: 9.999 s is the first bucket, 10 s the next', () => {
    const { h, at } = clocked();
    at(0);
    feed(h, 'm');
    at(9_999);
    feed(h, 'm');
    at(10_000);
    feed(h, 'm');
    const buckets = h.snapshot().models[0]!.buckets;
    assert.deepEqual(
      buckets.map((b) => [b.t, b.requests]),
      [
        [0, 2],
        [10_000, 1],
      ],
    );
  });

  it('counts a value on a boundary in that boundary’s bucket, as the SDK and Prometheus (le) do', () => {
    const { h, at } = clocked();
    at(0);
    feed(h, 'm', { ttft: 0.5, tps: 50 });
    feed(h, 'm', { ttft: 0.5000001, tps: 50.0001 });
    const b = h.snapshot().models[0]!.buckets[0]!;
    const ttftAt = TTFT_BUCKETS_SECONDS.indexOf(0.5);
    const tpsAt = TOKENS_PER_SECOND_BUCKETS.indexOf(50);
    assert.equal(b.ttft[ttftAt], 1);
    assert.equal(b.ttft[ttftAt + 1], 1);
    assert.equal(b.tokensPerSecond[tpsAt], 1);
    assert.equal(b.tokensPerSecond[tpsAt + 1], 1);
    assert.equal(b.ttft.length, TTFT_BUCKETS_SECONDS.length + 1);
  });

  it('keeps exactly the last `buckets` buckets: an hour-old bucket leaves the window, its slot is reused empty', () => {
    const { h, at } = clocked({ bucketMs: 10_000, buckets: 360 });
    at(5_000);
    feed(h, 'm', { output: 7 });
    at(10_000 * 359 + 5_000);
    let b = h.snapshot().models[0]!.buckets;
    assert.deepEqual(
      b.map((x) => x.t),
      [0],
      'the bucket 359 widths old is still in the hour',
    );
    at(10_000 * 360 + 5_000);
    assert.deepEqual(h.snapshot().models[0]!.buckets, [], 'one more width and it is gone');
    // The same slot, an hour later: it holds only the new call.
    feed(h, 'm', { output: 3 });
    b = h.snapshot().models[0]!.buckets;
    assert.deepEqual(
      b.map((x) => [x.t, x.requests, x.outputTokens]),
      [[3_600_000, 1, 3]],
    );
    // The totals since start still count both.
    assert.equal(h.snapshot().models[0]!.totals.requests, 2);
    assert.equal(h.snapshot().models[0]!.totals.outputTokens, 10);
  });

  it('stays within its stated memory whatever the traffic: models, buckets and recent calls are bounded', () => {
    const { h, at } = clocked({ maxModels: 8, recentLimit: 50, buckets: 60, bucketMs: 1000 });
    for (let i = 0; i < 20_000; i++) {
      at(i * 700);
      feed(h, `model-${i % 500}`, { ttft: 0.1, tps: 30, reason: i % 7 === 0 ? 'upstream_5xx' : undefined });
    }
    const s = h.snapshot();
    assert.equal(h.modelCount, 9, 'eight models and other');
    assert.equal(h.ringBytes, 9 * modelRingBytes(60));
    assert.ok(s.models.some((m) => m.model === 'other'));
    for (const m of s.models) assert.ok(m.buckets.length <= 60);
    assert.equal(s.recent.length, 50);
    assert.equal(
      s.models.reduce((n, m) => n + m.totals.requests, 0),
      20_000,
      'no call is lost when models fold into other',
    );
    // Stated in the README: a model's ring at the defaults (360 buckets).
    assert.ok(modelRingBytes(360) <= 119_520);
  });

  it('gives a served model the ring of a name nobody serves when all are taken; what that name counted goes on under other', () => {
    const { h, at } = clocked({ maxModels: 4, buckets: 60, bucketMs: 1000 }, (m) => m.startsWith('real-'));
    at(1000);
    for (let i = 0; i < 4; i++) feed(h, `junk-${i}`, { reason: 'upstream_4xx', status: 404 });
    feed(h, 'junk-4', { reason: 'upstream_4xx', status: 404 });
    assert.deepEqual(
      h.snapshot().models.map((m) => m.model),
      ['junk-0', 'junk-1', 'junk-2', 'junk-3', 'other'],
      'a fifth name nobody serves takes no ring',
    );
    at(2000);
    feed(h, 'real-a');
    feed(h, 'real-b');
    const s = h.snapshot();
    assert.equal(s.models.find((m) => m.model === 'real-a')?.totals.requests, 1);
    assert.equal(s.models.find((m) => m.model === 'real-b')?.totals.requests, 1);
    assert.equal(s.models.find((m) => m.model === 'other')?.totals.requests, 3, 'junk-4 and the two names whose rings were taken');
    assert.equal(
      s.models.reduce((n, m) => n + m.totals.requests, 0),
      7,
      'no call lost',
    );
    assert.ok(s.models.length <= 5);
  });

  it('never takes a ring with a call in flight, and lets any name take one nobody used for the whole window', () => {
    const { h, at } = clocked({ maxModels: 2, buckets: 60, bucketMs: 1000 }, (m) => m === 'real');
    at(0);
    h.started('busy');
    feed(h, 'idle');
    feed(h, 'real');
    assert.ok(
      h.snapshot().models.some((m) => m.model === 'busy' && m.inFlight === 1),
      'the ring in use is kept',
    );
    assert.ok(h.snapshot().models.some((m) => m.model === 'real'));
    // An hour (the window) later, a name nobody serves may take the ring nobody used since.
    at(61_000);
    feed(h, 'newcomer');
    const names = h.snapshot().models.map((m) => m.model);
    assert.ok(names.includes('newcomer'), names.join(','));
    assert.ok(names.includes('busy'), names.join(','));
  });

  it('counts calls in flight per model; a load or unload is never in flight', () => {
    const { h } = clocked();
    h.started('a');
    h.started('a');
    assert.equal(h.snapshot().models[0]!.inFlight, 2);
    h.finished(call('a'));
    h.finished(call('b', { lifecycle: 'load' }));
    const s = h.snapshot();
    assert.equal(s.models.find((m) => m.model === 'a')!.inFlight, 1);
    assert.equal(s.models.find((m) => m.model === 'b')!.inFlight, 0);
  });

  it('counts a load or unload as no request; a load of COLD_LOAD_SECONDS or more, or a long load_duration, as a cold load', () => {
    const { h } = clocked();
    feed(h, 'm', { lifecycle: 'load', wall: COLD_LOAD_SECONDS });
    feed(h, 'm', { lifecycle: 'load', wall: 0.01 });
    feed(h, 'm', { lifecycle: 'unload', wall: 2 });
    feed(h, 'm', { loadSeconds: 3, totalSeconds: 4, wall: 4.5 });
    feed(h, 'm', { loadSeconds: 0.02, totalSeconds: 1, wall: 1 });
    const m = h.snapshot().models[0]!;
    assert.equal(m.totals.requests, 2);
    assert.equal(m.totals.coldLoads, 2);
    const b = m.buckets[0]!;
    assert.equal(b.timedCalls, 2);
    assert.equal(b.queueSeconds, 0.5, 'wall − total_duration');
    assert.ok(Math.abs(b.loadSeconds - 3.02) < 1e-9);
  });

  it('keeps the recent calls newest first, without text, with the phases Ollama reported', () => {
    const { h, at } = clocked({ recentLimit: 3 });
    for (let i = 1; i <= 5; i++) {
      at(i * 1000);
      feed(h, 'm', { wall: i, totalSeconds: i - 0.25, loadSeconds: 0.1 });
    }
    const recent = h.snapshot().recent;
    assert.deepEqual(
      recent.map((c) => c.at),
      [5000, 4000, 3000],
    );
    assert.equal(recent[0]!.phases!.queueMs, 250);
    assert.equal(recent[0]!.phases!.loadMs, 100);
    assert.ok(!JSON.stringify(recent).includes('content'));
  });
});

describe('percentiles from bucket counts', () => {
  it('interpolate within the bucket, as histogram_quantile does', () => {
    // Ten values in (0.1, 0.25]: the median is half way through the bucket.
    const counts = new Array<number>(TTFT_BUCKETS_SECONDS.length + 1).fill(0);
    counts[TTFT_BUCKETS_SECONDS.indexOf(0.2)] = 10;
    assert.ok(Math.abs(quantile(TTFT_BUCKETS_SECONDS, counts, 0.5)! - 0.15) < 1e-12);
    assert.equal(quantile(TTFT_BUCKETS_SECONDS, counts.fill(0), 0.5), undefined);
    counts[counts.length - 1] = 1;
    assert.equal(quantile(TTFT_BUCKETS_SECONDS, counts, 0.99), TTFT_BUCKETS_SECONDS.at(-1), 'above the highest boundary: the boundary');
  });

  it('give p50 and p95 per window and per bucket', () => {
    const { h, at } = clocked();
    at(0);
    for (let i = 0; i < 19; i++) feed(h, 'm', { ttft: 0.04 });
    feed(h, 'm', { ttft: 4 });
    at(1000);
    const { models } = summaries(h.snapshot(), 60);
    const w = models[0]!.window;
    assert.ok(w.ttftP50Seconds! > 0.025 && w.ttftP50Seconds! <= 0.05);
    assert.ok(w.ttftP95Seconds! > 0.025 && w.ttftP95Seconds! <= 0.05, 'the 20th value is above p95');
    const view = series(h.snapshot(), 1, 'm');
    assert.equal(view.points, 6);
    assert.deepEqual(view.ttftP50Seconds.slice(0, 5), [null, null, null, null, null]);
    assert.equal(view.ttftP50Seconds[5], w.ttftP50Seconds);
  });
});

describe('mergeSnapshots', () => {
  const traffic: [number, string, CallSpec][] = [];
  for (let i = 0; i < 300; i++) {
    traffic.push([
      1_000_000 + i * 1_300,
      i % 3 === 0 ? 'llama3.2:latest' : 'qwen3:8b',
      { ttft: (i % 17) / 10, tps: 5 + (i % 40), reason: i % 11 === 0 ? 'stream_error' : undefined, totalSeconds: 0.5, wall: 0.6 },
    ]);
  }

  function run(calls: typeof traffic, until: number): ConsoleSnapshot {
    const { h, at } = clocked({ recentLimit: 100 });
    at(0);
    for (const [t, model, spec] of calls) {
      at(t);
      feed(h, model, spec);
    }
    at(until);
    return h.snapshot();
  }

  it('adds several processes into what one process would have kept', () => {
    const until = 1_000_000 + 300 * 1_300;
    const one = run(traffic, until);
    const parts = [0, 1, 2].map((k) =>
      run(
        traffic.filter((_, i) => i % 3 === k),
        until,
      ),
    );
    const merged = mergeSnapshots(parts);
    const round = (s: unknown) => JSON.parse(JSON.stringify(s, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v * 1e9) / 1e9 : v))) as unknown;
    assert.deepEqual(round({ ...merged, since: 0 }), round({ ...one, since: 0 }));
    assert.deepEqual(round(summaries(merged, 60)), round(summaries(one, 60)));
  });

  it('adds calls in flight, merges recent calls newest first, cut to the limit, and leaves its inputs alone', () => {
    const a = run(traffic.slice(0, 150), 2_000_000);
    const b = run(traffic.slice(150), 2_000_000);
    a.models[0]!.inFlight = 2;
    b.models[0]!.inFlight = 3;
    const before = JSON.stringify([a, b]);
    const m = mergeSnapshots([a, b]);
    assert.equal(m.models[0]!.inFlight, 5);
    assert.equal(m.recent.length, 100);
    assert.deepEqual(
      m.recent.map((c) => c.at),
      traffic
        .slice(-100)
        .map(([t]) => t)
        .reverse(),
    );
    assert.equal(JSON.stringify([a, b]), before);
  });

  it('refuses snapshots of different bucket widths, and merges nothing into an empty history', () => {
    const a = run(traffic.slice(0, 3), 2_000_000);
    assert.throws(() => mergeSnapshots([a, { ...a, bucketMs: 5000 }]), /bucket widths/);
    assert.deepEqual(mergeSnapshots([]).models, []);
  });
});

describe('retireSnapshot', () => {
  /** A process's history: `calls` calls of each of `models` models, one a second from `from`; one left in flight. */
  function process(models: string[], from: number, calls: number): ConsoleSnapshot {
    const { h, at } = clocked({ buckets: 60, bucketMs: 1000, maxModels: 64 });
    for (let i = 0; i < calls; i++) {
      at(from + i * 1000);
      for (const m of models) feed(h, m, { input: 7, output: 3 });
    }
    h.started(models[0]!);
    return h.snapshot();
  }
  const requests = (s: ConsoleSnapshot) => s.models.reduce((n, m) => n + m.totals.requests, 0);

  it("keeps what exited processes had recorded, their calls in flight over, and nothing of them older than the history's span", () => {
    const first = process(['a', 'b'], 0, 30);
    const second = process(['b', 'c'], 100_000, 30);
    const once = retireSnapshot(undefined, first, 100_000, 32);
    const both = retireSnapshot(once, second, 130_000, 32);
    assert.equal(requests(both), 120);
    assert.deepEqual(
      both.models.map((m) => [m.model, m.totals.requests, m.totals.inputTokens, m.inFlight]),
      [
        ['a', 30, 210, 0],
        ['b', 60, 420, 0],
        ['c', 30, 210, 0],
      ],
    );
    // The first process's buckets (0–29 s) are past the 60 s span at 130 s; the second's are not.
    assert.deepEqual(
      both.models.find((m) => m.model === 'b')!.buckets.map((b) => b.t),
      Array.from({ length: 30 }, (_, i) => 100_000 + i * 1000),
    );
    assert.ok(both.recent.length <= both.recentLimit);
  });

  it('stays bounded whatever the exits: past its models, the least busy are counted under other', () => {
    let retired: ConsoleSnapshot | undefined;
    for (let k = 0; k < 20; k++) retired = retireSnapshot(retired, process([`m-${k}-a`, `m-${k}-b`], k * 1000, 1 + k), 20_000, 8);
    assert.ok(retired!.models.length <= 9, 'eight models and other');
    assert.equal(requests(retired!), 2 * Array.from({ length: 20 }, (_, k) => 1 + k).reduce((a, b) => a + b, 0), 'no call is lost to the bound');
    assert.ok(retired!.models.some((m) => m.model === 'other'));
    assert.ok(
      retired!.models.some((m) => m.model === 'm-19-a'),
      'the busiest keep their names',
    );
  });
});
