/**
 * Every setting the gateway reads from the environment, with its default as a user would write
 * it and one line on what it does: the source of `--help`, and checked against the README's
 * configuration table and against what `loadConfig` actually reads (test/unit/settings.test.ts).
 * `config.ts` parses and validates them.
 */

export interface Setting {
  name: string;
  /** The default, as the variable would be set to get it; empty when there is none. */
  default: string;
  help: string;
}

export const SETTINGS: readonly Setting[] = [
  {
    name: 'OLLAMA_HOST',
    default: 'http://localhost:11434',
    help: 'The Ollama to proxy to: http(s)://host:port[/prefix], host:port, host, :port (port 11434 by default), or unix:///path/to/socket; a comma-separated list for several.',
  },
  { name: 'ROUTING_AFFINITY', default: 'none', help: 'prefix: calls with the same system prompt and first user turn go to the same warm backend.' },
  { name: 'HOST', default: '127.0.0.1', help: 'Address the gateway listens on (0.0.0.0 for every interface: then set GATEWAY_API_KEYS).' },
  { name: 'PORT', default: '8000', help: 'Port the gateway listens on (API, /metrics, health checks).' },
  { name: 'LOG_LEVEL', default: 'INFO', help: 'DEBUG, INFO, WARNING (or WARN), ERROR.' },
  {
    name: 'LOG_FORMAT',
    default: 'auto',
    help: 'json (one JSON object a line), pretty (one readable line an event), or auto: pretty on a terminal, JSON otherwise.',
  },
  {
    name: 'LOG_BUFFER_MB',
    default: '8',
    help: 'Memory log lines waiting for stdout may take; when stdout is not read, further lines are dropped and counted.',
  },
  {
    name: 'GATEWAY_WORKERS',
    default: '1',
    help: 'Worker processes sharing the port, or auto (one per core); the limits below are split between them, /metrics sums them.',
  },
  {
    name: 'UPSTREAM_IDLE_TIMEOUT_SECONDS',
    default: '300',
    help: 'How long Ollama may send nothing, while the gateway can read, before a 504 or a cut stream.',
  },
  { name: 'MAX_REQUEST_BODY_MB', default: '64', help: 'Largest LLM request body (413 above it).' },
  { name: 'MAX_BUFFERED_BODY_MB', default: '256', help: 'Memory all LLM request bodies held at once may take (503 above it); at least MAX_REQUEST_BODY_MB.' },
  {
    name: 'MAX_BUFFERED_BODY_MB_PER_CLIENT',
    default: '64',
    help: 'Of that memory, what the bodies from one client address (an IPv6 /64) may take (503 above it); by default MAX_REQUEST_BODY_MB.',
  },
  { name: 'REQUEST_BODY_TIMEOUT_SECONDS', default: '30', help: 'How long a request body may stop arriving before a 408; 0 waits for ever.' },
  {
    name: 'REQUEST_BODY_DEADLINE_SECONDS',
    default: '120',
    help: 'How long a whole request body may take to arrive before a 408, however steadily it trickles; 0 for no limit.',
  },
  {
    name: 'MAX_CONNECTIONS',
    default: '4096',
    help: "Client connections held open at once; beyond it a small reserve serves only the gateway's own endpoints (/healthz, /readyz, /metrics).",
  },
  {
    name: 'MAX_CONNECTIONS_PER_CLIENT',
    default: '1024',
    help: 'Connections one client address (an IPv6 /64) may hold open at once; more are answered 503 and closed.',
  },
  { name: 'HEADERS_TIMEOUT_SECONDS', default: '60', help: "How long a client may take to send a request's headers." },
  { name: 'CLIENT_WRITE_TIMEOUT_SECONDS', default: '300', help: 'How long a client may stop reading a response before it is cut; 0 waits for ever.' },
  { name: 'MAX_MODEL_LABELS', default: '200', help: 'Distinct model labels kept for names Ollama does not serve; more become "other".' },
  { name: 'METRIC_FAMILIES', default: 'ollama,gen_ai', help: 'Metric families to export: ollama, gen_ai, or both.' },
  { name: 'STREAM_STALL_SECONDS', default: '2', help: 'A gap between streamed chunks longer than this counts as a stall.' },
  { name: 'OLLAMA_POLL_INTERVAL_SECONDS', default: '15', help: "How often Ollama's version and models are polled; 0 turns polling off." },
  { name: 'SHUTDOWN_GRACE_SECONDS', default: '30', help: 'How long SIGTERM/SIGINT lets in-flight requests finish.' },
  { name: 'OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT', default: 'false', help: 'true records prompt and completion text on spans.' },
  {
    name: 'OTEL_SEMCONV_STABILITY_OPT_IN',
    default: '',
    help: 'gen_ai_latest_experimental: the gen_ai metrics follow the newest GenAI conventions instead of v1.36-era names.',
  },
  { name: 'GENAI_CAPTURE_MAX_CHARS', default: '16384', help: 'When capturing content, each text is cut to this many characters.' },
  { name: 'GATEWAY_API_KEYS', default: '', help: 'Comma-separated API keys; when set, proxied requests need Authorization: Bearer <key>.' },
  { name: 'GATEWAY_API_KEYS_FILE', default: '', help: 'A file with one API key per line (# starts a comment).' },
  {
    name: 'GATEWAY_TENANTS_FILE',
    default: '',
    help: 'A YAML (or JSON) file of tenants, their keys and who may assert end users; re-read on SIGHUP or when it changes. Replaces GATEWAY_API_KEYS.',
  },
  { name: 'GATEWAY_DATA_DIR', default: './data', help: 'Where the gateway keeps its state: the usage ledger (ledger.sqlite), created on first start.' },
  {
    name: 'LEDGER_URL',
    default: '',
    help: 'postgres://… to keep the usage ledger in PostgreSQL (several replicas), off for none; empty: SQLite in GATEWAY_DATA_DIR.',
  },
  { name: 'LEDGER_RAW_RETENTION_DAYS', default: '90', help: 'Days one row per call is kept in the ledger (0: for ever); the hourly and daily sums stay.' },
  { name: 'LEDGER_ROLLUP_RETENTION_DAYS', default: '0', help: "Days the ledger's hourly and daily sums are kept (0: for ever)." },
  { name: 'METRICS_BEARER_TOKEN', default: '', help: 'When set, GET /metrics needs Authorization: Bearer <token>.' },
  { name: 'MAX_CONCURRENT_REQUESTS', default: '0', help: 'Most LLM calls sent to Ollama at once (0: no limit); more wait in a queue.' },
  { name: 'QUEUE_TIMEOUT_SECONDS', default: '30', help: 'How long a call waits in that queue before a 503.' },
  {
    name: 'BACKEND_PARALLEL',
    default: '',
    help: "LLM calls the gateway lets run at once at each backend (one number, or name=N pairs); the rest wait in its fair queue. 0 turns the queue off. Unset: Ollama's own default, 1, when GATEWAY_TENANTS_FILE is set; off otherwise.",
  },
  { name: 'QUEUE_MAX_WAITING', default: '1000', help: 'Most calls waiting in the fair queue at once; beyond it a 503 at once.' },
  { name: 'QUEUE_ORDER', default: 'fair', help: 'fair: waiting calls go by weighted fair share of tokens across tenants; fifo: first-come.' },
  { name: 'CONSOLE', default: 'true', help: 'Serve the live web console at /console (false turns it off).' },
  {
    name: 'TRACE_UI_URL',
    default: '',
    help: "A trace viewer's address with {trace_id} in it (e.g. http://jaeger:16686/trace/{trace_id}): the console links each call's trace there.",
  },
  { name: 'SERVER_TIMING', default: 'true', help: "Add a Server-Timing header (queue, time to Ollama's response head, backend) to answers on LLM routes." },
];
