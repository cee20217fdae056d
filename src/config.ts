/**
 * The gateway's configuration: one typed object, read from the environment and validated once at
 * start. Precedence is explicit overrides (tests, embedding) > environment > defaults. A bad value
 * raises a ConfigError whose message is one line naming the variable and the accepted form.
 */

import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { MetricFamily } from '../otel/instruments';
import type { QueueOrder } from './scheduler/fair-queue';
import type { TenantPolicies } from './scheduler/tenant';
import { MAX_TENANTS_FILE_BYTES, parseTenantsFile, requireLedgerForLimits, TenantsFileError, type TenantSpec } from './tenants/file';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** How log lines are written (`LOG_FORMAT`): JSON lines, or one readable line per event; `auto` is pretty on a terminal. */
export type LogFormat = 'json' | 'pretty' | 'auto';

export interface UpstreamTarget {
  /** `http:` or `https:` (`http:` over a Unix socket) */
  protocol: 'http:' | 'https:';
  /** The host name or address; for a Unix socket, `localhost` (the Host Ollama is sent). */
  hostname: string;
  port: number;
  /** A Unix socket to connect to instead of host and port. */
  socketPath?: string;
  /** A path Ollama is served under (behind a reverse proxy), e.g. `/ollama`; empty for none. */
  pathPrefix: string;
  /** Where Ollama is, e.g. `http://127.0.0.1:11434`, as used in logs and error messages. */
  origin: string;
}

/** How LLM calls of one conversation are kept on one backend (`ROUTING_AFFINITY`). */
export type RoutingAffinity = 'none' | 'prefix';

