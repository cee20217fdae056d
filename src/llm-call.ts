/**
 * One instrumented LLM call, end to end: read the body (capped) → extract model and stream flag →
 * send to Ollama → tap the response → record and log the outcome, exactly once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { ErrorReason } from '../otel/instruments';
import type { CallOutcome, CallRecorder, Telemetry } from '../otel/recorder';
import type { Logger } from './logger';
import { framingOf, parserFor, type CallSummary } from './protocol';
import { SseUsageStripper } from './protocol/sse';
import { classifyUpstreamError, CLIENT_CLOSED_REQUEST, sendJsonError } from './proxy/errors';
import { tapResponse, type TapEnd } from './proxy/tap';
import { cutByIdleTimer, type Upstream } from './proxy/upstream';
import { ConcurrencyLimit, QueueTimeoutError } from './limit';
import { BodyTooLargeError, readBody } from './request/body';
import { extractRequest, withIncludeUsage, type LlmRequestInfo } from './request/extract';
import { normalizeModelName } from './request/model';
import type { LlmRoute } from './routes';

export interface LlmCallDeps {
  upstream: Upstream;
  /** The cap on concurrent calls to Ollama, when configured. */
  limit?: ConcurrencyLimit;
  telemetry: Telemetry;
  log: Logger;
  maxRequestBodyBytes: number;
  idleTimeoutMs: number;
}

/** Decides the error reason of a response that arrived from Ollama. */
export function responseReason(status: number, end: TapEnd, summary: CallSummary, timedOut: boolean): ErrorReason | undefined {
  if (end === 'client_gone') return 'client_cancelled';
  if (end === 'upstream_broken') return timedOut ? 'upstream_timeout' : 'stream_error';
  if (status >= 500) return 'upstream_5xx';
  if (status >= 400) return 'upstream_4xx';
  if (summary.errorMessage !== undefined || summary.malformed > 0) return 'stream_error';
  if (!summary.complete && summary.inspected) return 'stream_error';
  return undefined;
}

/** Handles one request to an instrumented endpoint. Resolves when the exchange is over. */
export function handleLlmCall(deps: LlmCallDeps, route: LlmRoute, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const startedAt = performance.now();
  const recorder = deps.telemetry.begin(route.operation, route.path, startedAt);
  return new Promise<void>((resolve) => {
    let finished = false;
    let release: (() => void) | undefined;
    const finish = (outcome: CallOutcome, endedAt: number) => {
      if (finished) return;
      finished = true;
      release?.();
      recorder.finish(outcome, endedAt);
      logCall(deps.log, req, recorder, outcome, endedAt - startedAt);
      resolve();
    };

    const admit = (body: Buffer): void => {
      const info = extractRequest(route, body);
      recorder.setRequest({
        model: normalizeModelName(info.model),
        requestModel: info.model,
        stream: info.stream,
        params: info.params,
        body: info.body,
      });
      if (!deps.limit) {
        forward(deps, route, req, res, body, info, recorder, finish);
        return;
      }
      if (res.destroyed || res.closed) {
        finish({ status: CLIENT_CLOSED_REQUEST, reason: 'client_cancelled', streamed: false }, performance.now());
        return;
      }
      let withdraw: (() => void) | undefined;
      const onClose = () => {
        withdraw?.();
        finish({ status: CLIENT_CLOSED_REQUEST, reason: 'client_cancelled', streamed: false, detail: 'client left while queued' }, performance.now());
      };
      res.once('close', onClose);
      deps.limit
        .acquire((w) => (withdraw = w))
        .then(
          (r) => {
            res.off('close', onClose);
            release = r;
            if (res.destroyed) finish({ status: CLIENT_CLOSED_REQUEST, reason: 'client_cancelled', streamed: false }, performance.now());
            else forward(deps, route, req, res, body, info, recorder, finish);
          },
          (err: Error) => {
            res.off('close', onClose);
            if (!(err instanceof QueueTimeoutError)) throw err;
            // The queue turns over as calls finish; a second is a fair first back-off.
            sendJsonError(res, route.api, 503, err.message, { 'retry-after': '1' });
            finish({ status: 503, reason: 'queue_timeout', streamed: false, detail: err.message }, performance.now());
          },
        );
    };

    readBody(req, deps.maxRequestBodyBytes).then(
      admit,
      (err: Error) => {
        const endedAt = performance.now();
        if (err instanceof BodyTooLargeError) {
          // The rest of the body is not read; close the connection once the answer is out.
          sendJsonError(res, route.api, 413, err.message, { connection: 'close' });
          finish({ status: 413, reason: 'body_too_large', streamed: false, detail: err.message }, endedAt);
        } else {
          finish({ status: CLIENT_CLOSED_REQUEST, reason: 'client_cancelled', streamed: false, detail: err.message }, endedAt);
        }
      },
    );
  });
}

