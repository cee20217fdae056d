/**
 * Where a request goes. One dispatcher, driven by the endpoint tables in `routes.ts`:
 *
 *   normalise the target (request/target.ts) → the gateway's own endpoints (Koa: /metrics,
 *   /healthz, /readyz; GET and HEAD only, never forwarded) → API-key check → instrumented LLM
 *   routes (llm-call.ts) → everything else passed through to Ollama unchanged.
 *
 * Nothing a request or Ollama does may throw out of here: an unexpected error ends that one
 * request (500 if nothing was sent yet, else the connection is cut) with one ERROR log line.
 */
import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import Router from '@koa/router';
import Koa from 'koa';
import type { Telemetry } from '../otel/recorder';
import type { Exposition } from '../otel/sdk';
import { BearerKeys, type AuthFailure } from './auth';
import type { Config } from './config';
import { ConcurrencyLimit } from './limit';
import { handleLlmCall, type LlmCallDeps } from './llm-call';
import type { Logger } from './logger';
import { framingOf } from './protocol';
import { apiOf, classifyUpstreamError, CLIENT_CLOSED_REQUEST, sendJsonError } from './proxy/errors';
import { tapResponse, type TapEnd } from './proxy/tap';
import { Upstream } from './proxy/upstream';
import type { BodyBudget } from './request/body';
import { normalizeTarget } from './request/target';
import { GATEWAY_ENDPOINTS, LLM_ROUTE_BY_PATH } from './routes';

export interface GatewayDeps {
  config: Config;
  log: Logger;
  telemetry: Telemetry;
  /** The memory shared by all request bodies being held. */
  bodyBudget: BodyBudget;
  /** The Prometheus exposition of every metric. */
  scrape: () => Promise<Exposition>;
}

export interface Gateway {
  /** The HTTP request handler. */
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  upstream: Upstream;
  /** Asks Ollama for its version; rejects with a readable reason when it does not answer. */
  ollamaVersion(timeoutMs?: number): Promise<string>;
  close(): void;
}

const READY_TIMEOUT_MS = 2000;
/** Longest request target carried into a log line. */
const MAX_LOGGED_PATH = 1024;

const ignore = (): void => {};

/** Network errors a client causes by going away or sending garbage: not the gateway's failures. */
const CLIENT_NETWORK_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_DESTROYED', 'HPE_INVALID_CHUNK_SIZE']);

