/**
 * The OpenTelemetry semantic-convention names the gateway uses, copied here as constants rather
 * than imported from `@opentelemetry/semantic-conventions/incubating`, whose GenAI names still move
 * between releases.
 *
 * Followed: GenAI semantic conventions as of semconv v1.37
 * (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/), which name the provider
 * `gen_ai.provider.name` (formerly `gen_ai.system`) and carry messages as `gen_ai.input.messages`
 * / `gen_ai.output.messages`.
 */

export const GEN_AI_OPERATION_NAME = 'gen_ai.operation.name';
export const GEN_AI_PROVIDER_NAME = 'gen_ai.provider.name';
export const GEN_AI_REQUEST_MODEL = 'gen_ai.request.model';
export const GEN_AI_REQUEST_STREAM = 'gen_ai.request.stream';
export const GEN_AI_REQUEST_TEMPERATURE = 'gen_ai.request.temperature';
export const GEN_AI_REQUEST_TOP_P = 'gen_ai.request.top_p';
export const GEN_AI_REQUEST_TOP_K = 'gen_ai.request.top_k';
export const GEN_AI_REQUEST_MAX_TOKENS = 'gen_ai.request.max_tokens';
export const GEN_AI_REQUEST_SEED = 'gen_ai.request.seed';
export const GEN_AI_REQUEST_STOP_SEQUENCES = 'gen_ai.request.stop_sequences';
export const GEN_AI_RESPONSE_MODEL = 'gen_ai.response.model';
export const GEN_AI_RESPONSE_ID = 'gen_ai.response.id';
export const GEN_AI_RESPONSE_FINISH_REASONS = 'gen_ai.response.finish_reasons';
export const GEN_AI_USAGE_INPUT_TOKENS = 'gen_ai.usage.input_tokens';
export const GEN_AI_USAGE_OUTPUT_TOKENS = 'gen_ai.usage.output_tokens';
/** Input tokens served from the cache, a part of `gen_ai.usage.input_tokens` (GenAI conventions, development). */
export const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = 'gen_ai.usage.cache_read.input_tokens';
export const GEN_AI_INPUT_MESSAGES = 'gen_ai.input.messages';
export const GEN_AI_OUTPUT_MESSAGES = 'gen_ai.output.messages';
export const SERVER_ADDRESS = 'server.address';
export const SERVER_PORT = 'server.port';
export const ERROR_TYPE = 'error.type';
export const HTTP_RESPONSE_STATUS_CODE = 'http.response.status_code';
export const HTTP_REQUEST_METHOD = 'http.request.method';
export const URL_FULL = 'url.full';

/** `gen_ai.provider.name` value for Ollama (a custom value; Ollama is not in the well-known list). */
export const PROVIDER_OLLAMA = 'ollama';

/** Gateway-specific attributes, outside the conventions. */
export const GATEWAY_CLIENT_CANCELLED = 'ollama_gateway.client_cancelled';
export const GATEWAY_ENDPOINT = 'ollama_gateway.endpoint';
/** With several backends: the one the call went to (`host:port` as configured), and why it was chosen. */
export const GATEWAY_BACKEND = 'ollama_gateway.backend';
export const GATEWAY_ROUTING_REASON = 'ollama_gateway.routing.reason';
/**
 * Where the model ran: `local` (this Ollama's own runner) or `remote` (a cloud or remote model
 * Ollama relays), and, for a remote one, the host and model name its answer named.
 */
export const GATEWAY_LOCATION = 'ollama_gateway.location';
export const GATEWAY_REMOTE_HOST = 'ollama_gateway.remote.host';
export const GATEWAY_REMOTE_MODEL = 'ollama_gateway.remote.model';
export const LOCATION_LOCAL = 'local';
export const LOCATION_REMOTE = 'remote';
/** The tenant that made the call (its name in the tenants file). */
export const GATEWAY_TENANT = 'ollama_gateway.tenant';
/** The end user a tenant asserted (OpenTelemetry's `enduser.id`); never a metric label. */
export const ENDUSER_ID = 'enduser.id';
/** How many backends the call was sent to (2 after a failover). */
export const GATEWAY_ATTEMPTS = 'ollama_gateway.attempts';
/** A call's place and wait in the gateway's fair queue. */
export const GATEWAY_QUEUE_POSITION = 'ollama_gateway.queue.position';
export const GATEWAY_QUEUE_WAIT = 'ollama_gateway.queue.wait_seconds';

/** Span event marking the first content chunk forwarded to the client. */
export const EVENT_FIRST_TOKEN = 'gen_ai.first_token';

/** Names of the child spans that place Ollama's reported phases on the timeline. */
export const SPAN_LOAD = 'ollama.load_model';
export const SPAN_PROMPT_EVAL = 'ollama.prompt_eval';
export const SPAN_GENERATION = 'ollama.generation';
