/**
 * Server-sent events framing (`text/event-stream`, WHATWG HTML §9.2): an event ends at a blank line.
 * The splitter cuts a byte stream into events in linear time, holding at most a bounded tail; the
 * mark finder keeps searches for a byte sequence linear over a chunk of many events. Shared by the
 * SSE parser and the usage stripper.
 */
import { emptySummary, MAX_INSPECT_BYTES, NO_CAPTURE, type CallSummary, type ParserOptions, type ResponseParser } from './summary';

export { EMPTY, Mark, startsWith } from './bytes';

export const EVENT_END = Buffer.from('\n\n');
export const NL = 0x0a;
const ignore = (): void => {};

/**
 * Where the blank line that ends the current event ends in `chunk` (the index after it), or -1.
 * `afterNl`: the event's bytes so far end with `\n`, so a `\n` opening the chunk completes the blank line.
 */
function eventEnd(chunk: Buffer, afterNl: boolean): number {
  if (afterNl && chunk[0] === NL) return 1;
  const at = chunk.indexOf(EVENT_END);
  return at === -1 ? -1 : at + 2;
}

/**
 * Splits a byte stream into SSE events (`\n\n`-terminated). Calls `onEvent(buf, start, end)` for
 * each event: `buf[start, end)` is the event without its terminator, and `buf[end, end + 2)` is
 * the terminator.
 *
 * An event split across chunks is held as its pieces: each chunk is searched for the terminator
 * once, and the pieces are joined once, when the event completes. An event of `maxEventBytes` or
 * more is oversized (not "more than": held together with the first `\n` of a terminator split
 * across chunks, an event of exactly the cap would be one byte over it). The splitter lets go of
 * it and skips the rest of it up to its terminator, handing its bytes, in order and terminator
 * included, to `onOversized`, piece by piece (`first` marks the first piece of each such event).
 * So it never holds more than `maxEventBytes`, and what it reports does not depend on how the
 * stream was chunked.
 */
export class SseEventSplitter {
  /** Pieces of the event whose terminator has not arrived yet, and their total length. */
  private tail: Buffer[] = [];
  private held = 0;
  /** Inside an oversized event, skipping to its terminator; `skippedNl`: the last byte skipped was `\n`. */
  private skipping = false;
  private skippedNl = false;

  constructor(
    private readonly onEvent: (buf: Buffer, start: number, end: number) => void,
    private readonly onOversized: (buf: Buffer, start: number, end: number, first: boolean) => void = ignore,
    readonly maxEventBytes = MAX_INSPECT_BYTES,
  ) {}

  /** Bytes held for the event in progress (never more than `maxEventBytes`). */
  get heldBytes(): number {
    return this.held;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    let start = 0;
    if (this.skipping) start = this.skip(chunk);
    else if (this.held > 0) start = this.finish(chunk);
    if (start === -1) return;
    let end = chunk.indexOf(EVENT_END, start);
    while (end !== -1) {
      if (end - start < this.maxEventBytes) this.onEvent(chunk, start, end);
      else this.onOversized(chunk, start, end + 2, true);
      start = end + 2;
      end = chunk.indexOf(EVENT_END, start);
    }
    if (start < chunk.length) this.hold(chunk, start);
  }

  /** Returns the unterminated bytes left at the end of the stream, if any. */
  takeTail(): Buffer | undefined {
    const tail = this.tail;
    const held = this.held;
    this.tail = [];
    this.held = 0;
    this.skipping = false;
    if (held === 0) return undefined;
    return tail.length === 1 ? tail[0] : Buffer.concat(tail, held);
  }

