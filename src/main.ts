/**
 * Entry point. Tracing starts first, before the application's modules load, so that
 * instrumentation-http wraps `http` before anything uses it; then config → gateway → listen.
 * SIGTERM/SIGINT stop accepting connections, let in-flight requests finish within a grace period,
 * flush telemetry and exit 0.
 */
// First: an unsupported Node.js stops here, with one line, before anything else loads.
import './node-support';
import cluster from 'node:cluster';
import { logSdkDiagnostics, otelEnvProblem, telemetryDestinations } from '../otel/env';
import { buildResource, startTracing, tracingWanted } from '../otel/sdk';
import { WORKER_INDEX_ENV } from './cluster/messages';
import { runPrimary } from './cluster/primary';
import { workerShare } from './cluster/share';
import { WorkerLink } from './cluster/worker';
import { ConfigError, loadConfig, ollamaOrigins, type Config } from './config';
import { installLastResort } from './last-resort';
import { createLogger, type Logger } from './logger';
import { NOT_REACHABLE_YET, reachHint } from './reach-hint';
import { normalizeTarget } from './request/target';
import { GATEWAY_ENDPOINTS, isConsolePath } from './routes';
import { SETTINGS } from './settings';
import { packageVersion } from './version';

/** Whether a request target names one of the gateway's own endpoints. */
function isGatewayEndpoint(url: string): boolean {
  const target = normalizeTarget(url);
  return target !== undefined && (GATEWAY_ENDPOINTS.has(target.path) || isConsolePath(target.path));
}

/** HOST values that listen on every interface. */
const WILDCARD_HOSTS = new Set(['0.0.0.0', '::', '[::]']);

/** `--help`: every setting with its default, from the one settings list. */
function usage(): string {
  const width = Math.max(...SETTINGS.map((s) => s.name.length));
  const rows = SETTINGS.map((s) => `  ${s.name.padEnd(width)}  ${s.help}${s.default === '' ? '' : ` (default: ${s.default})`}`);
  return [
    `ollama-otel-gateway ${packageVersion()}: an OpenTelemetry-native gateway in front of Ollama.`,
    '',
    'Usage: ollama-otel-gateway [--help | --version]',
    '       ollama-otel-gateway usage --help   (reads the usage ledger)',
    '',
    'Configured by environment variables:',
    ...rows,
    '',
    'OpenTelemetry is configured by the standard OTEL_* variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER, …).',
    '',
  ].join('\n');
}

/** Handles the command line; true when the process should go on to serve. */
function commandLine(args: readonly string[]): boolean {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(usage());
    return false;
  }
  if (args.includes('--version') || args.includes('-v')) {
    process.stdout.write(`${packageVersion()}\n`);
    return false;
  }
  if (args.length > 0) {
    process.stderr.write(`ollama-otel-gateway: unknown argument ${JSON.stringify(args[0])}; settings come from the environment (see --help)\n`);
    process.exitCode = 2;
    return false;
  }
  return true;
}

/**
 * Under `npm start`, a service manager's SIGTERM reaches npm, which exits without passing it on:
 * the gateway would be left running, re-parented. So it watches its parent and, when the parent is
 * gone, stops as on SIGTERM.
 */
function stopWhenOrphaned(stop: () => void): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid !== parent) {
      clearInterval(timer);
      stop();
    }
  }, 250);
  timer.unref();
}

