/**
 * Everything that is neither the gateway's own nor an instrumented LLM route (model management,
 * listings, blob uploads, `GET /`): forwarded to Ollama and relayed back unchanged, through the same
 * guarded tap as LLM calls, with one access-log line.
 */
import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import { loggedPath, type Logger } from '../logger';
import { framingOf } from '../protocol';
import { apiOf, classifyUpstreamError, CLIENT_CLOSED_REQUEST, sendJsonError } from '../proxy/errors';
import { tapResponse } from '../proxy/tap';
import type { Upstream } from '../proxy/upstream';
import { isModelTransfer } from '../routes';

export interface PassThroughDeps {
  upstream: Upstream;
  log: Logger;
  idleTimeoutMs: number;
  clientWriteTimeoutMs: number;
}

export function passThrough(deps: PassThroughDeps, req: http.IncomingMessage, res: http.ServerResponse): void {
  const { upstream, log } = deps;
  const startedAt = performance.now();
  let failure: string | undefined;
  res.once('close', () => {
    log.info(
      {
        method: req.method,
        path: loggedPath(req),
        status: res.headersSent ? res.statusCode : CLIENT_CLOSED_REQUEST,
        duration_ms: Math.round((performance.now() - startedAt) * 1000) / 1000,
        error: failure,
      },
      'request',
    );
  });
  upstream.send(req, res, {
    idleTimeoutMs: isModelTransfer(req.method, (req.url ?? '/').split('?')[0] ?? '/') ? 0 : undefined,
    onError: (err, timedOut) => {
      const f = classifyUpstreamError(err, upstream.target.origin, timedOut, deps.idleTimeoutMs);
      failure = f.reason;
      log.error({ method: req.method, path: loggedPath(req), error: f.reason, detail: f.message }, 'request failed upstream');
      sendJsonError(res, apiOf(req.url ?? '/'), f.status, f.message);
    },
    onResponse: (proxyRes) => {
      const framing = framingOf(proxyRes.headers['content-type']);
      tapResponse(proxyRes, res, {
        flushHeaders: framing === 'ndjson' || framing === 'sse',
        clientWriteTimeoutMs: deps.clientWriteTimeoutMs,
        onDone: (end, _summary, _endedAt, error) => {
          if (end !== 'complete') failure = end;
          if (error) log.error({ method: req.method, path: loggedPath(req), error: error.message }, 'relaying the response failed');
        },
      });
    },
  });
}
