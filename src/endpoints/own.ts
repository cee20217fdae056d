/**
 * The gateway's own endpoints, served by Koa and only by Koa: `/healthz`, `/readyz`, `/metrics`.
 * The dispatcher has already refused other methods and checked the metrics token.
 */
import type http from 'node:http';
import Router from '@koa/router';
import Koa from 'koa';
import { wantsOpenMetrics } from '../../otel/openmetrics';
import type { Exposition, ExpositionFormat } from '../../otel/sdk';
import type { Logger } from '../logger';

export interface OwnEndpointDeps {
  /** Ollama's origin (every backend's, with several), shown by `/readyz`. */
  ollama: string;
  /** With several backends, each one's name and whether it is in rotation, for `/readyz`. */
  backends?: () => { name: string; healthy: boolean }[];
  ollamaVersion: () => Promise<string>;
  /** The exposition in the format asked for. */
  scrape: (format?: ExpositionFormat) => Promise<Exposition>;
  log: Logger;
}

/** The request handler for the gateway's own endpoints. */
export function ownEndpoints(deps: OwnEndpointDeps): (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> {
  const app = new Koa();
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    try {
      const version = await deps.ollamaVersion();
      ctx.body = { status: 'ready', ollama: deps.ollama, ollama_version: version, backends: deps.backends?.() };
    } catch (err) {
      ctx.status = 503;
      ctx.body = { status: 'unavailable', ollama: deps.ollama, reason: (err as Error).message, backends: deps.backends?.() };
    }
  });
  router.get('/metrics', async (ctx) => {
    let exposition: Exposition;
    try {
      // OpenMetrics (with exemplars) when the scraper asks for it; the classic text otherwise.
      exposition = await deps.scrape(wantsOpenMetrics(ctx.get('accept') || undefined) ? 'openmetrics' : 'text');
    } catch (err) {
      // A partial answer would read as counters going back: no answer, and Prometheus retries.
      deps.log.warn({ reason: (err as Error).message }, 'metrics scrape failed');
      ctx.status = 503;
      ctx.set('retry-after', '1');
      ctx.body = { error: `metrics are not available now: ${(err as Error).message}` };
      return;
    }
    ctx.type = exposition.contentType;
    ctx.body = exposition.body;
  });
  app.use(router.routes());
  // A client that goes away mid-answer is no failure of the gateway's.
  app.on('error', (err: NodeJS.ErrnoException) => deps.log.debug({ error: err.code ?? err.message }, 'gateway endpoint request failed'));
  return app.callback();
}
