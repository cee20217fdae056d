/**
 * Starts the gateway: telemetry → Koa app → HTTP server, and knows how to stop it (drain in-flight
 * requests within a grace period, then flush telemetry).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Resource } from '@opentelemetry/resources';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import type { History, HistoryOptions } from '../otel/history/history';
import { mergeSnapshots, type ConsoleSnapshot } from '../otel/history/snapshot';
import { buildResource, gatheredExposition, startTelemetry, type Exposition, type ExpositionFormat } from '../otel/sdk';
import type { FleetState } from '../otel/state';
import type { WorkerLink } from './cluster/worker';
import { createGateway, type Gateway } from './app';
import type { Config } from './config';
import { ConnectionGate, connectionsTheFdLimitAllows, gateConnections, openFilesLimit } from './connections';
import { droppedLogLines, type Logger } from './logger';
import { randomBytes } from 'node:crypto';
import { Fleet } from './fleet/backends';
import { OllamaPoller } from './poller';
import { BodyBudget } from './request/body';
import { FairQueue } from './scheduler/fair-queue';
import { packageVersion } from './version';
import { tenantsFromConfig } from './app';
import { openStore } from './ledger/store';
import { DEFAULT_WRITER, LedgerWriter } from './ledger/writer';
import { Budgets } from './budgets/book';

/** How long a call waits for the ledger's reading of its budgets before the last reading is used. */
const BUDGET_READ_TIMEOUT_MS = 2000;

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

/** How often the polling worker checks for a new poll result to pass to the other workers. */
const STATE_RELAY_MS = 250;

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

/**
 * A scrape of every worker: the primary gathers every worker's piece and merges them (primary.ts).
 * Scrapes that arrive while one is being gathered share it (a burst of scrapes costs one gather).
 * Should the primary not answer (it is going away), the scrape fails rather than answer with this
 * worker's counters alone, which Prometheus would read as every other worker's counters going back.
 */
function gatheredScrape(link: WorkerLink, piece: () => Promise<string>): (format?: ExpositionFormat) => Promise<Exposition> {
  link.collect('metrics', piece);
  let gathering: Promise<string> | undefined;
  const gather = async () => {
    const pieces = await link.gather('metrics');
    if (pieces.length !== 1) throw new Error('the primary sent no merged metrics');
    return pieces[0]!.data;
  };
  return async (format = 'text') => {
    gathering ??= gather().finally(() => {
      gathering = undefined;
    });
    // The primary's merge, with the workers' exemplars (newest per bucket) on a line of its own.
    return gatheredExposition(await gathering, format);
  };
}

/**
 * The console's history of every worker: this one's snapshot and the others', merged. Should the
 * primary not answer, this worker's own is what is left.
 */
function gatheredSnapshot(link: WorkerLink, history: History): () => Promise<ConsoleSnapshot> {
  link.collect('console', () => Promise.resolve(JSON.stringify(history.snapshot())));
  return async () => {
    try {
      const pieces = await link.gather('console');
      // A retired piece is what workers that have exited had recorded: it stays in the sum.
      return mergeSnapshots(pieces.map((p) => JSON.parse(p.data) as ConsoleSnapshot));
    } catch {
      return history.snapshot();
    }
  };
}

/** Sizes a test may give the console's history (narrow buckets make a minute of traffic a chart). */
export type HistorySizes = Partial<Omit<HistoryOptions, 'now'>>;

