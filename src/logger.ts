/**
 * Logs (pino): one event, one line. JSON lines for machines, or with LOG_FORMAT=pretty (or `auto`
 * on a terminal) one readable line per event. Request and response bodies are never logged: no
 * prompt or completion text reaches the log at any level.
 *
 * Lines wait in memory until stdout takes them. When stdout is not read (a stuck log shipper, a
 * paused pipe) they would pile up without bound, so what waits is bounded (LOG_BUFFER_MB): past it
 * a line is dropped and counted (`droppedLogLines()`, exported as a metric), and no call ever
 * waits for the log.
 */
import pino, { type Logger } from 'pino';
import type { LogFormat, LogLevel } from './config';

export type { Logger } from 'pino';

/** How often buffered log lines are written out at the latest. */
const FLUSH_INTERVAL_MS = 500;
/** Lines are written in batches of at least this many bytes (or every FLUSH_INTERVAL_MS). */
const MIN_WRITE_BYTES = 4096;
/** The smallest bound on waiting lines: a few batches. */
const MIN_BUFFER_BYTES = 64 * 1024;
/** The longest a flush may wait for stdout before the caller goes on (a stuck stdout must not hold an exit). */
const FLUSH_WAIT_MS = 2000;

export interface LoggerOptions {
  format?: LogFormat;
  /** Most bytes of lines waiting for stdout (LOG_BUFFER_MB). */
  bufferBytes?: number;
}

type Stdout = ReturnType<typeof pino.destination>;

let dropped = 0;

/** Log lines dropped since start because stdout did not take them. */
export function droppedLogLines(): number {
  return dropped;
}

function countLines(data: string | Buffer): number {
  const text = typeof data === 'string' ? data : data.toString('latin1');
  let n = 0;
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++;
  return Math.max(n, 1);
}

export function createLogger(level: LogLevel, destination?: pino.DestinationStream, options: LoggerOptions = {}): Logger {
  const pretty = options.format === 'pretty' || (options.format === 'auto' && destination === undefined && process.stdout.isTTY === true);
  let stdout: Stdout | undefined;
  if (!destination) {
    // Buffered: log lines are written in batches rather than one write(2) per request, and at
    // least every FLUSH_INTERVAL_MS; main.ts flushes before exit.
    stdout = pino.destination({
      dest: 1,
      sync: false,
      minLength: MIN_WRITE_BYTES,
      maxLength: Math.max(MIN_BUFFER_BYTES, options.bufferBytes ?? 8 * 1024 * 1024),
    });
    stdout.on('drop', (data: string | Buffer) => (dropped += countLines(data)));
  }
  const log = pino(
    {
      level,
      base: { service: 'ollama-otel-gateway' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    stdout ? stdoutStream(stdout, pretty) : pretty ? { write: (line: string) => destination!.write(prettyLine(line)) } : destination!,
  );
  return log;
}

/**
 * What pino writes to: `boom`, each line made readable when `pretty`, and a flush that gives up
 * after FLUSH_WAIT_MS (a stuck stdout must not hold the exit). Flushed every FLUSH_INTERVAL_MS,
 * one flush at a time: a stdout that takes nothing leaves that one waiting, and no more.
 */
function stdoutStream(boom: Stdout, pretty: boolean): pino.DestinationStream & { flush(cb: (err?: Error) => void): void } {
  let flushing = false;
  setInterval(() => {
    if (flushing) return;
    flushing = true;
    boom.flush(() => {
      flushing = false;
    });
  }, FLUSH_INTERVAL_MS).unref();
  return {
    write: pretty ? (line: string) => boom.write(prettyLine(line)) : (line: string) => boom.write(line),
    flush: (cb) => boundedFlush(boom, cb),
  };
}

/** Flushes `boom`, calling `cb` once: when written, or after FLUSH_WAIT_MS if stdout does not take it. */
function boundedFlush(boom: Stdout, cb: (err?: Error) => void): void {
  let called = false;
  const done = (err?: Error) => {
    if (called) return;
    called = true;
    clearTimeout(timer);
    cb(err);
  };
  const timer = setTimeout(done, FLUSH_WAIT_MS);
  timer.unref();
  try {
    boom.flush((err) => done(err ?? undefined));
  } catch (err) {
    // Nothing buffered, or the stream is closed: nothing to wait for.
    done(err instanceof Error && /not ready|destroyed/i.test(err.message) ? undefined : (err as Error));
  }
}

/** Fields every line has, shown in their own place rather than as `key=value`. */
const FIXED = new Set(['time', 'level', 'msg', 'service', 'pid', 'hostname']);

/**
 * One JSON log line as `TIME LEVEL message key=value …`, on one line: strings with spaces, quotes
 * or line breaks are quoted as JSON, objects are written as JSON (a stack trace stays on its line).
 */
export function prettyLine(json: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = String(entry.level ?? '').toUpperCase();
  let out = `${String(entry.time ?? '')} ${level.padEnd(5)} ${typeof entry.msg === 'string' ? oneLine(entry.msg) : ''}`;
  for (const [k, v] of Object.entries(entry)) {
    if (FIXED.has(k) || v === undefined) continue;
    out += ` ${k}=${prettyValue(v)}`;
  }
  return `${out}\n`;
}

function oneLine(s: string): string {
  return /[\r\n]/.test(s) ? JSON.stringify(s) : s;
}

function prettyValue(v: unknown): string {
  // JSON.stringify escapes what would break the line (control characters included); a plain word stays bare.
  if (typeof v === 'string') return /^[^\s"=\\]+$/.test(v) && JSON.stringify(v).length === v.length + 2 ? v : JSON.stringify(v);
  return JSON.stringify(v) ?? String(v);
}

/** Longest request target carried into a log line. */
export const MAX_LOGGED_PATH = 1024;

/** A request's target as it may go into a log line: cut to a bounded length. */
export function loggedPath(req: { url?: string }): string {
  const url = req.url ?? '';
  return url.length > MAX_LOGGED_PATH ? url.slice(0, MAX_LOGGED_PATH) : url;
}
