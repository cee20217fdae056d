/**
 * What a response parser learns about one LLM call. Parsers fill it; the recorder turns it into
 * telemetry. Nothing here knows about HTTP or OpenTelemetry.
 *
 * Field meanings follow Ollama's API (`api/types.go` Metrics: durations are integer nanoseconds,
 * and every metric field is omitempty, so a missing one is simply unknown) and the OpenAI
 * `usage` object (`prompt_tokens`, `completion_tokens`).
 */

export interface CallSummary {
  /** `model` as echoed in the response. */
  responseModel?: string;
  /** OpenAI `id` (`chatcmpl-…`, `cmpl-…`). */
  responseId?: string;
  /** Why generation stopped: Ollama `done_reason` or OpenAI `finish_reason` values. */
  finishReasons?: string[];
  /** The whole prompt in every API family (Anthropic's cache reads added back, see `absorbObject`). */
  inputTokens?: number;
  /**
   * The part of the prompt served from the KV cache: native `prompt_eval_cached_count`, OpenAI
   * `prompt_tokens_details.cached_tokens`, Responses `input_tokens_details.cached_tokens`, Anthropic
   * `cache_read_input_tokens`. Undefined when the answer does not carry it (Ollama before it did).
   */
  cachedTokens?: number;
  outputTokens?: number;
  totalDurationNs?: number;
  loadDurationNs?: number;
  promptEvalDurationNs?: number;
  evalDurationNs?: number;
  /** Gateway clock (ms, performance.now) when the first and the last content chunk passed. */
  firstContentAt?: number;
  lastContentAt?: number;
  /** When the first chunk of the answer (not of thinking) passed. */
  firstAnswerAt?: number;
  /** Number of content lines/events seen (streams), thinking included. */
  contentEvents: number;
  /** How many of them carried thinking (Ollama's `thinking`, Anthropic `thinking_delta`, Responses reasoning). */
  thinkingEvents: number;
  /** The response ended properly: `done:true`, `data: [DONE]`, or a whole JSON body. */
  complete: boolean;
  /** An error Ollama reported in the body (`{"error": …}`), possibly inside a 200 stream. */
  errorMessage?: string;
  /** Lines or events that could not be decoded. */
  malformed: number;
  /**
   * Lines or events too large to inspect (see `MAX_INSPECT_BYTES`): forwarded unchanged, not
   * decoded, neither content nor malformed.
   */
  oversized: number;
  /** False when the body was too large to inspect; then `complete` says nothing. */
  inspected: boolean;
  /** The answer's text, collected only when the parser was asked to capture it. */
  outputText?: string;
  /**
   * Set when the model runs elsewhere (a cloud or remote model): Ollama relays the remote host's
   * answer with `remote_host` and `remote_model` (`api.ChatResponse`, fixtures README §10.2). Cut to
   * `MAX_REMOTE_CHARS`.
   */
  remoteHost?: string;
  remoteModel?: string;
}

/** Longest `remote_host` / `remote_model` kept from an answer. */
export const MAX_REMOTE_CHARS = 256;

/**
 * The most bytes a parser holds for one line, event or body it has not seen the end of. A longer one
 * is still forwarded, but the parser lets go of it and skips the rest of it: Ollama's own lines and
 * events are far smaller, so only a broken or hostile upstream sends one.
 */
export const MAX_INSPECT_BYTES = 8 * 1024 * 1024;

/** Options shared by the parsers. */
export interface ParserOptions {
  /** Collect the answer's text (costs a JSON decode per content chunk; off by default). */
  captureText: boolean;
  /** Stop collecting after this many characters. */
  maxTextChars: number;
}

export const NO_CAPTURE: ParserOptions = { captureText: false, maxTextChars: 0 };

export function emptySummary(): CallSummary {
  return { contentEvents: 0, thinkingEvents: 0, complete: false, malformed: 0, oversized: 0, inspected: true };
}

