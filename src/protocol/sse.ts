/**
 * Ollama's OpenAI-compatible stream (`text/event-stream`): each event is `data: <json>\n\n`, the
 * stream ends with `data: [DONE]\n\n`, and with `stream_options.include_usage` a last event with
 * `"choices":[]` carries `usage` (Ollama `middleware/openai.go` ChatWriter, CompleteWriter).
 * A stream that ends without `[DONE]` failed: Ollama loses mid-stream errors on `/v1`.
 *
 * As with NDJSON, only the events that matter are decoded: the finish event (`"finish_reason":"`),
 * the usage event (`"choices":[]`) and error events. Content events are counted and timed from
 * their bytes alone. Events may be split across chunks at any byte.
 */
import { absorbJson, appendText, decodeObject, emptySummary, NO_CAPTURE, type CallSummary, type ParserOptions, type ResponseParser } from './summary';

const EVENT_END = Buffer.from('\n\n');
const DATA = Buffer.from('data:');
const DONE = Buffer.from('[DONE]');
const FINISH_MARK = Buffer.from('"finish_reason":"');
const USAGE_EVENT_MARK = Buffer.from('"choices":[]');
const ERROR_PREFIX = Buffer.from('{"error"');
const SPACE = 0x20;
const OPEN = 0x7b;
const CLOSE = 0x7d;
const EMPTY = Buffer.alloc(0);

/** True when `buf[start, end)` contains `mark`. */
function within(buf: Buffer, mark: Buffer, start: number, end: number): boolean {
  const at = buf.indexOf(mark, start);
  return at !== -1 && at + mark.length <= end;
}

function startsWith(buf: Buffer, prefix: Buffer, at: number, end: number): boolean {
  return end - at >= prefix.length && buf.compare(prefix, 0, prefix.length, at, at + prefix.length) === 0;
}

/**
 * Splits a byte stream into SSE events (`\n\n`-terminated). Calls `onEvent(buf, start, end)` for
 * each event's bytes without the terminator, keeping an unterminated tail across chunks.
 */
export class SseEventSplitter {
  private tail: Buffer[] = [];

  constructor(private readonly onEvent: (buf: Buffer, start: number, end: number) => void) {}

  push(chunk: Buffer): void {
    let data = chunk;
    if (this.tail.length > 0) {
      this.tail.push(chunk);
      data = Buffer.concat(this.tail);
      this.tail = [];
    }
    let start = 0;
    let end = data.indexOf(EVENT_END);
    while (end !== -1) {
      this.onEvent(data, start, end);
      start = end + 2;
      end = data.indexOf(EVENT_END, start);
    }
    if (start < data.length) this.tail.push(start === 0 ? data : data.subarray(start));
  }

  /** Returns the unterminated bytes left at the end of the stream, if any. */
  takeTail(): Buffer | undefined {
    if (this.tail.length === 0) return undefined;
    const data = this.tail.length === 1 ? this.tail[0] : Buffer.concat(this.tail);
    this.tail = [];
    return data;
  }
}

export class SseParser implements ResponseParser {
  readonly summary: CallSummary = emptySummary();
  private now = 0;
  private readonly splitter = new SseEventSplitter((buf, start, end) => this.event(buf, start, end));

  constructor(private readonly options: ParserOptions = NO_CAPTURE) {}

  push(chunk: Buffer, now: number): void {
    const s = this.summary;
    const contentBefore = s.contentEvents;
    const previousContentAt = s.lastContentAt;
    this.now = now;
    this.splitter.push(chunk);
    if (s.contentEvents > contentBefore && previousContentAt !== undefined) this.options.onContentGap?.(now - previousContentAt);
  }

  end(now: number): CallSummary {
    this.now = now;
    const tail = this.splitter.takeTail();
    if (tail) {
      // A last event without its blank line (the stream was cut, or a single `\n` ended it).
      let end = tail.length;
      while (end > 0 && (tail[end - 1] === 0x0a || tail[end - 1] === 0x0d)) end--;
      if (end > 0) this.event(tail, 0, end);
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
    if (within(buf, USAGE_EVENT_MARK, p, end) || within(buf, FINISH_MARK, p, end) || startsWith(buf, ERROR_PREFIX, p, end)) {
      const obj = absorbJson(s, buf, p, end);
      if (this.options.captureText) appendText(s, obj, this.options.maxTextChars);
      return;
    }
    if (s.firstContentAt === undefined) s.firstContentAt = this.now;
    s.lastContentAt = this.now;
    s.contentEvents++;
    if (this.options.captureText) appendText(s, decodeObject(buf, p, end), this.options.maxTextChars);
  }
}

const USAGE_MEMBER = Buffer.from(',"usage":{');

/**
 * Removes from an OpenAI stream what `stream_options.include_usage` added, for a client that did not
 * ask for it: the usage event (`"choices":[]`) and, on `/v1/completions`, the zeroed `"usage"`
 * member Ollama then appends to every chunk. Complete events without either pass through as the
 * same bytes; an event is held back only until its terminating blank line arrives.
 */
export class SseUsageStripper {
  private out: Buffer[] = [];
  private readonly splitter = new SseEventSplitter((buf, start, end) => this.event(buf, start, end));

  /** Returns the bytes to forward for this chunk (possibly empty). */
  push(chunk: Buffer): Buffer {
    this.splitter.push(chunk);
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
    if (within(buf, USAGE_EVENT_MARK, start, end)) return;
    const at = buf.indexOf(USAGE_MEMBER, start);
    if (at !== -1 && at < end) {
      // The usage object is flat (three integers), so it ends at the next `}`.
      const close = buf.indexOf(CLOSE, at + USAGE_MEMBER.length);
      if (close !== -1 && close < end) {
        this.out.push(buf.subarray(start, at), buf.subarray(close + 1, end), EVENT_END);
        return;
      }
    }
    this.out.push(buf.subarray(start, end + 2));
  }
}
