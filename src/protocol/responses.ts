/**
 * Ollama's OpenAI Responses stream (`POST /v1/responses`, `text/event-stream`; fixtures README
 * §8.3, from `openai.ResponsesStreamConverter`): `response.created` / `response.in_progress`, then
 * `response.output_text.delta` for the answer, `response.reasoning_summary_text.delta` for
 * thinking and `response.function_call_arguments.delta` for tool calls, and finally
 * `response.completed`, the only event with usage. `response.failed` (web-search path) and `error`
 * report failures; any other failure after output started just ends the stream.
 *
 * Deltas are counted and timed from their bytes; only the events that carry facts are decoded.
 */
import { NamedEventParser } from './named-events';
import { absorbObject, appendString, decodeObject, markContent } from './summary';

const CREATED = Buffer.from('response.created');
const TEXT_DELTA = Buffer.from('response.output_text.delta');
const REASONING_DELTA = Buffer.from('response.reasoning_summary_text.delta');
const ARGUMENTS_DELTA = Buffer.from('response.function_call_arguments.delta');
const COMPLETED = Buffer.from('response.completed');
const FAILED = Buffer.from('response.failed');
const ERROR = Buffer.from('error');

export class ResponsesSseParser extends NamedEventParser {
  protected event(buf: Buffer, typeStart: number, typeEnd: number, dataStart: number, dataEnd: number): void {
    const s = this.summary;
    if (this.isType(buf, typeStart, typeEnd, TEXT_DELTA)) {
      markContent(s, this.now, false);
      if (this.options.captureText) {
        const delta = decodeObject(buf, dataStart, dataEnd)?.delta;
        if (typeof delta === 'string') appendString(s, delta, this.options.maxTextChars);
      }
    } else if (this.isType(buf, typeStart, typeEnd, REASONING_DELTA)) {
      markContent(s, this.now, true);
    } else if (this.isType(buf, typeStart, typeEnd, ARGUMENTS_DELTA)) {
      markContent(s, this.now, false);
    } else if (this.isType(buf, typeStart, typeEnd, COMPLETED)) {
      this.absorbResponse(buf, dataStart, dataEnd);
      s.complete = true;
    } else if (this.isType(buf, typeStart, typeEnd, CREATED)) {
      this.absorbResponse(buf, dataStart, dataEnd);
    } else if (this.isType(buf, typeStart, typeEnd, FAILED)) {
      const response = this.absorbResponse(buf, dataStart, dataEnd);
      s.errorMessage ??= typeof response?.status === 'string' ? `response ${response.status}` : 'response failed';
    } else if (this.isType(buf, typeStart, typeEnd, ERROR)) {
      const o = decodeObject(buf, dataStart, dataEnd);
      if (!o) s.malformed++;
      else s.errorMessage = typeof o.message === 'string' ? o.message : JSON.stringify(o.error ?? o);
    }
  }

  /** Absorbs the event's `response` object (id, model, usage, error); returns it. */
  private absorbResponse(buf: Buffer, dataStart: number, dataEnd: number): Record<string, unknown> | undefined {
    const response = decodeObject(buf, dataStart, dataEnd)?.response;
    if (!response || typeof response !== 'object') {
      this.summary.malformed++;
      return undefined;
    }
    absorbObject(this.summary, response);
    return response as Record<string, unknown>;
  }
}
