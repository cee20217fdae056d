/**
 * Exemplars: for each bucket of a latency or token histogram, and each series of an error counter,
 * the trace of a recent sampled call that landed there, so a dashboard can go from a slow bucket to
 * one trace. The OpenTelemetry JS SDK keeps none (opentelemetry-js #5147), so they are kept here:
 *
 * - `exemplarMeter` wraps the meter the instruments are created on. Its histograms (and counters
 *   whose name says they count errors) also tell the store what they record, but only while
 *   `ExemplarStore.during` has a sampled call's ids: the recorder opens that window around its
 *   end-of-call recording, so nothing recorded elsewhere (per-chunk gaps, series set to 0) and
 *   nothing of an unsampled call becomes an exemplar.
 * - One slot per series and bucket, the newest wins; the number of series is capped. An exemplar
 *   holds only ids the gateway generated, a number and a time: never client text.
 * - `piece()` carries the exemplars in a worker's scrape as one comment line, which the exposition
 *   merge skips; `mergeExemplars` keeps the newest per bucket across workers.
 */
import type { Attributes, Context, Counter, Histogram, Meter, MetricOptions } from '@opentelemetry/api';

/** A sampled call's ids, as the recorder passes them. */
export interface ExemplarRef {
  traceId: string;
  spanId: string;
}

export interface Exemplar {
  traceId: string;
  spanId: string;
  value: number;
  /** When it was recorded, ms since the epoch. */
  at: number;
}

/**
 * Where an exemplar belongs: the series as the classic exposition writes it (name, then its labels
 * sorted), then a NUL and the bucket's `le` as written there (empty for a counter).
 */
export type ExemplarKey = string;

/** Unit suffixes the exposition appends to a metric's name (see `sdk.ts`); annotation units add nothing. */
export const UNIT_SUFFIXES: Readonly<Record<string, string>> = { s: '_seconds', By: '_bytes' };

/** Most series the store keeps exemplars for; beyond it, new series get none (old ones still update). */
export const MAX_EXEMPLAR_SERIES = 4096;

/** The comment line that carries a process's exemplars in its piece of a gathered scrape. */
export const EXEMPLARS_COMMENT = '# gateway-exemplars ';

/** A metric's name as the Prometheus exposition writes it: unit suffix, invalid characters, `_total`. */
export function prometheusName(name: string, unit: string | undefined, counter: boolean): string {
  const suffix = unit === undefined ? undefined : UNIT_SUFFIXES[unit];
  let out = name;
  if (suffix !== undefined && !name.endsWith(suffix) && !name.endsWith(suffix.replace('_', '.'))) out += suffix;
  out = out.replace(/[^a-zA-Z0-9_]/g, '_').replace(/_{2,}/g, '_');
  if (counter && !out.endsWith('_total')) out += '_total';
  return out;
}

function escapeLabelValue(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** The labels of `attrs` as the exposition writes them, sorted: the series part of a key. */
function labelsOf(attrs: Attributes): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined) continue;
    parts.push(`${k.replace(/[^a-zA-Z0-9_]/g, '_').replace(/_{2,}/g, '_')}="${escapeLabelValue(v)}"`);
  }
  return parts.sort().join(',');
}

/** The `le` of a bucket's upper bound as the exposition writes it. */
function leOf(bound: number): string {
  return bound === Infinity ? '+Inf' : String(bound);
}

/** One series' slots: one per bucket (`le` in `les`, then `+Inf`), or one for a counter. */
interface Series {
  name: string;
  labels: string;
  /** The `le` of each slot; `['']` for a counter. */
  les: readonly string[];
  slots: (Exemplar | undefined)[];
}

export class ExemplarStore {
  /** The call whose recording is under way, when it is sampled. */
  private current: ExemplarRef | undefined;
  private currentAt = 0;
  private count = 0;
  /**
   * Series by attribute object, then by metric name: the recorder reuses its attribute objects, so
   * a recording costs two lookups and no string building.
   */
  private readonly byAttrs = new WeakMap<Attributes, Map<string, Series>>();
  private readonly all: Series[] = [];
  private static readonly NO_ATTRS: Attributes = {};

