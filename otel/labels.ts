/**
 * Bounded `model` label values. A client can send any string as `model`; each distinct value would
 * be a new series on every `ollama_*` metric, and a long one would make every scrape as long.
 * Bounded in length first: a name longer than MAX_MODEL_NAME_CHARS or holding a control character
 * is no model Ollama could serve, and is reported as `invalid`. Models Ollama serves (told by the
 * poller) always keep their name; of all other names, up to `max` distinct ones are kept as they
 * are, and after that new names are reported as `other`, with `onCapReached` called once.
 *
 * A label is `detailed` when Ollama serves the model (it was in the last poll) or it has answered
 * a call with a success status: only those get the full set of series (histograms, per-model counters, the
 * GenAI metrics). Any other name — all a client can invent — costs only its request and error
 * counters and its in-flight gauge, so 200 junk names cannot make every scrape megabytes long.
 * And at most MAX_SERIES_PER_UNSERVED_LABEL of those (each endpoint, status and error reason it
 * shows up with is one); past that its calls are counted under `other`. So, at the defaults, the
 * names a client can make up cost at most 200 × 16 series, some 0.5 MB of every scrape.
 */

export const OVERFLOW_MODEL_LABEL = 'other';
export const INVALID_MODEL_LABEL = 'invalid';

/**
 * Longest model name kept as a label. Ollama's names are `[host/][namespace/]model[:tag]`, each
 * part well under a hundred characters (`types/model/name.go` caps the whole at 350 bytes for a
 * fully qualified name, including the default host); 256 covers every name seen in practice.
 */
export const MAX_MODEL_NAME_CHARS = 256;

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** `text` cut to at most `max` characters (client- or upstream-chosen text landing in telemetry or logs). */
export function clipText(text: string, max: number): string {
  return text.length > max ? text.slice(0, max) : text;
}

/** Series a label that is not detailed may have (see the class comment). */
export const MAX_SERIES_PER_UNSERVED_LABEL = 16;

/** Labels that stand for many names, whose series are bounded by what they stand for. */
const SHARED_LABELS = new Set([OVERFLOW_MODEL_LABEL, INVALID_MODEL_LABEL, 'unknown']);

export class ModelLabels {
  private readonly seen = new Set<string>();
  private served = new Set<string>();
  /** Labels that answered a call successfully (bounded: each is a kept label). */
  private readonly answered = new Set<string>();
  /** Per label that is not detailed: the series it has (at most MAX_SERIES_PER_UNSERVED_LABEL). */
  private readonly unservedSeries = new Map<string, Set<string>>();
  private warned = false;

  constructor(
    private readonly max: number,
    private readonly onCapReached: (max: number) => void = () => {},
  ) {}

  /** The models Ollama serves now (from /api/tags and /api/ps). */
  setServed(models: Iterable<string>): void {
    this.served = new Set(models);
  }

  label(model: string): string {
    if (model.length > MAX_MODEL_NAME_CHARS || CONTROL.test(model)) return INVALID_MODEL_LABEL;
    if (this.seen.has(model) || this.served.has(model)) return model;
    if (this.seen.size < this.max) {
      this.seen.add(model);
      return model;
    }
    if (!this.warned) {
      this.warned = true;
      this.onCapReached(this.max);
    }
    return OVERFLOW_MODEL_LABEL;
  }

  /** Whether `label` (a value `label()` returned) gets the full set of series; see the class comment. */
  detailed(label: string): boolean {
    return this.served.has(label) || this.answered.has(label);
  }

  /** `label` answered a call successfully; returns whether that makes it detailed for the first time. */
  answeredOnce(label: string): boolean {
    if (this.answered.has(label) || label === OVERFLOW_MODEL_LABEL || label === INVALID_MODEL_LABEL) return false;
    const first = !this.served.has(label);
    this.answered.add(label);
    return first;
  }

  /**
   * Whether `label` may have the series `key` (an endpoint, or an endpoint and a status or reason):
   * always for a detailed or shared label; for another, while it has fewer than
   * MAX_SERIES_PER_UNSERVED_LABEL. The caller counts under `other` when not.
   */
  admit(label: string, key: string): boolean {
    if (SHARED_LABELS.has(label) || this.detailed(label)) return true;
    let series = this.unservedSeries.get(label);
    if (!series) {
      series = new Set();
      this.unservedSeries.set(label, series);
    }
    if (series.has(key)) return true;
    if (series.size >= MAX_SERIES_PER_UNSERVED_LABEL) return false;
    series.add(key);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }
}