  /** Completes the held event with the start of `chunk`; returns where the rest of `chunk` begins, or -1 when the event goes on. */
  private finish(chunk: Buffer): number {
    const tail = this.tail;
    const last = tail[tail.length - 1]!;
    const after = eventEnd(chunk, last[last.length - 1] === NL);
    if (after === -1) {
      this.hold(chunk, 0);
      return -1;
    }
    const size = this.held + after;
    this.tail = [];
    this.held = 0;
    if (size - 2 < this.maxEventBytes) {
      tail.push(chunk.subarray(0, after));
      this.onEvent(Buffer.concat(tail, size), 0, size - 2);
    } else {
      this.oversized(tail);
      this.onOversized(chunk, 0, after, false);
    }
    return after;
  }

  /** Keeps `chunk[start…]` for the event in progress, or lets the event go when that would pass the cap. */
  private hold(chunk: Buffer, start: number): void {
    const size = this.held + chunk.length - start;
    if (size <= this.maxEventBytes) {
      this.tail.push(start === 0 ? chunk : chunk.subarray(start));
      this.held = size;
      return;
    }
    const tail = this.tail;
    this.tail = [];
    this.held = 0;
    this.skipping = true;
    this.skippedNl = chunk[chunk.length - 1] === NL;
    const first = tail.length === 0;
    if (!first) this.oversized(tail);
    this.onOversized(chunk, start, chunk.length, first);
  }

  /** Skips an oversized event's bytes in `chunk`; returns where the rest of `chunk` begins, or -1 when the event goes on. */
  private skip(chunk: Buffer): number {
    const after = eventEnd(chunk, this.skippedNl);
    if (after === -1) {
      this.skippedNl = chunk[chunk.length - 1] === NL;
      this.onOversized(chunk, 0, chunk.length, false);
      return -1;
    }
    this.skipping = false;
    this.onOversized(chunk, 0, after, false);
    return after;
  }

  /** Hands the held pieces of an event that turned out oversized to `onOversized`. */
  private oversized(pieces: Buffer[]): void {
    pieces.forEach((piece, i) => this.onOversized(piece, 0, piece.length, i === 0));
  }
}

const CR = 0x0d;

/**
 * A parser of an SSE stream: splits it into events (bounded, linear), counts the oversized ones,
 * and hands each whole event to `event`, including an unterminated last one at the end. The wire
 * formats (OpenAI chunks, Anthropic and Responses events) say what an event means.
 */
export abstract class SseEventParser implements ResponseParser {
  readonly summary: CallSummary = emptySummary();
  /** The gateway clock (ms) of the chunk being read. */
  protected now = 0;
  private readonly splitter: SseEventSplitter;

  /** `maxEventBytes`: events this long or longer are counted as oversized, not decoded. */
  constructor(
    protected readonly options: ParserOptions = NO_CAPTURE,
    maxEventBytes = MAX_INSPECT_BYTES,
  ) {
    this.splitter = new SseEventSplitter(
      (buf, start, end) => this.event(buf, start, end),
      (_buf, _start, _end, first) => {
        if (first) this.summary.oversized++;
      },
      maxEventBytes,
    );
  }

  /** Bytes held for an event whose terminator has not arrived. */
  get heldBytes(): number {
    return this.splitter.heldBytes;
  }

  push(chunk: Buffer, now: number): void {
    this.now = now;
    this.splitter.push(chunk);
    this.afterChunk();
  }

  end(now: number): CallSummary {
    this.now = now;
    const tail = this.splitter.takeTail();
    if (tail) {
      // A last event without its blank line (the stream was cut, or a single `\n` ended it).
      let end = tail.length;
      while (end > 0 && (tail[end - 1] === NL || tail[end - 1] === CR)) end--;
      // The splitter holds at most the cap, so only an event of exactly the cap gets here.
      if (end >= this.splitter.maxEventBytes) this.summary.oversized++;
      else if (end > 0) this.event(tail, 0, end);
      this.afterChunk();
    }
    return this.summary;
  }

  /** One whole event, `buf[start, end)` without its terminating blank line. */
  protected abstract event(buf: Buffer, start: number, end: number): void;

  /** After each chunk: forget per-chunk search state (see `Mark`). */
  protected afterChunk(): void {}
}
