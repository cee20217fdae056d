/**
 * What the console shows, derived from a (possibly merged) snapshot: per model, the figures of a
 * window of the last minutes, and time series of rates and percentiles. Pure functions of the
 * snapshot; percentiles come from the bucket counts as Prometheus's `histogram_quantile` computes
 * them, so the console and a dashboard agree.
 */
import { TOKENS_PER_SECOND_BUCKETS, TTFT_BUCKETS_SECONDS, type ErrorReason } from '../instruments';
import { addBucket, type BucketSnapshot, type ConsoleSnapshot, type ModelSnapshot, type ModelTotals } from './snapshot';

/**
 * The `q` quantile (0–1) of a histogram with upper-inclusive `boundaries` and `counts` (one more
 * than the boundaries: the last counts values above the highest). Linear within a bucket, from 0
 * for the first; a quantile in the overflow bucket is the highest boundary. Undefined when empty.
 */
export function quantile(boundaries: readonly number[], counts: readonly number[], q: number): number | undefined {
  let total = 0;
  for (const n of counts) total += n;
  if (total === 0) return undefined;
  const rank = q * total;
  let below = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i]!;
    if (n > 0 && below + n >= rank) {
      if (i >= boundaries.length) return boundaries[boundaries.length - 1];
      const lower = i === 0 ? 0 : boundaries[i - 1]!;
      const upper = boundaries[i]!;
      return lower + ((upper - lower) * (rank - below)) / n;
    }
    below += n;
  }
  return boundaries[boundaries.length - 1];
}

/** Where the time of a window's timed calls went, seconds. */
export interface PhaseSplit {
  queue: number;
  load: number;
  prompt: number;
  generation: number;
  /** The rest: Ollama's overhead beyond its reported phases. */
  other: number;
  /** The calls this covers (those for which Ollama reported `total_duration`). */
  calls: number;
}

export interface WindowFigures {
  requests: number;
  errors: number;
  errorsByReason: Partial<Record<ErrorReason, number>>;
  inputTokens: number;
  cachedTokens: number;
  outputTokens: number;
  coldLoads: number;
  /**
   * Share of the input tokens served from the KV cache, 0–1, over the calls whose answer reported
   * it; null without any (an Ollama that does not report cached tokens).
   */
  cacheHitRatio: number | null;
  /** Prefill speed of local calls: evaluated prompt tokens (prompt − cached) per second of `prompt_eval_duration`. */
  prefillTokensPerSecond: number | null;
  /** Rates over the part of the window the history covers. */
  requestsPerSecond: number;
  inputTokensPerSecond: number;
  outputTokensPerSecond: number;
  /** Failed share of the requests, 0–1; null without requests. */
  errorRatio: number | null;
  ttftP50Seconds: number | null;
  ttftP95Seconds: number | null;
  tokensPerSecondP50: number | null;
  /** Mean time in Ollama's queue (or on the network) per timed call. */
  queueMeanSeconds: number | null;
  phases: PhaseSplit;
}

export interface ModelSummary {
  model: string;
  inFlight: number;
  /** Since the gateway started. */
  totals: ModelTotals & { errorCount: number };
  window: WindowFigures;
}

/** Time series over a window, oldest point first, one point per bucket. */
export interface SeriesView {
  /** The start of the first bucket, epoch ms. */
  start: number;
  bucketSeconds: number;
  points: number;
  requestsPerSecond: number[];
  /** Reasons that failed at least once in the window only. */
  errorsPerSecond: Partial<Record<ErrorReason, number[]>>;
  inputTokensPerSecond: number[];
  outputTokensPerSecond: number[];
  ttftP50Seconds: (number | null)[];
  ttftP95Seconds: (number | null)[];
  tokensPerSecondP50: (number | null)[];
  queueMeanSeconds: (number | null)[];
  coldLoads: number[];
}

