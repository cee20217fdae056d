/** What a fuzz run is given and gives back, and the gateway settings it runs under. */
import { API_KEY } from './requests';

export interface FuzzOptions {
  requests: number;
  seed: number;
  concurrency?: number;
  /** Stop sending after this long (the run is still judged on what was sent). */
  maxSeconds?: number;
  hugeEvery?: number;
  bigBodyEvery?: number;
  /** Progress lines (the CLI prints them). */
  progress?: (line: string) => void;
}

export interface Book {
  book: string;
  expected: string;
  actual: string;
  ok: boolean;
}

export interface FuzzResult {
  seed: number;
  planned: number;
  sent: number;
  seconds: number;
  books: Book[];
  /** kind → outcomes → count */
  kinds: Map<string, Map<string, number>>;
  statuses: Map<number, number>;
  env: Record<string, string>;
  stderrTail: string;
}

export const FUZZ_ENV = {
  LOG_LEVEL: 'INFO',
  OLLAMA_POLL_INTERVAL_SECONDS: '0',
  GATEWAY_API_KEYS: `${API_KEY},fuzz-key-2`,
  MAX_REQUEST_BODY_MB: '6',
  MAX_BUFFERED_BODY_MB: '8',
  REQUEST_BODY_TIMEOUT_SECONDS: '1',
  UPSTREAM_IDLE_TIMEOUT_SECONDS: '2',
  CLIENT_WRITE_TIMEOUT_SECONDS: '3',
  HEADERS_TIMEOUT_SECONDS: '2',
  MAX_MODEL_LABELS: '10',
  SHUTDOWN_GRACE_SECONDS: '1',
};
