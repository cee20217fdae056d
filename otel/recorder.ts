/**
 * One recorder per instrumented request: created when the request arrives (starting the GenAI
 * span), told about the request once the body is read, fed the gaps between streamed content
 * chunks as they pass, and finished exactly once — on completion, failure or client abort — with
 * what the response told. Metric and span work happens in `begin`, `setRequest`, `contentGap` and
 * `finish`.
 */
import { context } from '@opentelemetry/api';
import { AttributeCache, type BackendRef, type CallAttributes } from './attributes';
import { contextUse, lifecycleOf, type CallFacts, type CallOutcome, type CallRequest, type ContextUse } from './call';
import { initEndpointSeries, initModelSeries, recordGenAiCall, recordGenAiLatestCall, recordOllamaCall, recordUnservedCall } from './call-metrics';
import { CallSpan, type TracingOptions } from './call-span';
import type { ExemplarStore } from './exemplars';
import type { CallSink } from './history/history';
import {
  ATTR_BACKEND,
  ATTR_FROM,
  ATTR_MODEL,
  ATTR_REASON,
  ATTR_SCOPE,
  ATTR_TENANT,
  ATTR_TO,
  UNKNOWN_LABEL,
  type Instruments,
  type RoutingReason,
} from './instruments';
import { OVERFLOW_MODEL_LABEL, type ModelLabels } from './labels';
import { recordTenantCall } from './tenant-metrics';
import { usageRecordOf, type CallOwner, type UsageSink } from './usage';
import { isRemoteModel, loadedContextLength, type FleetState } from './state';

export type { TracingOptions } from './call-span';
export type { CallOutcome, CallRequest } from './call';
export type { BackendRef } from './attributes';
export type { CallOwner, UsageRecord, UsageSink } from './usage';

/** A load Ollama reports taking this long or longer was a cold load, whatever the router knew. */
const COLD_LOAD_NS = 1e9;

export interface MeasurementOptions {
  /** A gap between content chunks longer than this (ms) counts as a stall. */
  stallMs: number;
}

export class Telemetry {
  readonly attributes: AttributeCache;
  /** Where sampled calls leave exemplars, when tracing is on. */
  exemplars: ExemplarStore | undefined;
  /** Model labels whose per-model counters exist (bounded like the labels themselves). */
  private readonly initialised = new Set<string>();

  constructor(
    readonly instruments: Instruments,
    readonly modelLabels: ModelLabels,
    readonly tracing: TracingOptions,
    readonly measurement: MeasurementOptions = { stallMs: 2000 },
    /** The poller's latest view of each Ollama (loaded models and their windows), when polling is on. */
    private readonly readState: () => FleetState | undefined = () => undefined,
    /** The configured backends; with more than one, the `ollama_*` series carry `backend`. */
    readonly backends: readonly BackendRef[] = [],
    /** The console's history, told what the instruments are told; undefined when the console is off. */
    readonly sink?: CallSink,
  ) {
    this.attributes = new AttributeCache(tracing.serverAddress, tracing.serverPort, backends.length > 1);
  }

  /** The usage ledger's writer, when the ledger is on; told every finished call. */
  usage: UsageSink | undefined;

  /** Counts calls the ledger wrote, and calls it had to drop. */
  ledgerWritten(n: number): void {
    this.instruments.tenant?.ledgerRows.add(n);
  }

  ledgerDropped(n: number): void {
    this.instruments.tenant?.ledgerDropped.add(n);
  }

  /** Several backends are configured (calls are routed, series carry `backend`). */
  get routed(): boolean {
    return this.backends.length > 1;
  }

  /** Counts a request refused for its credentials (`reason`: missing or invalid; `scope`: api or metrics). */
  authFailure(reason: string, scope: string): void {
    this.instruments.ollama?.authFailures.add(1, { [ATTR_REASON]: reason, [ATTR_SCOPE]: scope });
  }

  /**
   * The context window (tokens) `model` (a normalised name) runs with now, as the latest poll of
   * `/api/ps` reported it; undefined when unknown.
   */
  loadedContextLength(model: string, backend?: string): number | undefined {
    return loadedContextLength(this.readState(), model, backend);
  }

  /** Whether `model` (a normalised name) runs on another host, by its name or the latest `/api/tags`. */
  isRemoteModel(model: string): boolean {
    return isRemoteModel(this.readState(), model);
  }

