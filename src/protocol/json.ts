/**
 * A single JSON response (`application/json`): non-streamed calls, embeddings, and every error
 * Ollama returns before a stream starts. The body is collected as it passes (it is forwarded at
 * the same time) and decoded once at the end. A body larger than `maxInspectBytes` is forwarded
 * but not decoded, so a huge embeddings answer cannot make the gateway hold or parse megabytes.
 */
import { absorbJson, appendText, emptySummary, MAX_INSPECT_BYTES, NO_CAPTURE, type CallSummary, type ParserOptions, type ResponseParser } from './summary';
import { joinPieces } from './bytes';

/** Default cap on the body the gateway decodes for statistics: the same as for a stream's line or event. */
export const DEFAULT_MAX_INSPECT_BYTES = MAX_INSPECT_BYTES;

export class JsonBodyParser implements ResponseParser {
  readonly summary: CallSummary = emptySummary();
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly options: ParserOptions = NO_CAPTURE,
    private readonly maxInspectBytes = DEFAULT_MAX_INSPECT_BYTES,
  ) {}

  push(chunk: Buffer): void {
    if (!this.summary.inspected) return;
    this.size += chunk.length;
    if (this.size > this.maxInspectBytes) {
      this.summary.inspected = false;
      this.chunks = [];
      return;
    }
    this.chunks.push(chunk);
  }

  end(): CallSummary {
    const s = this.summary;
    if (!s.inspected) return s;
    const body = joinPieces(this.chunks, this.size);
    this.chunks = [];
    if (body.length === 0) return s;
    const obj = absorbJson(s, body, 0, body.length);
    if (obj !== undefined) s.complete = true;
    if (this.options.captureText) appendText(s, obj, this.options.maxTextChars);
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
