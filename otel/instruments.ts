/**
 * Every metric the gateway exports: names, units, descriptions and bucket boundaries, in one place.
 *
 * Two families, each of which METRIC_FAMILIES can turn off:
 * - `ollama`: the `ollama_*` names the predecessor exporter published, so existing dashboards keep
 *   working, plus the gateway's own latency, queueing and error measurements. The Prometheus
 *   exporter serves them verbatim (counters already end in `_total`). Durations in seconds.
 * - `gen_ai`: the OpenTelemetry GenAI semantic-convention metrics, from the same measurements.
 *   Followed: semconv v1.37 "Semantic conventions for generative AI metrics"
 *   (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-metrics/), names, units and the
 *   bucket boundaries it recommends. Prometheus shows them with `.` as `_`.
 *
 * The `ollama_up` / `ollama_build_info` / model gauges describe Ollama itself (from the poller) and
 * belong to the `ollama` family.
 */
import type { Counter, Histogram, Meter, ObservableCounter, ObservableGauge, UpDownCounter } from '@opentelemetry/api';

/** Attribute keys on the `ollama_*` metrics. */
export const ATTR_MODEL = 'model';
export const ATTR_ENDPOINT = 'endpoint';
export const ATTR_STATUS = 'status';
export const ATTR_REASON = 'reason';
export const ATTR_VERSION = 'version';
/** On `ollama_gateway_auth_failures_total`: `api` (proxied requests) or `metrics`. */
export const ATTR_SCOPE = 'scope';
/** On `ollama_context_limit_hits_total`: which limit the call ran into (`ContextLimitKind`). */
export const ATTR_KIND = 'kind';
/**
 * With several Ollama servers: the backend a call went to (`host:port` as configured in
 * OLLAMA_HOST, a Unix socket's path), bounded by that list. `none` on calls that reached no
 * backend (refused body, queue timeout, client gone first).
 */
export const ATTR_BACKEND = 'backend';
/** On `ollama_backend_failovers_total`: the backend that failed and the one the call went to next. */
export const ATTR_FROM = 'from';
export const ATTR_TO = 'to';
/**
 * On the `ollama_tenant_*` counters: the tenant a call was made by, one of the names in the
 * tenants file (or `key-<fingerprint>` per GATEWAY_API_KEYS key, `anonymous` without keys), so
 * bounded by the configuration. End users are never a label: they live in the ledger.
 */
export const ATTR_TENANT = 'tenant';
/** On `ollama_tenant_tokens_total`: `input`, `cached` (a part of input) or `output`. */
export const ATTR_TYPE = 'type';
/** The `backend` label of a call that reached no backend. */
export const NO_BACKEND = 'none';

/**
 * Why a backend was chosen for an LLM call (`ollama_routing_decisions_total{reason}`):
 * - `loaded`: it has the model in memory (fewest in flight among those that do);
 * - `on_disk`: none has it loaded, it has it on disk (a cold load, spread by fewest in flight);
 * - `none_has_it`: no healthy backend has it; the least busy one answers (404, or a pull);
 * - `affinity`: the backend this conversation went to before (ROUTING_AFFINITY=prefix);
 * - `retry`: the next candidate after the first failed before answering.
 */
export const ROUTING_REASONS = ['loaded', 'on_disk', 'none_has_it', 'affinity', 'retry'] as const;
export type RoutingReason = (typeof ROUTING_REASONS)[number];

/**
 * How a call ran into its context window (rules in `otel/call.ts` `contextUse`):
 * - `prompt_truncated`: Ollama (probably) cut the prompt to fit the window;
 * - `output_truncated`: the window filled up while the answer was generated (context shift).
 */
export type ContextLimitKind = 'prompt_truncated' | 'output_truncated';
export const CONTEXT_LIMIT_KINDS: readonly ContextLimitKind[] = ['prompt_truncated', 'output_truncated'];

/** The label value of a request whose model is not known (no body, not JSON, no `model`). */
export const UNKNOWN_LABEL = 'unknown';

/** Attribute keys on the GenAI metrics (semconv). */
export const GEN_AI_TOKEN_TYPE = 'gen_ai.token.type';
export const TOKEN_TYPE_INPUT = 'input';
export const TOKEN_TYPE_OUTPUT = 'output';

/**
 * Durations from a few milliseconds (a warm embedding) to twenty minutes (a cold load of a 70B
 * model on a slow disk followed by a long generation).
 */
export const DURATION_BUCKETS_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200];

