/**
 * A single JSON response (`application/json`): non-streamed calls, embeddings, and every error
 * Ollama returns before a stream starts. The body is collected as it passes (it is forwarded at
 * the same time) and decoded once at the end.
 *
 * A body larger than `maxInspectBytes` (a big embeddings answer) is still measured, in bounded
 * memory: past the cap the parser keeps only its first `headBytes` and its last `tailBytes`. Ollama
 * writes compact Go JSON whose statistics come after the big arrays (`/api/embed`: model,
 * embeddings, total_duration, load_duration, prompt_eval_count; `/v1/embeddings`: object, data,
 * model, usage), so at the end the top-level members that lie whole in either piece are decoded,
 * and the middle never is. The head is scanned forward from the document's start; the tail starts
 * mid-document, so it is scanned backward from the closing brace, where the state (outside any
 * string, one level deep) is known, up to the leftmost top-level comma. Both scans are exact about
 * strings, escapes and nesting for the bytes they read. A big body from which no token count (nor
 * error) can be recovered is counted as malformed, so the call is recorded as a stream error
 * rather than as a silent miss.
 */
import { BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, COMMA, isBlank, joinPieces, OPEN_BRACE, OPEN_BRACKET, QUOTE } from './bytes';
import {
  absorbJson,
  absorbObject,
  appendText,
  decodeObject,
  emptySummary,
  MAX_INSPECT_BYTES,
  NO_CAPTURE,
  type CallSummary,
  type ParserOptions,
  type ResponseParser,
} from './summary';

/** Default cap on the body the gateway keeps whole and decodes: the same as for a stream's line or event. */
export const DEFAULT_MAX_INSPECT_BYTES = MAX_INSPECT_BYTES;

/** Past the cap, how much of the body's start is kept: `{"model":"…",` and more, with room to spare. */
export const JSON_HEAD_BYTES = 4 * 1024;

/** Past the cap, how much of the body's end is kept: the statistics, far smaller. */
export const JSON_TAIL_BYTES = 64 * 1024;

/** What is kept of a body past the cap. */
export interface JsonWindow {
  headBytes: number;
  tailBytes: number;
}

const DEFAULT_WINDOW: JsonWindow = { headBytes: JSON_HEAD_BYTES, tailBytes: JSON_TAIL_BYTES };

/** The last `size` bytes written, in one buffer allocated once. */
class TailRing {
  private readonly buf: Buffer;
  private at = 0;
  private filled = 0;

  constructor(readonly size: number) {
    this.buf = Buffer.alloc(size);
  }

  write(chunk: Buffer): void {
    const size = this.size;
    if (size === 0) return;
    if (chunk.length >= size) {
      chunk.copy(this.buf, 0, chunk.length - size);
      this.at = 0;
      this.filled = size;
      return;
    }
    const first = Math.min(chunk.length, size - this.at);
    chunk.copy(this.buf, this.at, 0, first);
    if (first < chunk.length) chunk.copy(this.buf, 0, first);
    this.at = (this.at + chunk.length) % size;
    this.filled = Math.min(size, this.filled + chunk.length);
  }

  /** The bytes held, oldest first. */
  bytes(): Buffer {
    if (this.filled < this.size) return this.buf.subarray(0, this.filled);
    return this.at === 0 ? this.buf : Buffer.concat([this.buf.subarray(this.at), this.buf.subarray(0, this.at)]);
  }
}

/**
 * The top-level members that lie whole in `head`, the first bytes of a JSON object, decoded; or
 * undefined when there are none. The scan starts at the document's start, so it always knows whether
 * it is in a string and how deep it is; a comma one level deep ends a member.
 */
export function headMembers(head: Buffer): Record<string, unknown> | undefined {
  let i = 0;
  while (isBlank(head[i])) i++;
  if (head[i] !== OPEN_BRACE) return undefined;
  const open = i;
  let depth = 0;
  let lastComma = -1;
  for (; i < head.length; i++) {
    const c = head[i];
    if (c === QUOTE) {
      for (i++; i < head.length && head[i] !== QUOTE; i++) if (head[i] === BACKSLASH) i++;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      depth--;
      if (depth === 0) return decodeObject(head, open, i + 1);
    } else if (c === COMMA && depth === 1) lastComma = i;
  }
  if (lastComma === -1) return undefined;
  return decodeText(head.toString('utf8', open, lastComma) + '}');
}

/**
 * The top-level members that lie whole in `tail`, the last bytes of a JSON object, decoded; or
 * undefined when the object does not end there or no member lies whole in it. The tail starts
 * anywhere (in a string, an escape, a multi-byte character), so it is scanned backward from the
 * closing brace: there the scan is outside any string and one level deep. Going backward, a quote
 * outside a string closes one; inside, a quote ends the string unless an odd run of backslashes
 * precedes it. A run that reaches the tail's first byte cannot be judged, and the scan stops there.
 */
