/**
 * Bounded `model` label values. A client can send any string as `model`; each distinct value would
 * be a new series on every `ollama_*` metric. Up to `max` distinct names are kept as they are;
 * after that, new names are reported as `other`, and `onCapReached` is called once.
 */

export const OVERFLOW_MODEL_LABEL = 'other';

export class ModelLabels {
  private readonly seen = new Set<string>();
  private warned = false;

  constructor(
    private readonly max: number,
    private readonly onCapReached: (max: number) => void = () => {},
  ) {}

  label(model: string): string {
    if (this.seen.has(model)) return model;
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