/** Generation speed, from a CPU-bound large model (~1 tok/s) to a small model on a fast GPU. */
export const TOKENS_PER_SECOND_BUCKETS = [1, 2, 5, 10, 15, 20, 30, 40, 50, 75, 100, 150, 200, 300, 500, 1000, 2000];

/** Time to first token: tens of milliseconds warm, to minutes behind a cold load or a queue. */
export const TTFT_BUCKETS_SECONDS = [0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 30, 60, 120, 300];

/** Gaps between streamed chunks: ~1 ms (fast GPU) to seconds (a stall). */
export const INTER_TOKEN_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2, 5, 10];

/** Waiting in Ollama's queue or on the network: nothing, to minutes behind a busy model. */
export const QUEUE_BUCKETS_SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

/**
 * Share of the context window a call used, (prompt + output tokens) / window: fine-grained near a
 * full window, and above 1 for generations that ran past it (context shift).
 */
export const CONTEXT_RATIO_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1, 1.25, 1.5, 2, 4];

/** semconv `gen_ai.client.operation.duration` boundaries. */
export const GEN_AI_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92];
/** semconv `gen_ai.client.token.usage` boundaries. */
export const GEN_AI_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864];
/** semconv `gen_ai.server.time_to_first_token` boundaries. */
export const GEN_AI_TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];
/** semconv `gen_ai.server.time_per_output_token` boundaries. */
export const GEN_AI_TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5];

/** Why an instrumented request failed: a small fixed set, so the label stays bounded. */
export const ERROR_REASONS = [
  'upstream_unreachable',
  'upstream_timeout',
  /** Ollama answered with something the gateway cannot relay (bad framing, `101` to a POST). */
  'upstream_invalid_response',
  'upstream_4xx',
  'upstream_5xx',
  'stream_error',
  'client_cancelled',
  'body_too_large',
  /** The request body stopped arriving (REQUEST_BODY_TIMEOUT_SECONDS). */
  'body_timeout',
  /** The memory for request bodies was taken (MAX_BUFFERED_BODY_MB). */
  'body_buffer_full',
  /** A body the gateway cannot read as Ollama would (400; never forwarded). */
  'body_unreadable',
  /** The client stopped reading the response (CLIENT_WRITE_TIMEOUT_SECONDS). */
  'client_timeout',
  'queue_timeout',
  /** The gateway's fair queue held QUEUE_MAX_WAITING calls already (503). */
  'queue_full',
  /** A limit of the tenant or its end user was reached (429; never forwarded). */
  'rate_limited',
  /** The tenant may not use the model (403; never forwarded). */
  'model_not_allowed',
] as const;

export type ErrorReason = (typeof ERROR_REASONS)[number];

export type MetricFamily = 'ollama' | 'gen_ai';

export interface OllamaInstruments {
  requests: Counter;
  requestErrors: Counter;
  responseSeconds: Histogram;
  loadSeconds: Histogram;
  promptEvalSeconds: Histogram;
  evalSeconds: Histogram;
  tokensPerSecond: Histogram;
  tokensProcessed: Counter;
  tokensCached: Counter;
  tokensGenerated: Counter;
  remoteRequests: Counter;
  inFlight: UpDownCounter;
  timeToFirstToken: Histogram;
  interToken: Histogram;
  streamStalls: Counter;
  queueSeconds: Histogram;
  /** Wait in the gateway's fair queue, per tenant (BACKEND_PARALLEL). */
  fairQueueWaitSeconds: Histogram;
  /** Calls waiting in the gateway's fair queue now, per tenant. */
  fairQueueWaiting: ObservableGauge;
  /** Thinking streams: request received → first answer (not thinking) chunk. */
  timeToFirstAnswer: Histogram;
  /** Calls that only loaded / unloaded a model (not generations). */
  modelLoads: Counter;
  modelUnloads: Counter;
  contextUsedRatio: Histogram;
  contextLimitHits: Counter;
  generationTruncated: Counter;
  authFailures: Counter;
  bufferedBodyBytes: ObservableGauge;
  logLinesDropped: ObservableCounter;
}

/**
 * The GenAI metrics as the newest conventions name them, with OTEL_SEMCONV_STABILITY_OPT_IN=
 * gen_ai_latest_experimental: semantic-conventions-genai v0.1.0, docs/gen-ai/client-inference.md
 * (https://github.com/open-telemetry/semantic-conventions-genai/blob/v0.1.0/docs/gen-ai/client-inference.md).
 * Inference calls move to `gen_ai.client.inference.duration` (embeddings stay on
 * `gen_ai.client.operation.duration`); token usage splits into per-call histograms and usage
 * counters by `gen_ai.token.modality`. No reasoning counter: Ollama reports no reasoning tokens
 * (its OpenAI-compatible `reasoning_tokens` is always 0).
 */
