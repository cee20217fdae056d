/**
 * One recorder per instrumented request: created when the request arrives (starting the GenAI
 * span), told about the request once the body is read, fed the gaps between streamed content
 * chunks as they pass, and finished exactly once — on completion, failure or client abort — with
 * what the response told. Metric and span work happens in `begin`, `setRequest`, `contentGap` and
 * `finish`.
 */
import { context } from '@opentelemetry/api';
import { AttributeCache, type CallAttributes } from './attributes';
import type { CallOutcome, CallRequest } from './call';
import { recordGenAiCall, recordOllamaCall } from './call-metrics';
import { CallSpan, type TracingOptions } from './call-span';
import { ATTR_REASON, ATTR_SCOPE, UNKNOWN_LABEL, type Instruments } from './instruments';
import type { ModelLabels } from './labels';

export type { TracingOptions } from './call-span';
export type { CallOutcome, CallRequest } from './call';

export interface MeasurementOptions {
  /** A gap between content chunks longer than this (ms) counts as a stall. */
  stallMs: number;
}

export class Telemetry {
  readonly attributes: AttributeCache;

  constructor(
    readonly instruments: Instruments,
    readonly modelLabels: ModelLabels,
    readonly tracing: TracingOptions,
    readonly measurement: MeasurementOptions = { stallMs: 2000 },
  ) {
    this.attributes = new AttributeCache(tracing.serverAddress, tracing.serverPort);
  }

  /** Counts a request refused for its credentials (`reason`: missing or invalid; `scope`: api or metrics). */
  authFailure(reason: string, scope: string): void {
    this.instruments.ollama?.authFailures.add(1, { [ATTR_REASON]: reason, [ATTR_SCOPE]: scope });
  }

  /** Starts recording a request for `operation` on `endpoint` (a route template), received at `startedAt` (ms). */
  begin(operation: string, endpoint: string, startedAt: number): CallRecorder {
    return new CallRecorder(this, operation, endpoint, startedAt);
  }
}

export class CallRecorder {
  private model = UNKNOWN_LABEL;
  /** Set once the model is known; until then the call is in no series but the request count. */
  private attrs: CallAttributes | undefined;
  private inFlight = false;
  private finished = false;
  /** Gaps between content chunks longer than STREAM_STALL_SECONDS. */
  private stalls = 0;
  private readonly span: CallSpan;

  constructor(
    private readonly telemetry: Telemetry,
    private readonly operation: string,
    readonly endpoint: string,
    readonly startedAt: number,
  ) {
    this.span = new CallSpan(telemetry.tracing, operation, endpoint, startedAt);
  }

  /** Runs `fn` in the GenAI span's context, so the upstream request becomes its child. */
  run<T>(fn: () => T): T {
    return context.with(this.span.ctx, fn);
  }

  /** Whether the parser should collect the answer's text (content capture is on and the span records). */
  get captureText(): boolean {
    return this.telemetry.tracing.captureContent && this.span.recording;
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
    this.attrs = this.telemetry.attributes.get(this.operation, this.endpoint, this.model);
    const ins = this.telemetry.instruments.ollama;
    if (ins) {
      ins.inFlight.add(1, this.attrs.modelEndpoint);
      this.inFlight = true;
    }
    this.span.request(req);
  }

  /**
   * A gap (ms) between two streamed content chunks, recorded as the chunk passes (so a thousand
   * streams ending together do not record all their gaps at once).
   */
  contentGap(ms: number): void {
    const ins = this.telemetry.instruments.ollama;
    if (!ins) return;
    const attrs = this.attrs ?? this.telemetry.attributes.get(this.operation, this.endpoint, this.model);
    ins.interToken.record(ms / 1000, attrs.model);
    if (ms > this.telemetry.measurement.stallMs) this.stalls++;
  }

  /** Records the request. Only the first call counts. */
  finish(outcome: CallOutcome, endedAt: number): void {
    if (this.finished) return;
    this.finished = true;
    const attrs = this.attrs ?? this.telemetry.attributes.get(this.operation, this.endpoint, this.model);
    const s = outcome.summary;
    const measures = {
      model: this.model,
      endpoint: this.endpoint,
      wallSeconds: Math.max(0, endedAt - this.startedAt) / 1000,
      // Time to first token, for streams: request received → first content chunk forwarded.
      ttftSeconds: outcome.streamed && s?.firstContentAt !== undefined ? Math.max(0, s.firstContentAt - this.startedAt) / 1000 : undefined,
      stalls: this.stalls,
      wasInFlight: this.inFlight,
    };
    const ins = this.telemetry.instruments;
    if (ins.ollama) recordOllamaCall(ins.ollama, attrs, outcome, measures);
    if (ins.genAi) recordGenAiCall(ins.genAi, attrs, outcome, measures);
    this.span.end(outcome, endedAt);
  }
}