export function emptyBucket(t: number): BucketSnapshot {
  return {
    t,
    requests: 0,
    errors: {},
    inputTokens: 0,
    cachedTokens: 0,
    cacheKnownInputTokens: 0,
    outputTokens: 0,
    coldLoads: 0,
    wallSeconds: 0,
    timedCalls: 0,
    timedWallSeconds: 0,
    queueSeconds: 0,
    loadSeconds: 0,
    promptSeconds: 0,
    generationSeconds: 0,
    prefillTokens: 0,
    prefillSeconds: 0,
    ttft: new Array<number>(TTFT_BUCKETS_SECONDS.length + 1).fill(0),
    tokensPerSecond: new Array<number>(TOKENS_PER_SECOND_BUCKETS.length + 1).fill(0),
  };
}

const sumErrors = (e: Partial<Record<ErrorReason, number>>): number => Object.values(e).reduce((n: number, v) => n + (v ?? 0), 0);
const orNull = (v: number | undefined): number | null => (v === undefined ? null : v);

/** The buckets numbered `first`..`last` (time / bucketMs) of `models` added up, one per number. */
function aligned(models: readonly ModelSnapshot[], bucketMs: number, first: number, points: number): BucketSnapshot[] {
  const out = Array.from({ length: points }, (_, i) => emptyBucket((first + i) * bucketMs));
  for (const m of models) {
    for (const b of m.buckets) {
      const i = Math.floor(b.t / bucketMs) - first;
      if (i >= 0 && i < points) addBucket(out[i]!, b);
    }
  }
  return out;
}

/** The window of the last `minutes` at the snapshot's time: its first bucket number and its length. */
function windowOf(snap: ConsoleSnapshot, minutes: number): { first: number; points: number; current: number; elapsedSeconds: number; coveredSeconds: number } {
  const points = Math.max(1, Math.min(snap.buckets, Math.round((minutes * 60_000) / snap.bucketMs)));
  const current = Math.floor(snap.takenAt / snap.bucketMs);
  // The current bucket has only run for part of its width.
  const partial = Math.max(1, (snap.takenAt - current * snap.bucketMs) / 1000);
  const length = (points - 1) * (snap.bucketMs / 1000) + partial;
  // A window reaching back before the history began covers only the time since.
  const covered = Math.max(1, Math.min(length, (snap.takenAt - snap.since) / 1000));
  return { first: current - points + 1, points, current, elapsedSeconds: length, coveredSeconds: covered };
}

/** The buckets of `models` numbered `first` or later (time / bucketMs), added into one. */
function windowTotal(models: readonly ModelSnapshot[], bucketMs: number, first: number): BucketSnapshot {
  const total = emptyBucket(first * bucketMs);
  const from = first * bucketMs;
  for (const m of models) for (const b of m.buckets) if (b.t >= from) addBucket(total, b);
  return total;
}

function figures(total: BucketSnapshot, seconds: number): WindowFigures {
  const errors = sumErrors(total.errors);
  const timed = total.timedCalls;
  const parts = total.queueSeconds + total.loadSeconds + total.promptSeconds + total.generationSeconds;
  return {
    requests: total.requests,
    errors,
    errorsByReason: total.errors,
    inputTokens: total.inputTokens,
    cachedTokens: total.cachedTokens,
    outputTokens: total.outputTokens,
    coldLoads: total.coldLoads,
    cacheHitRatio: total.cacheKnownInputTokens > 0 ? total.cachedTokens / total.cacheKnownInputTokens : null,
    prefillTokensPerSecond: total.prefillSeconds > 0 ? total.prefillTokens / total.prefillSeconds : null,
    requestsPerSecond: total.requests / seconds,
    inputTokensPerSecond: total.inputTokens / seconds,
    outputTokensPerSecond: total.outputTokens / seconds,
    errorRatio: total.requests > 0 ? errors / total.requests : null,
    ttftP50Seconds: orNull(quantile(TTFT_BUCKETS_SECONDS, total.ttft, 0.5)),
    ttftP95Seconds: orNull(quantile(TTFT_BUCKETS_SECONDS, total.ttft, 0.95)),
    tokensPerSecondP50: orNull(quantile(TOKENS_PER_SECOND_BUCKETS, total.tokensPerSecond, 0.5)),
    queueMeanSeconds: timed > 0 ? total.queueSeconds / timed : null,
    phases: {
      queue: total.queueSeconds,
      load: total.loadSeconds,
      prompt: total.promptSeconds,
      generation: total.generationSeconds,
      other: Math.max(0, total.timedWallSeconds - parts),
      calls: timed,
    },
  };
}