export interface Config {
  /** The first (with one backend, the only) Ollama of `upstreams`. */
  upstream: UpstreamTarget;
  /** Every Ollama in OLLAMA_HOST, in the order given; the first is `upstream`. */
  upstreams: readonly UpstreamTarget[];
  /** `prefix`: calls whose first messages are the same go to the same warm backend. */
  routingAffinity: RoutingAffinity;
  host: string;
  port: number;
  logLevel: LogLevel;
  /** JSON lines, or readable lines for a terminal. */
  logFormat: LogFormat;
  /** Memory log lines waiting to be written to stdout may take, in bytes; beyond it lines are dropped. */
  logBufferBytes: number;
  /** Upstream silence (no bytes) after which the gateway gives up, in milliseconds. */
  upstreamIdleTimeoutMs: number;
  /** Largest request body accepted on instrumented endpoints, in bytes. */
  maxRequestBodyBytes: number;
  /** Memory all LLM request bodies being held may take together, in bytes. */
  maxBufferedBodyBytes: number;
  /** Memory the bodies from one client address may take together, in bytes. */
  maxBufferedBodyPerClientBytes: number;
  /** Silence while an LLM request body arrives before a 408, in milliseconds. */
  requestBodyTimeoutMs: number;
  /** Longest a whole LLM request body may take to arrive before a 408, in milliseconds; 0 for no limit. */
  requestBodyDeadlineMs: number;
  /** Connections held open at once for clients (LLM calls and pass-through); the own endpoints have a reserve beyond. */
  maxConnections: number;
  /** Connections one client address may hold open at once. */
  maxConnectionsPerClient: number;
  /** How long a client may leave the gateway's writes blocked before it is cut, in milliseconds. */
  clientWriteTimeoutMs: number;
  /** How long a client may take to send a request's head, in milliseconds. */
  headersTimeoutMs: number;
  /** Distinct `model` label values before new ones fold into `other`. */
  maxModelLabels: number;
  /** Record prompt and completion text on spans (OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT). */
  captureMessageContent: boolean;
  /** Longest text part recorded when capturing content (GENAI_CAPTURE_MAX_CHARS). */
  maxCaptureChars: number;
  /** How long SIGTERM waits for in-flight requests before cutting them, in milliseconds. */
  shutdownGraceMs: number;
  /** How often Ollama is polled for what it holds, in milliseconds; 0 disables polling. */
  pollIntervalMs: number;
  /** A gap between streamed content chunks longer than this counts as a stall, in milliseconds. */
  streamStallMs: number;
  /** Which metric families are exported. */
  metricFamilies: ReadonlySet<MetricFamily>;
  /** OTEL_SEMCONV_STABILITY_OPT_IN names gen_ai_latest_experimental: the newest GenAI metric names. */
  genAiLatest: boolean;
  /** API keys clients must present as `Authorization: Bearer <key>`; empty means no check. */
  apiKeys: readonly string[];
  /** Bearer token required on /metrics, when set. */
  metricsBearerToken: string | undefined;
  /** Most LLM calls sent to Ollama at once; undefined means no limit. */
  maxConcurrentRequests: number | undefined;
  /** How long an LLM call may wait for a free slot before a 503, in milliseconds. */
  queueTimeoutMs: number;
  /**
   * Slots per backend name (BACKEND_PARALLEL): LLM calls the gateway lets run at once there, the
   * rest held in its fair queue; undefined turns the queue off.
   */
  backendParallel: ReadonlyMap<string, number> | undefined;
  /** Most calls waiting in the fair queue (QUEUE_MAX_WAITING). */
  queueMaxWaiting: number;
  /** How waiting calls are released (QUEUE_ORDER). */
  queueOrder: QueueOrder;
  /** Weight and priority per tenant name (the tenants file's entries); absent: weight 1, interactive. */
  tenantPolicies?: TenantPolicies;
  /** Worker processes serving the one port (GATEWAY_WORKERS); 1 is a single process. */
  workers: number;
  /** Serve the web console at /console and keep its history (CONSOLE). */
  console: boolean;
  /** A trace viewer's URL with `{trace_id}` in it (TRACE_UI_URL), for the console's links. */
  traceUiUrl: string | undefined;
  /** Add a Server-Timing header to answers on LLM routes (SERVER_TIMING). */
  serverTiming: boolean;
  /** The tenants file (GATEWAY_TENANTS_FILE), its text and its tenants, when set. */
  tenantsFile: { path: string; text: string; tenants: TenantSpec[] } | undefined;
  /** Where the gateway keeps its state (the SQLite ledger), GATEWAY_DATA_DIR. */
  dataDir: string;
  /** LEDGER_URL: empty for SQLite under dataDir, a postgres:// URL, or `off`. */
  ledgerUrl: string;
  /** Days raw ledger rows are kept (0: for ever). */
  ledgerRawRetentionDays: number;
  /** Days hourly and daily rollups are kept (0: for ever). */
  ledgerRollupRetentionDays: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

const MB = 1024 * 1024;

const LOG_LEVELS: Record<string, LogLevel> = {
  DEBUG: 'debug',
  INFO: 'info',
  WARNING: 'warn',
  WARN: 'warn',
  ERROR: 'error',
};

/** Ollama's own default port, used when OLLAMA_HOST names a host without one. */
const OLLAMA_DEFAULT_PORT = 11434;

/**
 * Parses OLLAMA_HOST in the forms Ollama's own client accepts (`envconfig.Host`): a full
 * `http(s)://host:port[/prefix]` URL, the scheme-less `host:port` / `host` / `:port` forms (then
 * `http`, host 127.0.0.1 and port 11434 unless given), with an optional path prefix for an Ollama
 * behind a reverse proxy; and `unix:///path/to/socket`.
 */
export function parseUpstream(value: string, variable = 'OLLAMA_HOST'): UpstreamTarget {
  const fail = (): never => {
    throw new ConfigError(
      `${variable}=${JSON.stringify(value)} is not valid: expected http://host:port, https://host:port or host:port (each optionally with a /path prefix), :port, or unix:///path/to/socket`,
    );
  };
  const raw = value.trim();
  if (raw === '') fail();
  const unix = /^unix:\/\/(\/.+)$/i.exec(raw);
  if (unix) {
    return { protocol: 'http:', hostname: 'localhost', port: 0, socketPath: unix[1], pathPrefix: '', origin: `unix://${unix[1]}` };
  }
  const schemeless = !/^[a-z][a-z0-9+.-]*:\/\//i.test(raw);
  const withScheme = schemeless ? `http://${raw.startsWith(':') ? `127.0.0.1${raw}` : raw}` : raw;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    return fail();
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') fail();
  if (url.hostname === '' || url.username || url.password || url.search || url.hash) fail();
  const defaultPort = schemeless ? OLLAMA_DEFAULT_PORT : url.protocol === 'https:' ? 443 : 80;
  const port = url.port === '' ? defaultPort : Number(url.port);
  // URL keeps IPv6 literals bracketed; Node's http.request wants them bare.
  const hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const hostForOrigin = hostname.includes(':') ? `[${hostname}]` : hostname;
  const pathPrefix = url.pathname.replace(/\/+$/, '');
  return {
    protocol: url.protocol as 'http:' | 'https:',
    hostname,
    port,
    pathPrefix,
    origin: `${url.protocol}//${hostForOrigin}:${port}${pathPrefix}`,
  };
}

function booleanVar(env: Env, name: string, def: boolean): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '') return def;
  if (raw !== 'true' && raw !== 'false') throw new ConfigError(`${name}=${JSON.stringify(env[name])} is not valid: expected true or false`);
  return raw === 'true';
}