export interface GenAiLatestInstruments {
  inferenceDuration: Histogram;
  operationDuration: Histogram;
  timeToFirstChunk: Histogram;
  timePerOutputChunk: Histogram;
  inputTokens: Histogram;
  outputTokens: Histogram;
  usageInputTokens: Counter;
  usageOutputTokens: Counter;
  usageCacheReadTokens: Counter;
}

export interface GenAiInstruments {
  operationDuration: Histogram;
  tokenUsage: Histogram;
  cacheReadTokens: Counter;
  timeToFirstToken: Histogram;
  timePerOutputToken: Histogram;
}

/** Gauges describing Ollama itself, observed from the poller's latest result. */
export interface OllamaStateGauges {
  up: ObservableGauge;
  buildInfo: ObservableGauge;
  modelsAvailable: ObservableGauge;
  modelsAvailableBytes: ObservableGauge;
  modelsLoaded: ObservableGauge;
  modelLoadedBytes: ObservableGauge;
  modelVramBytes: ObservableGauge;
  modelVramRatio: ObservableGauge;
  modelUnloadSeconds: ObservableGauge;
}

/** With several Ollama servers: how calls are spread over them. */
export interface FleetInstruments {
  backendInFlight: ObservableGauge;
  backendHealthy: ObservableGauge;
  routingDecisions: Counter;
  failovers: Counter;
  coldLoads: Counter;
}

/** Per-tenant counters, and the usage ledger's own. */
export interface TenantInstruments {
  requests: Counter;
  tokens: Counter;
  gpuSeconds: Counter;
  gpuSecondsEstimated: Counter;
  modelLoads: Counter;
  optionReloads: Counter;
  ledgerRows: Counter;
  ledgerDropped: Counter;
  /** Each limited tenant's limits, and what is left of them now, by limit (`kind`). */
  budgetLimit: ObservableGauge;
  budgetRemaining: ObservableGauge;
}

export interface Instruments {
  ollama?: OllamaInstruments;
  tenant?: TenantInstruments;
  genAi?: GenAiInstruments;
  /** Instead of `genAi`, with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental. */
  genAiLatest?: GenAiLatestInstruments;
  state?: OllamaStateGauges;
  fleet?: FleetInstruments;
}

function histogram(meter: Meter, name: string, unit: string, description: string, buckets: number[]): Histogram {
  return meter.createHistogram(name, { description, unit, advice: { explicitBucketBoundaries: buckets } });
}

