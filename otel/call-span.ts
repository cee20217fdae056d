/**
 * The GenAI CLIENT span of one LLM call (semconv v1.37 "GenAI spans"), with child spans that place
 * Ollama's reported phases on the gateway's timeline. Every text a client or Ollama chose is cut
 * before it lands on the span.
 */
import { performance } from 'node:perf_hooks';
import { context, SpanKind, SpanStatusCode, trace, TraceFlags, type Context, type Span, type Tracer } from '@opentelemetry/api';
import type { ExemplarRef } from './exemplars';
import { cachedTokensOf, errorType, LIFECYCLE_OPERATION, type CallFacts, type CallOutcome, type CallRequest, type ModelLifecycle } from './call';
import { clipText, MAX_MODEL_NAME_CHARS } from './labels';
import { inputMessages, outputMessages } from './messages';
import * as sc from './semconv';

const NS_PER_MS = 1e6;
/** Longest upstream-supplied text (ids, error messages) recorded on a span. */
const MAX_ATTRIBUTE_CHARS = 1024;
/** Most stop sequences / finish reasons recorded, and the longest of each. */
const MAX_LIST_ITEMS = 16;
const MAX_ITEM_CHARS = 256;

export interface TracingOptions {
  tracer: Tracer;
  /** OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: record prompt and completion text. */
  captureContent: boolean;
  /** Longest text part recorded when capturing content. */
  maxCaptureChars: number;
  /** Ollama's address, for `server.address` / `server.port`. */
  serverAddress: string;
  serverPort: number;
}

/** Epoch milliseconds for a performance.now() reading, as span timestamps want. */
const epochMs = (t: number): number => performance.timeOrigin + t;

const clipList = (items: string[]): string[] => items.slice(0, MAX_LIST_ITEMS).map((t) => clipText(t, MAX_ITEM_CHARS));

export class CallSpan {
  private readonly span: Span;
  /** The span's context: the upstream request made inside it becomes its child. */
  readonly ctx: Context;
  /** The requested model as recorded on the span (cut to size). */
  private requestModel: string | undefined;
  /** The lifecycle call the request announced. */
  private lifecycle: ModelLifecycle | undefined;

  constructor(
    private readonly tracing: TracingOptions,
    private readonly routeOperation: string,
    endpoint: string,
    private readonly startedAt: number,
  ) {
    this.span = tracing.tracer.startSpan(
      routeOperation,
      {
        kind: SpanKind.CLIENT,
        startTime: epochMs(startedAt),
        attributes: {
          [sc.GEN_AI_OPERATION_NAME]: routeOperation,
          [sc.GEN_AI_PROVIDER_NAME]: sc.PROVIDER_OLLAMA,
          [sc.SERVER_ADDRESS]: tracing.serverAddress,
          [sc.SERVER_PORT]: tracing.serverPort,
          [sc.GATEWAY_ENDPOINT]: endpoint,
        },
      },
      context.active(),
    );
    this.ctx = trace.setSpan(context.active(), this.span);
  }

  get recording(): boolean {
    return this.span.isRecording();
  }

  /** The span's trace id while it records; undefined when tracing is off (or it has ended). */
  get traceId(): string | undefined {
    return this.span.isRecording() ? this.span.spanContext().traceId : undefined;
  }

