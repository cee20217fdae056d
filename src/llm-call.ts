/**
 * One instrumented LLM call, as an object with a clear life:
 *
 *   reading (body, bounded) → queued (the fair queue, or MAX_CONCURRENT_REQUESTS) → forwarded →
 *   streaming → finished
 *
 * It owns the one listener for the client going away and the outcome, recorded and logged exactly
 * once whichever way the call ends.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { cachedTokensOf } from '../otel/call';
import type { ErrorReason } from '../otel/instruments';
import { clipText } from '../otel/labels';
import type { CallOutcome, CallRecorder, Telemetry } from '../otel/recorder';
import { loggedPath, type Logger } from './logger';
import { framingOf, parserFor, type CallSummary } from './protocol';
import { SseUsageStripper } from './protocol/sse-usage';
import { classifyUpstreamError, CLIENT_CLOSED_REQUEST, sendJsonError } from './proxy/errors';
import { watchClientGone } from './proxy/client-gone';
import { serverTiming } from './proxy/server-timing';
import { tapResponse, type TapEnd } from './proxy/tap';
import { cutByIdleTimer } from './proxy/upstream';
import { affinityKey } from './fleet/affinity';
import type { Backend, Fleet } from './fleet/backends';
import type { RouteChoice } from './fleet/route';
import type { FairQueue, Slot } from './scheduler/fair-queue';
import { policyOf, type TenantPolicy } from './scheduler/tenant';
import { ANONYMOUS_TENANT } from './tenants/file';
import type { RoutingReason } from '../otel/instruments';
import type { ConcurrencyLimit } from './limit';
import type { Budgets, LimitState, Verdict } from './budgets/book';
import { admittedHeaders, modelRefused, rateLimited, type Refusal } from './budgets/answer';
import { BodyError, readBody, type BodyLimits, type HeldBody } from './request/body';
import { extractRequest, type LlmRequestInfo } from './request/extract';
import { withIncludeUsage } from './request/include-usage';
import { formModel } from './request/multipart';
import { modelOnlyReading } from './request/read';
import { normalizeModelName } from './request/model';
import type { LlmRoute } from './routes';
import type { CallIdentity } from './tenants/registry';

export interface LlmCallDeps {
  /** The Ollama servers; with one, every call goes to it. */
  fleet: Fleet;
  /** ROUTING_AFFINITY=prefix: keep a conversation on its backend. */
  affinity: boolean;
  /** The cap on concurrent calls to Ollama, when configured (without the fair queue). */
  limit?: ConcurrencyLimit;
  /** The fair queue in front of the backends (BACKEND_PARALLEL), when on. */
  scheduler?: FairQueue;
  /** A tenant's weight and priority in the fair queue. */
  tenantPolicy?: (tenant: string) => TenantPolicy;
  /** The tenants' model allow-lists, budgets and rate limits. */
  budgets?: Budgets;
  telemetry: Telemetry;
  log: Logger;
  body: BodyLimits;
  idleTimeoutMs: number;
  clientWriteTimeoutMs: number;
  /** The wait bound of either queue (QUEUE_TIMEOUT_SECONDS). */
  queueTimeoutMs: number;
  /** Add a Server-Timing header to answers (SERVER_TIMING). */
  serverTiming?: boolean;
}

/** Longest upstream-supplied text (error messages) carried into a log line. */
const MAX_DETAIL_CHARS = 1024;

/** Decides the error reason of a response that arrived from Ollama. */
export function responseReason(status: number, end: TapEnd, summary: CallSummary, timedOut: boolean): ErrorReason | undefined {
  if (end === 'client_gone') return 'client_cancelled';
  if (end === 'client_stalled') return 'client_timeout';
  if (end === 'relay_failed') return 'stream_error';
  if (end === 'upstream_broken') return timedOut ? 'upstream_timeout' : 'stream_error';
  if (status >= 500) return 'upstream_5xx';
  if (status >= 400) return 'upstream_4xx';
  if (summary.errorMessage !== undefined || summary.malformed > 0) return 'stream_error';
  if (!summary.complete && summary.inspected) return 'stream_error';
  return undefined;
}

/** How a body that could not be read is answered. */
const BODY_REFUSALS = {
  too_large: { status: 413, reason: 'body_too_large', headers: { connection: 'close' } },
  budget: { status: 503, reason: 'body_buffer_full', headers: { connection: 'close', 'retry-after': '1' } },
  timeout: { status: 408, reason: 'body_timeout', headers: { connection: 'close' } },
} as const;

