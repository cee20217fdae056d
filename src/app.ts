/**
 * The Koa application: the gateway's own endpoints (`/metrics`, `/healthz`, `/readyz`), the
 * instrumented LLM routes, and the pass-through proxy for everything else.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import Router from '@koa/router';
import Koa from 'koa';
import type { Telemetry } from '../otel/recorder';
import type { Config } from './config';
import { ConcurrencyLimit } from './limit';
import { handleLlmCall } from './llm-call';
import type { Logger } from './logger';
import { BearerKeys, type AuthFailure } from './auth';
import { apiOf, classifyUpstreamError, CLIENT_CLOSED_REQUEST, sendJsonError } from './proxy/errors';
import { Upstream } from './proxy/upstream';
import { LLM_ROUTES } from './routes';

export interface GatewayDeps {
  config: Config;
  log: Logger;
  telemetry: Telemetry;
  serveMetrics: (req: http.IncomingMessage, res: http.ServerResponse) => void;
}

export interface Gateway {
  app: Koa;
  /** The HTTP request handler: Koa for the gateway's own and instrumented routes, the proxy for the rest. */
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void;
  upstream: Upstream;
  /** Asks Ollama for its version; rejects with a readable reason when it does not answer. */
  ollamaVersion(timeoutMs?: number): Promise<string>;
  close(): void;
}

const READY_TIMEOUT_MS = 2000;

export function createGateway(deps: GatewayDeps): Gateway {
  const { config, log, telemetry } = deps;
  const upstream = new Upstream(config.upstream, config.upstreamIdleTimeoutMs);
  const app = new Koa();
  const router = new Router();

  const ollamaVersion = async (timeoutMs = READY_TIMEOUT_MS): Promise<string> => {
    const body = (await upstream.getJson('/api/version', timeoutMs)) as { version?: unknown };
    return typeof body?.version === 'string' ? body.version : 'unknown';
  };

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

  router.get('/metrics', (ctx) => {
    ctx.respond = false;
    deps.serveMetrics(ctx.req, ctx.res);
  });

  const llmDeps = {
    upstream,
    limit: config.maxConcurrentRequests ? new ConcurrencyLimit(config.maxConcurrentRequests, config.queueTimeoutMs) : undefined,
    telemetry,
    log,
    maxRequestBodyBytes: config.maxRequestBodyBytes,
    idleTimeoutMs: config.upstreamIdleTimeoutMs,
  };
  for (const route of LLM_ROUTES) {
    router.post(route.path, (ctx) => {
      ctx.respond = false;
      return handleLlmCall(llmDeps, route, ctx.req, ctx.res);
    });
  }

  app.use(router.routes());
  // Anything the router does not answer goes to Ollama unchanged.
  app.use((ctx) => {
    ctx.respond = false;
    passThrough(ctx.req, ctx.res);
  });

  function passThrough(req: http.IncomingMessage, res: http.ServerResponse): void {
    const startedAt = performance.now();
    res.once('close', () => {
      log.info(
        {
          method: req.method,
          path: req.url,
          status: res.writableFinished ? res.statusCode : CLIENT_CLOSED_REQUEST,
          duration_ms: Math.round((performance.now() - startedAt) * 1000) / 1000,
        },
        'request',
      );
    });
    upstream.send(req, res, {
      onError: (err, timedOut) => {
        const failure = classifyUpstreamError(err, config.upstream.origin, timedOut, config.upstreamIdleTimeoutMs);
        log.error({ method: req.method, path: req.url, error: failure.reason, detail: failure.message }, 'request failed upstream');
        sendJsonError(res, apiOf(req.url ?? '/'), failure.status, failure.message);
      },
    });
  }

  // Requests the gateway answers itself or measures go through Koa; the rest (model management,
  // uploads, listings) skip it and go straight to the proxy.
  const owned = new Set([...['/metrics', '/healthz', '/readyz'].map((p) => `GET ${p}`), ...LLM_ROUTES.map((r) => `POST ${r.path}`)]);
  const koa = app.callback();
  const apiKeys = new BearerKeys(config.apiKeys);
  const metricsToken = config.metricsBearerToken ? new BearerKeys([config.metricsBearerToken]) : undefined;

  const refuse = (res: http.ServerResponse, path: string, scope: 'api' | 'metrics', failure: AuthFailure): void => {
    telemetry.authFailure(failure, scope);
    const message = failure === 'missing' ? 'missing API key: send Authorization: Bearer <key>' : 'invalid API key';
    sendJsonError(res, apiOf(path), 401, message, { 'www-authenticate': 'Bearer' });
  };

  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path === '/healthz' || path === '/readyz') {
      void koa(req, res);
      return;
    }
    if (path === '/metrics' && req.method === 'GET') {
      const failure = metricsToken?.check(req.headers.authorization);
      if (failure) refuse(res, path, 'metrics', failure);
      else void koa(req, res);
      return;
    }
    if (apiKeys.enabled) {
      const failure = apiKeys.check(req.headers.authorization);
      if (failure) {
        log.info({ method: req.method, path, status: 401, error: `api_key_${failure}` }, 'request refused');
        refuse(res, path, 'api', failure);
        return;
      }
      // The key is the gateway's; Ollama never sees it.
      delete req.headers.authorization;
    }
    if (owned.has(`${req.method} ${path}`)) void koa(req, res);
    else passThrough(req, res);
  };

  return { app, handler, upstream, ollamaVersion, close: () => upstream.close() };
}

