/**
 * Structured JSON logs (pino), one object per line. Request and response bodies are never logged:
 * no prompt or completion text reaches the log at any level.
 */
import pino, { type Logger } from 'pino';
import type { LogLevel } from './config';

export type { Logger } from 'pino';

export function createLogger(level: LogLevel, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'ollama-otel-gateway' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