/** The outcome as the call knows it: with the parser's whole summary, which the recorder reads part of. */
type Outcome = Omit<CallOutcome, 'summary'> & { summary?: CallSummary };

type State = 'reading' | 'queued' | 'forwarded' | 'streaming' | 'finished';

/** One attempt of a call at one backend. */
interface Attempt {
  backend: Backend;
  reason: RoutingReason;
  warm: boolean | undefined;
  /** 1, or 2 after a failover. */
  attempt: number;
  /** Backends this call was sent to. */
  tried: Set<string>;
  sent: Buffer;
  injectUsage: boolean;
  /** The model as Ollama resolves it, when the body named one. */
  model: string | undefined;
  /** The conversation's affinity key (ROUTING_AFFINITY=prefix). */
  key: string | undefined;
  recorder: CallRecorder;
}

/**
 * Failures before any response byte that send the call to the next backend: nothing of an answer
 * came, and the body is in hand (`classifyUpstreamError` reason `upstream_unreachable`).
 */
const DOWN_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT']);

/**
 * Handles one request to an instrumented endpoint. `pinned`: the backend `X-Ollama-Backend` named
 * (already checked to be one of the configured). Resolves when the exchange is over.
 */
export function handleLlmCall(
  deps: LlmCallDeps,
  route: LlmRoute,
  req: IncomingMessage,
  res: ServerResponse,
  pinned?: Backend,
  identity?: CallIdentity,
): Promise<void> {
  return new LlmCall(deps, route, req, res, pinned, identity).run();
}

/** Where a call goes: routing's ranking, and the first backend to try. */
interface Routed {
  choice: RouteChoice;
  first: Backend;
  model: string | undefined;
  key: string | undefined;
}

class LlmCall {
  private state: State = 'reading';
  private readonly startedAt = performance.now();
  private readonly recorder: CallRecorder;
  private held: HeldBody | undefined;
  private info: LlmRequestInfo | undefined;
  private releaseSlot: (() => void) | undefined;
  /** Its place in its tenant's (and end user's) running calls, for request limits. */
  private releaseBudget: (() => void) | undefined;
  /** Its limits as they stood when it was admitted (for the answer's rate-limit headers). */
  private limits: readonly LimitState[] = [];
  private withdraw: (() => void) | undefined;
  private resolve!: () => void;
  private unwatch: (() => void) | undefined;
  /** The backend the call is at now (counted in its in-flight calls). */
  private at: Backend | undefined;
  /** Its slot in the fair queue, once released from it. */
  private slot: Slot | undefined;
  /** When the call began waiting for a slot, was forwarded, and was sent to its backend (performance.now()). */
  private queuedAt: number | undefined;
  private forwardedAt: number | undefined;
  private sentAt = 0;
  /** The backend this call is the trial of, until an answer came: whichever way the call ends, the trial ends. */
  private trialAt: Backend | undefined;

  constructor(
    private readonly deps: LlmCallDeps,
    private readonly route: LlmRoute,
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly pinned?: Backend,
    private readonly identity?: CallIdentity,
  ) {
    this.recorder = deps.telemetry.begin(route.operation, route.path, this.startedAt);
    if (identity) this.recorder.setOwner(identity);
  }

  run(): Promise<void> {
    const over = new Promise<void>((r) => (this.resolve = r));
    this.unwatch = watchClientGone(this.req, this.res, this.onClientClose);
    readBody(this.req, this.deps.body).then(
      (held) => this.admit(held),
      (err: unknown) => this.refuseBody(err),
    );
    return over;
  }

  /** The client's connection closed. Once the response streams, the tap reports it instead. */
  private readonly onClientClose = (): void => {
    if (this.state === 'streaming' || this.state === 'finished') return;
    this.withdraw?.();
    const detail = this.state === 'queued' ? 'client left while queued' : undefined;
    this.finish({ status: CLIENT_CLOSED_REQUEST, reason: 'client_cancelled', streamed: false, detail });
  };

  private refuseBody(err: unknown): void {
    if (this.state === 'finished') return;
    const failure = err instanceof BodyError ? err.failure : 'aborted';
    const message = (err as Error).message;
    if (failure === 'aborted') {
      this.finish({ status: CLIENT_CLOSED_REQUEST, reason: 'client_cancelled', streamed: false, detail: message });
      return;
    }
    // The rest of the body is not read; the connection closes once the answer is out.
    const refusal = BODY_REFUSALS[failure];
    // A body being drained leaves the connection usable; any other is closed once answered.
    const drained = err instanceof BodyError && err.drained;
    sendJsonError(this.res, this.route.api, refusal.status, message, drained ? {} : refusal.headers);
    this.finish({ status: refusal.status, reason: refusal.reason, streamed: false, detail: message });
  }

