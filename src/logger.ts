/**
 * Structured JSON logs (pino), one object per line. Request and response bodies are never logged:
 * no prompt or completion text reaches the log at any level.
 */
import pino, { type Logger } from 'pino';
import type { LogLevel } from './config';

export type { Logger } from 'pino';

/** How often buffered log lines are written out at the latest. */
const FLUSH_INTERVAL_MS = 500;

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  const log = pino(
    {
      level,
      base: { service: 'ollama-otel-gateway' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    // Buffered: log lines are written in batches rather than one write(2) per request, and at
    // least every FLUSH_INTERVAL_MS; main.ts flushes before exit.
    destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096 }),
  );
  if (!destination) {
    let flushing = false;
    setInterval(() => {
      if (flushing) return;
      flushing = true;
      log.flush(() => {
        flushing = false;
      });
    }, FLUSH_INTERVAL_MS).unref();
  }
  return log;
}

/** Longest request target carried into a log line. */
export const MAX_LOGGED_PATH = 1024;

/** A request's target as it may go into a log line: cut to a bounded length. */
export function loggedPath(req: { url?: string }): string {
  const url = req.url ?? '';
  return url.length > MAX_LOGGED_PATH ? url.slice(0, MAX_LOGGED_PATH) : url;
}
