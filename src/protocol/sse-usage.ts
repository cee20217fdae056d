/**
 * The one rewrite the gateway makes to a stream: removing what it asked Ollama for on the client's
 * behalf (`stream_options.include_usage`) from an OpenAI-compatible SSE stream.
 */
import { joinPieces } from './bytes';
import { EMPTY, EVENT_END, Mark, SseEventSplitter } from './sse-events';
import { USAGE_EVENT_MARK } from './sse';
import { MAX_INSPECT_BYTES } from './summary';

const USAGE_MEMBER = Buffer.from(',"usage":{');
const OPEN = 0x7b;
const CLOSE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The index of the `}` that closes the object whose body starts at `from`, before `end`; -1 when
 * it does not close there. Strings are skipped, so a brace inside one does not count. The usage
 * object is no longer flat since Ollama reports cached tokens (`prompt_tokens_details`).
 */
export function objectEnd(buf: Buffer, from: number, end: number): number {
  let depth = 1;
  for (let i = from; i < end; i++) {
    const c = buf[i];
    if (c === QUOTE) {
      for (i++; i < end && buf[i] !== QUOTE; i++) if (buf[i] === BACKSLASH) i++;
    } else if (c === OPEN) depth++;
    else if (c === CLOSE && --depth === 0) return i;
  }
  return -1;
}

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
    return joinPieces(out);
  }

  private event(buf: Buffer, start: number, end: number): void {
    if (this.usageEvent.within(buf, start, end)) return;
    const at = this.usageMember.next(buf, start);
    if (at !== -1 && at < end) {
      const close = objectEnd(buf, at + USAGE_MEMBER.length, end);
      if (close !== -1 && close < end) {
        this.out.push(buf.subarray(start, at), buf.subarray(close + 1, end), EVENT_END);
        return;
      }
    }
    this.out.push(buf.subarray(start, end + 2));
  }
}