export function tailMembers(tail: Buffer): Record<string, unknown> | undefined {
  let end = tail.length;
  while (end > 0 && isBlank(tail[end - 1])) end--;
  if (end === 0 || tail[end - 1] !== CLOSE_BRACE) return undefined;
  let depth = 1;
  let inString = false;
  let firstComma = -1;
  for (let i = end - 2; i >= 0; i--) {
    const c = tail[i];
    if (inString) {
      if (c !== QUOTE) continue;
      let j = i;
      while (j > 0 && tail[j - 1] === BACKSLASH) j--;
      if (j === 0) break; // what precedes the tail could be one more backslash
      if ((i - j) % 2 === 0) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth++;
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth--;
      if (depth === 0) return decodeObject(tail, i, end); // the whole object is in the tail
    } else if (c === COMMA && depth === 1) firstComma = i;
  }
  if (firstComma === -1) return undefined;
  return decodeText('{' + tail.toString('utf8', firstComma + 1, end));
}

function decodeText(text: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export class JsonBodyParser implements ResponseParser {
  readonly summary: CallSummary = emptySummary();
  /** The whole body while it is within the cap. */
  private chunks: Buffer[] = [];
  private size = 0;
  /** Past the cap: the body's first bytes (up to `headBytes`) and its last (up to `tailBytes`). */
  private head: Buffer | undefined;
  private headLength = 0;
  private tail: TailRing | undefined;

  constructor(
    private readonly options: ParserOptions = NO_CAPTURE,
    private readonly maxInspectBytes = DEFAULT_MAX_INSPECT_BYTES,
    private readonly window: JsonWindow = DEFAULT_WINDOW,
  ) {}

  /** Bytes of the body held now: at most the cap, then `headBytes + tailBytes`. */
  get heldBytes(): number {
    return this.tail ? this.window.headBytes + this.window.tailBytes : this.chunks.reduce((n, c) => n + c.length, 0);
  }

  push(chunk: Buffer): void {
    this.size += chunk.length;
    if (this.tail) {
      this.keep(chunk);
      return;
    }
    if (this.size <= this.maxInspectBytes) {
      this.chunks.push(chunk);
      return;
    }
    // Past the cap: from now on only the ends are kept.
    this.head = Buffer.alloc(this.window.headBytes);
    this.tail = new TailRing(this.window.tailBytes);
    for (const c of this.chunks) this.keep(c);
    this.keep(chunk);
    this.chunks = [];
  }

  private keep(chunk: Buffer): void {
    const head = this.head!;
    if (this.headLength < head.length) this.headLength += chunk.copy(head, this.headLength, 0, Math.min(chunk.length, head.length - this.headLength));
    this.tail!.write(chunk);
  }

  end(): CallSummary {
    const s = this.summary;
    if (this.tail) return this.endWindowed();
    const body = joinPieces(this.chunks, this.size);
    this.chunks = [];
    if (body.length === 0) return s;
    this.decodeWhole(body);
    return s;
  }

  private decodeWhole(body: Buffer): void {
    const s = this.summary;
    const obj = absorbJson(s, body, 0, body.length);
    if (obj !== undefined) s.complete = true;
    if (this.options.captureText) appendText(s, obj, this.options.maxTextChars);
  }

  private endWindowed(): CallSummary {
    const s = this.summary;
    const head = this.head!.subarray(0, this.headLength);
    const tail = this.tail!.bytes();
    this.head = undefined;
    this.tail = undefined;
    if (this.size <= head.length + tail.length) {
      // Head and tail meet (only with a cap smaller than them): together they are the whole body.
      this.decodeWhole(Buffer.concat([head, tail.subarray(tail.length - (this.size - head.length))]));
      return s;
    }
    const last = tailMembers(tail);
    if (last === undefined) {
      s.malformed++;
      return s;
    }
    // The middle is not decoded, so no answer text is captured from such a body.
    const malformed = s.malformed;
    absorbObject(s, { ...headMembers(head), ...last });
    if (s.inputTokens === undefined && s.outputTokens === undefined && s.errorMessage === undefined) {
      // One malformed answer, whether its count is missing or out of range.
      if (s.malformed === malformed) s.malformed++;
    } else s.complete = true;
    return s;
  }
}

/** A response that is neither NDJSON, SSE nor JSON (a `text/plain` 404 page, an empty 403). */
export class OpaqueParser implements ResponseParser {
  readonly summary: CallSummary = { ...emptySummary(), inspected: false };
  push(): void {}
  end(): CallSummary {
    return this.summary;
  }
}
