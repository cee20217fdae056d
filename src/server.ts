/**
 * Starts the gateway: telemetry → Koa app → HTTP server, and knows how to stop it (drain in-flight
 * requests within a grace period, then flush telemetry).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Resource } from '@opentelemetry/resources';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import type { HistoryOptions } from '../otel/history/history';
import { buildResource, startTelemetry } from '../otel/sdk';
import { createGateway, type Gateway } from './app';
import type { Config } from './config';
import type { Logger } from './logger';
import { OllamaPoller } from './poller';
import { BodyBudget } from './request/body';
import { packageVersion } from './version';

export interface RunningGateway {
  gateway: Gateway;
  /** The port actually bound (useful with PORT=0). */
  port: number;
  /** The background poller of Ollama's state, when enabled. */
  poller: OllamaPoller | undefined;
  /** Stops accepting, waits up to `graceMs` for in-flight requests, then closes everything. */
  stop(graceMs?: number): Promise<void>;
}

export interface OtelSetup {
  resource: Resource;
  /** The tracing SDK, when started (it must start before this module loads). */
  tracing?: NodeSDK;
}

/**
 * A client sent something that is not HTTP, or too much of it, or too slowly. Answered as Node
 * would (400, 408, 431), logged at DEBUG: it is the client's failure, not the gateway's.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex, log: Logger): void {
  log.debug({ error: err.code ?? err.message }, 'malformed request from client');
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const reason = http.STATUS_CODES[status];
  socket.write(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  socket.destroy();
}

/** Sizes a test may give the console's history (narrow buckets make a minute of traffic a chart). */
export type HistorySizes = Partial<Omit<HistoryOptions, 'now'>>;

/** Starts the gateway with `config`; resolves once it listens. */
export async function startGateway(config: Config, log: Logger, otel?: OtelSetup, history: HistorySizes = {}): Promise<RunningGateway> {
  // The poller needs the upstream connection the app creates, and the app needs the telemetry;
  // the state gauges read the poller through this indirection.
  let poller: OllamaPoller | undefined;
  const bodyBudget = new BodyBudget(config.maxBufferedBodyBytes);
  const runtime = startTelemetry(
    {
      serviceVersion: packageVersion(),
      maxModelLabels: config.maxModelLabels,
      onModelLabelCap: (max) =>
        log.warn({ max_model_labels: max }, 'distinct model names reached MAX_MODEL_LABELS; further new names are reported as model="other"'),
      tracing: {
        captureContent: config.captureMessageContent,
        maxCaptureChars: config.maxCaptureChars,
        serverAddress: config.upstream.hostname,
        serverPort: config.upstream.port,
      },
      measurement: { stallMs: config.streamStallMs },
      families: config.metricFamilies,
      ollamaState: config.pollIntervalMs > 0 ? () => poller?.latest : undefined,
      bufferedBodyBytes: () => bodyBudget.held,
      history: config.console ? history : undefined,
    },
    otel?.resource ?? buildResource(packageVersion()),
    otel?.tracing,
  );
  const consoleHistory = runtime.history;
  const gateway = createGateway({
    config,
    log,
    telemetry: runtime.telemetry,
    bodyBudget,
    scrape: runtime.scrape,
    console: consoleHistory && {
      snapshot: () => Promise.resolve(consoleHistory.snapshot()),
      backends: () => [{ origin: config.upstream.origin, polled: config.pollIntervalMs > 0, state: poller?.latest }],
      about: { version: packageVersion(), startedAt: Date.now(), tracing: otel?.tracing !== undefined, contentCapture: config.captureMessageContent },
    },
  });
  if (config.pollIntervalMs > 0) {
    poller = new OllamaPoller(gateway.upstream, config.pollIntervalMs, log, (names) => runtime.telemetry.modelLabels.setServed(names));
    poller.start();
  }
  const server = http.createServer(
    // Node checks the head timeout on this interval; a fraction of the timeout keeps it close.
    { connectionsCheckingInterval: Math.max(250, Math.min(30_000, Math.floor(config.headersTimeoutMs / 4) || 30_000)) },
    gateway.handler,
  );
  // Ollama may take minutes before the first byte (model load), so a whole request has no time
  // limit; its head has HEADERS_TIMEOUT_SECONDS, its body REQUEST_BODY_TIMEOUT_SECONDS of silence.
  server.requestTimeout = 0;
  server.headersTimeout = config.headersTimeoutMs;
  server.keepAliveTimeout = 65_000;
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => answerClientError(err, socket, log));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = config.shutdownGraceMs): Promise<void> => {
    stopping ??= (async () => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, graceMs);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
      poller?.stop();
      gateway.close();
      await runtime.shutdown().catch(() => {});
    })();
    return stopping;
  };

  return { gateway, port, poller, stop };
}
