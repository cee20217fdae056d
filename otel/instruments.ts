/**
 * Every metric the gateway exports: names, units, descriptions and bucket boundaries, in one place.
 *
 * The `ollama_*` names are the ones the predecessor exporter published, so existing dashboards keep
 * working; the Prometheus exporter serves them verbatim (counters already end in `_total`).
 * Durations are in seconds (Ollama reports nanoseconds; the recorder converts).
 */
import type { Counter, Histogram, Meter, UpDownCounter } from '@opentelemetry/api';

/** Attribute keys on the `ollama_*` metrics. */
export const ATTR_MODEL = 'model';
export const ATTR_ENDPOINT = 'endpoint';
export const ATTR_STATUS = 'status';
export const ATTR_REASON = 'reason';

/**
 * Durations from a few milliseconds (a warm embedding) to twenty minutes (a cold load of a 70B
 * model on a slow disk followed by a long generation).
 */
export const DURATION_BUCKETS_SECONDS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200,
];

/** Generation speed, from a CPU-bound large model (~1 tok/s) to a small model on a fast GPU. */
export const TOKENS_PER_SECOND_BUCKETS = [1, 2, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000, 2000];

/** Why an instrumented request failed: a small fixed set, so the label stays bounded. */
export type ErrorReason =
  | 'upstream_unreachable'
  | 'upstream_timeout'
  | 'upstream_4xx'
  | 'upstream_5xx'
  | 'stream_error'
  | 'client_cancelled'
  | 'body_too_large';

export interface Instruments {
  requests: Counter;
  requestErrors: Counter;
  responseSeconds: Histogram;
  loadSeconds: Histogram;
  promptEvalSeconds: Histogram;
  evalSeconds: Histogram;
  tokensPerSecond: Histogram;
  tokensProcessed: Counter;
  tokensGenerated: Counter;
  inFlight: UpDownCounter;
}

function durationHistogram(meter: Meter, name: string, description: string): Histogram {
  return meter.createHistogram(name, {
    description,
    unit: 's',
    advice: { explicitBucketBoundaries: DURATION_BUCKETS_SECONDS },
  });
}

/** Creates every instrument on `meter`. Called once at start. */
export function createInstruments(meter: Meter): Instruments {
  return {
    requests: meter.createCounter('ollama_requests_total', {
      description: 'Instrumented LLM requests, counted once each whatever their outcome.',
    }),
    requestErrors: meter.createCounter('ollama_request_errors_total', {
      description: 'Instrumented LLM requests that failed, by reason.',
    }),
    responseSeconds: durationHistogram(
      meter,
      'ollama_response_seconds',
      'Wall time at the gateway from request received to the last byte sent.',
    ),
    loadSeconds: durationHistogram(meter, 'ollama_load_duration_seconds', "Ollama's reported model load time (load_duration)."),
    promptEvalSeconds: durationHistogram(
      meter,
      'ollama_prompt_eval_duration_seconds',
      "Ollama's reported prompt evaluation time (prompt_eval_duration).",
    ),
    evalSeconds: durationHistogram(meter, 'ollama_eval_duration_seconds', "Ollama's reported generation time (eval_duration)."),
    tokensPerSecond: meter.createHistogram('ollama_tokens_per_second', {
      description:
        'Generation speed: eval_count / eval_duration on the native API; on OpenAI-compatible streams, output tokens over the time between the first and last content chunk.',
      unit: '{token}/s',
      advice: { explicitBucketBoundaries: TOKENS_PER_SECOND_BUCKETS },
    }),
    tokensProcessed: meter.createCounter('ollama_tokens_processed_total', {
      description: 'Input (prompt) tokens: prompt_eval_count, or usage.prompt_tokens.',
      unit: '{token}',
    }),
    tokensGenerated: meter.createCounter('ollama_tokens_generated_total', {
      description: 'Output (generated) tokens: eval_count, or usage.completion_tokens.',
      unit: '{token}',
    }),
    inFlight: meter.createUpDownCounter('ollama_requests_in_flight', {
      description: 'Instrumented LLM requests being served; a stream counts until its last byte.',
    }),
  };
}