function createOllamaInstruments(meter: Meter): OllamaInstruments {
  const seconds = (name: string, description: string) => histogram(meter, name, 's', description, DURATION_BUCKETS_SECONDS);
  return {
    requests: meter.createCounter('ollama_requests_total', {
      description: 'Instrumented LLM requests, counted once each whatever their outcome.',
    }),
    requestErrors: meter.createCounter('ollama_request_errors_total', {
      description: 'Instrumented LLM requests that failed, by reason.',
    }),
    responseSeconds: seconds('ollama_response_seconds', 'Wall time at the gateway from request received to the last byte sent.'),
    loadSeconds: seconds(
      'ollama_load_duration_seconds',
      "Model load time: Ollama's load_duration on generation calls; the gateway's wall time of a load call (an empty prompt or no messages).",
    ),
    promptEvalSeconds: seconds('ollama_prompt_eval_duration_seconds', "Ollama's reported prompt evaluation time (prompt_eval_duration)."),
    evalSeconds: seconds('ollama_eval_duration_seconds', "Ollama's reported generation time (eval_duration)."),
    tokensPerSecond: histogram(
      meter,
      'ollama_tokens_per_second',
      '{token}/s',
      'Generation speed: eval_count / eval_duration on the native API; on OpenAI-compatible streams, output tokens over the time between the first and last content chunk.',
      TOKENS_PER_SECOND_BUCKETS,
    ),
    tokensProcessed: meter.createCounter('ollama_tokens_processed_total', {
      description:
        "Input (prompt) tokens, the whole prompt in every API: prompt_eval_count, or usage.prompt_tokens / input_tokens (Anthropic's plus its cache_read_input_tokens).",
      unit: '{token}',
    }),
    tokensCached: meter.createCounter('ollama_tokens_cached_total', {
      description:
        'Input tokens served from the KV cache, part of ollama_tokens_processed_total: prompt_eval_cached_count, usage.prompt_tokens_details / input_tokens_details.cached_tokens, or cache_read_input_tokens. Only from an Ollama that reports it.',
      unit: '{token}',
    }),
    remoteRequests: meter.createCounter('ollama_remote_requests_total', {
      description:
        'Requests for a remote (cloud) model, part of ollama_requests_total: they run on another host and are left out of the load, prompt-eval, generation and tokens-per-second figures.',
    }),
    tokensGenerated: meter.createCounter('ollama_tokens_generated_total', {
      description: 'Output (generated) tokens: eval_count, or usage.completion_tokens.',
      unit: '{token}',
    }),
    inFlight: meter.createUpDownCounter('ollama_requests_in_flight', {
      description: 'Instrumented LLM requests being served; a stream counts until its last byte.',
    }),
    timeToFirstToken: histogram(
      meter,
      'ollama_time_to_first_token_seconds',
      's',
      'Streaming calls: time from request received to the first content chunk forwarded to the client.',
      TTFT_BUCKETS_SECONDS,
    ),
    interToken: histogram(
      meter,
      'ollama_inter_token_seconds',
      's',
      'Streaming calls: gap between consecutive content chunks as they pass the gateway, one observation per chunk.',
      INTER_TOKEN_BUCKETS_SECONDS,
    ),
    streamStalls: meter.createCounter('ollama_stream_stalls_total', {
      description: 'Gaps between content chunks longer than STREAM_STALL_SECONDS.',
    }),
    queueSeconds: histogram(
      meter,
      'ollama_queue_seconds',
      's',
      "Gateway wall time minus Ollama's total_duration (never below 0): time spent waiting in Ollama's queue or on the network.",
      QUEUE_BUCKETS_SECONDS,
    ),
    timeToFirstAnswer: histogram(
      meter,
      'ollama_time_to_first_answer_seconds',
      's',
      'Streaming calls that think: time from request received to the first chunk of the answer (not of the thinking).',
      TTFT_BUCKETS_SECONDS,
    ),
    modelLoads: meter.createCounter('ollama_model_loads_total', {
      description: 'Calls that only loaded a model (/api/generate without prompt, /api/chat without messages; done_reason "load").',
    }),
    modelUnloads: meter.createCounter('ollama_model_unloads_total', {
      description: 'Calls that unloaded a model (the same with keep_alive 0; done_reason "unload").',
    }),
    contextUsedRatio: histogram(
      meter,
      'ollama_context_used_ratio',
      '1',
      "Share of the context window a call used: (prompt + output tokens) / the window (the request's num_ctx, else the loaded model's context_length from /api/ps).",
      CONTEXT_RATIO_BUCKETS,
    ),
    contextLimitHits: meter.createCounter('ollama_context_limit_hits_total', {
      description:
        'Calls that ran into their context window: the prompt was (probably) cut to fit (prompt_truncated), or the window filled up during generation (output_truncated).',
    }),
    generationTruncated: meter.createCounter('ollama_generation_truncated_total', {
      description: 'Answers cut by the token limit: done_reason or finish_reason "length", Anthropic stop_reason "max_tokens".',
    }),
    authFailures: meter.createCounter('ollama_gateway_auth_failures_total', {
      description: 'Requests refused with 401 because the API key was missing or wrong (reason), or the /metrics token.',
    }),
    fairQueueWaitSeconds: seconds(
      'ollama_gateway_queue_wait_seconds',
      "Time a call waited in the gateway's fair queue for a backend slot (BACKEND_PARALLEL), by tenant; 0 when a slot was free.",
    ),
    fairQueueWaiting: meter.createObservableGauge('ollama_gateway_queue_waiting', {
      description: "LLM calls waiting now in the gateway's fair queue for a backend slot, by tenant.",
    }),
    bufferedBodyBytes: meter.createObservableGauge('ollama_gateway_buffered_body_bytes', {
      description: 'Memory held now for LLM request bodies being received or forwarded (bounded by MAX_BUFFERED_BODY_MB).',
      unit: 'By',
    }),
    logLinesDropped: meter.createObservableCounter('ollama_gateway_log_lines_dropped_total', {
      description: 'Log lines dropped because stdout did not take them and the lines waiting reached LOG_BUFFER_MB.',
    }),
  };
}

