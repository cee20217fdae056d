/**
 * The SSE shape shared by Ollama's Anthropic Messages and OpenAI Responses endpoints: every event is
 * `event: <type>\ndata: <compact json>\n\n`, one per flush (fixtures README §8.1). The base class
 * splits the stream into events, finds the type and the data of each from their bytes, and hands
 * them to the format's own `named`; a format decodes JSON only for the events that carry facts.
 */
import { NL, SseEventParser, startsWith } from './sse-events';

const EVENT = Buffer.from('event:');
const DATA = Buffer.from('data:');
const SPACE = 0x20;
const OPEN = 0x7b;
const CLOSE = 0x7d;

export abstract class NamedEventParser extends SseEventParser {
  /**
   * One event: its type is `buf[typeStart, typeEnd)`, its JSON data `buf[dataStart, dataEnd)`.
   * Compare the type with `isType`.
   */
  protected abstract named(buf: Buffer, typeStart: number, typeEnd: number, dataStart: number, dataEnd: number): void;

  /** Whether the event type `buf[start, end)` is `type`. */
  protected isType(buf: Buffer, start: number, end: number, type: Buffer): boolean {
    return end - start === type.length && startsWith(buf, type, start, end);
  }

  protected event(buf: Buffer, start: number, end: number): void {
    const s = this.summary;
    if (buf[start] === 0x3a) return; // a comment line
    if (!startsWith(buf, EVENT, start, end)) {
      s.malformed++;
      return;
    }
    let typeStart = start + EVENT.length;
    if (buf[typeStart] === SPACE) typeStart++;
    const nl = buf.indexOf(NL, typeStart);
    if (nl === -1 || nl >= end) {
      s.malformed++;
      return;
    }
    let dataStart = nl + 1;
    if (!startsWith(buf, DATA, dataStart, end)) {
      s.malformed++;
      return;
    }
    dataStart += DATA.length;
    if (buf[dataStart] === SPACE) dataStart++;
    if (end - dataStart < 2 || buf[dataStart] !== OPEN || buf[end - 1] !== CLOSE) {
      s.malformed++;
      return;
    }
    this.named(buf, typeStart, nl, dataStart, end);
  }
}