  private admit(held: HeldBody): void {
    if (this.state === 'finished') {
      held.release();
      return;
    }
    this.held = held;
    if (this.route.form) {
      const form = formModel(this.req.headers['content-type'], queryOf(this.req.url), held.bytes);
      if (!form.ok) {
        // What Ollama answers such a form, said before it runs anything.
        sendJsonError(this.res, this.route.api, 400, form.message);
        this.finish({ status: 400, reason: 'body_unreadable', streamed: false, detail: form.message });
        return;
      }
      this.info = formRequest(form.model, held.bytes.length);
    } else this.info = extractRequest(this.route, held.bytes, this.recorder.captureText);
    this.recorder.setRequest({
      model: normalizeModelName(this.info.model),
      requestModel: this.info.model,
      stream: this.info.stream,
      params: this.info.params,
      lifecycle: this.info.lifecycle,
      numCtx: this.info.numCtx,
      numKeep: this.info.numKeep,
      body: this.info.body,
    });
    const budgets = this.deps.budgets;
    if (budgets && this.identity) {
      const allowed = budgets.modelAllowed(this.identity.tenant, this.info.model);
      if (!allowed.ok) {
        this.refuse(modelRefused(this.identity.tenant, this.info.model!, allowed.allowed), 'model_not_allowed');
        return;
      }
      const verdict = budgets.admit(this.identity);
      if (verdict instanceof Promise) {
        verdict.then(
          (v) => this.afterBudget(v),
          (err: unknown) => this.afterBudget(undefined, err as Error),
        );
        return;
      }
      this.afterBudget(verdict);
      return;
    }
    this.proceed();
  }

  /** A refusal the gateway answers itself: nothing is forwarded. */
  private refuse(r: Refusal, reason: 'rate_limited' | 'model_not_allowed'): void {
    sendJsonError(this.res, this.route.api, r.status, r.message, { ...r.headers, ...this.timingHeader() }, r.openai);
    this.finish({ status: r.status, reason, streamed: false, detail: r.message });
  }

  /** The budgets' decision; a failure to decide lets the call go (the log says why). */
  private afterBudget(v: Verdict | undefined, err?: Error): void {
    if (v === undefined) this.deps.log.error({ error: err?.message }, 'budgets could not decide; the call goes ahead');
    if (this.state === 'finished') {
      if (v?.ok) v.release();
      return;
    }
    if (v && !v.ok) {
      this.refuse(rateLimited(this.route.api, v.exceeded, v.states, Date.now()), 'rate_limited');
      return;
    }
    this.releaseBudget = v?.release;
    if (v) this.limits = v.states;
    this.proceed();
  }

  /**
   * After a wait in a queue: refuses the call when its tenant's token or GPU budget was spent
   * meanwhile (the slot it got is freed by `finish`).
   */
  private overBudget(): boolean {
    if (this.queuedAt === undefined || !this.identity) return false;
    const over = this.deps.budgets?.recheck(this.identity);
    if (!over) return false;
    this.refuse(rateLimited(this.route.api, over.exceeded, over.states, Date.now()), 'rate_limited');
    return true;
  }

  /** Into the fair queue, or the concurrency cap, or straight to Ollama. */
  private proceed(): void {
    if (this.deps.scheduler) {
      this.queue(this.deps.scheduler);
      return;
    }
    const limit = this.deps.limit;
    if (!limit) {
      this.forward();
      return;
    }
    this.state = 'queued';
    this.queuedAt = performance.now();
    limit
      .acquire((w) => (this.withdraw = w))
      .then(
        (release) => {
          this.withdraw = undefined;
          if (this.state === 'finished') {
            release();
            return;
          }
          this.releaseSlot = release;
          if (this.overBudget()) return;
          this.forward();
        },
        (err: Error) => {
          this.withdraw = undefined;
          if (this.state === 'finished') return;
          // The queue turns over as calls finish; a second is a fair first back-off.
          sendJsonError(this.res, this.route.api, 503, err.message, { 'retry-after': '1', ...this.timingHeader() });
          this.finish({ status: 503, reason: 'queue_timeout', streamed: false, detail: err.message });
        },
      );
  }

