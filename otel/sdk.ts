/**
 * OpenTelemetry set-up, configured by the standard `OTEL_*` variables.
 *
 * - Metrics: a MeterProvider whose first reader is the Prometheus exporter, with the exporter's own
 *   HTTP server disabled so `/metrics` is served by the gateway on its own port. With
 *   `OTEL_METRICS_EXPORTER=otlp` a periodic OTLP reader pushes the same measurements.
 * - Traces: `@opentelemetry/sdk-node` with `@opentelemetry/instrumentation-http`, started before the
 *   application loads, when there is somewhere to send spans (`OTEL_TRACES_EXPORTER` other than
 *   `none`, or an OTLP endpoint). Otherwise tracing is off: nothing tries to reach a collector that
 *   is not there, and the caller's W3C trace context is passed on to Ollama unchanged.
 * - `OTEL_SDK_DISABLED=true` turns tracing and OTLP export off; `/metrics` stays, since serving it
 *   is the gateway's job rather than the SDK's.
 */
import { diag, trace, type Tracer } from '@opentelemetry/api';
import { getBooleanFromEnv, getStringFromEnv, getStringListFromEnv } from '@opentelemetry/core';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { defaultResource, detectResources, envDetector, hostDetector, processDetector, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  InstrumentType,
  MeterProvider,
  PeriodicExportingMetricReader,
  type IMetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import type { NodeSDK } from '@opentelemetry/sdk-node';
import type { SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { memoiseAttributeHashing } from './attribute-hash';
import { exemplarMeter, ExemplarStore, splitExemplars, UNIT_SUFFIXES, type Exemplar } from './exemplars';
import { OPENMETRICS_CONTENT_TYPE, toOpenMetrics } from './openmetrics';
import type { BackendRef } from './attributes';
import { History, type HistoryOptions } from './history/history';
import { ATTR_BACKEND, ATTR_KIND, ATTR_TENANT, createInstruments, type MetricFamily } from './instruments';
import { ModelLabels } from './labels';
import { PacedRendering } from './pacing';
import { Telemetry, type MeasurementOptions, type TracingOptions } from './recorder';
import { SpanLineExporter, type SpanRecord } from './span-lines';
import { observeOllamaState, type FleetState } from './state';

/** One backend's load as the router sees it now, for `ollama_backend_in_flight` and `ollama_backend_healthy`. */
export interface BackendLoad {
  name: string;
  inFlight: number;
  healthy: boolean;
}

export const INSTRUMENTATION_NAME = 'ollama-otel-gateway';
export const DEFAULT_SERVICE_NAME = 'ollama-otel-gateway';

export interface TelemetryOptions {
  serviceVersion: string;
  maxModelLabels: number;
  onModelLabelCap?: (max: number) => void;
  tracing: Omit<TracingOptions, 'tracer'>;
  measurement: MeasurementOptions;
  families: ReadonlySet<MetricFamily>;
  /** Where the gauges describing Ollama read from; without it they are not created. */
  ollamaState?: () => FleetState | undefined;
  /**
   * Whether this process exports the gauges describing Ollama (default true). A worker that does not
   * poll still reads the state (for context windows) but leaves the gauges to the one that polls.
   */
  exportState?: boolean;
  /** Every configured backend; with more than one, series carry `backend` and the routing metrics exist. */
  backends?: readonly BackendRef[];
  /** Each backend's load now (several backends). */
  backendLoad?: () => readonly BackendLoad[];
  /** Calls waiting in the fair queue now, per tenant (BACKEND_PARALLEL). */
  queueWaiting?: () => readonly { tenant: string; waiting: number }[];
  /** Each limited tenant's limits and what is left of them (kind: the limit's name). */
  budgets?: () => readonly { tenant: string; kind: string; limit: number; remaining: number }[];
  /** The tenants the configuration knows: each has a queue series from the start. */
  queueTenants?: readonly string[];
  /** Bytes of request bodies held now. */
  bufferedBodyBytes?: () => number;
  /** Log lines dropped so far because stdout did not take them. */
  logLinesDropped?: () => number;
  /** Keep the console's history (CONSOLE), with these sizes (defaults otherwise). */
  history?: Partial<HistoryOptions>;
  /** The GenAI metrics under the newest conventions' names (OTEL_SEMCONV_STABILITY_OPT_IN). */
  genAiLatest?: boolean;
  /** Keep exemplars of sampled calls (when tracing is on). */
  exemplars?: boolean;
}

/** The exposition formats `/metrics` serves: the classic text, or OpenMetrics (with exemplars). */
export type ExpositionFormat = 'text' | 'openmetrics';

/** A Prometheus text exposition and its media type. */
export interface Exposition {
  contentType: string;
  body: string;
}

/**
 * Unit suffixes the OpenTelemetry→Prometheus compatibility rules append to a metric's name, as a
 * Collector's Prometheus exporter does (`gen_ai.client.operation.duration` in seconds →
 * `gen_ai_client_operation_duration_seconds`), so a dashboard works whichever way the metrics
 * travel. The JS exporter does not apply them itself. Names that already end with the suffix (all
 * `ollama_*` ones) are left alone; annotation units such as `{token}` add nothing.
 */
function withUnitSuffixes(resourceMetrics: ResourceMetrics): ResourceMetrics {
  return {
    ...resourceMetrics,
    scopeMetrics: resourceMetrics.scopeMetrics.map((scope) => ({
      ...scope,
      metrics: scope.metrics.map((metric) => {
        const suffix = UNIT_SUFFIXES[metric.descriptor.unit];
        const name = metric.descriptor.name;
        if (suffix === undefined || name.endsWith(suffix) || name.endsWith(suffix.replace('_', '.'))) return metric;
        return { ...metric, descriptor: { ...metric.descriptor, name: name + suffix } };
      }),
    })),
  };
}

/** Longest wait for the last spans and metrics to be exported at shutdown. */
const SHUTDOWN_FLUSH_MS = 5000;

/** The Prometheus text format, version 0.0.4. */
export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface TelemetryRuntime {
  telemetry: Telemetry;
  /** The console's history, when kept. */
  history: History | undefined;
  /** Collects the metrics as one Prometheus exposition, for the caller to serve. */
  scrape(format?: ExpositionFormat): Promise<Exposition>;
  /** This process's classic exposition with its exemplars, as a piece for a gathered scrape. */
  piece(): Promise<string>;
  /** Flushes and stops metrics and traces. */
  shutdown(): Promise<void>;
}

/**
 * The Prometheus exporter with one change: observable gauges are collected with delta temporality.
 * With the exporter's cumulative default the SDK keeps reporting a gauge's last value for every
 * attribute set it ever saw, so a model that was unloaded, or every Ollama gauge after a failed
 * poll, would go on showing stale values. Under delta, a gauge shows exactly what its callback
 * observed at this scrape (a gauge has no start time for Prometheus to care about).
 */
class PrometheusReader extends PrometheusExporter {
  override selectAggregationTemporality(instrumentType: InstrumentType): AggregationTemporality {
    return instrumentType === InstrumentType.OBSERVABLE_GAUGE ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE;
  }
}

/** `service.name` defaults to ollama-otel-gateway; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win. */
export function buildResource(serviceVersion: string): Resource {
  return defaultResource()
    .merge(resourceFromAttributes({ 'service.name': DEFAULT_SERVICE_NAME, 'service.version': serviceVersion }))
    .merge(detectResources({ detectors: [envDetector, processDetector, hostDetector] }));
}

// The OTLP exporters and sdk-node are loaded only when configured: together they hold about
// 25 MB of memory that a gateway serving only /metrics does not need.
/* eslint-disable @typescript-eslint/no-require-imports */

function otlpMetricExporter(): PushMetricExporter {
  const protocol = (getStringFromEnv('OTEL_EXPORTER_OTLP_METRICS_PROTOCOL') ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf').trim();
  switch (protocol) {
    case 'grpc':
      return new (require('@opentelemetry/exporter-metrics-otlp-grpc') as typeof import('@opentelemetry/exporter-metrics-otlp-grpc')).OTLPMetricExporter();
    case 'http/json':
      return new (require('@opentelemetry/exporter-metrics-otlp-http') as typeof import('@opentelemetry/exporter-metrics-otlp-http')).OTLPMetricExporter();
    default:
      return new (require('@opentelemetry/exporter-metrics-otlp-proto') as typeof import('@opentelemetry/exporter-metrics-otlp-proto')).OTLPMetricExporter();
  }
}

/** Metric readers besides Prometheus, from OTEL_METRICS_EXPORTER (`otlp` adds OTLP push). */
function extraMetricReaders(sdkDisabled: boolean): IMetricReader[] {
  if (sdkDisabled) return [];
  const wanted = getStringListFromEnv('OTEL_METRICS_EXPORTER') ?? [];
  if (!wanted.includes('otlp')) return [];
  const interval = Number(getStringFromEnv('OTEL_METRIC_EXPORT_INTERVAL') ?? 60_000);
  const timeout = Number(getStringFromEnv('OTEL_METRIC_EXPORT_TIMEOUT') ?? 30_000);
  return [
    new PeriodicExportingMetricReader({
      exporter: otlpMetricExporter(),
      exportIntervalMillis: interval > 0 ? interval : 60_000,
      exportTimeoutMillis: Math.min(timeout > 0 ? timeout : 30_000, interval > 0 ? interval : 60_000),
    }),
  ];
}

/**
 * Whether the environment asks for traces. With nowhere to send spans, tracing is not started at
 * all: sdk-node would otherwise default to OTLP at localhost:4318 and log export errors forever,
 * and instrumenting every request for spans nobody receives costs more CPU than the rest of the
 * gateway. The caller's traceparent still reaches Ollama: it is forwarded with the other headers.
 */
export function tracingWanted(): boolean {
  if (getBooleanFromEnv('OTEL_SDK_DISABLED')) return false;
  const otlpEndpoint = getStringFromEnv('OTEL_EXPORTER_OTLP_ENDPOINT') ?? getStringFromEnv('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const exporters = getStringListFromEnv('OTEL_TRACES_EXPORTER') ?? [];
  return !(exporters.includes('none') || (exporters.length === 0 && !otlpEndpoint));
}

function otlpTraceExporter(): SpanExporter {
  const protocol = (getStringFromEnv('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf').trim();
  switch (protocol) {
    case 'grpc':
      return new (require('@opentelemetry/exporter-trace-otlp-grpc') as typeof import('@opentelemetry/exporter-trace-otlp-grpc')).OTLPTraceExporter();
    case 'http/json':
      return new (require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter();
    default:
      return new (require('@opentelemetry/exporter-trace-otlp-proto') as typeof import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter();
  }
}

/**
 * With `console` among OTEL_TRACES_EXPORTER, the span processors: the console's spans as one
 * record each through `spanLine`, and OTLP as the SDK would set it up when listed too. Undefined
 * otherwise: the SDK reads the variable itself.
 */
function consoleSpanProcessors(spanLine: ((span: SpanRecord) => void) | undefined): SpanProcessor[] | undefined {
  const exporters = getStringListFromEnv('OTEL_TRACES_EXPORTER') ?? [];
  if (!exporters.includes('console') || !spanLine) return undefined;
  const { BatchSpanProcessor, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  const processors: SpanProcessor[] = [new SimpleSpanProcessor(new SpanLineExporter(spanLine))];
  if (exporters.includes('otlp')) processors.push(new BatchSpanProcessor(otlpTraceExporter()));
  return processors;
}

/**
 * Starts tracing with sdk-node. Must run before the application's modules load, so that
 * instrumentation-http wraps `http` before anything uses it. `untraced` tells the request targets
 * that get no server span; `spanLine` receives each span for `OTEL_TRACES_EXPORTER=console`, one
 * record per span (without it the SDK prints its multi-line objects). Returns undefined when
 * disabled.
 */
export function startTracing(resource: Resource, untraced: (url: string) => boolean = () => false, spanLine?: (span: SpanRecord) => void): NodeSDK | undefined {
  if (!tracingWanted()) return undefined;
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const { HttpInstrumentation } = require('@opentelemetry/instrumentation-http') as typeof import('@opentelemetry/instrumentation-http');
  const sdk = new NodeSDK({
    resource,
    autoDetectResources: false,
    metricReaders: [],
    logRecordProcessors: [],
    spanProcessors: consoleSpanProcessors(spanLine),
    instrumentations: [
      new HttpInstrumentation({
        // The request to Ollama gets its span from the gateway itself (upstream-span.ts): the
        // hook on every outgoing request costs several times what the span does.
        disableOutgoingRequestInstrumentation: true,
        // The gateway's own endpoints get no server span (probes would flood traces).
        ignoreIncomingRequestHook: (req) => untraced(req.url ?? '/'),
      }),
    ],
  });
  sdk.start();
  return sdk;
}

/** Creates the metrics pipeline and the Telemetry the gateway records into. */
export function startTelemetry(opts: TelemetryOptions, resource: Resource, tracing?: NodeSDK): TelemetryRuntime {
  // Before any instrument exists: the SDK's attribute maps take the hash function when made.
  memoiseAttributeHashing();
  const prometheus = new PrometheusReader({ preventServerStart: true, withoutScopeInfo: true });
  const serializer = new PrometheusSerializer('', false, undefined, false, true);
  const provider = new MeterProvider({
    resource,
    readers: [prometheus, ...extraMetricReaders(getBooleanFromEnv('OTEL_SDK_DISABLED'))],
  });
  const exemplars = opts.exemplars === true ? new ExemplarStore() : undefined;
  const sdkMeter = provider.getMeter(INSTRUMENTATION_NAME, opts.serviceVersion);
  const meter = exemplars ? exemplarMeter(sdkMeter, exemplars) : sdkMeter;
  const tracer: Tracer = trace.getTracer(INSTRUMENTATION_NAME, opts.serviceVersion);
  const backends = opts.backends ?? [];
  const routed = backends.length > 1;
  const exportState = opts.exportState !== false;
  const instruments = createInstruments(meter, opts.families, opts.ollamaState !== undefined && exportState, routed, opts.genAiLatest === true);
  if (instruments.state && opts.ollamaState) observeOllamaState(meter, instruments.state, opts.ollamaState, routed);
  const load = opts.backendLoad;
  const fleet = instruments.fleet;
  if (fleet && load) {
    // Worker scrapes are summed: every worker adds its calls in flight; health is reported by one
    // process only (the one that polls), as the state gauges are.
    meter.addBatchObservableCallback(
      (r) => {
        for (const b of load()) {
          r.observe(fleet.backendInFlight, b.inFlight, { [ATTR_BACKEND]: b.name });
          if (exportState) r.observe(fleet.backendHealthy, b.healthy ? 1 : 0, { [ATTR_BACKEND]: b.name });
        }
      },
      [fleet.backendInFlight, fleet.backendHealthy],
    );
  }
  const waiting = opts.queueWaiting;
  const gauge = instruments.ollama?.fairQueueWaiting;
  if (waiting && gauge) {
    // Every tenant seen stays a series (0 when none wait), so a drained queue reads 0, not absent.
    const seen = new Set<string>(opts.queueTenants);
    gauge.addCallback((r) => {
      const now = new Map(waiting().map((q) => [q.tenant, q.waiting]));
      for (const t of now.keys()) seen.add(t);
      for (const t of seen) r.observe(now.get(t) ?? 0, { [ATTR_TENANT]: t });
    });
  }
  const budgets = opts.budgets;
  const tenantIns = instruments.tenant;
  if (budgets && tenantIns) {
    meter.addBatchObservableCallback(
      (r) => {
        for (const b of budgets()) {
          const attrs = { [ATTR_TENANT]: b.tenant, [ATTR_KIND]: b.kind };
          r.observe(tenantIns.budgetLimit, b.limit, attrs);
          r.observe(tenantIns.budgetRemaining, b.remaining, attrs);
        }
      },
      [tenantIns.budgetLimit, tenantIns.budgetRemaining],
    );
  }
  const bodyBytes = opts.bufferedBodyBytes;
  if (bodyBytes) instruments.ollama?.bufferedBodyBytes.addCallback((r) => r.observe(bodyBytes()));
  const logDrops = opts.logLinesDropped;
  if (logDrops) instruments.ollama?.logLinesDropped.addCallback((r) => r.observe(logDrops()));
  const labels = new ModelLabels(opts.maxModelLabels, opts.onModelLabelCap);
  const history = opts.history ? new History(opts.history, (model) => labels.detailed(model)) : undefined;
  const telemetry = new Telemetry(instruments, labels, { ...opts.tracing, tracer }, opts.measurement, opts.ollamaState, backends, history);
  telemetry.exemplars = exemplars;
  // Concurrent and back-to-back scrapes share one rendering, paced by its cost (pacing.ts).
  const rendering = new PacedRendering<string>(async () => {
    const { resourceMetrics, errors } = await prometheus.collect();
    if (errors.length > 0) diag.error('metrics collection errors', ...errors);
    return { value: serializer.serialize(withUnitSuffixes(resourceMetrics)) };
  });
  return {
    telemetry,
    history,
    scrape: async (format = 'text') => formatExposition(await rendering.get(), exemplars?.entries(), format),
    piece: async () => (await rendering.get()) + (exemplars?.piece() ?? ''),
    shutdown: async () => {
      // An unreachable collector must not hold the exit for the exporters' own timeouts.
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), SHUTDOWN_FLUSH_MS)));
      const result = await Promise.race([Promise.allSettled([provider.shutdown(), tracing?.shutdown()]), timedOut]);
      clearTimeout(timer);
      if (result === 'timeout')
        diag.warn(`telemetry was not flushed within ${SHUTDOWN_FLUSH_MS / 1000} s (is the OTLP endpoint reachable?); exiting without it`);
    },
  };
}

/** The exposition in `format`, from a classic text and its exemplars. */
export function formatExposition(classic: string, exemplars: ReadonlyMap<string, Exemplar> | undefined, format: ExpositionFormat): Exposition {
  if (format === 'openmetrics') return { contentType: OPENMETRICS_CONTENT_TYPE, body: toOpenMetrics(classic, exemplars ?? new Map()) };
  return { contentType: EXPOSITION_CONTENT_TYPE, body: classic };
}

/** A gathered scrape: the primary's merge, whose exemplars (newest per bucket) ride on their own comment line. */
export function gatheredExposition(merged: string, format: ExpositionFormat): Exposition {
  const { text, exemplars } = splitExemplars(merged);
  return formatExposition(text, exemplars, format);
}
