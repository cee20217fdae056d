/**
 * Entry point: config → telemetry → gateway → listen. SIGTERM/SIGINT stop accepting connections,
 * let in-flight requests finish within a grace period, flush telemetry and exit 0.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { startTelemetry, type TelemetryRuntime } from '../otel/sdk';
import { createGateway, type Gateway } from './app';
import { ConfigError, loadConfig, type Config } from './config';
import { createLogger, type Logger } from './logger';

export interface RunningGateway {
  server: http.Server;
  gateway: Gateway;
  runtime: TelemetryRuntime;
  config: Config;
  log: Logger;
  /** The port actually bound (useful with PORT=0). */
  port: number;
  /** Stops accepting, waits up to `graceMs` for in-flight requests, then closes everything. */
  stop(graceMs?: number): Promise<void>;
}

const DEFAULT_GRACE_MS = 30_000;

export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Starts the gateway with `config`; resolves once it listens. */
export async function startGateway(config: Config, log: Logger): Promise<RunningGateway> {
  const runtime = startTelemetry({
    serviceName: config.serviceName,
    serviceVersion: packageVersion(),
    maxModelLabels: config.maxModelLabels,
    onModelLabelCap: (max) =>
      log.warn({ max_model_labels: max }, 'distinct model names reached MAX_MODEL_LABELS; further new names are reported as model="other"'),
  });
  const gateway = createGateway({ config, log, telemetry: runtime.telemetry, serveMetrics: runtime.serveMetrics });
  const server = http.createServer(gateway.app.callback());
  // Ollama may take minutes before the first byte (model load); never time out the client side.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = DEFAULT_GRACE_MS): Promise<void> => {
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
      gateway.close();
      await runtime.shutdown().catch(() => {});
    })();
    return stopping;
  };

  return { server, gateway, runtime, config, log, port, stop };
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ollama-otel-gateway: configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  const running = await startGateway(config, log);
  log.info({ listen: `${config.host}:${running.port}`, ollama: config.upstream.origin, version: packageVersion() }, 'gateway listening');

  running.gateway.ollamaVersion().then(
    (version) => log.info({ ollama: config.upstream.origin, ollama_version: version }, 'Ollama is reachable'),
    (err: Error) =>
      log.warn({ ollama: config.upstream.origin, reason: err.message }, 'Ollama is not reachable yet; serving anyway, requests will get 502 until it is'),
  );

  const onSignal = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'shutting down: draining in-flight requests');
    running.stop().then(() => {
      log.info('shutdown complete');
      log.flush();
      process.exit(0);
    });
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`ollama-otel-gateway: failed to start: ${(err as Error)?.message ?? String(err)}\n`);
    process.exit(1);
  });
}
