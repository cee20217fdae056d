/**
 * The standard `OTEL_*` variables, checked and described. A value the SDK would silently ignore
 * (an unknown exporter or protocol) stops the gateway at start, like its own settings; the
 * start-up line says where traces and metrics go; export failures reach the log at WARN, at most
 * once a minute per kind, instead of going unseen.
 */
import { diag, DiagLogLevel, type DiagLogger } from '@opentelemetry/api';
import { getBooleanFromEnv, getStringFromEnv, getStringListFromEnv } from '@opentelemetry/core';

const TRACE_EXPORTERS = ['otlp', 'console', 'none'];
const METRIC_EXPORTERS = ['otlp', 'prometheus', 'none'];
const PROTOCOLS = ['grpc', 'http/protobuf', 'http/json'];

/** The first `OTEL_*` value that is not one the gateway can act on, as one line; undefined when all are. */
export function otelEnvProblem(): string | undefined {
  const lists: [string, string[]][] = [
    ['OTEL_TRACES_EXPORTER', TRACE_EXPORTERS],
    ['OTEL_METRICS_EXPORTER', METRIC_EXPORTERS],
  ];
  for (const [name, allowed] of lists) {
    const bad = (getStringListFromEnv(name) ?? []).find((v) => !allowed.includes(v));
    if (bad !== undefined) return `${name}=${JSON.stringify(process.env[name])} is not valid: expected a comma-separated list of ${allowed.join(', ')}`;
  }
  for (const name of ['OTEL_EXPORTER_OTLP_PROTOCOL', 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL']) {
    const v = getStringFromEnv(name);
    if (v !== undefined && !PROTOCOLS.includes(v.trim())) return `${name}=${JSON.stringify(v)} is not valid: expected ${PROTOCOLS.join(', ')}`;
  }
  for (const name of ['OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT']) {
    const v = getStringFromEnv(name);
    if (v === undefined) continue;
    try {
      const url = new URL(v);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error();
    } catch {
      return `${name}=${JSON.stringify(v)} is not valid: expected an http:// or https:// URL`;
    }
  }
  return undefined;
}

function otlpTarget(signal: 'TRACES' | 'METRICS'): string {
  const endpoint = getStringFromEnv(`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`) ?? getStringFromEnv('OTEL_EXPORTER_OTLP_ENDPOINT');
  const protocol = getStringFromEnv(`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`) ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf';
  const fallback = protocol === 'grpc' ? 'http://localhost:4317' : 'http://localhost:4318';
  return `OTLP ${protocol} to ${endpoint ?? fallback}`;
}

/** Where spans and metrics go, in words, for the start-up line. */
export function telemetryDestinations(tracingStarted: boolean): { traces: string; metrics: string[] } {
  const disabled = getBooleanFromEnv('OTEL_SDK_DISABLED');
  const traceExporters = getStringListFromEnv('OTEL_TRACES_EXPORTER') ?? [];
  let traces = 'off (no OTLP endpoint set)';
  if (disabled) traces = 'off (OTEL_SDK_DISABLED)';
  else if (tracingStarted) traces = traceExporters.includes('console') && !traceExporters.includes('otlp') ? 'console' : otlpTarget('TRACES');
  const metrics = ['Prometheus at /metrics'];
  if (!disabled && (getStringListFromEnv('OTEL_METRICS_EXPORTER') ?? []).includes('otlp')) metrics.push(otlpTarget('METRICS'));
  return { traces, metrics };
}

/** How long the same kind of SDK warning stays quiet after it was logged. */
const QUIET_MS = 60_000;

/** Longest text carried from a diagnostic into the log. */
const MAX_TEXT = 1024;

/** One SDK diagnostic as log fields: its words, and the error it carries as fields of its own. */
export interface SdkProblem {
  detail: string;
  error?: { name?: string; message?: string; code?: string };
}

/** The fields of an error worth a log line, each a bounded string. */
function errorFields(e: Record<string, unknown>): SdkProblem['error'] {
  const pick = (k: string) => (e[k] === undefined || e[k] === null || e[k] === '' ? undefined : String(e[k]).slice(0, MAX_TEXT));
  return { name: pick('name'), message: pick('message'), code: pick('code') };
}

/** A JSON object serialised into a string (the SDK's error handler flattens errors that way), else undefined. */
function jsonObject(text: string): Record<string, unknown> | undefined {
  if (!text.startsWith('{')) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A diagnostic's arguments as one structured problem: no JSON inside a string. */
export function sdkProblem(args: readonly unknown[]): SdkProblem {
  const words: string[] = [];
  let error: SdkProblem['error'];
  for (const a of args) {
    const obj =
      a instanceof Error
        ? (a as unknown as Record<string, unknown>)
        : typeof a === 'string'
          ? jsonObject(a)
          : a !== null && typeof a === 'object'
            ? (a as Record<string, unknown>)
            : undefined;
    if (obj !== undefined) error ??= errorFields(a instanceof Error ? { name: a.name, message: a.message, code: (a as NodeJS.ErrnoException).code } : obj);
    else words.push(String(a));
  }
  const detail = (words.join(' ') || error?.message || 'unknown problem').slice(0, MAX_TEXT);
  return error === undefined ? { detail } : { detail, error };
}

/**
 * Routes the SDK's own diagnostics (export failures arrive as `diag.error`) to `warn`, each kind of
 * message at most once a minute, with how many were held back.
 */
export function logSdkDiagnostics(warn: (problem: SdkProblem, held: number) => void, now: () => number = Date.now): void {
  const last = new Map<string, { at: number; held: number }>();
  const report = (...args: unknown[]) => {
    const problem = sdkProblem(args);
    const kind = `${problem.detail}|${problem.error?.message ?? ''}`.slice(0, 60);
    const seen = last.get(kind);
    const t = now();
    if (seen && t - seen.at < QUIET_MS) {
      seen.held++;
      return;
    }
    if (last.size > 100) last.clear();
    last.set(kind, { at: t, held: 0 });
    warn(problem, seen?.held ?? 0);
  };
  const logger: DiagLogger = { error: report, warn: report, info: () => {}, debug: () => {}, verbose: () => {} };
  diag.setLogger(logger, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
}
