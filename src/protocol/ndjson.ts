/**
 * Ollama's native stream (`application/x-ndjson`): one compact JSON object per line, the statistics
 * on the final `"done":true` line, and an error, when one happens after output started, as a last
 * `{"error":"…"}` line with no `done` line after it (Ollama `server/routes.go` streamResponse).
 *
 * Only the lines that matter are decoded. Ollama writes compact JSON (`json.Marshal`), and a quote
 * inside a string value is always escaped, so the byte sequence `"done":true` can only be a key and
 * its value: content lines are recognised without parsing them, and only the final line (and an
 * error line) is handed to JSON.parse. A line is split across chunks at any byte: the pieces of an
 * unterminated line are kept and joined once, when its newline arrives. A line longer than
 * `MAX_INSPECT_BYTES` is counted as oversized, let go of, and skipped up to its newline.
 */
import {
  absorbJson,
  appendText,
  decodeObject,
  emptySummary,
  markContent,
  MAX_INSPECT_BYTES,
  NO_CAPTURE,
  type CallSummary,
  type ParserOptions,
  type ResponseParser,
} from './summary';
import { joinPieces, Mark } from './bytes';

const NL = 0x0a;
const DONE_MARK = Buffer.from('"done":true');
const ERROR_PREFIX = Buffer.from('{"error"');
const THINKING_MARK = Buffer.from('"","thinking":');
const OPEN = 0x7b; // {
const CLOSE = 0x7d; // }

export class NdjsonParser implements ResponseParser {
  readonly summary: CallSummary = emptySummary();
  /** Pieces of a line whose newline has not arrived yet, and their total length. */
  private tail: Buffer[] = [];
  private held = 0;
  /** Inside an oversized line, skipping to its newline. */
  private skipping = false;
  /** Lines that carry only thinking: an empty `content` (chat) or `response` (generate), then `thinking`. */
  private readonly thinking = new Mark(THINKING_MARK);

  /** `maxLineBytes`: longer lines are counted as oversized, not decoded. */
  constructor(
    private readonly options: ParserOptions = NO_CAPTURE,
    private readonly maxLineBytes = MAX_INSPECT_BYTES,
  ) {}

  /** Bytes held for a line whose newline has not arrived (never more than `maxLineBytes`). */
  get heldBytes(): number {
    return this.held;
  }

  push(chunk: Buffer, now: number): void {
    this.lines(chunk, now);
    this.thinking.reset();
  }

  private lines(chunk: Buffer, now: number): void {
    let start = 0;
    let nl = chunk.indexOf(NL);
    if (this.held > 0 || this.skipping) {
      if (nl === -1) {
        this.hold(chunk, 0);
        return;
      }
      this.finish(chunk, nl, now);
      start = nl + 1;
      nl = chunk.indexOf(NL, start);
    }
    // Where the next `"done":true` is in this chunk: searched once, so a chunk holding many lines
    // is scanned once, not once per line.
    let doneAt = nl === -1 ? -1 : chunk.indexOf(DONE_MARK, start);
    while (nl !== -1) {
      if (doneAt !== -1 && doneAt < start) doneAt = chunk.indexOf(DONE_MARK, start);
      if (nl - start > this.maxLineBytes) this.summary.oversized++;
      else this.line(chunk, start, nl, now, doneAt !== -1 && doneAt < nl ? doneAt : -1);
      start = nl + 1;
      nl = chunk.indexOf(NL, start);
    }
    if (start < chunk.length) this.hold(chunk, start);
  }

  /** Keeps `chunk[start…]` for the line in progress, or lets the line go when that would pass the cap. */
  private hold(chunk: Buffer, start: number): void {
    if (this.skipping) return;
    const size = this.held + chunk.length - start;
    if (size <= this.maxLineBytes) {
      this.tail.push(start === 0 ? chunk : chunk.subarray(start));
      this.held = size;
      return;
    }
    this.tail = [];
    this.held = 0;
    this.skipping = true;
    this.summary.oversized++;
  }

  /** The held (or skipped) line ends at `chunk[nl]`. */
  private finish(chunk: Buffer, nl: number, now: number): void {
    if (this.skipping) {
      this.skipping = false;
      return;
    }
    const tail = this.tail;
    const size = this.held + nl;
    this.tail = [];
    this.held = 0;
    if (size > this.maxLineBytes) {
      this.summary.oversized++;
      return;
    }
    tail.push(chunk.subarray(0, nl));
    const line = Buffer.concat(tail, size);
    this.line(line, 0, size, now, line.indexOf(DONE_MARK));
  }

  end(now: number): CallSummary {
    const tail = this.tail;
    const size = this.held;
    this.tail = [];
    this.held = 0;
    this.skipping = false;
    // The body ended without a final newline: the tail is the last line.
    if (size > 0) {
      const line = joinPieces(tail, size);
      this.line(line, 0, size, now, line.indexOf(DONE_MARK));
    }
    return this.summary;
  }

  /** One complete line, `buf[start, end)`; `doneAt` ≥ 0 when it holds the `"done":true` mark. */
  private line(buf: Buffer, start: number, end: number, now: number, doneAt: number): void {
    const s = this.summary;
    if (end - start < 2 || buf[start] !== OPEN || buf[end - 1] !== CLOSE) {
      s.malformed++;
      return;
    }
    if (doneAt !== -1) {
      // Almost always the final line; the mark can also sit in a nested object (tool-call
      // arguments), so the top-level `done` decides.
      const obj = absorbJson(s, buf, start, end);
      if (obj === undefined) return;
      if (this.options.captureText) appendText(s, obj, this.options.maxTextChars);
      if (obj.done === true) {
        s.complete = true;
        return;
      }
    } else if (end - start >= ERROR_PREFIX.length && buf.compare(ERROR_PREFIX, 0, ERROR_PREFIX.length, start, start + ERROR_PREFIX.length) === 0) {
      absorbJson(s, buf, start, end);
      return;
    }
    markContent(s, now, this.thinking.within(buf, start, end));
    if (this.options.captureText && doneAt === -1) appendText(s, decodeObject(buf, start, end), this.options.maxTextChars);
  }
}