  /** The span's ids when it is sampled (an exemplar may point at it); undefined otherwise. */
  get exemplarRef(): ExemplarRef | undefined {
    if (!this.span.isRecording()) return undefined;
    const ids = this.span.spanContext();
    return (ids.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED ? { traceId: ids.traceId, spanId: ids.spanId } : undefined;
  }

  /** Who made the call. */
  owner(tenant: string, user: string | undefined): void {
    this.span.setAttribute(sc.GATEWAY_TENANT, tenant);
    if (user !== undefined) this.span.setAttribute(sc.ENDUSER_ID, user);
  }

  /** What the request asks for. */
  request(req: CallRequest): void {
    const span = this.span;
    if (!span.isRecording()) return;
    if (req.requestModel !== undefined) {
      this.requestModel = clipText(req.requestModel, MAX_MODEL_NAME_CHARS);
      span.setAttribute(sc.GEN_AI_REQUEST_MODEL, this.requestModel);
    }
    this.lifecycle = req.lifecycle;
    if (req.requestModel !== undefined || req.lifecycle !== undefined) {
      this.name(req.lifecycle === undefined ? this.routeOperation : LIFECYCLE_OPERATION[req.lifecycle]);
    }
    span.setAttribute(sc.GEN_AI_REQUEST_STREAM, req.stream);
    const p = req.params;
    if (p.temperature !== undefined) span.setAttribute(sc.GEN_AI_REQUEST_TEMPERATURE, p.temperature);
    if (p.topP !== undefined) span.setAttribute(sc.GEN_AI_REQUEST_TOP_P, p.topP);
    if (p.topK !== undefined) span.setAttribute(sc.GEN_AI_REQUEST_TOP_K, p.topK);
    if (p.maxTokens !== undefined) span.setAttribute(sc.GEN_AI_REQUEST_MAX_TOKENS, p.maxTokens);
    if (p.seed !== undefined) span.setAttribute(sc.GEN_AI_REQUEST_SEED, p.seed);
    if (p.stopSequences !== undefined) span.setAttribute(sc.GEN_AI_REQUEST_STOP_SEQUENCES, clipList(p.stopSequences));
    if (this.tracing.captureContent) {
      const input = inputMessages(req.body, this.tracing.maxCaptureChars);
      if (input !== undefined) span.setAttribute(sc.GEN_AI_INPUT_MESSAGES, input);
    }
  }

  /**
   * The backend the call is sent to (several backends): `server.address`/`server.port` become its,
   * with its name, why it was chosen and the attempt number (2 after a failover).
   */
  backend(address: string, port: number, name: string, reason: string, attempt: number): void {
    const span = this.span;
    if (!span.isRecording()) return;
    span.setAttribute(sc.SERVER_ADDRESS, address);
    span.setAttribute(sc.SERVER_PORT, port);
    span.setAttribute(sc.GATEWAY_BACKEND, name);
    span.setAttribute(sc.GATEWAY_ROUTING_REASON, reason);
    span.setAttribute(sc.GATEWAY_ATTEMPTS, attempt);
  }

  /** How many calls waited when the call joined the fair queue, and its wait (its tenant is set by the owner). */
  queued(position: number, waitSeconds: number): void {
    const span = this.span;
    if (!span.isRecording()) return;
    span.setAttribute(sc.GATEWAY_QUEUE_POSITION, position);
    span.setAttribute(sc.GATEWAY_QUEUE_WAIT, waitSeconds);
  }

  /** Names the span `<operation> <model>` (the operation alone without a model) and sets `gen_ai.operation.name`. */
  private name(operation: string): void {
    this.span.updateName(this.requestModel === undefined ? operation : `${operation} ${this.requestModel}`);
    this.span.setAttribute(sc.GEN_AI_OPERATION_NAME, operation);
  }

  /**
   * Records the outcome and ends the span at `endedAt`. `lifecycle` is what the call turned out to
   * be (the response's `done_reason` can overrule the request).
   */
  end(outcome: CallOutcome, endedAt: number, lifecycle?: ModelLifecycle, remote = false): void {
    if (this.span.isRecording()) {
      if (lifecycle !== this.lifecycle) this.name(lifecycle === undefined ? this.routeOperation : LIFECYCLE_OPERATION[lifecycle]);
      this.record(outcome, endedAt, remote);
    }
    this.span.end(epochMs(endedAt));
  }

  private record(outcome: CallOutcome, endedAt: number, remote: boolean): void {
    const span = this.span;
    const s = outcome.summary;
    span.setAttribute(sc.HTTP_RESPONSE_STATUS_CODE, outcome.status);
    span.setAttribute(sc.GATEWAY_LOCATION, remote ? sc.LOCATION_REMOTE : sc.LOCATION_LOCAL);
    if (s) {
      if (s.remoteHost !== undefined) span.setAttribute(sc.GATEWAY_REMOTE_HOST, clipText(s.remoteHost, MAX_ITEM_CHARS));
      if (s.remoteModel !== undefined) span.setAttribute(sc.GATEWAY_REMOTE_MODEL, clipText(s.remoteModel, MAX_MODEL_NAME_CHARS));
      if (s.responseModel !== undefined) span.setAttribute(sc.GEN_AI_RESPONSE_MODEL, clipText(s.responseModel, MAX_MODEL_NAME_CHARS));
      if (s.responseId !== undefined) span.setAttribute(sc.GEN_AI_RESPONSE_ID, clipText(s.responseId, MAX_ATTRIBUTE_CHARS));
      if (s.finishReasons !== undefined) span.setAttribute(sc.GEN_AI_RESPONSE_FINISH_REASONS, clipList(s.finishReasons));
      if (s.inputTokens !== undefined) span.setAttribute(sc.GEN_AI_USAGE_INPUT_TOKENS, s.inputTokens);
      const cached = cachedTokensOf(s);
      if (cached !== undefined) span.setAttribute(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, cached);
      if (s.outputTokens !== undefined) span.setAttribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, s.outputTokens);
      if (outcome.streamed && s.firstContentAt !== undefined) span.addEvent(sc.EVENT_FIRST_TOKEN, epochMs(s.firstContentAt));
      // A remote model's durations are another host's: no phase of this Ollama to place.
      if (!remote) this.phaseSpans(s, endedAt);
      if (this.tracing.captureContent) {
        const output = outputMessages(s.outputText, s.finishReasons?.[0], this.tracing.maxCaptureChars);
        if (output !== undefined) span.setAttribute(sc.GEN_AI_OUTPUT_MESSAGES, output);
      }
    }
    if (outcome.reason === 'client_cancelled') {
      // The client's choice, not a failure of the call.
      span.setAttribute(sc.GATEWAY_CLIENT_CANCELLED, true);
    } else if (outcome.reason) {
      span.setAttribute(sc.ERROR_TYPE, errorType(outcome));
      span.setStatus({ code: SpanStatusCode.ERROR, message: clipText(outcome.detail ?? s?.errorMessage ?? outcome.reason, MAX_ATTRIBUTE_CHARS) });
    }
  }