function intVar(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const n = Number(raw.trim());
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name}=${JSON.stringify(raw)} is not valid: expected a whole number from ${min} to ${max}`);
  }
  return n;
}

/** A number in (min, max], or [min, max] when `minAllowed`. */
function numberVar(env: Env, name: string, def: number, min: number, max: number, minAllowed = false): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const n = Number(raw.trim());
  if (!Number.isFinite(n) || n < min || (n === min && !minAllowed) || n > max) {
    const range = minAllowed ? `from ${min} to ${max}` : `greater than ${min} and at most ${max}`;
    throw new ConfigError(`${name}=${JSON.stringify(raw)} is not valid: expected a number ${range}`);
  }
  return n;
}

/**
 * Keys from GATEWAY_API_KEYS (comma-separated) and GATEWAY_API_KEYS_FILE (one per line, `#`
 * comments). A variable that is set but yields no key is an error, not "no authentication": a
 * Secret that mounts empty must not open Ollama to everyone.
 */
function readApiKeys(env: Env): string[] {
  const raw = env.GATEWAY_API_KEYS ?? '';
  const keys = raw
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k !== '');
  if (raw.trim() !== '' && keys.length === 0) {
    throw new ConfigError(
      `GATEWAY_API_KEYS=${JSON.stringify(raw)} is not valid: it holds no key; expected comma-separated keys, or leave it unset for no authentication`,
    );
  }
  const spaced = keys.find((k) => /\s/.test(k));
  if (spaced !== undefined) throw new ConfigError('GATEWAY_API_KEYS is not valid: expected keys without white space');
  if (keys.some(isPlaceholder)) {
    throw new ConfigError(
      `GATEWAY_API_KEYS is not valid: it holds a placeholder from an example (${PLACEHOLDER_HINT}), which anyone could guess; ${SECRET_HINT}`,
    );
  }
  const file = env.GATEWAY_API_KEYS_FILE?.trim();
  if (file) keys.push(...readKeysFile(file));
  return keys;
}

/** The keys of GATEWAY_API_KEYS_FILE: at least one, none with white space inside. */
function readKeysFile(file: string): string[] {
  const name = `GATEWAY_API_KEYS_FILE=${JSON.stringify(file)}`;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${name} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}): expected a readable file with one key per line`);
  }
  const keys: string[] = [];
  for (const [i, line] of text.split(/\r?\n/).entries()) {
    const key = line.trim();
    if (key === '' || key.startsWith('#')) continue;
    if (/\s/.test(key)) throw new ConfigError(`${name} is not valid: line ${i + 1} holds white space inside a key; expected one key per line`);
    if (isPlaceholder(key)) {
      throw new ConfigError(
        `${name} is not valid: line ${i + 1} holds a placeholder from an example (${PLACEHOLDER_HINT}), which anyone could guess; ${SECRET_HINT}`,
      );
    }
    keys.push(key);
  }
  if (keys.length === 0) {
    throw new ConfigError(
      `${name} holds no API key (only blank or # comment lines): expected one key per line, or unset GATEWAY_API_KEYS_FILE for no authentication`,
    );
  }
  return keys;
}

