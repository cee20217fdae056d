/**
 * The console's history as plain JSON data, and how several of them add up.
 *
 * A snapshot holds no Map and no class, so it can cross a process boundary as it is (a worker
 * answering the primary). Every figure in it is a count or a sum; histograms are bucket counts on
 * the instruments' own boundaries (`otel/instruments.ts`). So the snapshots of several processes
 * merge by adding, and a percentile read from the merged counts is the one the whole gateway saw.
 */
import type { ErrorReason } from '../instruments';
import { OVERFLOW_MODEL_LABEL } from '../labels';

/** The snapshot format; bumped when a field changes meaning. */
export const SNAPSHOT_VERSION = 1;

/** One time bucket of one model: what the calls that finished in it measured. */
export interface BucketSnapshot {
  /** The bucket's start, epoch milliseconds (a multiple of `bucketMs`). */
  t: number;
  /** Calls counted in `ollama_requests_total` (every call but a successful load or unload). */
  requests: number;
  /** Failed requests by reason; reasons with no failure are left out. */
  errors: Partial<Record<ErrorReason, number>>;
  inputTokens: number;
  /** The part of `inputTokens` served from the KV cache (calls whose answer reported it). */
  cachedTokens: number;
  /** `inputTokens` of the calls that reported their cached part (an older Ollama does not). */
  cacheKnownInputTokens: number;
  outputTokens: number;
  /** Loads that took at least `COLD_LOAD_SECONDS` (observations of `ollama_load_duration_seconds` above it). */
  coldLoads: number;
  /** Gateway wall time of the requests, seconds. */
  wallSeconds: number;
  /** Requests for which Ollama reported its `total_duration`: the phase split covers these. */
  timedCalls: number;
  /** Wall time of the timed requests, and its parts: queue (wall − total), load, prompt, generation. */
  timedWallSeconds: number;
  queueSeconds: number;
  loadSeconds: number;
  promptSeconds: number;
  generationSeconds: number;
  /** Prompt tokens actually evaluated (prompt − cached) by local calls that reported `prompt_eval_duration`, and its sum. */
  prefillTokens: number;
  prefillSeconds: number;
  /** Counts per `TTFT_BUCKETS_SECONDS` bucket, the last one above the highest boundary. */
  ttft: number[];
  /** Counts per `TOKENS_PER_SECOND_BUCKETS` bucket, the last one above the highest boundary. */
  tokensPerSecond: number[];
}

/** A model's figures since the gateway started (they equal the counters on `/metrics`). */
export interface ModelTotals {
  requests: number;
  errors: Partial<Record<ErrorReason, number>>;
  inputTokens: number;
  cachedTokens: number;
  outputTokens: number;
  coldLoads: number;
  /** Requests that ran on a remote host (`ollama_remote_requests_total`). */
  remoteRequests: number;
}

export interface ModelSnapshot {
  /** The model's metric label (bounded as on `/metrics`). */
  model: string;
  /** Calls in flight now (`ollama_requests_in_flight`). */
  inFlight: number;
  totals: ModelTotals;
  /** The non-empty buckets of the last `buckets × bucketMs`, oldest first. */
  buckets: BucketSnapshot[];
}

/** Ollama's reported phases of one call, on the gateway's clock, in milliseconds. */
export interface CallPhases {
  /** Wall time minus Ollama's `total_duration`: waiting in Ollama's queue or on the network. */
  queueMs: number;
  loadMs: number;
  promptMs: number;
  generationMs: number;
  /** The rest of `total_duration` (Ollama's own overhead). */
  otherMs: number;
}

/** One finished LLM call, as the recent-calls list shows it. Never any prompt or answer text. */
export interface RecentCall {
  /** When the call ended, epoch milliseconds. */
  at: number;
  endpoint: string;
  /** `chat`, `text_completion`, `embeddings`, `load_model` or `unload_model`. */
  operation: string;
  model: string;
  /** The HTTP status the client got (499: it left first). */
  status: number;
  reason?: ErrorReason;
  streamed: boolean;
  durationMs: number;
  ttftMs?: number;
  inputTokens?: number;
  /** Present when the answer reported its cached prompt tokens. */
  cachedTokens?: number;
  outputTokens?: number;
  tokensPerSecond?: number;
  /** Present when Ollama reported `total_duration`. */
  phases?: CallPhases;
  /** The call's trace, when its span was recorded. */
  traceId?: string;
  /** The tenant that made the call, and the end user it asserted. */
  tenant?: string;
  user?: string;
  /** Set when the model ran on another host (a cloud or remote model), with the host its answer named. */
  remote?: true;
  remoteHost?: string;
}

export interface ConsoleSnapshot {
  version: typeof SNAPSHOT_VERSION;
  /** When it was taken, epoch milliseconds. */
  takenAt: number;
  /** When the history began (the process started), epoch milliseconds. */
  since: number;
  bucketMs: number;
  /** How many buckets the history keeps per model. */
  buckets: number;
  /** Most recent calls kept. */
  recentLimit: number;
  /** By model name. */
  models: ModelSnapshot[];
  /** Newest first. */
  recent: RecentCall[];
}

/** Adds `from`'s counts into `into`, reason by reason. */
function addErrors(into: Partial<Record<ErrorReason, number>>, from: Partial<Record<ErrorReason, number>>): void {
  for (const [reason, n] of Object.entries(from) as [ErrorReason, number][]) into[reason] = (into[reason] ?? 0) + n;
}

function addCounts(into: number[], from: readonly number[]): void {
  if (into.length !== from.length) throw new Error('snapshots with different histogram boundaries cannot be merged');
  for (let i = 0; i < from.length; i++) into[i] = into[i]! + from[i]!;
}