  /**
   * Creates the per-model counters of a model label, and the error series of its endpoint, at 0 the
   * first time each is seen (bounded like the labels themselves).
   */
  initModel(operation: string, model: string, endpoint: string, withEndpoint: boolean): void {
    const ins = this.instruments.ollama;
    if (!ins) return;
    const first = !this.initialised.has(model);
    const pair = `${model}\u0000${endpoint}`;
    const firstPair = withEndpoint && !this.initialised.has(pair);
    if (!first && !firstPair) return;
    this.initialised.add(model);
    if (firstPair) this.initialised.add(pair);
    // With several backends, each one's series (the list bounds them).
    for (const backend of this.routed ? this.backends : [undefined]) {
      const attrs = this.attributes.get(operation, endpoint, model, backend);
      if (first) initModelSeries(ins, attrs);
      if (firstPair) initEndpointSeries(ins, attrs);
    }
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
  /** The backend the call was sent to (several backends), and whether it had the model loaded. */
  private backend: BackendRef | undefined;
  private warm: boolean | undefined;
  /**
   * What the outcome needs of the request: the model as Ollama resolves it, whether it loads or
   * unloads, its window. Not the request itself, whose parsed body must not outlive the send.
   */
  private request: Pick<CallRequest, 'model' | 'lifecycle' | 'numCtx' | 'numKeep'> | undefined;
  /** Gaps between content chunks longer than STREAM_STALL_SECONDS. */
  private stalls = 0;
  /** Who made the call; undefined only for calls recorded outside the gateway's admission. */
  private owner: CallOwner | undefined;
  /** With a `num_ctx` asked: the window the model ran with at the last poll, before this call. */
  private loadedContext: number | undefined;
  /** The console history's ring the call was counted in when it started. */
  private historyRing: string | undefined;
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

  /** Who made the call (decided at admission); the same object is read when the call finishes. */
  setOwner(owner: CallOwner): void {
    this.owner = owner;
    this.span.owner(owner.tenant, owner.user);
  }

  /** What the request asks for; called once the body has been read. */
  setRequest(req: CallRequest): void {
    this.request = { model: req.model, lifecycle: req.lifecycle, numCtx: req.numCtx, numKeep: req.numKeep };
    if (req.numCtx !== undefined && this.owner !== undefined) this.loadedContext = this.telemetry.loadedContextLength(req.model);
    const labels = this.telemetry.modelLabels;
    this.model = labels.label(req.model);
    // A name nobody serves has a bounded number of series (labels.ts); its in-flight gauge is one.
    if (!labels.detailed(this.model) && !labels.admit(this.model, this.endpoint)) this.model = OVERFLOW_MODEL_LABEL;
    this.attrs = this.telemetry.attributes.get(this.operation, this.endpoint, this.model);
    // A load or unload is not a generation: it makes no request-level series appear. A name that
    // is not detailed (labels.ts) gets its series if and when it answers.
    if (this.telemetry.modelLabels.detailed(this.model)) this.telemetry.initModel(this.operation, this.model, this.endpoint, req.lifecycle === undefined);
    const ins = this.telemetry.instruments.ollama;
    // A load or unload is no request in flight (nor in any other request-level metric).
    if (req.lifecycle === undefined) {
      ins?.inFlight.add(1, this.attrs.inFlight);
      this.historyRing = this.telemetry.sink?.started(this.model);
      this.inFlight = true;
    }
    this.span.request(req);
  }

  /**
   * The backend the call is sent to, why (`reason`), and whether it had the model loaded as far as
   * the router knew (`warm`; undefined when unknown). Called again for a second attempt
   * (`attempt` 2, reason `retry`), after `failover`. Only with several backends.
   */
  setBackend(backend: BackendRef, reason: RoutingReason, warm: boolean | undefined, attempt = 1): void {
    this.backend = backend;
    this.warm = warm;
    this.attrs = this.telemetry.attributes.get(this.operation, this.endpoint, this.model, backend);
    this.telemetry.instruments.fleet?.routingDecisions.add(1, { [ATTR_BACKEND]: backend.name, [ATTR_REASON]: reason });
    this.span.backend(backend.address, backend.port, backend.name, reason, attempt);
  }

  /**
   * The call's turn in the gateway's fair queue: its tenant, how many calls were waiting when it
   * joined, and how long it waited (also for a call refused from the queue).
   */
  queued(tenant: string, position: number, waitSeconds: number): void {
    this.telemetry.instruments.ollama?.fairQueueWaitSeconds.record(waitSeconds, { [ATTR_TENANT]: tenant });
    this.span.queued(position, waitSeconds);
  }

  /** The call failed at `from` before any response byte and goes to `to`. */
  failover(from: string, to: string): void {
    this.telemetry.instruments.fleet?.failovers.add(1, { [ATTR_FROM]: from, [ATTR_TO]: to });
  }

  /**
   * A gap (ms) between two streamed content chunks, recorded as the chunk passes (so a thousand
   * streams ending together do not record all their gaps at once).
   */
  contentGap(ms: number): void {
    const { ollama: ins, genAiLatest: latest } = this.telemetry.instruments;
    if (!ins && !latest) return;
    const attrs = this.attrs ?? this.telemetry.attributes.get(this.operation, this.endpoint, this.model);
    latest?.timePerOutputChunk.record(ms / 1000, attrs.genAi);
    if (!ins) return;
    ins.interToken.record(ms / 1000, attrs.model);
    if (ms > this.telemetry.measurement.stallMs) this.stalls++;
  }

  /** Records the request. Only the first call counts. */
  finish(outcome: CallOutcome, endedAt: number): void {
    if (this.finished) return;
    this.finished = true;
    const attrs = this.attrs ?? this.telemetry.attributes.get(this.operation, this.endpoint, this.model);
    const s = outcome.summary;
    const lifecycle = lifecycleOf(this.request?.lifecycle, s);
    // Remote when the answer says so (`remote_host`), else by the model's name or the last poll:
    // Ollama passes `/v1/*` calls for cloud models to ollama.com raw, without those fields.
    const remote =
      s?.remoteHost !== undefined || s?.remoteModel !== undefined || (this.request !== undefined && this.telemetry.isRemoteModel(this.request.model));
    const since = (t: number | undefined) => (outcome.streamed && t !== undefined ? Math.max(0, t - this.startedAt) / 1000 : undefined);
    const measures = {
      model: this.model,
      endpoint: this.endpoint,
      wallSeconds: Math.max(0, endedAt - this.startedAt) / 1000,
      // Time to first token, for streams: request received → first content chunk forwarded.
      ttftSeconds: since(s?.firstContentAt),
      // Time to first answer, for streams that thought first: → first chunk that was not thinking.
      ttfaSeconds: s?.thinkingEvents !== undefined && s.thinkingEvents > 0 ? since(s.firstAnswerAt) : undefined,
      stalls: this.stalls,
      wasInFlight: this.inFlight,
      lifecycle,
      context: lifecycle === undefined && s ? this.contextUse(s) : undefined,
      remote,
    };
    const ins = this.telemetry.instruments;
    const labels = this.telemetry.modelLabels;
    // Ollama answered 2xx: it serves the model, whatever became of the call afterwards.
    if (outcome.status >= 200 && outcome.status < 400 && labels.answeredOnce(this.model)) {
      this.telemetry.initModel(this.operation, this.model, this.endpoint, lifecycle === undefined);
    }
    if (!labels.detailed(this.model)) {
      // Only the counts: a name nobody serves buys no histograms, and a bounded number of series (labels.ts).
      const kept =
        labels.admit(this.model, `${this.endpoint}\u0000${outcome.status}`) &&
        (outcome.reason === undefined || labels.admit(this.model, `${this.endpoint}\u0000${outcome.reason}`));
      const counted = kept ? attrs : this.telemetry.attributes.get(this.operation, this.endpoint, OVERFLOW_MODEL_LABEL);
      const ollama = ins.ollama;
      // A failed call for a name nobody serves still leaves its trace on the error counter.
      if (ollama) this.withExemplars(() => recordUnservedCall(ollama, attrs, counted, outcome, measures));
      this.telemetry.sink?.finished({ operation: this.operation, measures, outcome, traceId: this.span.traceId, startedIn: this.historyRing });
      this.span.end(outcome, endedAt, lifecycle, remote);
      return;
    }
    if (ins.fleet && this.backend && outcome.reason === undefined && lifecycle === undefined && !remote) {
      // A call that had to load its model: the backend did not have it, or Ollama says it loaded.
      if (this.warm === false || (s?.loadDurationNs ?? 0) >= COLD_LOAD_NS) {
        ins.fleet.coldLoads.add(1, { [ATTR_BACKEND]: this.backend.name, [ATTR_MODEL]: this.model });
      }
    }
    // A sampled call's ids become the exemplars of what it records (nothing when tracing is off).
    const record = () => {
      if (ins.ollama) recordOllamaCall(ins.ollama, attrs, outcome, measures);
      if (ins.genAi) recordGenAiCall(ins.genAi, attrs, outcome, measures);
      if (ins.genAiLatest) recordGenAiLatestCall(ins.genAiLatest, attrs, outcome, measures);
    };
    this.withExemplars(record);
    const traceId = this.span.traceId;
    const owner = this.owner;
    this.telemetry.sink?.finished({
      operation: this.operation,
      measures,
      outcome,
      traceId,
      startedIn: this.historyRing,
      tenant: owner?.tenant,
      user: owner?.user,
    });
    if (owner && (ins.tenant || this.telemetry.usage)) {
      const row = usageRecordOf(outcome, measures, {
        owner,
        operation: this.operation,
        backend: this.backend?.name,
        traceId,
        numCtx: this.request?.numCtx,
        loadedContext: this.loadedContext,
        now: Date.now(),
      });
      if (ins.tenant) recordTenantCall(ins.tenant, row);
      this.telemetry.usage?.record(row);
    }
    this.span.end(outcome, endedAt, lifecycle, remote);
  }

  /** Runs `fn` (recording this call) with the call's ids as exemplars, when sampled and tracing is on. */
  private withExemplars(fn: () => void): void {
    const exemplars = this.telemetry.exemplars;
    if (exemplars) exemplars.during(this.span.exemplarRef, fn);
    else fn();
  }

  /**
   * How much of its context window a generation used: the window is the request's `num_ctx`, else
   * the model's `context_length` at the last poll of `/api/ps`; unknown (nothing recorded) without
   * either, for embeddings, and without Ollama's prompt token count.
   */
  private contextUse(s: CallFacts): ContextUse | undefined {
    const req = this.request;
    if (!req || this.operation === 'embeddings' || s.inputTokens === undefined) return undefined;
    const window = req.numCtx ?? this.telemetry.loadedContextLength(req.model, this.backend?.name);
    if (window === undefined) return undefined;
    return contextUse(window, s.inputTokens, s.outputTokens ?? 0, req.numKeep);
  }
}