/** A content chunk (a token, or a few) passed at `now`; `thinking` when it is the model's reasoning. */
export function markContent(s: CallSummary, now: number, thinking = false): void {
  if (s.firstContentAt === undefined) s.firstContentAt = now;
  s.lastContentAt = now;
  s.contentEvents++;
  if (thinking) s.thinkingEvents++;
  else if (s.firstAnswerAt === undefined) s.firstAnswerAt = now;
}

/** The interface every response parser implements: fed each chunk as it passes, then ended. */
export interface ResponseParser {
  readonly summary: CallSummary;
  /** Feeds the next chunk; `now` is the gateway clock in ms. Never throws. */
  push(chunk: Buffer, now: number): void;
  /** The response ended; decodes any unterminated tail. Never throws. */
  end(now: number): CallSummary;
}

/**
 * The largest token count taken from an answer: 2^31 − 1. Ollama's counts are Go `int`s (64-bit on
 * the platforms it ships for), but no prompt or answer comes near this (the largest context windows
 * are a few million tokens), and a count past it can only be a broken or hostile answer, one that
 * would otherwise push the token counters towards `+Inf` for the life of the process.
 */
export const MAX_TOKEN_COUNT = 2 ** 31 - 1;

/**
 * The longest duration taken from an answer: 7 days, in nanoseconds. Ollama's durations are Go
 * `time.Duration`s (integer nanoseconds); no single call runs for a week.
 */
export const MAX_DURATION_NS = 7 * 24 * 3600 * 1e9;

/** A token count as Ollama writes one (an integer in 0…MAX_TOKEN_COUNT), else undefined. */
export const int = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_TOKEN_COUNT ? v : undefined);

/** A duration as Ollama writes one (integer nanoseconds in 0…MAX_DURATION_NS), else undefined. */
export const nanos = (v: unknown): number | undefined => (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_DURATION_NS ? v : undefined);

/** Whether `v` is present (not absent, not `null`) but not what `read` accepts: a malformed field. */
const invalid = (v: unknown, read: (v: unknown) => number | undefined): boolean => v !== undefined && v !== null && read(v) === undefined;

/** Ollama's metric fields (`api/types.go` Metrics), where each lands in the summary, and how each is read. */
const NATIVE_METRICS: readonly (readonly [
  string,
  'inputTokens' | 'cachedTokens' | 'outputTokens' | 'totalDurationNs' | 'loadDurationNs' | 'promptEvalDurationNs' | 'evalDurationNs',
  (v: unknown) => number | undefined,
])[] = [
  ['prompt_eval_count', 'inputTokens', int],
  // Since ollama/ollama PR #17943: present (0 included) whenever the runner reported it.
  ['prompt_eval_cached_count', 'cachedTokens', int],
  ['eval_count', 'outputTokens', int],
  ['total_duration', 'totalDurationNs', nanos],
  ['load_duration', 'loadDurationNs', nanos],
  ['prompt_eval_duration', 'promptEvalDurationNs', nanos],
  ['eval_duration', 'evalDurationNs', nanos],
];

/**
 * Copies what a decoded object says about the call into `s`: the final line of a native stream, an
 * OpenAI finish or usage event, an Anthropic `message_delta`, a Responses `response` object, or a
 * whole non-streamed body of any of these APIs. A count or duration outside what Ollama writes
 * (fractions, negatives, `1e308`, strings) is recorded nowhere, and the answer counts as malformed
 * (once, however many such fields it has).
 */
