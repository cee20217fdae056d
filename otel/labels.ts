/**
 * Bounded `model` label values. A client can send any string as `model`; each distinct value would
 * be a new series on every `ollama_*` metric. Models Ollama serves (told by the poller) always keep
 * their name; of all other names, up to `max` distinct ones are kept as they are, and after that
 * new names are reported as `other`, with `onCapReached` called once.
 */

export const OVERFLOW_MODEL_LABEL = 'other';

export class ModelLabels {
  private readonly seen = new Set<string>();
  private served = new Set<string>();
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

  get size(): number {
    return this.seen.size;
  }
}
