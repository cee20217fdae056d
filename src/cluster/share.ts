/**
 * What one worker holds of the limits that are the whole gateway's: with N workers, the
 * concurrency limit and the request-body memory budget are split so that together they are what
 * the settings say (each worker enforces its share on the connections it is handed).
 */
import type { Config } from '../config';

export function workerShare(config: Config, index: number): Config {
  const n = config.workers;
  if (n <= 1) return config;
  const limit = config.maxConcurrentRequests;
  const split = (total: number): number => Math.max(1, Math.floor(total / n) + (index < total % n ? 1 : 0));
  const budget = Math.max(config.maxRequestBodyBytes, Math.floor(config.maxBufferedBodyBytes / n));
  return {
    ...config,
    // Each worker queues its own calls: it holds its share of each backend's slots, at least one.
    backendParallel: config.backendParallel && new Map([...config.backendParallel].map(([name, slots]) => [name, split(slots)])),
    // 5 over 2 workers: 3 and 2.
    maxConcurrentRequests: limit === undefined ? undefined : Math.floor(limit / n) + (index < limit % n ? 1 : 0),
    // Each worker can still take one body of the largest size.
    maxBufferedBodyBytes: budget,
    maxBufferedBodyPerClientBytes: Math.min(config.maxBufferedBodyPerClientBytes, budget),
    // Connections are handed out in turn, so each worker holds its share of the total; one
    // client's connections may all land on one worker, so its cap is not split.
    maxConnections: Math.max(1, Math.floor(config.maxConnections / n)),
  };
}
