/**
 * Ollama's Anthropic Messages stream (`POST /v1/messages`, `text/event-stream`; fixtures README
 * §8.2, from `anthropic.StreamConverter.Process`): `message_start` (id, model, an input-token
 * estimate), then per block `content_block_start` / `content_block_delta`… / `content_block_stop`
 * (text, thinking or a tool call), then `message_delta` (stop reason and the real usage: input and
 * output tokens) and `message_stop`. An `error` event carries `{"type":"error","error":{…}}`; a
 * failure after output started just ends the stream without `message_stop`.
 *
 * Deltas are counted and timed from their bytes; only `message_start`, `message_delta` and `error`
 * are decoded.
 */
import { NamedEventParser } from './named-events';
import { absorbJson, appendString, decodeObject, int, markContent } from './summary';

const MESSAGE_START = Buffer.from('message_start');
const CONTENT_DELTA = Buffer.from('content_block_delta');
const MESSAGE_DELTA = Buffer.from('message_delta');
const MESSAGE_STOP = Buffer.from('message_stop');
const ERROR = Buffer.from('error');
const THINKING_DELTA = Buffer.from('"type":"thinking_delta"');

export class AnthropicSseParser extends NamedEventParser {
  /**
   * `message_start`'s input-token count. Since Ollama v0.15.5 it is a len/4 estimate whenever the
   * first chunk was not also the last (before, 0), and `message_delta` carries the real count; so
   * it is used only for a stream that ended properly with a `message_delta` that had none (older
   * Ollama), never for a stream that broke off.
   */
  private startInputTokens: number | undefined;

  protected named(buf: Buffer, typeStart: number, typeEnd: number, dataStart: number, dataEnd: number): void {
    const s = this.summary;
    if (this.isType(buf, typeStart, typeEnd, CONTENT_DELTA)) {
      // Searched within the event only: `buf` may be a chunk of many events.
      const thinking = buf.subarray(dataStart, dataEnd).indexOf(THINKING_DELTA) !== -1;
      markContent(s, this.now, thinking);
      if (this.options.captureText && !thinking) {
        const delta = decodeObject(buf, dataStart, dataEnd)?.delta as Record<string, unknown> | undefined;
        if (typeof delta?.text === 'string') appendString(s, delta.text, this.options.maxTextChars);
      }
    } else if (this.isType(buf, typeStart, typeEnd, MESSAGE_START)) {
      const message = decodeObject(buf, dataStart, dataEnd)?.message;
      if (message && typeof message === 'object') {
        const m = message as Record<string, unknown>;
        if (typeof m.model === 'string' && m.model !== '') s.responseModel = m.model;
        if (typeof m.id === 'string') s.responseId = m.id;
        const usage = m.usage as Record<string, unknown> | undefined;
        const input = usage?.input_tokens;
        const estimate = int(input);
        if (estimate !== undefined && estimate > 0) this.startInputTokens = estimate;
        else if (input !== undefined && input !== null && estimate === undefined) s.malformed++;
      } else s.malformed++;
    } else if (this.isType(buf, typeStart, typeEnd, MESSAGE_DELTA)) {
      absorbJson(s, buf, dataStart, dataEnd);
    } else if (this.isType(buf, typeStart, typeEnd, MESSAGE_STOP)) {
      s.complete = true;
      if (s.inputTokens === undefined && s.outputTokens !== undefined) s.inputTokens = this.startInputTokens;
    } else if (this.isType(buf, typeStart, typeEnd, ERROR)) {
      absorbJson(s, buf, dataStart, dataEnd);
    }
    // content_block_start / content_block_stop / ping carry nothing measured.
  }
}