/** The warning for a gateway anyone on the network can use. */
function warnIfOpen(config: Config, port: number, log: Logger): void {
  if (WILDCARD_HOSTS.has(config.host) && config.apiKeys.length === 0 && config.tenantsFile === undefined) {
    log.warn(
      { listen: `${config.host}:${port}` },
      'listening on every interface without API keys: anyone who reaches this port can use Ollama through the gateway; set GATEWAY_API_KEYS (or HOST=127.0.0.1 to serve this machine only)',
    );
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === 'usage') {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { runUsageCommand } = require('./ledger/cli') as typeof import('./ledger/cli');
    process.exitCode = await runUsageCommand(process.argv.slice(3));
    return;
  }
  if (!commandLine(process.argv.slice(2))) return;
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
  const otelProblem = otelEnvProblem();
  if (otelProblem !== undefined) {
    process.stderr.write(`ollama-otel-gateway: configuration error: ${otelProblem}\n`);
    process.exit(2);
  }
  const log = createLogger(config.logLevel, undefined, { format: config.logFormat, bufferBytes: config.logBufferBytes });
  installLastResort(log);
  if (config.workers > 1 && cluster.isPrimary) {
    const destinations = telemetryDestinations(tracingWanted());
    warnIfOpen(config, config.port, log);
    runPrimary(config, log, destinations);
    return;
  }
  // A worker of several: its index, its share of the limits, its channel to the primary.
  const link = cluster.isWorker ? new WorkerLink(Number(process.env[WORKER_INDEX_ENV] ?? 0)) : undefined;
  if (link) config = workerShare(config, link.index);
  const wlog = link ? log.child({ worker: link.index }) : log;
  logSdkDiagnostics((problem, held) => wlog.warn({ ...problem, repeats_held_back: held || undefined }, 'OpenTelemetry export problem'));
  const resource = buildResource(packageVersion());
  // The host detector reads the machine id asynchronously; every reader of the resource (the
  // Prometheus exporter's target_info on the first scrape) would otherwise warn that it is unsettled.
  await resource.waitForAsyncAttributes?.();
  // OTEL_TRACES_EXPORTER=console: each span is one log line, not a multi-line object among them.
  const tracing = startTracing(resource, isGatewayEndpoint, (span) => wlog.info({ span }, 'span'));

  // Loaded only now, after instrumentation-http is in place.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { startGateway } = require('./server') as typeof import('./server');
  const running = await startGateway(config, wlog, { resource, tracing }, link);
  const destinations = telemetryDestinations(tracing !== undefined);
  if (link) wlog.debug({ listen: `${config.host}:${running.port}` }, 'worker listening');
  else {
    // Whatever LOG_LEVEL says: where it listens and where telemetry goes is always worth a line.
    log.child({}, { level: 'info' }).info(
      {
        listen: `${config.host}:${running.port}`,
        ollama: ollamaOrigins(config),
        version: packageVersion(),
        traces: destinations.traces,
        metrics: destinations.metrics,
      },
      'gateway listening',
    );
    warnIfOpen(config, running.port, log);
  }

  // Of several workers, the one that polls says whether Ollama answers. When polling is on, the
  // first poll says it when Ollama does not answer (one line per backend), so this does not too.
  if (!link || link.polls) {
    running.gateway.ollamaVersion().then(
      (version) => wlog.info({ ollama: config.upstream.origin, ollama_version: version }, 'Ollama is reachable'),
      (err: NodeJS.ErrnoException) => {
        if (config.pollIntervalMs > 0) return;
        const t = config.upstream;
        wlog.warn({ ollama: t.origin, reason: err.message, fix: reachHint(t.hostname, t.socketPath, err.code) }, NOT_REACHABLE_YET);
      },
    );
  }

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    // A worker's stop is told by the primary, once for all of them.
    const say = link ? wlog.debug.bind(wlog) : wlog.info.bind(wlog);
    say({ signal, traces: destinations.traces }, 'shutting down: draining in-flight requests');
    running.stop().then(() => {
      say('shutdown complete');
      wlog.flush(() => process.exit(0));
    });
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  // A worker whose primary is gone (killed) stops too.
  if (link) process.once('disconnect', () => onSignal('SIGTERM'));
  else if (process.env.npm_lifecycle_event !== undefined) stopWhenOrphaned(() => onSignal('SIGTERM'));
}

main().catch((err: unknown) => {
  process.stderr.write(`ollama-otel-gateway: failed to start: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(1);
});