/**
 * Values that examples and templates ship in place of a secret (`change-me`, `<your-key>`, `xxx`).
 * Applied unchanged they would be real keys everyone knows, so the gateway refuses them.
 */
const PLACEHOLDER = /^(?:<.*>|x{3,}|\.{3,}|(?:change|replace)[-_ ]?me\b.*|changeit|placeholder|your[-_].*)$/i;
const PLACEHOLDER_HINT = 'change-me, replace-me, <…>, your-…, xxx';
const SECRET_HINT = 'generate one, e.g. with openssl rand -hex 24';

function isPlaceholder(value: string): boolean {
  return PLACEHOLDER.test(value);
}

function readMetricsToken(env: Env): string | undefined {
  const token = env.METRICS_BEARER_TOKEN?.trim() || undefined;
  if (token !== undefined && isPlaceholder(token)) {
    throw new ConfigError(
      `METRICS_BEARER_TOKEN is not valid: it is a placeholder from an example (${PLACEHOLDER_HINT}), which anyone could guess; ${SECRET_HINT}`,
    );
  }
  return token;
}

const FAMILIES: readonly MetricFamily[] = ['ollama', 'gen_ai'];

function parseFamilies(raw: string | undefined): ReadonlySet<MetricFamily> {
  if (raw === undefined || raw.trim() === '') return new Set(FAMILIES);
  const names = raw
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter((n) => n !== '');
  const bad = names.find((n) => !(FAMILIES as readonly string[]).includes(n));
  if (bad !== undefined || names.length === 0) {
    throw new ConfigError(`METRIC_FAMILIES=${JSON.stringify(raw)} is not valid: expected a comma-separated list of ollama and gen_ai`);
  }
  return new Set(names as MetricFamily[]);
}

/**
 * The name of a backend in labels, logs and `X-Ollama-Backend`: `host:port` as configured (IPv6
 * bracketed), with the path prefix when there is one (two Ollamas behind one reverse proxy); for a
 * Unix socket, its path.
 */
export function backendName(t: UpstreamTarget): string {
  if (t.socketPath) return t.socketPath;
  const host = t.hostname.includes(':') ? `[${t.hostname}]` : t.hostname;
  return `${host}:${t.port}${t.pathPrefix}`;
}

/** Most Ollama servers in OLLAMA_HOST: the `backend` label is bounded by this list. */
export const MAX_BACKENDS = 64;

/**
 * OLLAMA_HOST as a comma-separated list of Ollama servers, each in any form `parseUpstream` takes.
 * Refuses an empty entry and the same backend twice (its series would merge).
 */
export function parseUpstreams(value: string, variable = 'OLLAMA_HOST'): UpstreamTarget[] {
  const entries = value.split(',').map((e) => e.trim());
  if (entries.length > 1 && entries.some((e) => e === '')) {
    throw new ConfigError(`${variable}=${JSON.stringify(value)} is not valid: expected a comma-separated list of Ollama servers without empty entries`);
  }
  if (entries.length > MAX_BACKENDS) {
    throw new ConfigError(`${variable} is not valid: expected at most ${MAX_BACKENDS} Ollama servers, got ${entries.length}`);
  }
  const targets = entries.map((e) => parseUpstream(e, variable));
  const seen = new Set<string>();
  for (const t of targets) {
    const name = backendName(t);
    if (seen.has(name)) throw new ConfigError(`${variable}=${JSON.stringify(value)} is not valid: ${name} is listed twice`);
    seen.add(name);
  }
  return targets;
}

/** Every Ollama of OLLAMA_HOST, as the start-up line names them: one origin, or several joined by ", ". */
export function ollamaOrigins(config: Pick<Config, 'upstreams'>): string {
  return config.upstreams.map((u) => u.origin).join(', ');
}

/** LOG_FORMAT: json, pretty, or auto (pretty when stdout is a terminal). */
function logFormatVar(env: Env): LogFormat {
  const raw = (env.LOG_FORMAT ?? 'auto').trim().toLowerCase();
  if (raw === '' || raw === 'auto') return 'auto';
  if (raw === 'json' || raw === 'pretty') return raw;
  throw new ConfigError(`LOG_FORMAT=${JSON.stringify(env.LOG_FORMAT)} is not valid: expected json, pretty or auto`);
}