  /**
   * Places Ollama's reported phases on the gateway's timeline. Ollama's `total_duration` ends when
   * it wrote the final chunk, which the gateway saw at about `endedAt`: the handler started at
   * `endedAt − total`, loading ran from there, generation ended at `endedAt`, and prompt evaluation
   * ran just before generation.
   */
  private phaseSpans(s: CallFacts, endedAt: number): void {
    const tracer = this.tracing.tracer;
    const end = epochMs(endedAt);
    const child = (name: string, startMs: number, endMs: number) =>
      tracer.startSpan(name, { kind: SpanKind.INTERNAL, startTime: startMs }, this.ctx).end(endMs);
    if (s.loadDurationNs !== undefined && s.loadDurationNs > 0 && s.totalDurationNs !== undefined) {
      const start = Math.max(epochMs(this.startedAt), end - s.totalDurationNs / NS_PER_MS);
      child(sc.SPAN_LOAD, start, start + s.loadDurationNs / NS_PER_MS);
    }
    const evalMs = (s.evalDurationNs ?? 0) / NS_PER_MS;
    if (s.promptEvalDurationNs !== undefined && s.promptEvalDurationNs > 0) {
      const promptEnd = end - evalMs;
      child(sc.SPAN_PROMPT_EVAL, promptEnd - s.promptEvalDurationNs / NS_PER_MS, promptEnd);
    }
    if (evalMs > 0) child(sc.SPAN_GENERATION, end - evalMs, end);
  }
}
