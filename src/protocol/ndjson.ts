/**
 * Ollama's native stream (`application/x-ndjson`): one compact JSON object per line, the statistics
 * on the final `"done":true` line, and an error, when one happens after output started, as a last
 * `{"error":"…"}` line with no `done` line after it (Ollama `server/routes.go` streamResponse).
 *
 * Only the lines that matter are decoded. Ollama writes compact JSON (`json.Marshal`), and a quote
 * inside a string value is always escaped, so the byte sequence `"done":true` can only be a key and
 * its value: content lines are recognised without parsing them, and only the final line (and an
 * error line) is handed to JSON.parse. A line is split across chunks at any byte: the unterminated
 * tail is kept and joined with the next chunk.
 */
import { absorbJson, appendText, decodeObject, emptySummary, NO_CAPTURE, type CallSummary, type ParserOptions, type ResponseParser } from './summary';

const NL = 0x0a;
const DONE_MARK = Buffer.from('"done":true');
const ERROR_PREFIX = Buffer.from('{"error"');
const OPEN = 0x7b; // {
const CLOSE = 0x7d; // }

export class NdjsonParser implements ResponseParser {
  readonly summary: CallSummary = emptySummary();
  /** Pieces of a line whose newline has not arrived yet. */
  private tail: Buffer[] = [];

  constructor(private readonly options: ParserOptions = NO_CAPTURE) {}

  push(chunk: Buffer, now: number): void {
    const s = this.summary;
    const contentBefore = s.contentEvents;
    const previousContentAt = s.lastContentAt;
    this.lines(chunk, now);
    if (s.contentEvents > contentBefore && previousContentAt !== undefined) this.options.onContentGap?.(now - previousContentAt);
  }

  private lines(chunk: Buffer, now: number): void {
    let start = 0;
    let nl = chunk.indexOf(NL);
    if (this.tail.length > 0) {
      if (nl === -1) {
        this.tail.push(chunk);
        return;
      }
      this.tail.push(chunk.subarray(0, nl));
      const line = Buffer.concat(this.tail);
      this.tail = [];
      this.line(line, 0, line.length, now, line.indexOf(DONE_MARK));
      start = nl + 1;
      nl = chunk.indexOf(NL, start);
    }
    // Where the next `"done":true` is in this chunk: searched once, so a chunk holding many lines
    // is scanned once, not once per line.
    let doneAt = nl === -1 ? -1 : chunk.indexOf(DONE_MARK, start);
    while (nl !== -1) {
      if (doneAt !== -1 && doneAt < start) doneAt = chunk.indexOf(DONE_MARK, start);
      this.line(chunk, start, nl, now, doneAt !== -1 && doneAt < nl ? doneAt : -1);
      start = nl + 1;
      nl = chunk.indexOf(NL, start);
    }
    if (start < chunk.length) this.tail.push(start === 0 ? chunk : chunk.subarray(start));
  }

  end(now: number): CallSummary {
    if (this.tail.length > 0) {
      // The body ended without a final newline: the tail is the last line.
      const line = Buffer.concat(this.tail);
      this.tail = [];
      this.line(line, 0, line.length, now, line.indexOf(DONE_MARK));
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
    } else if (buf.compare(ERROR_PREFIX, 0, ERROR_PREFIX.length, start, start + ERROR_PREFIX.length) === 0) {
      absorbJson(s, buf, start, end);
      return;
    }
    if (s.firstContentAt === undefined) s.firstContentAt = now;
    s.lastContentAt = now;
    s.contentEvents++;
    if (this.options.captureText && doneAt === -1) appendText(s, decodeObject(buf, start, end), this.options.maxTextChars);
  }
}
