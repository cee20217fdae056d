/**
 * Writes finished calls to the ledger off the call's path: `record` only appends to a buffer; a
 * timer writes what has gathered every `flushMs` (or sooner once `batchRows` are waiting), one
 * transaction per batch. While the database is slow or down, rows wait in the buffer, up to
 * `maxBuffered`; past it the oldest are dropped, counted (`ollama_ledger_rows_dropped_total`) and
 * logged once per outage. `close` writes everything still waiting (SIGTERM loses nothing); a
 * `kill -9` loses at most what gathered since the last write: `flushMs`.
 */
import type { UsageRecord, UsageSink } from '../../otel/usage';
import type { Logger } from '../logger';
import type { LedgerStore } from './store';

export interface WriterOptions {
  flushMs: number;
  batchRows: number;
  maxBuffered: number;
  /** Raw rows older than this many days are deleted (0: kept); checked hourly. */
  rawRetentionDays: number;
  /** Rollups older than this many days are deleted (0: kept for ever). */
  rollupRetentionDays: number;
}

export const DEFAULT_WRITER: WriterOptions = { flushMs: 1000, batchRows: 500, maxBuffered: 100_000, rawRetentionDays: 90, rollupRetentionDays: 0 };

const PRUNE_EVERY_MS = 3_600_000;
const DAY_MS = 86_400_000;

export class LedgerWriter implements UsageSink {
  private buffer: UsageRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> | undefined;
  private failing = false;
  private droppedSinceLog = 0;
  private closed = false;
  private lastPrune = 0;
  /** Told each batch once it is committed (the budgets stop counting those calls on their own). */
  onWritten: ((rows: readonly UsageRecord[]) => void) | undefined;
  /** Told rows it dropped (its buffer full, or the database gone at shutdown). */
  onDropped: ((rows: readonly UsageRecord[]) => void) | undefined;

  constructor(
    private readonly store: LedgerStore,
    private readonly log: Logger,
    private readonly counts: { written(n: number): void; dropped(n: number): void },
    private readonly options: WriterOptions = DEFAULT_WRITER,
  ) {
    this.timer = setInterval(() => void this.flush(), options.flushMs);
    this.timer.unref();
  }

  /** Rows waiting to be written. */
  get pending(): number {
    return this.buffer.length;
  }

  record(r: UsageRecord): void {
    if (this.closed) return;
    this.buffer.push(r);
    this.trim();
    if (this.buffer.length === this.options.batchRows) setImmediate(() => void this.flush());
  }

  /** Drops the oldest rows past the bound. */
  private trim(): void {
    const over = this.buffer.length - this.options.maxBuffered;
    if (over <= 0) return;
    const gone = this.buffer.splice(0, over);
    this.onDropped?.(gone);
    this.dropped(over);
  }

  private dropped(n: number): void {
    this.counts.dropped(n);
    if (this.droppedSinceLog === 0) {
      this.log.error(
        { ledger: this.store.where, max_buffered: this.options.maxBuffered },
        'usage ledger buffer full: dropping the oldest calls until the database takes writes again',
      );
    }
    this.droppedSinceLog += n;
  }

  /** Writes what is waiting, batch by batch; one write at a time. */
  flush(): Promise<void> {
    this.writing ??= this.writeAll().finally(() => {
      this.writing = undefined;
    });
    return this.writing;
  }

  private async writeAll(): Promise<void> {
    while (this.buffer.length > 0) {
      const batch = this.buffer.splice(0, this.options.batchRows);
      try {
        await this.store.insert(batch);
      } catch (err) {
        // Back in front of what arrived meanwhile, within the bound.
        this.buffer = batch.concat(this.buffer);
        this.trim();
        if (!this.failing) {
          this.failing = true;
          this.log.error(
            { ledger: this.store.where, waiting: this.buffer.length, error: (err as Error).message },
            'usage ledger write failed; calls wait in memory and are retried',
          );
        }
        return;
      }
      this.counts.written(batch.length);
      this.onWritten?.(batch);
      if (this.failing) {
        this.failing = false;
        this.log.warn({ ledger: this.store.where, dropped: this.droppedSinceLog }, 'usage ledger writes again');
        this.droppedSinceLog = 0;
      }
    }
    await this.maybePrune();
  }

  private async maybePrune(): Promise<void> {
    const { rawRetentionDays, rollupRetentionDays } = this.options;
    const now = Date.now();
    if ((rawRetentionDays === 0 && rollupRetentionDays === 0) || now - this.lastPrune < PRUNE_EVERY_MS) return;
    this.lastPrune = now;
    try {
      await this.store.prune(
        rawRetentionDays > 0 ? now - rawRetentionDays * DAY_MS : 0,
        rollupRetentionDays > 0 ? now - rollupRetentionDays * DAY_MS : undefined,
      );
    } catch (err) {
      this.log.warn({ ledger: this.store.where, error: (err as Error).message }, 'usage ledger retention failed; retried in an hour');
    }
  }

  /** Stops the timer and writes everything waiting (retrying a failed write a few times). */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (let attempt = 0; attempt < 3 && (this.buffer.length > 0 || this.writing); attempt++) {
      await this.flush();
      if (this.buffer.length > 0) await new Promise((r) => setTimeout(r, 200));
    }
    this.closed = true;
    if (this.buffer.length > 0) {
      this.log.error({ ledger: this.store.where, lost: this.buffer.length }, 'usage ledger unreachable at shutdown: calls not written');
      this.counts.dropped(this.buffer.length);
    }
    await this.store.close().catch(() => {});
  }
}