function listenSettings(env: Env): Pick<Config, 'upstream' | 'upstreams' | 'routingAffinity' | 'host' | 'port' | 'logLevel' | 'logFormat' | 'logBufferBytes'> {
  const upstreams = parseUpstreams(env.OLLAMA_HOST ?? 'http://localhost:11434');
  const upstream = upstreams[0]!;
  const host = (env.HOST ?? '127.0.0.1').trim();
  if (host === '' || /\s/.test(host)) {
    throw new ConfigError(`HOST=${JSON.stringify(env.HOST)} is not valid: expected an IP address or host name to listen on`);
  }
  const port = intVar(env, 'PORT', 8000, 0, 65535);
  const levelRaw = (env.LOG_LEVEL ?? 'INFO').trim().toUpperCase();
  const logLevel = LOG_LEVELS[levelRaw];
  if (!logLevel) {
    throw new ConfigError(`LOG_LEVEL=${JSON.stringify(env.LOG_LEVEL)} is not valid: expected DEBUG, INFO, WARNING (or WARN) or ERROR`);
  }
  const affinityRaw = (env.ROUTING_AFFINITY ?? 'none').trim().toLowerCase();
  if (affinityRaw !== 'none' && affinityRaw !== 'prefix' && affinityRaw !== '') {
    throw new ConfigError(`ROUTING_AFFINITY=${JSON.stringify(env.ROUTING_AFFINITY)} is not valid: expected none or prefix`);
  }
  const routingAffinity: RoutingAffinity = affinityRaw === 'prefix' ? 'prefix' : 'none';
  if (upstreams.some((u) => pointsAtItself(u, host, port))) {
    throw new ConfigError(
      `OLLAMA_HOST=${JSON.stringify(env.OLLAMA_HOST)} is not valid: it is this gateway's own address (HOST=${host}, PORT=${port}), so every request would come back to it; set OLLAMA_HOST to where Ollama listens (often http://127.0.0.1:11434), or PORT to another port`,
    );
  }
  const logFormat = logFormatVar(env);
  const logBufferBytes = Math.floor(numberVar(env, 'LOG_BUFFER_MB', 8, 0, 1024) * MB);
  return { upstream, upstreams, routingAffinity, host, port, logLevel, logFormat, logBufferBytes };
}

const WILDCARDS = new Set(['0.0.0.0', '::', '[::]']);