const NUMERIC_FIELDS = [
  'requests',
  'inputTokens',
  'cachedTokens',
  'cacheKnownInputTokens',
  'outputTokens',
  'coldLoads',
  'wallSeconds',
  'timedCalls',
  'timedWallSeconds',
  'queueSeconds',
  'loadSeconds',
  'promptSeconds',
  'generationSeconds',
  'prefillTokens',
  'prefillSeconds',
] as const;

function cloneBucket(b: BucketSnapshot): BucketSnapshot {
  return { ...b, errors: { ...b.errors }, ttft: [...b.ttft], tokensPerSecond: [...b.tokensPerSecond] };
}

/** Adds bucket `from` into `into` (same `t`). */
export function addBucket(into: BucketSnapshot, from: BucketSnapshot): void {
  for (const f of NUMERIC_FIELDS) into[f] += from[f];
  addErrors(into.errors, from.errors);
  addCounts(into.ttft, from.ttft);
  addCounts(into.tokensPerSecond, from.tokensPerSecond);
}

function mergeModel(into: ModelSnapshot, from: ModelSnapshot): void {
  into.inFlight += from.inFlight;
  const t = into.totals;
  t.requests += from.totals.requests;
  t.inputTokens += from.totals.inputTokens;
  t.cachedTokens += from.totals.cachedTokens;
  t.outputTokens += from.totals.outputTokens;
  t.coldLoads += from.totals.coldLoads;
  t.remoteRequests += from.totals.remoteRequests;
  addErrors(t.errors, from.totals.errors);
  const byT = new Map(into.buckets.map((b) => [b.t, b]));
  for (const b of from.buckets) {
    const mine = byT.get(b.t);
    if (mine) addBucket(mine, b);
    else {
      const copy = cloneBucket(b);
      byT.set(b.t, copy);
      into.buckets.push(copy);
    }
  }
  into.buckets.sort((a, b) => a.t - b.t);
}

function cloneModel(m: ModelSnapshot): ModelSnapshot {
  return { model: m.model, inFlight: m.inFlight, totals: { ...m.totals, errors: { ...m.totals.errors } }, buckets: m.buckets.map(cloneBucket) };
}

/** An empty history's snapshot. */
export function emptySnapshot(bucketMs: number, buckets: number, recentLimit: number, takenAt = Date.now()): ConsoleSnapshot {
  return { version: SNAPSHOT_VERSION, takenAt, since: takenAt, bucketMs, buckets, recentLimit, models: [], recent: [] };
}

/**
 * The history of several processes as one: counts, sums and bucket histograms add, calls in
 * flight add, the recent calls are merged newest first and cut to the limit. The inputs are not
 * changed. Snapshots must share their bucket width (the same configuration).
 */
export function mergeSnapshots(snaps: readonly ConsoleSnapshot[]): ConsoleSnapshot {
  const first = snaps[0];
  if (!first) return emptySnapshot(10_000, 360, 500);
  const out = emptySnapshot(first.bucketMs, first.buckets, first.recentLimit, first.takenAt);
  out.since = first.since;
  const models = new Map<string, ModelSnapshot>();
  for (const s of snaps) {
    if (s.version !== SNAPSHOT_VERSION) throw new Error(`console snapshot version ${String(s.version)} is not ${SNAPSHOT_VERSION}`);
    if (s.bucketMs !== first.bucketMs) throw new Error('console snapshots with different bucket widths cannot be merged');
    out.takenAt = Math.max(out.takenAt, s.takenAt);
    out.since = Math.min(out.since, s.since);
    out.buckets = Math.max(out.buckets, s.buckets);
    out.recentLimit = Math.max(out.recentLimit, s.recentLimit);
    for (const m of s.models) {
      const mine = models.get(m.model);
      if (mine) mergeModel(mine, m);
      else models.set(m.model, cloneModel(m));
    }
    out.recent.push(...s.recent);
  }
  out.models = [...models.values()].sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
  // Newest first; a stable sort keeps the order within one process for calls ending together.
  out.recent = out.recent.sort((a, b) => b.at - a.at).slice(0, out.recentLimit);
  return out;
}

/**
 * What exited processes had recorded, as one snapshot: `retired` (what earlier exits left, if any)
 * and `last`, the last snapshot gathered from a process that has since exited. Its calls in flight
 * are over (they are counted nowhere: the process that would have ended them is gone). It stays
 * bounded whatever the number of exits: buckets older than the history's span at `now` are
 * dropped, the recent calls are cut to their limit, and past `maxModels` names the least busy are
 * counted under `other`, as a process's own history folds them.
 */
export function retireSnapshot(retired: ConsoleSnapshot | undefined, last: ConsoleSnapshot, now: number, maxModels: number): ConsoleSnapshot {
  const out = mergeSnapshots(retired ? [retired, last] : [last]);
  const oldest = now - out.buckets * out.bucketMs;
  for (const m of out.models) {
    m.inFlight = 0;
    m.buckets = m.buckets.filter((b) => b.t + out.bucketMs > oldest);
  }
  if (out.models.filter((m) => m.model !== OVERFLOW_MODEL_LABEL).length <= maxModels) return out;
  const keep = new Set(
    [...out.models]
      .filter((m) => m.model !== OVERFLOW_MODEL_LABEL)
      .sort((a, b) => b.totals.requests - a.totals.requests)
      .slice(0, maxModels)
      .map((m) => m.model),
  );
  for (const m of out.models) if (!keep.has(m.model)) m.model = OVERFLOW_MODEL_LABEL;
  return mergeSnapshots([out]);
}