export function absorbObject(s: CallSummary, value: unknown): void {
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    s.malformed++;
    return;
  }
  const o = value as Record<string, unknown>;
  if (o.error !== undefined && o.error !== null) {
    const e = o.error;
    s.errorMessage =
      typeof e === 'string'
        ? e
        : e && typeof e === 'object' && typeof (e as Record<string, unknown>).message === 'string'
          ? ((e as Record<string, unknown>).message as string)
          : JSON.stringify(e);
  }
  if (typeof o.model === 'string' && o.model !== '') s.responseModel = o.model;
  if (typeof o.id === 'string') s.responseId = o.id;
  if (typeof o.remote_host === 'string' && o.remote_host !== '') s.remoteHost = o.remote_host.slice(0, MAX_REMOTE_CHARS);
  if (typeof o.remote_model === 'string' && o.remote_model !== '') s.remoteModel = o.remote_model.slice(0, MAX_REMOTE_CHARS);

  // Native API (chat, generate, embed)
  if (typeof o.done_reason === 'string') s.finishReasons = [o.done_reason];
  let bad = false;
  for (const [field, key, read] of NATIVE_METRICS) {
    const raw = o[field];
    const v = read(raw);
    if (v !== undefined) s[key] = v;
    else if (invalid(raw, read)) {
      // What an earlier chunk said is not the call's figure either: the field is unknown.
      s[key] = undefined;
      bad = true;
    }
  }

  // Anthropic Messages
  if (typeof o.stop_reason === 'string') s.finishReasons = [o.stop_reason];
  const delta = o.delta as Record<string, unknown> | undefined;
  if (delta && typeof delta === 'object' && typeof delta.stop_reason === 'string') s.finishReasons = [delta.stop_reason];

  // OpenAI-compatible APIs: chat and completions (`prompt_tokens`), Responses and Anthropic (`input_tokens`)
  const usage = o.usage;
  if (usage && typeof usage === 'object') {
    const u = usage as Record<string, unknown>;
    // The field the answer carries, read on its own: a malformed one is not replaced by the other.
    const promptRaw = u.prompt_tokens ?? u.input_tokens;
    const completionRaw = u.completion_tokens ?? u.output_tokens;
    const prompt = int(promptRaw);
    const completion = int(completionRaw);
    // Ollama's /v1/completions stream carries a zeroed usage on every chunk when usage is
    // requested; only the final usage event has the real counts, so zeros never overwrite.
    if (prompt !== undefined && (prompt > 0 || s.inputTokens === undefined)) s.inputTokens = prompt;
    else if (invalid(promptRaw, int)) {
      s.inputTokens = undefined;
      bad = true;
    }
    if (completion !== undefined && (completion > 0 || s.outputTokens === undefined)) s.outputTokens = completion;
    else if (invalid(completionRaw, int)) {
      s.outputTokens = undefined;
      bad = true;
    }
    // The cached counts are bounded like the others: one out of range is no count at all.
    if (
      invalid(u.cache_read_input_tokens, int) ||
      invalid(member(u, 'prompt_tokens_details')?.cached_tokens, int) ||
      invalid(member(u, 'input_tokens_details')?.cached_tokens, int)
    ) {
      s.cachedTokens = undefined;
      bad = true;
    } else absorbCached(s, u);
  }
  if (Array.isArray(o.choices)) {
    const reasons: string[] = [];
    for (const c of o.choices) {
      const r = c && typeof c === 'object' ? (c as Record<string, unknown>).finish_reason : undefined;
      if (typeof r === 'string') reasons.push(r);
    }
    if (reasons.length > 0) s.finishReasons = reasons;
  }
  if (bad) s.malformed++;
}

