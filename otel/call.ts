/**
 * What the telemetry side is told about one LLM call: the request once its body is read, and the
 * outcome once it is over. Structural types defined here, so `otel/` depends on nothing in `src/`;
 * the protocol parsers' summary satisfies `CallFacts` as it is.
 */
import type { ErrorReason } from './instruments';

/** Generation parameters the request set (span attributes). */
export interface RequestParams {
  temperature?: number;
  topP?: number;
  topK?: number;
  maxTokens?: number;
  seed?: number;
  stopSequences?: string[];
}

export interface CallRequest {
  /** The model as Ollama resolves it (the metric label source). */
  model: string;
  /** The model as the client sent it (for span names and `gen_ai.request.model`). */
  requestModel: string | undefined;
  stream: boolean;
  params: RequestParams;
  /** The parsed request body, read only when capturing content. */
  body: Record<string, unknown> | undefined;
}

/**
 * What the response told about the call. Durations are Ollama's integer nanoseconds; times are the
 * gateway's clock (ms, `performance.now()`).
 */
export interface CallFacts {
  responseModel?: string;
  responseId?: string;
  finishReasons?: string[];
  inputTokens?: number;
  outputTokens?: number;
  totalDurationNs?: number;
  loadDurationNs?: number;
  promptEvalDurationNs?: number;
  evalDurationNs?: number;
  /** When the first and the last content chunk passed the gateway. */
  firstContentAt?: number;
  lastContentAt?: number;
  errorMessage?: string;
  /** The answer's text, when content capture is on. */
  outputText?: string;
}

export interface CallOutcome {
  /** HTTP status sent to the client; 499 when the client left before a response started. */
  status: number;
  /** Set when the call failed. */
  reason?: ErrorReason;
  /** What the response told; absent when no response came from Ollama. */
  summary?: CallFacts;
  /** Whether the response was a stream (NDJSON or SSE). */
  streamed: boolean;
  /** A short description of the failure, for the span status. */
  detail?: string;
}

const NS_PER_S = 1e9;

/**
 * Ollama's own figure (`eval_count / eval_duration`) when it reports one; otherwise, for a stream,
 * output tokens over the time between the first and the last content chunk seen at the gateway.
 */
export function tokensPerSecond(s: CallFacts, streamed: boolean): number | undefined {
  if (s.outputTokens === undefined || s.outputTokens <= 0) return undefined;
  if (s.evalDurationNs !== undefined && s.evalDurationNs > 0) {
    return (s.outputTokens * NS_PER_S) / s.evalDurationNs;
  }
  if (streamed && s.firstContentAt !== undefined && s.lastContentAt !== undefined && s.lastContentAt > s.firstContentAt) {
    return s.outputTokens / ((s.lastContentAt - s.firstContentAt) / 1000);
  }
  return undefined;
}

/** `error.type`: the HTTP status for Ollama's own 4xx/5xx answers, else the gateway's reason. */
export function errorType(outcome: CallOutcome): string {
  return outcome.reason === 'upstream_4xx' || outcome.reason === 'upstream_5xx' ? String(outcome.status) : (outcome.reason ?? '');
}
