/**
 * One recorder per instrumented request: created when the request arrives (starting the GenAI
 * span), told about the request once the body is read, and finished exactly once — on completion,
 * failure or client abort — with what the response parser learnt. All metric recording and all span
 * work for an LLM call happens in `begin`, `setRequest` and `finish`: nothing per chunk.
 */
import { performance } from 'node:perf_hooks';
import { context, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import type { CallSummary } from '../src/protocol/summary';
import type { RequestParams } from '../src/request/extract';
import { ATTR_ENDPOINT, ATTR_MODEL, ATTR_REASON, ATTR_STATUS, GEN_AI_TOKEN_TYPE, type ErrorReason, type Instruments } from './instruments';
import { clipText, MAX_MODEL_NAME_CHARS, type ModelLabels } from './labels';
import { inputMessages, outputMessages } from './messages';
import * as sc from './semconv';

const NS_PER_S = 1e9;
/** Longest upstream-supplied text (ids, error messages) recorded on a span. */
const MAX_ATTRIBUTE_CHARS = 1024;
const NS_PER_MS = 1e6;

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

export interface MeasurementOptions {
  /** A gap between content chunks longer than this (ms) counts as a stall. */
  stallMs: number;
}

export interface CallOutcome {
  /** HTTP status sent to the client; 499 when the client left before a response started. */
  status: number;
  /** Set when the call failed. */
  reason?: ErrorReason;
  /** What the response parser learnt; absent when no response came from Ollama. */
  summary?: CallSummary;
  /** Whether the response was a stream (NDJSON or SSE). */
  streamed: boolean;
  /** A short description of the failure, for the span status. */
  detail?: string;
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
 * The attribute sets one (operation, endpoint, model) records with, made once and reused: the
 * model label is bounded (MAX_MODEL_LABELS), so the cache is too.
 */
interface CallAttributes {
  /** `{model}` */
  model: Attributes;
  /** `{model, endpoint}` */
  modelEndpoint: Attributes;
  /** The GenAI metrics' attributes, and the same with `gen_ai.token.type`. */
  genAi: Attributes;
  genAiInput: Attributes;
  genAiOutput: Attributes;
}

/** Epoch milliseconds for a performance.now() reading, as span timestamps want. */
const epochMs = (t: number): number => performance.timeOrigin + t;

export class Telemetry {
  constructor(
    readonly instruments: Instruments,
    readonly modelLabels: ModelLabels,
    readonly tracing: TracingOptions,
    readonly measurement: MeasurementOptions = { stallMs: 2000 },
  ) {}

  private readonly attributeCache = new Map<string, CallAttributes>();

  /** The attribute sets for a call; `model` is an already bounded label. */
  attributesFor(operation: string, endpoint: string, model: string): CallAttributes {
    const key = `${operation}\u0000${endpoint}\u0000${model}`;
    let a = this.attributeCache.get(key);
    if (!a) {
      const genAi: Attributes = {
        [sc.GEN_AI_OPERATION_NAME]: operation,
        [sc.GEN_AI_PROVIDER_NAME]: sc.PROVIDER_OLLAMA,
        [sc.GEN_AI_REQUEST_MODEL]: model,
        [sc.SERVER_ADDRESS]: this.tracing.serverAddress,
        [sc.SERVER_PORT]: this.tracing.serverPort,
      };
      a = {
        model: { [ATTR_MODEL]: model },
        modelEndpoint: { [ATTR_MODEL]: model, [ATTR_ENDPOINT]: endpoint },
        genAi,
        genAiInput: { ...genAi, [GEN_AI_TOKEN_TYPE]: 'input' },
        genAiOutput: { ...genAi, [GEN_AI_TOKEN_TYPE]: 'output' },
      };
      this.attributeCache.set(key, a);
    }
    return a;
  }

  /** Counts a request refused for its credentials (`reason`: missing or invalid; `scope`: api or metrics). */
  authFailure(reason: string, scope: string): void {
    this.instruments.ollama?.authFailures.add(1, { [ATTR_REASON]: reason, scope });
  }

  /** Starts recording a request for `operation` on `endpoint` (a route template), received at `startedAt` (ms). */
  begin(operation: string, endpoint: string, startedAt: number): CallRecorder {
    return new CallRecorder(this, operation, endpoint, startedAt);
  }
}

export class CallRecorder {
  private model = 'unknown';
  /** Set once the model is known; until then the call is in no series but the request count. */
  private attrs: CallAttributes | undefined;
  private finished = false;
  /** Gaps between content chunks longer than STREAM_STALL_SECONDS. */
  private stalls = 0;
  private readonly span: Span;
  private readonly ctx: Context;

  constructor(
    private readonly telemetry: Telemetry,
    private readonly operation: string,
    readonly endpoint: string,
    readonly startedAt: number,
  ) {
    const t = telemetry.tracing;
    this.span = t.tracer.startSpan(
      operation,
      {
        kind: SpanKind.CLIENT,
        startTime: epochMs(startedAt),
        attributes: {
          [sc.GEN_AI_OPERATION_NAME]: operation,
          [sc.GEN_AI_PROVIDER_NAME]: sc.PROVIDER_OLLAMA,
          [sc.SERVER_ADDRESS]: t.serverAddress,
          [sc.SERVER_PORT]: t.serverPort,
          [sc.GATEWAY_ENDPOINT]: endpoint,
        },
      },
      context.active(),
    );
    this.ctx = trace.setSpan(context.active(), this.span);
  }

  /** Runs `fn` in the GenAI span's context, so the upstream request becomes its child. */
  run<T>(fn: () => T): T {
    return context.with(this.ctx, fn);
  }

  /** Whether the parser should collect the answer's text (content capture is on and the span records). */
  get captureText(): boolean {
    return this.telemetry.tracing.captureContent && this.span.isRecording();
  }

  get maxCaptureChars(): number {
    return this.telemetry.tracing.maxCaptureChars;
  }

  get modelLabel(): string {
    return this.model;
  }

  /** What the request asks for; called once the body has been read. */
  setRequest(req: CallRequest): void {
    this.model = this.telemetry.modelLabels.label(req.model);
    this.attrs = this.telemetry.attributesFor(this.operation, this.endpoint, this.model);
    this.telemetry.instruments.ollama?.inFlight.add(1, this.attrs.modelEndpoint);

    const span = this.span;
    if (!span.isRecording()) return;
    if (req.requestModel !== undefined) {
      const requestModel = clipText(req.requestModel, MAX_MODEL_NAME_CHARS);
      span.updateName(`${this.operation} ${requestModel}`);
      span.setAttribute(sc.GEN_AI_REQUEST_MODEL, requestModel);
    }
    span.setAttribute(sc.GEN_AI_REQUEST_STREAM, req.stream);
    const p = req.params;
    if (p.temperature !== undefined) span.setAttribute(sc.GEN_AI_REQUEST_TEMPERATURE, p.temperature);
    if (p.topP !== undefined) span.setAttribute(sc.GEN_AI_REQUEST_TOP_P, p.topP);
    if (p.topK !== undefined) span.setAttribute(sc.GEN_AI_REQUEST_TOP_K, p.topK);
    if (p.maxTokens !== undefined) span.setAttribute(sc.GEN_AI_REQUEST_MAX_TOKENS, p.maxTokens);
    if (p.seed !== undefined) span.setAttribute(sc.GEN_AI_REQUEST_SEED, p.seed);
    if (p.stopSequences !== undefined) span.setAttribute(sc.GEN_AI_REQUEST_STOP_SEQUENCES, p.stopSequences.slice(0, 16).map((t) => clipText(t, 256)));
    if (this.telemetry.tracing.captureContent) {
      const input = inputMessages(req.body, this.telemetry.tracing.maxCaptureChars);
      if (input !== undefined) span.setAttribute(sc.GEN_AI_INPUT_MESSAGES, input);
    }
  }

  /** Records the request. Only the first call counts. */
  finish(outcome: CallOutcome, endedAt: number): void {
    if (this.finished) return;
    this.finished = true;
    this.recordMetrics(outcome, endedAt);
    if (this.span.isRecording()) this.recordSpan(outcome, endedAt);
    this.span.end(epochMs(endedAt));
  }

  private recordMetrics(outcome: CallOutcome, endedAt: number): void {
    const attrs = this.attrs ?? this.telemetry.attributesFor(this.operation, this.endpoint, this.model);
    const wallSeconds = Math.max(0, endedAt - this.startedAt) / 1000;
    const s = outcome.summary;
    // Time to first token, for streams: request received → first content chunk forwarded.
    const ttftSeconds =
      outcome.streamed && s?.firstContentAt !== undefined ? Math.max(0, s.firstContentAt - this.startedAt) / 1000 : undefined;
    if (this.telemetry.instruments.ollama) this.recordOllama(outcome, attrs, wallSeconds, ttftSeconds);
    if (this.telemetry.instruments.genAi) this.recordGenAi(outcome, attrs, wallSeconds, ttftSeconds);
  }

  private recordOllama(outcome: CallOutcome, attrs: CallAttributes, wallSeconds: number, ttftSeconds: number | undefined): void {
    const ins = this.telemetry.instruments.ollama!;
    const model = this.model;
    const endpoint = this.endpoint;
    if (this.attrs) ins.inFlight.add(-1, this.attrs.modelEndpoint);

    ins.requests.add(1, { [ATTR_MODEL]: model, [ATTR_ENDPOINT]: endpoint, [ATTR_STATUS]: String(outcome.status) });
    ins.responseSeconds.record(wallSeconds, attrs.modelEndpoint);
    if (outcome.reason) {
      ins.requestErrors.add(1, { [ATTR_MODEL]: model, [ATTR_ENDPOINT]: endpoint, [ATTR_REASON]: outcome.reason });
    }

    const s = outcome.summary;
    if (!s) return;
    const modelOnly = attrs.model;
    if (s.loadDurationNs !== undefined) ins.loadSeconds.record(s.loadDurationNs / NS_PER_S, modelOnly);
    if (s.promptEvalDurationNs !== undefined) ins.promptEvalSeconds.record(s.promptEvalDurationNs / NS_PER_S, modelOnly);
    if (s.evalDurationNs !== undefined) ins.evalSeconds.record(s.evalDurationNs / NS_PER_S, modelOnly);
    if (s.inputTokens !== undefined && s.inputTokens > 0) ins.tokensProcessed.add(s.inputTokens, modelOnly);
    if (s.outputTokens !== undefined && s.outputTokens > 0) ins.tokensGenerated.add(s.outputTokens, modelOnly);
    const tps = tokensPerSecond(s, outcome.streamed);
    if (tps !== undefined) ins.tokensPerSecond.record(tps, modelOnly);
    if (s.totalDurationNs !== undefined) ins.queueSeconds.record(Math.max(0, wallSeconds - s.totalDurationNs / NS_PER_S), modelOnly);

    if (ttftSeconds !== undefined) ins.timeToFirstToken.record(ttftSeconds, modelOnly);
    if (this.stalls > 0) ins.streamStalls.add(this.stalls, modelOnly);
  }

  /**
   * Observer of the gaps between streamed content chunks, recorded one by one as chunks pass (so
   * a thousand streams ending together do not record all their gaps at once); undefined when the
   * `ollama` metric family is off.
   */
  get contentGapObserver(): ((ms: number) => void) | undefined {
    const ins = this.telemetry.instruments.ollama;
    if (!ins) return undefined;
    const attrs = this.telemetry.attributesFor(this.operation, this.endpoint, this.model).model;
    const stallMs = this.telemetry.measurement.stallMs;
    return (ms: number) => {
      ins.interToken.record(ms / 1000, attrs);
      if (ms > stallMs) this.stalls++;
    };
  }

  private recordGenAi(outcome: CallOutcome, a: CallAttributes, wallSeconds: number, ttftSeconds: number | undefined): void {
    const ins = this.telemetry.instruments.genAi!;
    const attrs = a.genAi;
    const failed = outcome.reason !== undefined && outcome.reason !== 'client_cancelled';
    ins.operationDuration.record(wallSeconds, failed ? { ...attrs, [sc.ERROR_TYPE]: errorType(outcome) } : attrs);
    const s = outcome.summary;
    if (!s) return;
    if (s.inputTokens !== undefined) ins.tokenUsage.record(s.inputTokens, a.genAiInput);
    if (s.outputTokens !== undefined) ins.tokenUsage.record(s.outputTokens, a.genAiOutput);
    if (outcome.reason) return; // the server-side latency metrics are for successful responses
    if (ttftSeconds !== undefined) ins.timeToFirstToken.record(ttftSeconds, attrs);
    const tps = tokensPerSecond(s, outcome.streamed);
    if (tps !== undefined) ins.timePerOutputToken.record(1 / tps, attrs);
  }

  private recordSpan(outcome: CallOutcome, endedAt: number): void {
    const span = this.span;
    const s = outcome.summary;
    span.setAttribute(sc.HTTP_RESPONSE_STATUS_CODE, outcome.status);
    if (s) {
      if (s.responseModel !== undefined) span.setAttribute(sc.GEN_AI_RESPONSE_MODEL, clipText(s.responseModel, MAX_MODEL_NAME_CHARS));
      if (s.responseId !== undefined) span.setAttribute(sc.GEN_AI_RESPONSE_ID, clipText(s.responseId, MAX_ATTRIBUTE_CHARS));
      if (s.finishReasons !== undefined) span.setAttribute(sc.GEN_AI_RESPONSE_FINISH_REASONS, s.finishReasons.slice(0, 16).map((r) => clipText(r, 64)));
      if (s.inputTokens !== undefined) span.setAttribute(sc.GEN_AI_USAGE_INPUT_TOKENS, s.inputTokens);
      if (s.outputTokens !== undefined) span.setAttribute(sc.GEN_AI_USAGE_OUTPUT_TOKENS, s.outputTokens);
      if (outcome.streamed && s.firstContentAt !== undefined) span.addEvent(sc.EVENT_FIRST_TOKEN, epochMs(s.firstContentAt));
      this.phaseSpans(s, endedAt);
      if (this.telemetry.tracing.captureContent) {
        const output = outputMessages(s.outputText, s.finishReasons?.[0], this.telemetry.tracing.maxCaptureChars);
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
  private phaseSpans(s: CallSummary, endedAt: number): void {
    const tracer = this.telemetry.tracing.tracer;
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

/** `error.type`: the HTTP status for Ollama's own 4xx/5xx answers, else the gateway's reason. */
function errorType(outcome: CallOutcome): string {
  return outcome.reason === 'upstream_4xx' || outcome.reason === 'upstream_5xx' ? String(outcome.status) : (outcome.reason ?? '');
}

/**
 * Ollama's own figure (`eval_count / eval_duration`) when it reports one; otherwise, for a stream,
 * output tokens over the time between the first and the last content chunk seen at the gateway.
 */
export function tokensPerSecond(s: CallSummary, streamed: boolean): number | undefined {
  if (s.outputTokens === undefined || s.outputTokens <= 0) return undefined;
  if (s.evalDurationNs !== undefined && s.evalDurationNs > 0) {
    return (s.outputTokens * NS_PER_S) / s.evalDurationNs;
  }
  if (streamed && s.firstContentAt !== undefined && s.lastContentAt !== undefined && s.lastContentAt > s.firstContentAt) {
    return s.outputTokens / ((s.lastContentAt - s.firstContentAt) / 1000);
  }
  return undefined;
}