/** `o[key]` when it is an object (not an array). */
function member(o: Record<string, unknown>, key: string): Record<string, unknown> | undefined {
  const v = o[key];
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/**
 * The cached part of the prompt from a compatibility API's `usage`, the one place its mapping is
 * kept: OpenAI chat and completions `prompt_tokens_details.cached_tokens` and Responses
 * `input_tokens_details.cached_tokens`, with `prompt_tokens` / `input_tokens` the whole prompt;
 * Anthropic `cache_read_input_tokens`, with `input_tokens` the uncached part only, as in
 * Anthropic's own API, so the cache reads are added back and `inputTokens` is the whole prompt in
 * every family.
 *
 * The Ollama snapshot read here (`fb30760`, 2026-08-21) predates the change that added these
 * fields (ollama/ollama PR #17943), so the Anthropic rule follows Anthropic's API and fixtures
 * README §10.1, not Ollama's code: should Ollama's bridge put the whole prompt in `input_tokens`,
 * drop the add-back below.
 */
function absorbCached(s: CallSummary, u: Record<string, unknown>): void {
  const read = int(u.cache_read_input_tokens);
  if (read !== undefined) {
    s.cachedTokens = read;
    if (s.inputTokens !== undefined && int(u.input_tokens) !== undefined) s.inputTokens += read;
    return;
  }
  const chat = member(u, 'prompt_tokens_details');
  if (chat) {
    const cached = int(chat.cached_tokens);
    // Zeroed usage on every /v1/completions chunk: zeros never overwrite, as for the counts.
    if (cached !== undefined && (cached > 0 || s.cachedTokens === undefined)) s.cachedTokens = cached;
    return;
  }
  // Ollama's Responses answer had `input_tokens_details.cached_tokens` before it counted cached
  // tokens, always 0 (`openai/responses.go` at fb30760): a 0 there says nothing, so only a count
  // is taken, and an older Ollama's Responses calls change nothing.
  const responses = member(u, 'input_tokens_details');
  const cached = responses ? int(responses.cached_tokens) : undefined;
  if (cached !== undefined && cached > 0) s.cachedTokens = cached;
}

/** The text of an array of content blocks: Anthropic `{type:"text",text}`, Responses `{type:"output_text",text}`. */
function blocksText(blocks: unknown[]): string | undefined {
  const texts: string[] = [];
  for (const b of blocks) {
    if (!b || typeof b !== 'object') continue;
    const block = b as Record<string, unknown>;
    if ((block.type === 'text' || block.type === 'output_text') && typeof block.text === 'string') texts.push(block.text);
    else if (block.type === 'message' && Array.isArray(block.content)) texts.push(blocksText(block.content) ?? '');
  }
  return texts.length > 0 ? texts.join('') : undefined;
}

/**
 * The text a decoded chunk or body carries: native `message.content` / `response`, OpenAI
 * `delta.content` / `text` / `message.content`, Anthropic `content` blocks, Responses `output` items.
 */
function textOf(o: Record<string, unknown>): string | undefined {
  const msg = o.message as Record<string, unknown> | undefined;
  if (msg && typeof msg.content === 'string') return msg.content;
  if (typeof o.response === 'string') return o.response;
  if (Array.isArray(o.content)) return blocksText(o.content);
  if (Array.isArray(o.output)) return blocksText(o.output);
  const choice = Array.isArray(o.choices) ? (o.choices[0] as Record<string, unknown> | undefined) : undefined;
  if (!choice) return undefined;
  const delta = (choice.delta ?? choice.message) as Record<string, unknown> | undefined;
  if (delta && typeof delta.content === 'string') return delta.content;
  if (typeof choice.text === 'string') return choice.text;
  return undefined;
}

/**
 * Appends the text of a decoded object to `s.outputText`, keeping at most `maxChars + 1`
 * characters: one more than will be recorded, so the recorder can tell the text was cut.
 */
export function appendText(s: CallSummary, o: Record<string, unknown> | undefined, maxChars: number): void {
  if (!o) return;
  const text = textOf(o);
  if (text !== undefined) appendString(s, text, maxChars);
}

/** Appends `text` to `s.outputText`, within the same bound as `appendText`. */
export function appendString(s: CallSummary, text: string, maxChars: number): void {
  const have = s.outputText ?? '';
  s.outputText = have.length > maxChars ? have : have + text.slice(0, maxChars + 1 - have.length);
}

/** Decodes `buf[start, end)` as JSON without recording it; undefined when it is not an object. */
export function decodeObject(buf: Buffer, start: number, end: number): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(buf.toString('utf8', start, end));
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Decodes `buf[start, end)` as JSON and absorbs it. Returns the decoded object, or undefined (and
 * counts the line as malformed) when it is not a JSON object.
 */
export function absorbJson(s: CallSummary, buf: Buffer, start: number, end: number): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(buf.toString('utf8', start, end));
  } catch {
    s.malformed++;
    return undefined;
  }
  absorbObject(s, value);
  return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