  /**
   * Waits in the fair queue for a slot at one of the backends routing ranks best for this call
   * (any of those as good as the first), and goes to the one that frees first.
   */
  private queue(scheduler: FairQueue): void {
    const routed = this.routeCall();
    const candidates = routed.choice.order.slice(0, routed.choice.equal);
    this.state = 'queued';
    // Server-Timing's `queue`: the wait for a slot, in either queue.
    this.queuedAt = performance.now();
    const tenant = this.deps.tenantPolicy?.(this.identity?.tenant ?? ANONYMOUS_TENANT) ?? policyOf(this.identity?.tenant ?? ANONYMOUS_TENANT, undefined);
    this.withdraw = scheduler.enqueue(tenant, candidates, {
      onRelease: (grant) => {
        this.withdraw = undefined;
        if (this.state === 'finished') {
          grant.slot.release();
          return;
        }
        this.slot = grant.slot;
        this.recorder.queued(tenant.name, grant.position, grant.waitedMs / 1000);
        if (this.overBudget()) return;
        const first = this.deps.fleet.get(grant.backend)!;
        // The backend that freed goes first; the rest of the ranking stays the failover order.
        const order = [first.name, ...routed.choice.order.filter((n) => n !== first.name)];
        this.forward({ ...routed, first, choice: { ...routed.choice, order } });
      },
      onRefuse: (why, message) => {
        this.withdraw = undefined;
        if (this.state === 'finished') return;
        this.recorder.queued(tenant.name, scheduler.depth, why === 'queue_timeout' ? this.deps.queueTimeoutMs / 1000 : 0);
        // The queue turns over as calls finish; a second is a fair first back-off.
        sendJsonError(this.res, this.route.api, 503, message, { 'retry-after': '1' });
        this.finish({ status: 503, reason: why, streamed: false, detail: message });
      },
    });
  }

  /** Routing's ranking for this call, once its body is read. */
  private routeCall(): Routed {
    const fleet = this.deps.fleet;
    const info = this.info!;
    const model = info.model === undefined || info.model.trim() === '' ? undefined : normalizeModelName(info.model);
    const key = fleet.routed && this.deps.affinity && !this.pinned ? affinityKey(model, this.held!.bytes, info.reading) : undefined;
    const choice = this.pinned ? fleet.chooseAmong([this.pinned], model)! : fleet.choose(model, key)!;
    return { choice, first: fleet.get(choice.order[0]!)!, model, key };
  }

  private forward(routed?: Routed): void {
    const { route, recorder } = this;
    const body = this.held!.bytes;
    const info = this.info!;
    // OpenAI streams report usage only when asked; ask on the client's behalf and strip the
    // answer again, so the client sees exactly the stream it asked for.
    const injectUsage = route.events === 'openai' && info.stream && !info.includeUsage;
    const sent = injectUsage ? withIncludeUsage(body, info) : body;
    if (sent === undefined) {
      // Not reached for a body Go reads as an object (the only bodies that stream); should it
      // happen, the call is refused rather than sent unmetered or guessed at.
      const message = 'the gateway could not read the request body as Ollama would';
      sendJsonError(this.res, route.api, 400, message);
      this.finish({ status: 400, reason: 'body_unreadable', streamed: false, detail: message });
      return;
    }
    this.forwardedAt = performance.now();
    const { choice, first, model, key } = routed ?? this.routeCall();
    this.info = undefined;
    this.state = 'forwarded';
    this.sendTo({ backend: first, reason: choice.reason, warm: choice.warm, attempt: 1, tried: new Set(), sent, injectUsage, model, key, recorder });
  }

  /** The Server-Timing value: the queue, then (once Ollama answered) the time to its head and the backend. */
  private timing(upstreamMs?: number, backend?: string): string {
    const queued = this.queuedAt === undefined ? 0 : (this.forwardedAt ?? performance.now()) - this.queuedAt;
    return serverTiming(queued, upstreamMs, backend);
  }

  /** Headers the gateway adds to Ollama's answer: Server-Timing, and the tenant's rate-limit headers. */
  private extraHeaders(backend: string): string[] | undefined {
    const headers = this.deps.serverTiming ? ['Server-Timing', this.timing(performance.now() - this.sentAt, backend)] : undefined;
    // Only a limited tenant's calls have rate-limit headers to add.
    if (this.limits.length === 0) return headers;
    const limits = admittedHeaders(this.route.api, this.limits, Date.now());
    return headers ? headers.concat(limits) : limits;
  }