  constructor(private readonly now: () => number = Date.now) {}

  /** Runs `fn` (the recording of one call) with `ref` as the exemplar of what it records; `ref` undefined: none. */
  during<T>(ref: ExemplarRef | undefined, fn: () => T): T {
    if (ref === undefined) return fn();
    this.current = ref;
    this.currentAt = this.now();
    try {
      return fn();
    } finally {
      this.current = undefined;
    }
  }

  /** Whether a recording is under way for a sampled call (cheap check before any work). */
  get active(): boolean {
    return this.current !== undefined;
  }

  /** `value` recorded in histogram `name` with bucket upper bounds `bounds` (written `les`, `+Inf` last). */
  observeHistogram(name: string, bounds: readonly number[], les: readonly string[], value: number, attrs: Attributes | undefined): void {
    if (this.current === undefined) return;
    let i = 0;
    // The bucket is the first whose upper bound is ≥ the value (Prometheus's `le`).
    while (i < bounds.length && value > bounds[i]!) i++;
    this.put(name, les, i, attrs, value);
  }

  /** `value` added to counter `name`. */
  observeCounter(name: string, value: number, attrs: Attributes | undefined): void {
    if (this.current === undefined || value <= 0) return;
    this.put(name, COUNTER_LES, 0, attrs, value);
  }

  private put(name: string, les: readonly string[], slot: number, attrs: Attributes | undefined, value: number): void {
    const ref = this.current!;
    const a = attrs ?? ExemplarStore.NO_ATTRS;
    let byName = this.byAttrs.get(a);
    if (byName === undefined) {
      byName = new Map();
      this.byAttrs.set(a, byName);
    }
    let series = byName.get(name);
    if (series === undefined) {
      if (this.count >= MAX_EXEMPLAR_SERIES) return;
      this.count++;
      series = { name, labels: labelsOf(a), les, slots: [] };
      byName.set(name, series);
      this.all.push(series);
    }
    const e = series.slots[slot];
    if (e === undefined) series.slots[slot] = { traceId: ref.traceId, spanId: ref.spanId, value, at: this.currentAt };
    else {
      e.traceId = ref.traceId;
      e.spanId = ref.spanId;
      e.value = value;
      e.at = this.currentAt;
    }
  }

  /** Every exemplar kept now, by key. */
  entries(): Map<ExemplarKey, Exemplar> {
    const out = new Map<ExemplarKey, Exemplar>();
    for (const s of this.all) {
      const series = s.labels === '' ? s.name : `${s.name}{${s.labels}}`;
      s.slots.forEach((e, i) => {
        if (e !== undefined) out.set(`${series}\u0000${s.les[i]}`, { ...e });
      });
    }
    return out;
  }

  /** The exemplars as one comment line, for a worker's piece of a gathered scrape (empty when none). */
  piece(): string {
    return exemplarsLine(this.entries());
  }
}

/** A counter's one slot. */
const COUNTER_LES: readonly string[] = [''];

/** The `le` of each bucket of `bounds` as the exposition writes it, `+Inf` last. */
export function lesOf(bounds: readonly number[]): string[] {
  return [...bounds.map(leOf), '+Inf'];
}

const HEX = /^[0-9a-f]+$/;

