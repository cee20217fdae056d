/**
 * Ollama's OpenAI Responses stream (`POST /v1/responses`, `text/event-stream`; fixtures README
 * §8.3, from `openai.ResponsesStreamConverter`): `response.created` / `response.in_progress`, then
 * `response.output_text.delta` for the answer, `response.reasoning_summary_text.delta` for
 * thinking and `response.function_call_arguments.delta` for tool calls, and finally
 * `response.completed`, the only event with usage. `response.failed` (web-search path) and `error`
 * report failures; any other failure after output started just ends the stream.
 *
 * Deltas are counted and timed from their bytes; only the events that carry facts are decoded.
 * Token counts are taken from `response.completed` alone: `response.failed` carries a zeroed usage
 * for a call that never ran, which is no count.
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
  protected named(buf: Buffer, typeStart: number, typeEnd: number, dataStart: number, dataEnd: number): void {
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
      this.absorbResponse(buf, dataStart, dataEnd, true);
      s.complete = true;
    } else if (this.isType(buf, typeStart, typeEnd, CREATED)) {
      this.absorbResponse(buf, dataStart, dataEnd, false);
    } else if (this.isType(buf, typeStart, typeEnd, FAILED)) {
      const response = this.absorbResponse(buf, dataStart, dataEnd, false);
      s.errorMessage ??= typeof response?.status === 'string' ? `response ${response.status}` : 'response failed';
    } else if (this.isType(buf, typeStart, typeEnd, ERROR)) {
      // OpenAI's `{"type":"error","code","message","param"}`; a nested `error` object is read too.
      const o = decodeObject(buf, dataStart, dataEnd);
      if (!o) s.malformed++;
      else s.errorMessage = typeof o.message === 'string' ? o.message : (messageOf(o.error) ?? JSON.stringify(o.error ?? o));
    }
  }

  /**
   * Absorbs the event's `response` object (id, model, error, and its usage when `withUsage`);
   * returns it.
   */
  private absorbResponse(buf: Buffer, dataStart: number, dataEnd: number, withUsage: boolean): Record<string, unknown> | undefined {
    const response = decodeObject(buf, dataStart, dataEnd)?.response;
    if (!response || typeof response !== 'object' || Array.isArray(response)) {
      this.summary.malformed++;
      return undefined;
    }
    const r = response as Record<string, unknown>;
    absorbObject(this.summary, withUsage || r.usage === undefined ? r : { ...r, usage: undefined });
    return r;
  }
}

/** The `message` of an error object, if it has one. */
function messageOf(e: unknown): string | undefined {
  if (typeof e === 'string') return e;
  const m = e && typeof e === 'object' ? (e as Record<string, unknown>).message : undefined;
  return typeof m === 'string' ? m : undefined;
}