/** Starts the gateway with `config`; resolves once it listens. */
export async function startGateway(config: Config, log: Logger, otel?: OtelSetup, link?: WorkerLink, history: HistorySizes = {}): Promise<RunningGateway> {
  // The poller needs the upstream connection the app creates, and the app needs the telemetry;
  // the state gauges read the poller through this indirection. Of several workers only the first
  // polls; the others read what it last relayed.
  let poller: OllamaPoller | undefined;
  let relayed: FleetState | undefined;
  const polls = config.pollIntervalMs > 0 && (link === undefined || link.polls);
  const bodyBudget = new BodyBudget(config.maxBufferedBodyBytes, config.maxBufferedBodyPerClientBytes);
  const pseudonym = `ollama-otel-gateway-${randomBytes(6).toString('hex')}`;
  const fleet = new Fleet(config.upstreams, config.upstreamIdleTimeoutMs, pseudonym, log, config.pollIntervalMs > 0);
  const tenants = tenantsFromConfig(config);
  const scheduler = config.backendParallel
    ? new FairQueue({
        slots: config.backendParallel,
        maxWaiting: config.queueMaxWaiting,
        maxWaitMs: config.queueTimeoutMs,
        maxRunning: config.maxConcurrentRequests,
        order: config.queueOrder,
      })
    : undefined;
  // Made once the ledger is open (below); the metric callbacks read it only after that.
  // eslint-disable-next-line prefer-const
  let budgets: Budgets;
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
      ollamaState: config.pollIntervalMs > 0 ? () => (polls ? poller?.latest : relayed) : undefined,
      exportState: polls,
      bufferedBodyBytes: () => bodyBudget.held,
      logLinesDropped: droppedLogLines,
      backends: fleet.backends.map((b) => b.ref),
      backendLoad: () => fleet.load(),
      queueWaiting: scheduler && (() => scheduler.snapshot()),
      queueTenants: tenants.names,
      budgets: () => budgets.latest(tenants.names).map((s) => ({ tenant: s.tenant, kind: s.limit.name, limit: s.limit.max, remaining: s.remaining })),
      history: config.console ? history : undefined,
      exemplars: otel?.tracing !== undefined,
      genAiLatest: config.genAiLatest,
    },
    otel?.resource ?? buildResource(packageVersion()),
    otel?.tracing,
  );
  const scrape = link ? gatheredScrape(link, runtime.piece) : runtime.scrape;
  const store = openStore(config, (err) => log.warn({ error: err.message }, 'usage ledger connection failed while idle; reconnecting'));
  const writer = store
    ? new LedgerWriter(
        store,
        log,
        { written: (n) => runtime.telemetry.ledgerWritten(n), dropped: (n) => runtime.telemetry.ledgerDropped(n) },
        { ...DEFAULT_WRITER, rawRetentionDays: config.ledgerRawRetentionDays, rollupRetentionDays: config.ledgerRollupRetentionDays },
      )
    : undefined;
  budgets = new Budgets(store, (name) => tenants.spec(name)?.rules, {
    log,
    readTimeoutMs: BUDGET_READ_TIMEOUT_MS,
    freshMs: 0,
  });
  if (writer) {
    writer.onWritten = (rows) => budgets.written(rows);
    writer.onDropped = (rows) => budgets.dropped(rows);
  }
  runtime.telemetry.usage = {
    record: (r) => {
      // The budgets hold the row before the writer can commit it (they stop counting it then).
      const limited = budgets.finished(r);
      writer?.record(r);
      // A limited account's call is written at once, so other workers and replicas see it.
      if (limited) void writer?.flush();
    },
  };
  budgets.start(() => tenants.names);
  const readState = () => (polls ? poller?.latest : relayed);
  const consoleHistory = runtime.history;
  const gateway = createGateway({
    config,
    log,
    telemetry: runtime.telemetry,
    bodyBudget,
    scrape,
    fleet,
    pseudonym,
    scheduler,
    tenants,
    budgets,
    usage: store && ((q) => store.usage(q)),
    console: consoleHistory && {
      queues: () => scheduler?.snapshot() ?? [],
      snapshot: link ? gatheredSnapshot(link, consoleHistory) : () => Promise.resolve(consoleHistory.snapshot()),
      backends: () =>
        fleet.backends.map((b) => ({ name: b.name, origin: b.target.origin, polled: config.pollIntervalMs > 0, state: readState()?.backends[b.name] })),
      about: {
        version: packageVersion(),
        startedAt: Date.now(),
        tracing: otel?.tracing !== undefined,
        contentCapture: config.captureMessageContent,
        traceUiUrl: config.traceUiUrl,
        workers: config.workers,
      },
    },
  });
  fleet.readState = readState;
  tenants.watch(log);
  const onHangUp = () => tenants.reload(log, 'SIGHUP');
  if (config.tenantsFile) process.on('SIGHUP', onHangUp);
  let relayTimer: NodeJS.Timeout | undefined;
  if (polls) {
    let served: string[] = [];
    poller = new OllamaPoller(fleet.backends, config.pollIntervalMs, log, (names) => {
      served = names;
      runtime.telemetry.modelLabels.setServed(names);
    });
    poller.start();
    if (link) {
      let sent: FleetState | undefined;
      relayTimer = setInterval(() => {
        const latest = poller?.latest;
        if (latest === sent) return;
        sent = latest;
        link.publishState({ state: latest, served });
      }, STATE_RELAY_MS);
      relayTimer.unref();
    }
  } else if (link) {
    link.onState((polled) => {
      relayed = polled.state;
      // What the polling worker learnt of each backend's health, this worker learns too.
      if (polled.state) fleet.observePolls(polled.state);
      runtime.telemetry.modelLabels.setServed(polled.served);
    });
  }
  const server = http.createServer(
    // Node checks the head timeout on this interval; a fraction of the timeout keeps it close.
    { connectionsCheckingInterval: Math.max(250, Math.min(30_000, Math.floor(config.headersTimeoutMs / 4) || 30_000)) },
  );
  const fdRoom = connectionsTheFdLimitAllows(openFilesLimit());
  const maxConnections = fdRoom === undefined ? config.maxConnections : Math.min(config.maxConnections, fdRoom);
  // Said at INFO: with the default MAX_CONNECTIONS and a low limit this is the expected set-up, not a fault.
  if (maxConnections < config.maxConnections) {
    log.info(
      { max_connections: maxConnections, open_files_limit: openFilesLimit() },
      'MAX_CONNECTIONS lowered to what the open-files limit (ulimit -n) leaves room for; raise the limit to hold more',
    );
  }
  const gate = new ConnectionGate(maxConnections, Math.min(config.maxConnectionsPerClient, maxConnections));
  server.on('request', gateConnections(server, gate, gateway.handler, log));
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
  link?.listening(port);

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
      if (relayTimer) clearInterval(relayTimer);
      process.off('SIGHUP', onHangUp);
      gateway.close();
      // Every call has finished (or been cut): all of them are in the buffer, written now.
      budgets.close();
      await writer?.close();
      await runtime.shutdown().catch(() => {});
    })();
    return stopping;
  };

  return { gateway, port, poller, stop };
}
