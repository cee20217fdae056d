/**
 * Ollama's OpenAI-compatible stream (`text/event-stream`): each event is `data: <json>\n\n`, the
 * stream ends with `data: [DONE]\n\n`, and with `stream_options.include_usage` a last event with
 * `"choices":[]` carries `usage` (Ollama `middleware/openai.go` ChatWriter, CompleteWriter).
 * A stream that ends without `[DONE]` failed: Ollama loses mid-stream errors on `/v1`.
 *
 * As with NDJSON, only the events that matter are decoded: the finish event (`"finish_reason":"`),
 * the usage event (`"choices":[]`) and error events. Content events are counted and timed from
 * their bytes alone. Events may be split across chunks at any byte; one that reaches
 * `MAX_INSPECT_BYTES` is counted as oversized and skipped rather than held.
 */
import { absorbJson, appendText, decodeObject, emptySummary, markContent, MAX_INSPECT_BYTES, NO_CAPTURE, type CallSummary, type ParserOptions, type ResponseParser } from './summary';

const EVENT_END = Buffer.from('\n\n');
const DATA = Buffer.from('data:');
const DONE = Buffer.from('[DONE]');
const FINISH_MARK = Buffer.from('"finish_reason":"');
const USAGE_EVENT_MARK = Buffer.from('"choices":[]');
const ERROR_PREFIX = Buffer.from('{"error"');
const NL = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const EMPTY = Buffer.alloc(0);
const ignore = (): void => {};

function startsWith(buf: Buffer, prefix: Buffer, at: number, end: number): boolean {
  return end - at >= prefix.length && buf.compare(prefix, 0, prefix.length, at, at + prefix.length) === 0;
}

/**
 * Finds one byte sequence in the events of a chunk, asked about in order. `buf.indexOf(mark, start)`
 * runs to the end of the chunk, not of the event, so asking it once per event would scan a chunk of
 * many small events once per event; remembering the next occurrence scans it about once.
 */
class Mark {
  private buf: Buffer = EMPTY;
  private at = -1;

  constructor(readonly bytes: Buffer) {}

  /** Where the mark first occurs in `buf` at or after `start`, or -1. Within one buffer, `start` only grows. */
  next(buf: Buffer, start: number): number {
    if (buf !== this.buf || (this.at !== -1 && this.at < start)) {
      this.buf = buf;
      this.at = buf.indexOf(this.bytes, start);
    }
    return this.at;
  }

  /** True when `buf[start, end)` contains the mark. */
  within(buf: Buffer, start: number, end: number): boolean {
    const at = this.next(buf, start);
    return at !== -1 && at + this.bytes.length <= end;
  }

  /** Forgets the buffer, after each chunk: so it is not kept alive, and a buffer pushed again is searched again. */
  reset(): void {
    this.buf = EMPTY;
    this.at = -1;
  }
}

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
    const last = tail[tail.length - 1];
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
    for (let i = 0; i < pieces.length; i++) this.onOversized(pieces[i], 0, pieces[i].length, i === 0);
  }
}

export class SseParser implements ResponseParser {
  readonly summary: CallSummary = emptySummary();
  private now = 0;
  private readonly splitter: SseEventSplitter;
  private readonly usageEvent = new Mark(USAGE_EVENT_MARK);
  private readonly finish = new Mark(FINISH_MARK);

  /** `maxEventBytes`: events this long or longer are counted as oversized, not decoded. */
  constructor(
    private readonly options: ParserOptions = NO_CAPTURE,
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
    this.usageEvent.reset();
    this.finish.reset();
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
      this.usageEvent.reset();
      this.finish.reset();
    }
    return this.summary;
  }

  private event(buf: Buffer, start: number, end: number): void {
    const s = this.summary;
    // Ollama sends exactly one `data:` line per event; the optional space follows the SSE spec.
    if (!startsWith(buf, DATA, start, end)) {
      // Comment lines (`:`) and other fields carry nothing we measure.
      if (buf[start] !== 0x3a) s.malformed++;
      return;
    }
    let p = start + DATA.length;
    if (buf[p] === SPACE) p++;
    if (end - p === DONE.length && startsWith(buf, DONE, p, end)) {
      s.complete = true;
      return;
    }
    if (end - p < 2 || buf[p] !== OPEN || buf[end - 1] !== CLOSE) {
      s.malformed++;
      return;
    }
    if (this.usageEvent.within(buf, p, end) || this.finish.within(buf, p, end) || startsWith(buf, ERROR_PREFIX, p, end)) {
      const obj = absorbJson(s, buf, p, end);
      if (this.options.captureText) appendText(s, obj, this.options.maxTextChars);
      return;
    }
    markContent(s, this.now);
    if (this.options.captureText) appendText(s, decodeObject(buf, p, end), this.options.maxTextChars);
  }
}

const USAGE_MEMBER = Buffer.from(',"usage":{');
const CLOSE_MARK = Buffer.from('}');

/**
 * Removes from an OpenAI stream what `stream_options.include_usage` added, for a client that did not
 * ask for it: the usage event (`"choices":[]`) and, on `/v1/completions`, the zeroed `"usage"`
 * member Ollama then appends to every chunk. Complete events without either pass through as the
 * same bytes; an event is held back only until its terminating blank line arrives.
 *
 * An event too large to hold (see `SseEventSplitter`) is forwarded as it comes, unchanged: what was
 * held of it at once, then the rest chunk by chunk. It is not stripped, which costs nothing real:
 * the usage event and member are a few dozen bytes.
 */
export class SseUsageStripper {
  private out: Buffer[] = [];
  private readonly splitter: SseEventSplitter;
  private readonly usageEvent = new Mark(USAGE_EVENT_MARK);
  private readonly usageMember = new Mark(USAGE_MEMBER);
  private readonly close = new Mark(CLOSE_MARK);

  constructor(maxEventBytes = MAX_INSPECT_BYTES) {
    this.splitter = new SseEventSplitter(
      (buf, start, end) => this.event(buf, start, end),
      (buf, start, end) => this.out.push(buf.subarray(start, end)),
      maxEventBytes,
    );
  }

  /** Bytes held back for an event whose terminator has not arrived. */
  get heldBytes(): number {
    return this.splitter.heldBytes;
  }

  /** Returns the bytes to forward for this chunk (possibly empty). */
  push(chunk: Buffer): Buffer {
    this.splitter.push(chunk);
    this.usageEvent.reset();
    this.usageMember.reset();
    this.close.reset();
    return this.take();
  }

  /** Returns whatever is left at the end of the stream (an unterminated last event), unchanged. */
  end(): Buffer {
    return this.splitter.takeTail() ?? EMPTY;
  }

  private take(): Buffer {
    const out = this.out;
    if (out.length === 0) return EMPTY;
    this.out = [];
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  private event(buf: Buffer, start: number, end: number): void {
    if (this.usageEvent.within(buf, start, end)) return;
    const at = this.usageMember.next(buf, start);
    if (at !== -1 && at < end) {
      // The usage object is flat (three integers), so it ends at the next `}`.
      const close = this.close.next(buf, at + USAGE_MEMBER.length);
      if (close !== -1 && close < end) {
        this.out.push(buf.subarray(start, at), buf.subarray(close + 1, end), EVENT_END);
        return;
      }
    }
    this.out.push(buf.subarray(start, end + 2));
  }
}
