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
import { Mark, SseEventParser, startsWith } from './sse-events';
import { absorbJson, appendText, decodeObject, markContent } from './summary';

const DATA = Buffer.from('data:');
const DONE = Buffer.from('[DONE]');
const FINISH_MARK = Buffer.from('"finish_reason":"');
/** The usage event that `stream_options.include_usage` adds (also what the stripper removes). */
export const USAGE_EVENT_MARK = Buffer.from('"choices":[]');
const ERROR_PREFIX = Buffer.from('{"error"');
const SPACE = 0x20;
const OPEN = 0x7b;
const CLOSE = 0x7d;

export class SseParser extends SseEventParser {
  private readonly usageEvent = new Mark(USAGE_EVENT_MARK);
  private readonly finish = new Mark(FINISH_MARK);

  protected override afterChunk(): void {
    this.usageEvent.reset();
    this.finish.reset();
  }

  protected event(buf: Buffer, start: number, end: number): void {
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