/** The exemplars carried in pieces of a gathered scrape, the newest per bucket (anything malformed is skipped). */
export function mergeExemplars(pieces: readonly string[]): Map<ExemplarKey, Exemplar> {
  const out = new Map<ExemplarKey, Exemplar>();
  for (const text of pieces) {
    const at = text.lastIndexOf(`\n${EXEMPLARS_COMMENT}`);
    const start = text.startsWith(EXEMPLARS_COMMENT) ? 0 : at < 0 ? -1 : at + 1;
    if (start < 0) continue;
    const end = text.indexOf('\n', start);
    let rows: unknown;
    try {
      rows = JSON.parse(text.slice(start + EXEMPLARS_COMMENT.length, end < 0 ? undefined : end));
    } catch {
      continue;
    }
    if (!Array.isArray(rows)) continue;
    for (const row of rows as unknown[]) {
      if (!Array.isArray(row) || row.length !== 5) continue;
      const [key, traceId, spanId, value, when] = row as unknown[];
      if (typeof key !== 'string' || typeof traceId !== 'string' || typeof spanId !== 'string' || typeof value !== 'number' || typeof when !== 'number')
        continue;
      if (traceId.length !== 32 || spanId.length !== 16 || !HEX.test(traceId) || !HEX.test(spanId)) continue;
      const seen = out.get(key);
      if (seen === undefined || when > seen.at) out.set(key, { traceId, spanId, value, at: when });
    }
  }
  return out;
}

/** `exemplars` as the carrier line of an exposition (empty when none). */
export function exemplarsLine(exemplars: ReadonlyMap<ExemplarKey, Exemplar>): string {
  const rows: [string, string, string, number, number][] = [];
  for (const [key, e] of exemplars) rows.push([key, e.traceId, e.spanId, e.value, e.at]);
  return rows.length === 0 ? '' : `${EXEMPLARS_COMMENT}${JSON.stringify(rows)}\n`;
}

/** An exposition without its carrier line, and the exemplars that line carried. */
export function splitExemplars(text: string): { text: string; exemplars: Map<ExemplarKey, Exemplar> } {
  const exemplars = mergeExemplars([text]);
  const at = text.startsWith(EXEMPLARS_COMMENT) ? 0 : text.indexOf(`\n${EXEMPLARS_COMMENT}`) + 1;
  if (at <= 0 && !text.startsWith(EXEMPLARS_COMMENT)) return { text, exemplars };
  const end = text.indexOf('\n', at);
  return { text: text.slice(0, at) + (end < 0 ? '' : text.slice(end + 1)), exemplars };
}

/** Counters that keep exemplars: the ones that count failures. */
function isErrorCounter(name: string): boolean {
  return /error/.test(name);
}

/**
 * `meter`, whose histograms with explicit buckets (and error counters) also feed `store`. Every
 * other instrument is the meter's own.
 */
export function exemplarMeter(meter: Meter, store: ExemplarStore): Meter {
  return {
    createGauge: (n, o) => meter.createGauge(n, o),
    createUpDownCounter: (n, o) => meter.createUpDownCounter(n, o),
    createObservableGauge: (n, o) => meter.createObservableGauge(n, o),
    createObservableCounter: (n, o) => meter.createObservableCounter(n, o),
    createObservableUpDownCounter: (n, o) => meter.createObservableUpDownCounter(n, o),
    addBatchObservableCallback: (cb, obs) => meter.addBatchObservableCallback(cb, obs),
    removeBatchObservableCallback: (cb, obs) => meter.removeBatchObservableCallback(cb, obs),
    createHistogram: (name: string, options?: MetricOptions): Histogram => {
      const inner = meter.createHistogram(name, options);
      const bounds = options?.advice?.explicitBucketBoundaries;
      if (bounds === undefined) return inner;
      const promName = `${prometheusName(name, options?.unit, false)}_bucket`;
      const les = lesOf(bounds);
      return {
        record(value: number, attributes?: Attributes, ctx?: Context): void {
          inner.record(value, attributes, ctx);
          if (store.active) store.observeHistogram(promName, bounds, les, value, attributes);
        },
      };
    },
    createCounter: (name: string, options?: MetricOptions): Counter => {
      const inner = meter.createCounter(name, options);
      if (!isErrorCounter(name)) return inner;
      const promName = prometheusName(name, options?.unit, true);
      return {
        add(value: number, attributes?: Attributes, ctx?: Context): void {
          inner.add(value, attributes, ctx);
          if (store.active) store.observeCounter(promName, value, attributes);
        },
      };
    },
  };
}