function createGenAiInstruments(meter: Meter): GenAiInstruments {
  return {
    operationDuration: histogram(meter, 'gen_ai.client.operation.duration', 's', 'GenAI operation duration.', GEN_AI_DURATION_BUCKETS),
    tokenUsage: histogram(meter, 'gen_ai.client.token.usage', '{token}', 'Number of input and output tokens used.', GEN_AI_TOKEN_BUCKETS),
    // `gen_ai.token.type` knows only input and output; the GenAI conventions name cache reads in
    // a counter of their own, a subset of the input tokens
    // (https://github.com/open-telemetry/semantic-conventions-genai, gen-ai-token-metrics.md).
    cacheReadTokens: meter.createCounter('gen_ai.client.inference.usage.cache_read.input_tokens', {
      description: 'The number of input tokens served from the KV cache.',
      unit: '{token}',
    }),
    timeToFirstToken: histogram(meter, 'gen_ai.server.time_to_first_token', 's', 'Time to generate first token for successful responses.', GEN_AI_TTFT_BUCKETS),
    timePerOutputToken: histogram(
      meter,
      'gen_ai.server.time_per_output_token',
      's',
      'Time per output token generated after the first token for successful responses.',
      GEN_AI_TPOT_BUCKETS,
    ),
  };
}

function createGenAiLatestInstruments(meter: Meter): GenAiLatestInstruments {
  const tokens = (name: string, description: string) => meter.createCounter(name, { description, unit: '{token}' });
  return {
    inferenceDuration: histogram(meter, 'gen_ai.client.inference.duration', 's', 'GenAI inference operation duration.', GEN_AI_DURATION_BUCKETS),
    operationDuration: histogram(meter, 'gen_ai.client.operation.duration', 's', 'GenAI operation duration.', GEN_AI_DURATION_BUCKETS),
    timeToFirstChunk: histogram(
      meter,
      'gen_ai.client.inference.time_to_first_chunk',
      's',
      'Time to receive the first chunk of a streamed answer.',
      GEN_AI_TTFT_BUCKETS,
    ),
    timePerOutputChunk: histogram(
      meter,
      'gen_ai.client.inference.time_per_output_chunk',
      's',
      'Time between consecutive chunks of a streamed answer, after the first.',
      GEN_AI_TPOT_BUCKETS,
    ),
    inputTokens: histogram(
      meter,
      'gen_ai.client.inference.operation.input_tokens',
      '{token}',
      'Input tokens of one inference operation.',
      GEN_AI_TOKEN_BUCKETS,
    ),
    outputTokens: histogram(
      meter,
      'gen_ai.client.inference.operation.output_tokens',
      '{token}',
      'Output tokens of one inference operation.',
      GEN_AI_TOKEN_BUCKETS,
    ),
    usageInputTokens: tokens('gen_ai.client.inference.usage.input_tokens', 'The number of input (prompt) tokens used, including cached tokens.'),
    usageOutputTokens: tokens('gen_ai.client.inference.usage.output_tokens', 'The number of output (completion) tokens used.'),
    usageCacheReadTokens: tokens('gen_ai.client.inference.usage.cache_read.input_tokens', 'The number of input tokens served from the KV cache.'),
  };
}

function createStateGauges(meter: Meter): OllamaStateGauges {
  return {
    up: meter.createObservableGauge('ollama_up', { description: 'Whether the last poll of Ollama succeeded (1) or not (0).' }),
    buildInfo: meter.createObservableGauge('ollama_build_info', { description: "Ollama's version, as a label; always 1." }),
    modelsAvailable: meter.createObservableGauge('ollama_models_available', { description: 'Models Ollama has on disk (/api/tags).' }),
    modelsAvailableBytes: meter.createObservableGauge('ollama_models_available_bytes', {
      description: 'Total size on disk of the models Ollama has (/api/tags).',
      unit: 'By',
    }),
    modelsLoaded: meter.createObservableGauge('ollama_models_loaded', { description: 'Models loaded in memory (/api/ps).' }),
    modelLoadedBytes: meter.createObservableGauge('ollama_model_loaded_bytes', { description: 'Memory a loaded model uses (/api/ps size).', unit: 'By' }),
    modelVramBytes: meter.createObservableGauge('ollama_model_vram_bytes', { description: 'GPU memory a loaded model uses (/api/ps size_vram).', unit: 'By' }),
    modelVramRatio: meter.createObservableGauge('ollama_model_vram_ratio', {
      description: 'Share of a loaded model held in GPU memory: size_vram / size (1 = fully on GPU).',
    }),
    modelUnloadSeconds: meter.createObservableGauge('ollama_model_unload_seconds', {
      description: 'Seconds until Ollama unloads a loaded model (expires_at − now).',
      unit: 's',
    }),
  };
}

