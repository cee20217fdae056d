/**
 * One rendering shared by every asker, and paced by its own cost: a scrape's exposition (or the
 * workers' merge of theirs) is rendered once for all the scrapes that arrive while it is being
 * made, and the next rendering starts no sooner than PACE_FACTOR times the last one's cost after
 * it ended. Scrapers in a loop, however many, then take at most 1 / (1 + PACE_FACTOR) of the event
 * loop; a scrape that arrives after the pause is rendered at once, and an answer is never older
 * than the request (what a scrape shows was counted no earlier than it was asked).
 */
import { performance } from 'node:perf_hooks';

/** The pause after a rendering, in multiples of its cost. */
export const PACE_FACTOR = 4;
/** Longest pause, whatever a rendering cost. */
const MAX_PAUSE_MS = 2000;

export class PacedRendering<T> {
  /** The rendering callers join now (it has not started reading yet). */
  private next: Promise<T> | undefined;
  /** The rendering under way, if any. */
  private running: Promise<unknown> = Promise.resolve();
  /** When the next rendering may start (performance.now() ms). */
  private notBefore = 0;

  constructor(
    /** Renders; returns the value and, when the caller measures it itself, the CPU it cost (ms). */
    private readonly render: () => Promise<{ value: T; costMs?: number }>,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The value, rendered after this call: shared with every caller until the rendering starts. */
  get(): Promise<T> {
    this.next ??= this.start();
    return this.next;
  }

  private async start(): Promise<T> {
    // One rendering at a time: a caller that came during one gets the next.
    await this.running.catch(() => undefined);
    for (let wait = this.notBefore - this.now(); wait > 0; wait = this.notBefore - this.now()) {
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    // From here on a new caller waits for the next rendering: this one may already have read.
    this.next = undefined;
    const rendering = this.renderOnce();
    this.running = rendering;
    return rendering;
  }

  private async renderOnce(): Promise<T> {
    // The process's CPU time, not the wall time: on a busy machine the wall time is mostly waiting.
    const cpu0 = process.cpuUsage();
    try {
      const { value, costMs } = await this.render();
      const cpu = process.cpuUsage(cpu0);
      this.notBefore = this.now() + Math.min(MAX_PAUSE_MS, PACE_FACTOR * (costMs ?? (cpu.user + cpu.system) / 1000));
      return value;
    } catch (err) {
      this.notBefore = this.now();
      throw err;
    }
  }
}
