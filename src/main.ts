/**
 * Entry point. Tracing starts first, before the application's modules load, so that
 * instrumentation-http wraps `http` before anything uses it; then config → gateway → listen.
 * SIGTERM/SIGINT stop accepting connections, let in-flight requests finish within a grace period,
 * flush telemetry and exit 0.
 */
import { buildResource, startTracing } from '../otel/sdk';
import { ConfigError, loadConfig, type Config } from './config';
import { createLogger } from './logger';
import { normalizeTarget } from './request/target';
import { GATEWAY_ENDPOINTS } from './routes';
import { packageVersion } from './version';

/** Whether a request target names one of the gateway's own endpoints. */
function isGatewayEndpoint(url: string): boolean {
  const target = normalizeTarget(url);
  return target !== undefined && GATEWAY_ENDPOINTS.has(target.path);
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
  const resource = buildResource(packageVersion());
  const tracing = startTracing(resource, isGatewayEndpoint);

  // Loaded only now, after instrumentation-http is in place.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { startGateway } = require('./server') as typeof import('./server');
  const running = await startGateway(config, log, { resource, tracing });
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
      log.flush(() => process.exit(0));
    });
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}

main().catch((err: unknown) => {
  process.stderr.write(`ollama-otel-gateway: failed to start: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