function createFleetInstruments(meter: Meter): FleetInstruments {
  return {
    backendInFlight: meter.createObservableGauge('ollama_backend_in_flight', {
      description: 'LLM calls this gateway has at each backend now (sent, not yet finished).',
    }),
    backendHealthy: meter.createObservableGauge('ollama_backend_healthy', {
      description: 'Whether the gateway routes calls to a backend (1), or holds it out: down or cooling down after 5xx answers (0).',
    }),
    routingDecisions: meter.createCounter('ollama_routing_decisions_total', {
      description: 'LLM calls sent to a backend, by why it was chosen (loaded, on_disk, none_has_it, affinity, retry).',
    }),
    failovers: meter.createCounter('ollama_backend_failovers_total', {
      description: 'LLM calls that failed at one backend before any response byte and were sent to another.',
    }),
    coldLoads: meter.createCounter('ollama_cold_loads_total', {
      description: 'Successful LLM calls that had to load their model: the backend did not have it loaded, or Ollama reported a load of 1 s or more.',
    }),
  };
}

function createTenantInstruments(meter: Meter): TenantInstruments {
  return {
    requests: meter.createCounter('ollama_tenant_requests_total', {
      description: 'LLM calls by tenant, model and HTTP status (every call the ledger records, loads and unloads included).',
    }),
    tokens: meter.createCounter('ollama_tenant_tokens_total', {
      description: 'Tokens by tenant and model: type="input" (the whole prompt), "cached" (the part of it served from the KV cache), "output".',
    }),
    gpuSeconds: meter.createCounter('ollama_tenant_gpu_seconds_total', {
      description:
        "Local GPU time by tenant and model: Ollama's load + prompt evaluation + generation time, or the gateway's wall time where Ollama reports none (also in ..._estimated_total).",
    }),
    gpuSecondsEstimated: meter.createCounter('ollama_tenant_gpu_seconds_estimated_total', {
      description: "The part of ollama_tenant_gpu_seconds_total that is the gateway's own measure (calls whose answers carry no durations, e.g. /v1/*).",
    }),
    modelLoads: meter.createCounter('ollama_tenant_model_loads_total', {
      description: 'Calls that made Ollama load their model (a load of 0.5 s or more), by tenant and model: the tenant is charged the load time.',
    }),
    optionReloads: meter.createCounter('ollama_tenant_option_reloads_total', {
      description: 'Loads caused by a call asking for another num_ctx than the loaded instance had, by tenant and model.',
    }),
    ledgerRows: meter.createCounter('ollama_ledger_rows_written_total', { description: 'Calls written to the usage ledger.' }),
    ledgerDropped: meter.createCounter('ollama_ledger_rows_dropped_total', {
      description: 'Calls the usage ledger could not keep: its database was down or slow and the waiting buffer was full.',
    }),
    budgetLimit: meter.createObservableGauge('ollama_gateway_budget_limit', {
      description: "A tenant's limit from the tenants file, by limit (kind: tokens_per_day, requests_per_minute, …), in requests, tokens or GPU seconds.",
    }),
    budgetRemaining: meter.createObservableGauge('ollama_gateway_budget_remaining', {
      description: "What is left of a tenant's limit in its current window (calendar day or month, or rolling), from the usage ledger.",
    }),
  };
}

/**
 * Creates the instruments of the enabled families on `meter`. Called once at start. `fleet`: several
 * backends are configured (the routing metrics exist only then).
 */
export function createInstruments(meter: Meter, families: ReadonlySet<MetricFamily>, withState: boolean, fleet = false, genAiLatest = false): Instruments {
  return {
    ollama: families.has('ollama') ? createOllamaInstruments(meter) : undefined,
    tenant: families.has('ollama') ? createTenantInstruments(meter) : undefined,
    genAi: families.has('gen_ai') && !genAiLatest ? createGenAiInstruments(meter) : undefined,
    genAiLatest: families.has('gen_ai') && genAiLatest ? createGenAiLatestInstruments(meter) : undefined,
    state: families.has('ollama') && withState ? createStateGauges(meter) : undefined,
    fleet: families.has('ollama') && fleet ? createFleetInstruments(meter) : undefined,
  };
}