  /** The Server-Timing header of an answer the gateway makes itself (none when turned off). */
  private timingHeader(): Record<string, string> {
    return this.deps.serverTiming ? { 'server-timing': this.timing() } : {};
  }

  /** Sends the call to one backend; before any response byte, a failure there may send it to the next. */
  private sendTo(a: Attempt): void {
    const { deps, route, req, res } = this;
    const { backend, recorder } = a;
    const fleet = deps.fleet;
    a.tried.add(backend.name);
    backend.inFlight++;
    this.at = backend;
    this.sentAt = performance.now();
    const trial = backend.health.beginCall();
    if (trial) this.trialAt = backend;
    if (fleet.routed) {
      recorder.setBackend(backend.ref, a.reason, a.warm, a.attempt);
      deps.log.debug({ path: loggedPath(req), model: recorder.modelLabel, backend: backend.name, reason: a.reason, attempt: a.attempt }, 'routed');
    }
    const parserOptions = { captureText: recorder.captureText, maxTextChars: recorder.maxCaptureChars };
    recorder.run(() =>
      backend.upstream.send(req, res, {
        body: a.sent,
        identity: true,
        onError: (err, idleTimedOut, sent) => {
          this.endTrial();
          if (this.state === 'finished') return;
          const failure = classifyUpstreamError(err, backend.upstream.target.origin, idleTimedOut, deps.idleTimeoutMs);
          if (failure.reason === 'upstream_unreachable' && DOWN_CODES.has(err.code ?? '')) backend.health.unreachable(failure.message);
          // It took the connection and then reset or closed it, or sent no HTTP: a strike, as a
          // 5xx is, so a backend that drops every call leaves rotation while its polls still
          // succeed. Only a strike: the call is not sent again for it (below).
          else if (failure.reason === 'upstream_unreachable' || failure.reason === 'upstream_invalid_response')
            backend.health.failedCall(`got no answer (${failure.message})`, trial);
          // Nothing of an answer came, the backend never had the whole request, and the body is in
          // hand: once, the next backend. A request it had whole may be running there: never twice.
          if (failure.reason === 'upstream_unreachable' && !sent && a.attempt === 1 && fleet.routed && !this.pinned && !res.headersSent) {
            const next = fleet.choose(a.model, undefined, a.tried);
            const to = next && fleet.get(next.order[0]!);
            if (to && to.health.routable) {
              this.leaveBackend();
              this.slot?.moveTo(to.name);
              recorder.failover(backend.name, to.name);
              deps.log.warn(
                { path: loggedPath(req), from: backend.name, to: to.name, error: failure.message },
                'backend failed before answering; call sent to the next',
              );
              this.sendTo({ ...a, backend: to, reason: 'retry', warm: next.warm, attempt: 2 });
              return;
            }
          }
          sendJsonError(res, route.api, failure.status, failure.message, this.timingHeader());
          this.finish({ status: failure.status, reason: failure.reason, streamed: false, detail: failure.message });
        },
        onResponse: (proxyRes) => {
          const status = proxyRes.statusCode ?? 502;
          this.endTrial();
          backend.health.answered(status, trial);
          if (this.state === 'finished') {
            proxyRes.destroy();
            return;
          }
          this.state = 'streaming';
          if (a.key !== undefined && status < 400) fleet.remember(a.key, backend.name);
          // The body has been sent: its memory is the budget's again.
          this.held?.release();
          this.held = undefined;
          const framing = framingOf(proxyRes.headers['content-type']);
          const streamed = framing === 'ndjson' || framing === 'sse';
          tapResponse(proxyRes, res, {
            parser: parserFor(framing, route.events, parserOptions),
            stripper: a.injectUsage && framing === 'sse' ? new SseUsageStripper() : undefined,
            flushHeaders: streamed,
            extraHeaders: this.extraHeaders(backend.name),
            clientWriteTimeoutMs: deps.clientWriteTimeoutMs,
            onContentGap: streamed ? (ms) => recorder.contentGap(ms) : undefined,
            onDone: (end, summary, endedAt, error) => {
              const reason = responseReason(status, end, summary, cutByIdleTimer(proxyRes));
              if (error) deps.log.error({ path: loggedPath(req), error: error.message }, 'relaying the response failed');
              // The model is loaded there now, whatever the last poll said.
              if (reason === undefined && a.model !== undefined) backend.warmSincePoll.add(a.model);
              this.finish(
                {
                  status: end === 'client_gone' && !res.headersSent ? CLIENT_CLOSED_REQUEST : status,
                  reason,
                  summary,
                  streamed,
                  detail: summary.errorMessage,
                },
                endedAt,
              );
            },
          });
        },
      }),
    );
  }