function forward(
  deps: LlmCallDeps,
  route: LlmRoute,
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
  info: LlmRequestInfo,
  recorder: CallRecorder,
  finish: (outcome: CallOutcome, endedAt: number) => void,
): void {
  // OpenAI streams report usage only when asked; ask on the client's behalf and strip the
  // answer again, so the client sees exactly the stream it asked for.
  const injectUsage = route.api === 'openai' && info.stream && !info.includeUsage;
  const sent = injectUsage ? withIncludeUsage(body, info) : body;

  // Until Ollama answers, a client that leaves ends the call here; afterwards the tap sees it.
  // The client may already be gone (it can close while its body is being read).
  if (res.destroyed || res.closed) {
    finish({ status: CLIENT_CLOSED_REQUEST, reason: 'client_cancelled', streamed: false }, performance.now());
    return;
  }
  let answered = false;
  res.once('close', () => {
    if (!answered && !res.writableFinished) {
      finish({ status: CLIENT_CLOSED_REQUEST, reason: 'client_cancelled', streamed: false }, performance.now());
    }
  });

  const parserOptions = { captureText: recorder.captureText, maxTextChars: recorder.maxCaptureChars, onContentGap: recorder.contentGapObserver };
  recorder.run(() => deps.upstream.send(req, res, {
    body: sent,
    onError: (err, idleTimedOut) => {
      answered = true;
      const failure = classifyUpstreamError(err, deps.upstream.target.origin, idleTimedOut, deps.idleTimeoutMs);
      sendJsonError(res, route.api, failure.status, failure.message);
      finish({ status: failure.status, reason: failure.reason, streamed: false, detail: failure.message }, performance.now());
    },
    onResponse: (proxyRes) => {
      answered = true;
      const status = proxyRes.statusCode ?? 502;
      const framing = framingOf(proxyRes.headers['content-type']);
      const streamed = framing === 'ndjson' || framing === 'sse';
      tapResponse(proxyRes, res, {
        parser: parserFor(framing, parserOptions),
        stripper: injectUsage && framing === 'sse' ? new SseUsageStripper() : undefined,
        flushHeaders: streamed,
        onDone: (end, summary, endedAt) => {
          const reason = responseReason(status, end, summary, cutByIdleTimer(proxyRes));
          finish(
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
  }));
}

function logCall(log: Logger, req: IncomingMessage, recorder: CallRecorder, outcome: CallOutcome, durationMs: number): void {
  const s = outcome.summary;
  const entry = {
    method: req.method,
    path: req.url,
    status: outcome.status,
    model: recorder.modelLabel,
    duration_ms: Math.round(durationMs * 1000) / 1000,
    input_tokens: s?.inputTokens,
    output_tokens: s?.outputTokens,
    error: outcome.reason,
    detail: outcome.detail,
  };
  if (outcome.reason === 'upstream_unreachable' || outcome.reason === 'upstream_timeout' || outcome.reason === 'upstream_5xx') {
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
        path: req.url,
        model: recorder.modelLabel,
        response_model: s.responseModel,
        response_id: s.responseId,
        finish_reasons: s.finishReasons,
        streamed: outcome.streamed,
        complete: s.complete,
        content_chunks: s.contentEvents,
        malformed_lines: s.malformed,
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
