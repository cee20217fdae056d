/**
 * The SSE shape shared by Ollama's Anthropic Messages and OpenAI Responses endpoints: every event is
 * `event: <type>\ndata: <compact json>\n\n`, one per flush (fixtures README §8.1). The base class
 * splits the stream into events, finds the type and the data of each from their bytes, and hands
 * them to the format's own `event`; a format decodes JSON only for the events that carry facts.
 */
import { NL, SseEventSplitter, startsWith } from './sse-events';
import { emptySummary, MAX_INSPECT_BYTES, NO_CAPTURE, type CallSummary, type ParserOptions, type ResponseParser } from './summary';

const EVENT = Buffer.from('event:');
const DATA = Buffer.from('data:');
const SPACE = 0x20;
const CR = 0x0d;
const OPEN = 0x7b;
const CLOSE = 0x7d;

export abstract class NamedEventParser implements ResponseParser {
  readonly summary: CallSummary = emptySummary();
  protected now = 0;
  private readonly splitter: SseEventSplitter;

  constructor(
    protected readonly options: ParserOptions = NO_CAPTURE,
    maxEventBytes = MAX_INSPECT_BYTES,
  ) {
    this.splitter = new SseEventSplitter(
      (buf, start, end) => this.split(buf, start, end),
      (_buf, _start, _end, first) => {
        if (first) this.summary.oversized++;
      },
      maxEventBytes,
    );
  }

  get heldBytes(): number {
    return this.splitter.heldBytes;
  }

  push(chunk: Buffer, now: number): void {
    this.now = now;
    this.splitter.push(chunk);
  }

  end(now: number): CallSummary {
    this.now = now;
    const tail = this.splitter.takeTail();
    if (tail) {
      let end = tail.length;
      while (end > 0 && (tail[end - 1] === NL || tail[end - 1] === CR)) end--;
      if (end >= this.splitter.maxEventBytes) this.summary.oversized++;
      else if (end > 0) this.split(tail, 0, end);
    }
    return this.summary;
  }

  /**
   * One event: its type is `buf[typeStart, typeEnd)`, its JSON data `buf[dataStart, dataEnd)`.
   * Compare the type with `isType`.
   */
  protected abstract event(buf: Buffer, typeStart: number, typeEnd: number, dataStart: number, dataEnd: number): void;

  /** Whether the event type `buf[start, end)` is `type`. */
  protected isType(buf: Buffer, start: number, end: number, type: Buffer): boolean {
    return end - start === type.length && startsWith(buf, type, start, end);
  }

  private split(buf: Buffer, start: number, end: number): void {
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
    this.event(buf, typeStart, nl, dataStart, end);
  }
}
