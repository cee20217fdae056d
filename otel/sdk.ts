/**
 * The metrics pipeline: a MeterProvider whose reader is the Prometheus exporter, with the
 * exporter's own HTTP server disabled so `/metrics` is served by the gateway on its own port.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { createInstruments } from './instruments';
import { ModelLabels } from './labels';
import { Telemetry } from './recorder';

export const METER_NAME = 'ollama-otel-gateway';

export interface TelemetryOptions {
  serviceName: string;
  serviceVersion: string;
  maxModelLabels: number;
  onModelLabelCap?: (max: number) => void;
}

export interface TelemetryRuntime {
  telemetry: Telemetry;
  /** Serves the Prometheus exposition for a GET /metrics request. */
  serveMetrics(req: IncomingMessage, res: ServerResponse): void;
  shutdown(): Promise<void>;
}

export function startTelemetry(opts: TelemetryOptions): TelemetryRuntime {
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': opts.serviceName, 'service.version': opts.serviceVersion }),
    readers: [exporter],
  });
  const meter = provider.getMeter(METER_NAME, opts.serviceVersion);
  const telemetry = new Telemetry(createInstruments(meter), new ModelLabels(opts.maxModelLabels, opts.onModelLabelCap));
  return {
    telemetry,
    serveMetrics: (req, res) => exporter.getMetricsRequestHandler(req, res),
    shutdown: () => provider.shutdown(),
  };
}
