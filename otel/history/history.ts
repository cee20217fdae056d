/**
 * The console's memory of the last hour: per model, a fixed ring of time buckets (by default 360
 * of 10 s), and a fixed ring of the most recent calls. Fed by the recorder from the same measures
 * and outcome that feed the instruments (one measurement, two views), through `CallSink`.
 *
 * Memory is fixed up front per model and bounded in the number of models: each model's ring is two
 * typed arrays allocated when the model is first seen (`MODEL_RING_BYTES` for the defaults), and
 * at most `maxModels` models have one; the calls of later models are kept under `other`, the label
 * `/metrics` already uses for names past its own bound. The recent-calls ring holds `recentLimit`
 * small objects whose strings are the bounded labels.
 *
 * Rings go to the models Ollama serves first: when every ring is taken, a served model (`served`,
 * told by the telemetry: in the last poll, or answered successfully) takes the ring of a name
 * nobody serves, and any model takes a ring that nobody used for the whole window. A ring with
 * calls in flight is never taken. So names a client made up (404s) cannot hold the rings for the
 * life of the process and push every real model into `other`.
 */
import { cachedTokensOf, evaluatedPromptTokens, tokensPerSecond, type CallOutcome } from '../call';
import { isRequest, loadSecondsOf, queueSecondsOf, type CallMeasures } from '../call-metrics';
import { ERROR_REASONS, TOKENS_PER_SECOND_BUCKETS, TTFT_BUCKETS_SECONDS, type ErrorReason } from '../instruments';
import { OVERFLOW_MODEL_LABEL } from '../labels';
import { SNAPSHOT_VERSION, type BucketSnapshot, type CallPhases, type ConsoleSnapshot, type ModelSnapshot, type RecentCall } from './snapshot';

/**
 * A load at least this long (seconds) is a cold load: the model was not in memory. A boundary of
 * `DURATION_BUCKETS_SECONDS`, so the count equals `ollama_load_duration_seconds_count` minus its
 * `le="0.5"` bucket. A warm call's `load_duration` is a few milliseconds.
 */
export const COLD_LOAD_SECONDS = 0.5;

/** What the recorder tells the history. */
export interface CallSink {
  /** A call became in flight (its model known; loads and unloads are not); returns the ring it is counted in. */
  started(model: string): string;
  /** A call finished, with what the instruments were given. */
  finished(call: FinishedCall): void;
}

export interface FinishedCall {
  operation: string;
  measures: CallMeasures;
  outcome: CallOutcome;
  /** The call's trace id, when its span was recorded. */
  traceId?: string;
  /** Who made the call, when the gateway knows. */
  tenant?: string;
  user?: string;
  /** What `started` returned for the call, if it was in flight. */
  startedIn?: string;
}

export interface HistoryOptions {
  /** Width of a time bucket, ms. */
  bucketMs: number;
  /** Buckets kept per model. */
  buckets: number;
  /** Models with a ring of their own; the rest share `other`'s. */
  maxModels: number;
  /** Most recent calls kept. */
  recentLimit: number;
  /** The clock, epoch ms (tests set their own). */
  now?: () => number;
}

export const DEFAULT_HISTORY: Readonly<Omit<HistoryOptions, 'now'>> = { bucketMs: 10_000, buckets: 360, maxModels: 32, recentLimit: 500 };

// The layout of one bucket: counts (Uint32) and sums (Float64).
const C_REQUESTS = 0;
const C_COLD = 1;
const C_TIMED = 2;
const C_ERRORS = 3;
const C_TTFT = C_ERRORS + ERROR_REASONS.length;
const TTFT_SLOTS = TTFT_BUCKETS_SECONDS.length + 1;
const C_TPS = C_TTFT + TTFT_SLOTS;
const TPS_SLOTS = TOKENS_PER_SECOND_BUCKETS.length + 1;
const COUNTS = C_TPS + TPS_SLOTS;

const S_IN = 0;
const S_OUT = 1;
const S_WALL = 2;
const S_TIMED_WALL = 3;
const S_QUEUE = 4;
const S_LOAD = 5;
const S_PROMPT = 6;
const S_GEN = 7;
const S_CACHED = 8;
/** Prompt tokens actually evaluated (prompt − cached), and their `prompt_eval_duration`: the prefill rate. */
const S_PREFILL_TOKENS = 9;
const S_PREFILL_SECONDS = 10;
/** Input tokens of the calls that reported their cached part: the base of the cache hit ratio. */
const S_CACHE_KNOWN_IN = 11;
const SUMS = 12;

/** Bytes of one model's ring with `buckets` buckets: the counts, the sums and the bucket stamps. */
export function modelRingBytes(buckets: number): number {
  return buckets * (COUNTS * 4 + SUMS * 8 + 8);
}

