/**
 * `OTEL_TRACES_EXPORTER=console`, one line per span. The SDK's console exporter prints each span
 * as a multi-line object on stdout, between the gateway's log lines, where no log reader can parse
 * it; here each finished span becomes one record, handed to the caller (the gateway writes it as a
 * log line, so it takes the log's format, level and bound).
 */
import { hrTimeToMicroseconds, ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

/** What a span line says: the fields the SDK's console exporter shows, flat. */
export interface SpanRecord {
  trace_id: string;
  span_id: string;
  parent_span_id?: string;
  name: string;
  kind: number;
  start_us: number;
  duration_us: number;
  status_code: number;
  status_message?: string;
  attributes: Record<string, unknown>;
  events?: { name: string; attributes?: Record<string, unknown> }[];
}

export class SpanLineExporter implements SpanExporter {
  constructor(private readonly write: (span: SpanRecord) => void) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    for (const span of spans) {
      const ctx = span.spanContext();
      this.write({
        trace_id: ctx.traceId,
        span_id: ctx.spanId,
        parent_span_id: span.parentSpanContext?.spanId,
        name: span.name,
        kind: span.kind,
        start_us: hrTimeToMicroseconds(span.startTime),
        duration_us: hrTimeToMicroseconds(span.duration),
        status_code: span.status.code,
        status_message: span.status.message,
        attributes: { ...span.attributes },
        events: span.events.length > 0 ? span.events.map((e) => ({ name: e.name, attributes: e.attributes })) : undefined,
      });
    }
    done({ code: ExportResultCode.SUCCESS });
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
}