export function createGateway(deps: GatewayDeps): Gateway {
  const { config, log, telemetry } = deps;
  const upstream = new Upstream(config.upstream, config.upstreamIdleTimeoutMs);

  const ollamaVersion = async (timeoutMs = READY_TIMEOUT_MS): Promise<string> => {
    const body = (await upstream.getJson('/api/version', timeoutMs)) as { version?: unknown };
    return typeof body?.version === 'string' ? body.version : 'unknown';
  };

  // Koa serves the gateway's own endpoints, and only those.
  const app = new Koa();
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    try {
      const version = await ollamaVersion();
      ctx.body = { status: 'ready', ollama: config.upstream.origin, ollama_version: version };
    } catch (err) {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', ollama: config.upstream.origin, reason: (err as Error).message };
    }
  });
  router.get('/metrics', async (ctx) => {
    const exposition = await deps.scrape();
    ctx.type = exposition.contentType;
    ctx.body = exposition.body;
  });
  app.use(router.routes());
  app.on('error', (err: NodeJS.ErrnoException) => log.debug({ error: err.code ?? err.message }, 'gateway endpoint request failed'));
  const koa = app.callback();

  const llmDeps: LlmCallDeps = {
    upstream,
    limit: config.maxConcurrentRequests ? new ConcurrencyLimit(config.maxConcurrentRequests, config.queueTimeoutMs) : undefined,
    telemetry,
    log,
    body: { maxBytes: config.maxRequestBodyBytes, budget: deps.bodyBudget, idleTimeoutMs: config.requestBodyTimeoutMs },
    idleTimeoutMs: config.upstreamIdleTimeoutMs,
    clientWriteTimeoutMs: config.clientWriteTimeoutMs,
  };
  const apiKeys = new BearerKeys(config.apiKeys);
  const metricsToken = config.metricsBearerToken ? new BearerKeys([config.metricsBearerToken]) : undefined;

  const refuse = (res: http.ServerResponse, path: string, scope: 'api' | 'metrics', failure: AuthFailure): void => {
    telemetry.authFailure(failure, scope);
    const message = failure === 'missing' ? 'missing API key: send Authorization: Bearer <key>' : 'invalid API key';
    sendJsonError(res, apiOf(path), 401, message, { 'www-authenticate': 'Bearer' });
  };

  const internalError = (req: http.IncomingMessage, res: http.ServerResponse, err: unknown): void => {
    const e = err as NodeJS.ErrnoException;
    if (e?.code && CLIENT_NETWORK_ERRORS.has(e.code)) {
      log.debug({ method: req.method, path: (req.url ?? '').slice(0, MAX_LOGGED_PATH), error: e.code }, 'client connection failed');
    } else {
      log.error({ method: req.method, path: (req.url ?? '').slice(0, MAX_LOGGED_PATH), error: e?.message ?? String(err), stack: e?.stack }, 'request handling failed');
    }
    if (!res.headersSent && !res.destroyed) sendJsonError(res, apiOf(req.url ?? '/'), 500, 'internal error in the gateway');
    else res.destroy();
  };

  function passThrough(req: http.IncomingMessage, res: http.ServerResponse): void {
    const startedAt = performance.now();
    let failure: string | undefined;
    res.once('close', () => {
      log.info(
        {
          method: req.method,
          path: (req.url ?? '').slice(0, MAX_LOGGED_PATH),
          status: res.headersSent ? res.statusCode : CLIENT_CLOSED_REQUEST,
          duration_ms: Math.round((performance.now() - startedAt) * 1000) / 1000,
          error: failure,
        },
        'request',
      );
    });
    upstream.send(req, res, {
      onError: (err, timedOut) => {
        const f = classifyUpstreamError(err, config.upstream.origin, timedOut, config.upstreamIdleTimeoutMs);
        failure = f.reason;
        log.error({ method: req.method, path: (req.url ?? '').slice(0, MAX_LOGGED_PATH), error: f.reason, detail: f.message }, 'request failed upstream');
        sendJsonError(res, apiOf(req.url ?? '/'), f.status, f.message);
      },
      onResponse: (proxyRes) => {
        const framing = framingOf(proxyRes.headers['content-type']);
        tapResponse(proxyRes, res, {
          flushHeaders: framing === 'ndjson' || framing === 'sse',
          clientWriteTimeoutMs: config.clientWriteTimeoutMs,
          onDone: (end: TapEnd, _summary, _endedAt, error) => {
            if (end !== 'complete') failure = end;
            if (error) log.error({ method: req.method, path: (req.url ?? '').slice(0, MAX_LOGGED_PATH), error: error.message }, 'relaying the response failed');
          },
        });
      },
    });
  }

  const dispatch = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const target = normalizeTarget(req.url ?? '/');
    if (!target) {
      sendJsonError(res, 'ollama', 400, 'the request target must be a path (/…) or an absolute http(s) URL', { connection: 'close' });
      return;
    }
    // The one spelling of the path: routed on here and forwarded as is.
    req.url = target.path + target.query;
    const path = target.path;

    const scope = GATEWAY_ENDPOINTS.get(path);
    if (scope !== undefined) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        sendJsonError(res, 'ollama', 405, `${path} answers GET and HEAD only`, { allow: 'GET, HEAD' });
        return;
      }
      const failure = scope === 'metrics' ? metricsToken?.check(req.headers.authorization) : undefined;
      if (failure) refuse(res, path, 'metrics', failure);
      else void koa(req, res);
      return;
    }
    if (apiKeys.enabled) {
      const failure = apiKeys.check(req.headers.authorization);
      if (failure) {
        log.info({ method: req.method, path: path.slice(0, MAX_LOGGED_PATH), status: 401, error: `api_key_${failure}` }, 'request refused');
        refuse(res, path, 'api', failure);
        return;
      }
      // The key is the gateway's; Ollama never sees it.
      delete req.headers.authorization;
    }
    const route = req.method === 'POST' ? LLM_ROUTE_BY_PATH.get(path) : undefined;
    if (route) handleLlmCall(llmDeps, route, req, res).catch((err: unknown) => internalError(req, res, err));
    else passThrough(req, res);
  };

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    // Errors on either side of the client's connection end that exchange (the readers see
    // `close`); they are never the process's.
    req.on('error', ignore);
    res.on('error', ignore);
    try {
      dispatch(req, res);
    } catch (err) {
      internalError(req, res, err);
    }
  };

  return { handler, upstream, ollamaVersion, close: () => upstream.close() };
}