const REASON_INDEX: ReadonlyMap<string, number> = new Map(ERROR_REASONS.map((r, i) => [r, i]));
const NS_PER_MS = 1e6;
const NS_PER_S = 1e9;

/** The index of the bucket `value` falls in, as the SDK places it: the first boundary ≥ value. */
function bucketIndex(boundaries: readonly number[], value: number): number {
  let lo = 0;
  let hi = boundaries.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (value <= boundaries[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Adds `v` at index `i` of a typed array (in range by construction). */
function add(values: Uint32Array | Float64Array, i: number, v: number): void {
  values[i] = values[i]! + v;
}

class ModelRing {
  readonly counts: Uint32Array;
  readonly sums: Float64Array;
  /** The bucket number (time / bucketMs) each slot holds; -1 while empty. */
  readonly stamps: Float64Array;
  inFlight = 0;
  /** The latest bucket number a call started or finished in. */
  lastUsed = -1;
  requests = 0;
  inputTokens = 0;
  cachedTokens = 0;
  outputTokens = 0;
  coldLoads = 0;
  remoteRequests = 0;
  readonly errors = new Float64Array(ERROR_REASONS.length);

  constructor(
    readonly model: string,
    private readonly size: number,
  ) {
    this.counts = new Uint32Array(size * COUNTS);
    this.sums = new Float64Array(size * SUMS);
    this.stamps = new Float64Array(size).fill(-1);
  }

  /** Adds everything this ring counted into `other` (its ring is being taken by another model). */
  foldInto(other: ModelRing): void {
    for (let i = 0; i < this.size; i++) {
      const n = this.stamps[i]!;
      // A slot `other` holds a later bucket in is out of the window for this one.
      if (n < 0 || other.stamps[i]! > n) continue;
      const j = other.slot(n);
      for (let k = 0; k < COUNTS; k++) add(other.counts, j * COUNTS + k, this.counts[i * COUNTS + k]!);
      for (let k = 0; k < SUMS; k++) add(other.sums, j * SUMS + k, this.sums[i * SUMS + k]!);
    }
    other.requests += this.requests;
    other.inputTokens += this.inputTokens;
    other.cachedTokens += this.cachedTokens;
    other.outputTokens += this.outputTokens;
    other.coldLoads += this.coldLoads;
    other.remoteRequests += this.remoteRequests;
    for (let k = 0; k < this.errors.length; k++) add(other.errors, k, this.errors[k]!);
    other.lastUsed = Math.max(other.lastUsed, this.lastUsed);
  }

  /** The slot of bucket number `n`, emptied first if it held an older bucket. */
  slot(n: number): number {
    const i = n % this.size;
    if (this.stamps[i] !== n) {
      this.counts.fill(0, i * COUNTS, (i + 1) * COUNTS);
      this.sums.fill(0, i * SUMS, (i + 1) * SUMS);
      this.stamps[i] = n;
    }
    return i;
  }
}

export class History implements CallSink {
  readonly options: Readonly<Required<HistoryOptions>>;
  private readonly rings = new Map<string, ModelRing>();
  private readonly recent: (RecentCall | undefined)[];
  /** Where the next recent call goes. */
  private head = 0;
  private readonly since: number;

  constructor(
    options: Partial<HistoryOptions> = {},
    /** Whether Ollama serves `model` (a label); such models come first for a ring of their own. */
    private readonly served: (model: string) => boolean = () => false,
  ) {
    this.options = { ...DEFAULT_HISTORY, now: Date.now, ...options };
    this.since = this.options.now();
    this.recent = new Array<RecentCall | undefined>(this.options.recentLimit).fill(undefined);
  }

  /** Bytes the rings hold now: typed arrays only (the bound the README states). */
  get ringBytes(): number {
    return this.rings.size * modelRingBytes(this.options.buckets);
  }

  get modelCount(): number {
    return this.rings.size;
  }

  private ring(model: string, current: number): ModelRing {
    let r = this.rings.get(model);
    if (r) return r;
    if (this.rings.size >= this.options.maxModels && model !== OVERFLOW_MODEL_LABEL) {
      const taken = this.reclaimable(model, current);
      if (!taken) return this.ring(OVERFLOW_MODEL_LABEL, current);
      // What it counted is not lost: it goes on under `other`.
      this.rings.delete(taken.model);
      taken.foldInto(this.ring(OVERFLOW_MODEL_LABEL, current));
    }
    r = new ModelRing(model, this.options.buckets);
    this.rings.set(model, r);
    return r;
  }

  /**
   * The ring `model` may take when all are in use: one with no call in flight that nobody used for
   * the whole window, or, for a model Ollama serves, the least recently used of a name it does not
   * serve; undefined when there is none.
   */
  private reclaimable(model: string, current: number): ModelRing | undefined {
    const idleBefore = current - this.options.buckets + 1;
    const served = this.served(model);
    let best: ModelRing | undefined;
    for (const r of this.rings.values()) {
      if (r.model === OVERFLOW_MODEL_LABEL || r.inFlight > 0) continue;
      if (r.lastUsed >= idleBefore && !(served && !this.served(r.model))) continue;
      if (!best || r.lastUsed < best.lastUsed) best = r;
    }
    return best;
  }

  started(model: string): string {
    const current = Math.floor(this.options.now() / this.options.bucketMs);
    const ring = this.ring(model, current);
    ring.inFlight++;
    ring.lastUsed = current;
    return ring.model;
  }

  finished(call: FinishedCall): void {
    const { measures: m, outcome } = call;
    const now = this.options.now();
    const current = Math.floor(now / this.options.bucketMs);
    // A call is finished in the ring it started in (a ring with calls in flight is never taken).
    const ring = (call.startedIn !== undefined ? this.rings.get(call.startedIn) : undefined) ?? this.ring(m.model, current);
    if (m.wasInFlight) ring.inFlight = Math.max(0, ring.inFlight - 1);
    ring.lastUsed = current;
    const slot = ring.slot(current);
    const c = slot * COUNTS;
    const sum = slot * SUMS;
    const counts = ring.counts;
    const sums = ring.sums;

    const load = loadSecondsOf(outcome, m);
    if (load !== undefined && load >= COLD_LOAD_SECONDS) {
      add(counts, c + C_COLD, 1);
      ring.coldLoads++;
    }
    const s = outcome.summary;
    let phases: CallPhases | undefined;
    let tps: number | undefined;
    let cached: number | undefined;
    if (isRequest(outcome, m)) {
      add(counts, c + C_REQUESTS, 1);
      ring.requests++;
      if (m.remote) ring.remoteRequests++;
      add(sums, sum + S_WALL, m.wallSeconds);
      const reason = outcome.reason === undefined ? undefined : REASON_INDEX.get(outcome.reason);
      if (reason !== undefined) {
        add(counts, c + C_ERRORS + reason, 1);
        add(ring.errors, reason, 1);
      }
      if (m.lifecycle === undefined && s) {
        if (s.inputTokens !== undefined && s.inputTokens > 0) {
          add(sums, sum + S_IN, s.inputTokens);
          ring.inputTokens += s.inputTokens;
        }
        cached = cachedTokensOf(s);
        if (cached !== undefined) {
          add(sums, sum + S_CACHED, cached);
          add(sums, sum + S_CACHE_KNOWN_IN, s.inputTokens ?? 0);
          ring.cachedTokens += cached;
        }
        if (s.outputTokens !== undefined && s.outputTokens > 0) {
          add(sums, sum + S_OUT, s.outputTokens);
          ring.outputTokens += s.outputTokens;
        }
        if (m.ttftSeconds !== undefined) add(counts, c + C_TTFT + bucketIndex(TTFT_BUCKETS_SECONDS, m.ttftSeconds), 1);
        // A remote model's speed and phases are another host's: not this GPU's figures.
        tps = m.remote ? undefined : tokensPerSecond(s, outcome.streamed);
        if (tps !== undefined) add(counts, c + C_TPS + bucketIndex(TOKENS_PER_SECOND_BUCKETS, tps), 1);
        const evaluated = evaluatedPromptTokens(s);
        if (!m.remote && evaluated !== undefined && s.promptEvalDurationNs !== undefined && s.promptEvalDurationNs > 0) {
          add(sums, sum + S_PREFILL_TOKENS, evaluated);
          add(sums, sum + S_PREFILL_SECONDS, s.promptEvalDurationNs / NS_PER_S);
        }
        const queue = m.remote ? undefined : queueSecondsOf(outcome, m);
        if (queue !== undefined) {
          phases = phasesOf(queue, s.totalDurationNs ?? 0, s.loadDurationNs, s.promptEvalDurationNs, s.evalDurationNs);
          add(counts, c + C_TIMED, 1);
          add(sums, sum + S_TIMED_WALL, m.wallSeconds);
          add(sums, sum + S_QUEUE, queue);
          add(sums, sum + S_LOAD, phases.loadMs / 1000);
          add(sums, sum + S_PROMPT, phases.promptMs / 1000);
          add(sums, sum + S_GEN, phases.generationMs / 1000);
        }
      }
    } else if (m.lifecycle === 'load') {
      phases = { queueMs: 0, loadMs: m.wallSeconds * 1000, promptMs: 0, generationMs: 0, otherMs: 0 };
    }

    this.recent[this.head] = {
      at: now,
      endpoint: m.endpoint,
      operation: call.operation,
      model: ring.model,
      status: outcome.status,
      reason: outcome.reason,
      streamed: outcome.streamed,
      durationMs: m.wallSeconds * 1000,
      ttftMs: m.ttftSeconds === undefined ? undefined : m.ttftSeconds * 1000,
      inputTokens: s?.inputTokens,
      cachedTokens: cached,
      outputTokens: s?.outputTokens,
      tokensPerSecond: tps,
      phases,
      traceId: call.traceId,
      tenant: call.tenant,
      user: call.user,
      remote: m.remote === true ? true : undefined,
      remoteHost: m.remote === true ? s?.remoteHost : undefined,
    };
    this.head = (this.head + 1) % this.recent.length;
  }

  /** The history as plain data: the buckets of the last `buckets × bucketMs`, and the recent calls. */
  snapshot(): ConsoleSnapshot {
    const { bucketMs, buckets, recentLimit } = this.options;
    const takenAt = this.options.now();
    const current = Math.floor(takenAt / bucketMs);
    const models: ModelSnapshot[] = [];
    for (const ring of this.rings.values()) models.push(snapshotRing(ring, current, buckets, bucketMs));
    models.sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
    const recent: RecentCall[] = [];
    const n = this.recent.length;
    for (let k = 1; k <= n; k++) {
      const call = this.recent[(this.head - k + n) % n];
      if (call) recent.push(withoutUndefined(call));
    }
    return { version: SNAPSHOT_VERSION, takenAt, since: this.since, bucketMs, buckets, recentLimit, models, recent };
  }
}

/** A call's phases on the gateway's clock, ms: queue, then Ollama's total split into its parts. */
function phasesOf(queueSeconds: number, totalNs: number, loadNs = 0, promptNs = 0, evalNs = 0): CallPhases {
  const loadMs = loadNs / NS_PER_MS;
  const promptMs = promptNs / NS_PER_MS;
  const generationMs = evalNs / NS_PER_MS;
  return { queueMs: queueSeconds * 1000, loadMs, promptMs, generationMs, otherMs: Math.max(0, totalNs / NS_PER_MS - loadMs - promptMs - generationMs) };
}

/** A plain copy without the undefined fields (what JSON would drop anyway). */
function withoutUndefined(call: RecentCall): RecentCall {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(call)) if (v !== undefined) out[k] = v;
  return out as unknown as RecentCall;
}

function errorsOf(values: ArrayLike<number>, offset: number): Partial<Record<ErrorReason, number>> {
  const out: Partial<Record<ErrorReason, number>> = {};
  for (let i = 0; i < ERROR_REASONS.length; i++) if (values[offset + i]! > 0) out[ERROR_REASONS[i]!] = values[offset + i]!;
  return out;
}

/** `length` values from `offset` as a plain array (a loop: Array.from over a typed array is far slower). */
function copyOut(values: Uint32Array, offset: number, length: number): number[] {
  const out = new Array<number>(length);
  for (let i = 0; i < length; i++) out[i] = values[offset + i]!;
  return out;
}

function snapshotRing(ring: ModelRing, current: number, size: number, bucketMs: number): ModelSnapshot {
  const buckets: BucketSnapshot[] = [];
  for (let n = current - size + 1; n <= current; n++) {
    const i = n % size;
    if (n < 0 || ring.stamps[i] !== n) continue;
    const c = i * COUNTS;
    const s = i * SUMS;
    const k = ring.counts;
    const v = ring.sums;
    buckets.push({
      t: n * bucketMs,
      requests: k[c + C_REQUESTS]!,
      errors: errorsOf(k, c + C_ERRORS),
      inputTokens: v[s + S_IN]!,
      cachedTokens: v[s + S_CACHED]!,
      cacheKnownInputTokens: v[s + S_CACHE_KNOWN_IN]!,
      outputTokens: v[s + S_OUT]!,
      coldLoads: k[c + C_COLD]!,
      wallSeconds: v[s + S_WALL]!,
      timedCalls: k[c + C_TIMED]!,
      timedWallSeconds: v[s + S_TIMED_WALL]!,
      queueSeconds: v[s + S_QUEUE]!,
      loadSeconds: v[s + S_LOAD]!,
      promptSeconds: v[s + S_PROMPT]!,
      generationSeconds: v[s + S_GEN]!,
      prefillTokens: v[s + S_PREFILL_TOKENS]!,
      prefillSeconds: v[s + S_PREFILL_SECONDS]!,
      ttft: copyOut(k, c + C_TTFT, TTFT_SLOTS),
      tokensPerSecond: copyOut(k, c + C_TPS, TPS_SLOTS),
    });
  }
  return {
    model: ring.model,
    inFlight: ring.inFlight,
    totals: {
      requests: ring.requests,
      errors: errorsOf(ring.errors, 0),
      inputTokens: ring.inputTokens,
      cachedTokens: ring.cachedTokens,
      outputTokens: ring.outputTokens,
      coldLoads: ring.coldLoads,
      remoteRequests: ring.remoteRequests,
    },
    buckets,
  };
}
