/**
 * An optional cap on LLM calls in flight to Ollama (MAX_CONCURRENT_REQUESTS). Calls beyond it wait
 * in a FIFO queue for at most QUEUE_TIMEOUT_SECONDS, then get a 503 with Retry-After, so a burst
 * cannot pile unbounded work onto Ollama.
 */

export class QueueTimeoutError extends Error {
  override name = 'QueueTimeoutError';
}

interface Waiter {
  grant: () => void;
  timer: NodeJS.Timeout;
}

export class ConcurrencyLimit {
  private active = 0;
  private readonly waiting: Waiter[] = [];

  constructor(
    readonly max: number,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Resolves with a release function once a slot is free; rejects with QueueTimeoutError after the
   * queue timeout. `onCancel` receives a function that withdraws the request from the queue (for a
   * client that leaves while waiting).
   */
  acquire(onCancel?: (withdraw: () => void) => void): Promise<() => void> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        grant: () => {
          clearTimeout(waiter.timer);
          this.active++;
          resolve(this.releaser());
        },
        timer: setTimeout(() => {
          this.remove(waiter);
          reject(new QueueTimeoutError(`all ${this.max} slots to Ollama stayed busy for ${this.timeoutMs / 1000} s (MAX_CONCURRENT_REQUESTS)`));
        }, this.timeoutMs),
      };
      this.waiting.push(waiter);
      onCancel?.(() => {
        clearTimeout(waiter.timer);
        this.remove(waiter);
      });
    });
  }

  private remove(w: Waiter): void {
    const i = this.waiting.indexOf(w);
    if (i !== -1) this.waiting.splice(i, 1);
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      this.waiting.shift()?.grant();
    };
  }
}