function summary(model: string, inFlight: number, totals: ModelTotals, window: BucketSnapshot, seconds: number): ModelSummary {
  return { model, inFlight, totals: { ...totals, errorCount: sumErrors(totals.errors) }, window: figures(window, seconds) };
}

function addTotals(into: ModelTotals, from: ModelTotals): void {
  into.requests += from.requests;
  into.inputTokens += from.inputTokens;
  into.cachedTokens += from.cachedTokens;
  into.outputTokens += from.outputTokens;
  into.coldLoads += from.coldLoads;
  into.remoteRequests += from.remoteRequests;
  for (const [r, n] of Object.entries(from.errors) as [ErrorReason, number][]) into.errors[r] = (into.errors[r] ?? 0) + n;
}

/** Every model's figures over the last `minutes`, busiest first, and all models together. */
export function summaries(snap: ConsoleSnapshot, minutes: number): { models: ModelSummary[]; all: ModelSummary } {
  const w = windowOf(snap, minutes);
  const models = snap.models.map((m) => summary(m.model, m.inFlight, m.totals, windowTotal([m], snap.bucketMs, w.first), w.coveredSeconds));
  models.sort((a, b) => b.window.requests - a.window.requests || b.totals.requests - a.totals.requests || (a.model < b.model ? -1 : 1));
  const totals: ModelTotals = { requests: 0, errors: {}, inputTokens: 0, cachedTokens: 0, outputTokens: 0, coldLoads: 0, remoteRequests: 0 };
  let inFlight = 0;
  for (const m of snap.models) {
    addTotals(totals, m.totals);
    inFlight += m.inFlight;
  }
  const all = summary('', inFlight, totals, windowTotal(snap.models, snap.bucketMs, w.first), w.coveredSeconds);
  return { models, all };
}

/** The time series of `model` (all models when undefined) over the last `minutes`. */
export function series(snap: ConsoleSnapshot, minutes: number, model?: string): SeriesView {
  const w = windowOf(snap, minutes);
  const chosen = model === undefined ? snap.models : snap.models.filter((m) => m.model === model);
  const buckets = aligned(chosen, snap.bucketMs, w.first, w.points);
  const full = snap.bucketMs / 1000;
  const widths = buckets.map((_, i) => (i === buckets.length - 1 ? w.elapsedSeconds - (w.points - 1) * full : full));
  const perSecond = (pick: (b: BucketSnapshot) => number) => buckets.map((b, i) => pick(b) / widths[i]!);
  const reasons = new Set<ErrorReason>();
  for (const b of buckets) for (const r of Object.keys(b.errors) as ErrorReason[]) reasons.add(r);
  const errorsPerSecond: Partial<Record<ErrorReason, number[]>> = {};
  for (const r of reasons) errorsPerSecond[r] = perSecond((b) => b.errors[r] ?? 0);
  return {
    start: w.first * snap.bucketMs,
    bucketSeconds: full,
    points: w.points,
    requestsPerSecond: perSecond((b) => b.requests),
    errorsPerSecond,
    inputTokensPerSecond: perSecond((b) => b.inputTokens),
    outputTokensPerSecond: perSecond((b) => b.outputTokens),
    ttftP50Seconds: buckets.map((b) => orNull(quantile(TTFT_BUCKETS_SECONDS, b.ttft, 0.5))),
    ttftP95Seconds: buckets.map((b) => orNull(quantile(TTFT_BUCKETS_SECONDS, b.ttft, 0.95))),
    tokensPerSecondP50: buckets.map((b) => orNull(quantile(TOKENS_PER_SECOND_BUCKETS, b.tokensPerSecond, 0.5))),
    queueMeanSeconds: buckets.map((b) => (b.timedCalls > 0 ? b.queueSeconds / b.timedCalls : null)),
    coldLoads: buckets.map((b) => b.coldLoads),
  };
}
