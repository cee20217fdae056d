/**
 * The client span of the HTTP request the gateway sends to Ollama, made here rather than by
 * instrumentation-http's outgoing hook (which costs far more per request than the span itself):
 * a child of whatever span is active (the GenAI call span, or the server span of a passed-through
 * request), named by the method, with the HTTP client conventions' attributes; its context goes to
 * Ollama as `traceparent`. With tracing off there is no active span and this does nothing, so the
 * caller's own `traceparent` is forwarded unchanged; a call that is not sampled passes on its
 * (unsampled) context without a span.
 */
import { context, propagation, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import * as sc from './semconv';

export type EndUpstreamSpan = (status: number | undefined, error?: Error) => void;

const TRACER_NAME = 'ollama-otel-gateway';

/**
 * Starts the span of one request to Ollama and writes its context into `headers`; returns how to
 * end it (once; later calls do nothing), or undefined when there is no span to end.
 */
export function startUpstreamSpan(
  method: string,
  address: string,
  port: number,
  url: string,
  headers: Record<string, string | string[] | undefined>,
): EndUpstreamSpan | undefined {
  const active = context.active();
  const parent = trace.getSpan(active);
  if (parent === undefined) return undefined;
  if (!parent.isRecording()) {
    propagation.inject(active, headers);
    return undefined;
  }
  const span: Span = trace.getTracer(TRACER_NAME).startSpan(
    method,
    {
      kind: SpanKind.CLIENT,
      attributes: { [sc.HTTP_REQUEST_METHOD]: method, [sc.SERVER_ADDRESS]: address, [sc.SERVER_PORT]: port, [sc.URL_FULL]: url },
    },
    active,
  );
  propagation.inject(trace.setSpan(active, span), headers);
  let ended = false;
  return (status, error) => {
    if (ended) return;
    ended = true;
    if (status !== undefined) span.setAttribute(sc.HTTP_RESPONSE_STATUS_CODE, status);
    if (error !== undefined) {
      span.setAttribute(sc.ERROR_TYPE, (error as NodeJS.ErrnoException).code ?? error.name);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    } else if (status !== undefined && status >= 500) {
      span.setAttribute(sc.ERROR_TYPE, String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  };
}