/** The addresses and names this machine answers to, for the self-loop check. */
function localAddresses(): Set<string> {
  const out = new Set(['localhost', '::1', '0.0.0.0', '::', os.hostname().toLowerCase()]);
  for (const list of Object.values(os.networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

/**
 * Whether OLLAMA_HOST names the gateway's own listening address: a user who exported
 * OLLAMA_HOST=127.0.0.1:8000 for the `ollama` CLI and then starts the gateway in the same shell.
 * (A loop through other proxies is caught per request, by the gateway's `Via` entry.)
 */
function pointsAtItself(upstream: UpstreamTarget, host: string, port: number): boolean {
  if (upstream.socketPath || port === 0 || upstream.port !== port) return false;
  const target = upstream.hostname.toLowerCase();
  const local = target.startsWith('127.') || localAddresses().has(target);
  return (
    local &&
    (WILDCARDS.has(host) ||
      host === target ||
      (host === 'localhost' && (target === '127.0.0.1' || target === '::1')) ||
      (target === 'localhost' && host.startsWith('127.')))
  );
}

type LimitSettings = Pick<
  Config,
  | 'upstreamIdleTimeoutMs'
  | 'maxRequestBodyBytes'
  | 'maxBufferedBodyBytes'
  | 'maxBufferedBodyPerClientBytes'
  | 'requestBodyTimeoutMs'
  | 'requestBodyDeadlineMs'
  | 'maxConnections'
  | 'maxConnectionsPerClient'
  | 'clientWriteTimeoutMs'
  | 'headersTimeoutMs'
  | 'shutdownGraceMs'
  | 'maxConcurrentRequests'
  | 'queueTimeoutMs'
>;

function limitSettings(env: Env): LimitSettings {
  const bodyMb = numberVar(env, 'MAX_REQUEST_BODY_MB', 64, 0, 1_048_576);
  // By default the shared budget holds at least one body of the largest size.
  const bufferedMb = numberVar(env, 'MAX_BUFFERED_BODY_MB', Math.max(256, bodyMb), 0, 1_048_576);
  if (bufferedMb < bodyMb) {
    throw new ConfigError(
      `MAX_BUFFERED_BODY_MB="${bufferedMb}" is not valid: expected at least MAX_REQUEST_BODY_MB (${bodyMb}), or no body of the largest size could be read`,
    );
  }
  // By default one client may hold one body of the largest size, and no more.
  const perClientMb = numberVar(env, 'MAX_BUFFERED_BODY_MB_PER_CLIENT', bodyMb, 0, 1_048_576);
  if (perClientMb < bodyMb || perClientMb > bufferedMb) {
    throw new ConfigError(
      `MAX_BUFFERED_BODY_MB_PER_CLIENT="${perClientMb}" is not valid: expected from MAX_REQUEST_BODY_MB (${bodyMb}) to MAX_BUFFERED_BODY_MB (${bufferedMb})`,
    );
  }
  const maxConnections = intVar(env, 'MAX_CONNECTIONS', 4096, 1, 1_000_000);
  const maxConnectionsPerClient = intVar(env, 'MAX_CONNECTIONS_PER_CLIENT', Math.min(1024, maxConnections), 1, 1_000_000);
  if (maxConnectionsPerClient > maxConnections) {
    throw new ConfigError(`MAX_CONNECTIONS_PER_CLIENT=${maxConnectionsPerClient} is not valid: expected at most MAX_CONNECTIONS (${maxConnections})`);
  }
  const maxConcurrent = intVar(env, 'MAX_CONCURRENT_REQUESTS', 0, 0, 1_000_000);
  const ms = (seconds: number) => Math.round(seconds * 1000);
  return {
    upstreamIdleTimeoutMs: ms(numberVar(env, 'UPSTREAM_IDLE_TIMEOUT_SECONDS', 300, 0, 86_400)),
    maxRequestBodyBytes: Math.floor(bodyMb * MB),
    maxBufferedBodyBytes: Math.floor(bufferedMb * MB),
    maxBufferedBodyPerClientBytes: Math.floor(perClientMb * MB),
    requestBodyTimeoutMs: ms(numberVar(env, 'REQUEST_BODY_TIMEOUT_SECONDS', 30, 0, 86_400, true)),
    requestBodyDeadlineMs: ms(numberVar(env, 'REQUEST_BODY_DEADLINE_SECONDS', 120, 0, 86_400, true)),
    maxConnections,
    maxConnectionsPerClient,
    clientWriteTimeoutMs: ms(numberVar(env, 'CLIENT_WRITE_TIMEOUT_SECONDS', 300, 0, 86_400, true)),
    headersTimeoutMs: ms(numberVar(env, 'HEADERS_TIMEOUT_SECONDS', 60, 0, 3600)),
    shutdownGraceMs: ms(numberVar(env, 'SHUTDOWN_GRACE_SECONDS', 30, 0, 3600, true)),
    maxConcurrentRequests: maxConcurrent > 0 ? maxConcurrent : undefined,
    queueTimeoutMs: ms(numberVar(env, 'QUEUE_TIMEOUT_SECONDS', 30, 0, 3600, true)),
  };
}

type TelemetrySettings = Pick<
  Config,
  'maxModelLabels' | 'captureMessageContent' | 'maxCaptureChars' | 'pollIntervalMs' | 'streamStallMs' | 'metricFamilies' | 'genAiLatest'
>;

function telemetrySettings(env: Env): TelemetrySettings {
  const captureRaw = (env.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT ?? 'false').trim().toLowerCase();
  if (captureRaw !== 'true' && captureRaw !== 'false' && captureRaw !== '') {
    throw new ConfigError(
      `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=${JSON.stringify(env.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT)} is not valid: expected true or false`,
    );
  }
  return {
    maxModelLabels: intVar(env, 'MAX_MODEL_LABELS', 200, 1, 100_000),
    captureMessageContent: captureRaw === 'true',
    maxCaptureChars: intVar(env, 'GENAI_CAPTURE_MAX_CHARS', 16_384, 1, 10_000_000),
    pollIntervalMs: Math.round(numberVar(env, 'OLLAMA_POLL_INTERVAL_SECONDS', 15, 0, 86_400, true) * 1000),
    streamStallMs: numberVar(env, 'STREAM_STALL_SECONDS', 2, 0, 3600) * 1000,
    metricFamilies: parseFamilies(env.METRIC_FAMILIES),
    // A comma-separated list of categories, as every OpenTelemetry instrumentation reads it.
    genAiLatest: (env.OTEL_SEMCONV_STABILITY_OPT_IN ?? '').split(',').some((v) => v.trim() === 'gen_ai_latest_experimental'),
  };
}

/** GATEWAY_TENANTS_FILE, read and checked at start (a bad file later keeps the tenants in use). */
function readTenantsFile(env: Env): Config['tenantsFile'] {
  const file = env.GATEWAY_TENANTS_FILE?.trim();
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`GATEWAY_TENANTS_FILE=${JSON.stringify(file)} cannot be read: ${(err as Error).message}`);
  }
  if (Buffer.byteLength(text) > MAX_TENANTS_FILE_BYTES)
    throw new ConfigError(`GATEWAY_TENANTS_FILE=${JSON.stringify(file)} is larger than ${MAX_TENANTS_FILE_BYTES} bytes`);
  try {
    return { path: file, text, tenants: parseTenantsFile(text) };
  } catch (err) {
    if (err instanceof TenantsFileError) throw new ConfigError(`GATEWAY_TENANTS_FILE=${JSON.stringify(file)} is not valid: ${err.message}`);
    throw err;
  }
}

function ledgerSettings(env: Env): Pick<Config, 'dataDir' | 'ledgerUrl' | 'ledgerRawRetentionDays' | 'ledgerRollupRetentionDays'> {
  const url = (env.LEDGER_URL ?? '').trim();
  if (url !== '' && url !== 'off' && !/^postgres(ql)?:\/\/\S+$/.test(url)) {
    throw new ConfigError('LEDGER_URL is not valid: expected postgres://user:password@host:port/database, off, or nothing for SQLite under GATEWAY_DATA_DIR');
  }
  const dataDir = (env.GATEWAY_DATA_DIR ?? '').trim() || './data';
  return {
    dataDir,
    ledgerUrl: url,
    ledgerRawRetentionDays: intVar(env, 'LEDGER_RAW_RETENTION_DAYS', 90, 0, 36_500),
    ledgerRollupRetentionDays: intVar(env, 'LEDGER_ROLLUP_RETENTION_DAYS', 0, 0, 36_500),
  };
}

/** Ollama's own default for OLLAMA_NUM_PARALLEL (envconfig/config.go: `Uint("OLLAMA_NUM_PARALLEL", 1)`). */
export const OLLAMA_DEFAULT_PARALLEL = 1;

/** BACKEND_PARALLEL: one number for every backend, or `name=N` pairs (others get Ollama's default). */
/**
 * BACKEND_PARALLEL. Unset: with a tenants file (a GPU shared by tenants) each backend gets Ollama's
 * own default, 1 (`OLLAMA_NUM_PARALLEL`), so the tenants share it fairly; without one the queue is
 * off, as a gateway put in front of one user's Ollama must not start holding its calls.
 */
function backendParallel(env: Env, upstreams: readonly UpstreamTarget[], shared: boolean): ReadonlyMap<string, number> | undefined {
  const raw = env.BACKEND_PARALLEL?.trim() ?? '';
  const names = upstreams.map(backendName);
  const bad = (why: string) => new ConfigError(`BACKEND_PARALLEL=${JSON.stringify(raw)} is not valid: ${why}`);
  const count = (v: string, min: number): number => {
    const n = Number(v.trim());
    if (v.trim() === '' || !Number.isInteger(n) || n < min || n > 10_000) throw bad(`expected a whole number from ${min} to 10000`);
    return n;
  };
  if (!raw.includes('=')) {
    const n = raw === '' ? (shared ? OLLAMA_DEFAULT_PARALLEL : 0) : count(raw, 0);
    return n === 0 ? undefined : new Map(names.map((name) => [name, n]));
  }
  const slots = new Map(names.map((name) => [name, OLLAMA_DEFAULT_PARALLEL]));
  for (const pair of raw.split(',')) {
    const at = pair.lastIndexOf('=');
    const name = pair.slice(0, at).trim();
    if (at === -1 || !slots.has(name)) throw bad(`expected name=N pairs naming backends of OLLAMA_HOST (${names.join(', ')})`);
    slots.set(name, count(pair.slice(at + 1), 1));
  }
  return slots;
}

function queueOrder(env: Env): QueueOrder {
  const raw = (env.QUEUE_ORDER ?? '').trim().toLowerCase() || 'fair';
  if (raw !== 'fair' && raw !== 'fifo') throw new ConfigError(`QUEUE_ORDER=${JSON.stringify(env.QUEUE_ORDER)} is not valid: expected fair or fifo`);
  return raw;
}

/** GATEWAY_WORKERS: a number, or `auto` for one per core. */
function workerSettings(env: Env, limits: LimitSettings): Pick<Config, 'workers'> {
  const raw = env.GATEWAY_WORKERS?.trim().toLowerCase();
  const workers = raw === 'auto' ? os.availableParallelism() : intVar(env, 'GATEWAY_WORKERS', 1, 1, 256);
  if (limits.maxConcurrentRequests !== undefined && limits.maxConcurrentRequests < workers) {
    throw new ConfigError(
      `MAX_CONCURRENT_REQUESTS=${limits.maxConcurrentRequests} is not valid with GATEWAY_WORKERS=${workers}: each worker holds a share of the limit, so it must be at least the number of workers`,
    );
  }
  return { workers };
}

/** TRACE_UI_URL: an http(s) URL with `{trace_id}` where the trace id goes. */
function traceUiUrl(env: Env): string | undefined {
  const raw = env.TRACE_UI_URL?.trim();
  if (!raw) return undefined;
  if (!/^https?:\/\//i.test(raw) || !raw.includes('{trace_id}')) {
    throw new ConfigError(`TRACE_UI_URL must be an http(s) URL containing {trace_id}, got ${JSON.stringify(raw)}`);
  }
  return raw;
}

/**
 * Reads and validates the configuration (the variables listed in settings.ts). Throws ConfigError
 * on the first bad value.
 */
export function loadConfig(env: Env = process.env, overrides: Partial<Config> = {}): Config {
  const limits = limitSettings(env);
  const listen = listenSettings(env);
  const tenantsFile = readTenantsFile(env);
  const apiKeys = readApiKeys(env);
  if (tenantsFile && apiKeys.length > 0) {
    throw new ConfigError(
      'GATEWAY_TENANTS_FILE and GATEWAY_API_KEYS (or GATEWAY_API_KEYS_FILE) are both set: move the keys into the tenants file and unset the others',
    );
  }
  const ledger = ledgerSettings(env);
  try {
    requireLedgerForLimits(tenantsFile?.tenants ?? [], ledger.ledgerUrl);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  return {
    ...listen,
    backendParallel: backendParallel(env, listen.upstreams, tenantsFile !== undefined),
    queueMaxWaiting: intVar(env, 'QUEUE_MAX_WAITING', 1000, 1, 1_000_000),
    queueOrder: queueOrder(env),
    ...limits,
    ...workerSettings(env, limits),
    ...telemetrySettings(env),
    apiKeys,
    tenantsFile,
    ...ledger,
    metricsBearerToken: readMetricsToken(env),
    console: booleanVar(env, 'CONSOLE', true),
    traceUiUrl: traceUiUrl(env),
    serverTiming: booleanVar(env, 'SERVER_TIMING', true),
    ...overrides,
  };
}