  private leaveBackend(): void {
    if (this.at) this.at.inFlight--;
    this.at = undefined;
    this.endTrial();
  }

  /** Ends this call's trial, if it is one and no answer has ended it yet. */
  private endTrial(): void {
    this.trialAt?.health.endTrial();
    this.trialAt = undefined;
  }

  private finish(outcome: Outcome, endedAt = performance.now()): void {
    if (this.state === 'finished') return;
    this.state = 'finished';
    this.leaveBackend();
    this.unwatch?.();
    this.held?.release();
    this.held = undefined;
    this.recorder.finish(outcome, endedAt);
    // After the recorder: its ledger row, now counted by the budgets, replaces the running call.
    this.releaseBudget?.();
    this.releaseBudget = undefined;
    // Last, so the call a freed slot starts finds this one's tokens in its tenant's budget.
    this.releaseSlot?.();
    // Its tokens count towards its tenant's share of the slots.
    const s = outcome.summary;
    this.slot?.release(s && (s.inputTokens ?? 0) + (s.outputTokens ?? 0));
    logCall(this.deps.log, this.req, this.recorder, outcome, endedAt - this.startedAt, this.identity);
    this.resolve();
  }
}

/** The query of a request target, without `?`. */
function queryOf(url: string | undefined): string {
  const q = url?.indexOf('?') ?? -1;
  return q === -1 ? '' : url!.slice(q + 1);
}

/** A multipart call as the rest of the call sees it: a model, nothing streamed, no JSON body. */
function formRequest(model: string, length: number): LlmRequestInfo {
  return {
    model,
    stream: false,
    includeUsage: false,
    params: {},
    lifecycle: undefined,
    numCtx: undefined,
    numKeep: undefined,
    readable: true,
    reading: modelOnlyReading(model, length),
    body: undefined,
  };
}

function logCall(log: Logger, req: IncomingMessage, recorder: CallRecorder, outcome: Outcome, durationMs: number, who?: CallIdentity): void {
  const s = outcome.summary;
  const path = loggedPath(req);
  const entry = {
    method: req.method,
    path,
    status: outcome.status,
    model: recorder.modelLabel,
    tenant: who?.tenant,
    user: who?.user,
    duration_ms: Math.round(durationMs * 1000) / 1000,
    input_tokens: s?.inputTokens,
    // The part of input_tokens the KV cache served, as /metrics and the console count it.
    cached_tokens: s && cachedTokensOf(s),
    output_tokens: s?.outputTokens,
    error: outcome.reason,
    detail: outcome.detail === undefined ? undefined : clipText(outcome.detail, MAX_DETAIL_CHARS),
  };
  if (
    outcome.reason === 'upstream_unreachable' ||
    outcome.reason === 'upstream_timeout' ||
    outcome.reason === 'upstream_5xx' ||
    outcome.reason === 'upstream_invalid_response'
  ) {
    log.error(entry, 'request failed upstream');
  } else if (outcome.reason === 'stream_error') {
    log.warn(entry, 'response from Ollama was broken');
  } else {
    log.info(entry, 'request');
  }
  if (s && log.isLevelEnabled('debug')) {
    // Everything the parser learnt about the call (never the prompt or the answer).
    log.debug(
      {
        method: req.method,
        path,
        model: recorder.modelLabel,
        response_model: s.responseModel === undefined ? undefined : clipText(s.responseModel, MAX_DETAIL_CHARS),
        response_id: s.responseId === undefined ? undefined : clipText(s.responseId, MAX_DETAIL_CHARS),
        finish_reasons: s.finishReasons?.slice(0, 8).map((r) => clipText(r, 64)),
        streamed: outcome.streamed,
        complete: s.complete,
        content_chunks: s.contentEvents,
        malformed_lines: s.malformed,
        oversized_lines: s.oversized,
        ttft_ms: s.firstContentAt !== undefined ? Math.round((s.firstContentAt - recorder.startedAt) * 1000) / 1000 : undefined,
        total_duration_ns: s.totalDurationNs,
        load_duration_ns: s.loadDurationNs,
        prompt_eval_duration_ns: s.promptEvalDurationNs,
        eval_duration_ns: s.evalDurationNs,
      },
      'call detail',
    );
  }
}
