/**
 * What the primary process and the workers tell each other over cluster IPC (`GATEWAY_WORKERS` > 1).
 *
 *   worker → primary   gather     a worker must answer a scrape: collect `kind` from every worker
 *   primary → worker   collect    give your own piece of `kind`
 *   worker → primary   collected  here it is
 *   primary → worker   gathered   every worker's piece of the console, for the asker to merge; of
 *                                  the metrics, one piece: the primary's merge of them all
 *   worker → primary   state      (the polling worker) the latest poll of Ollama
 *   primary → worker   state      the same, relayed to every other worker
 *   worker → primary   listening  the worker's server is bound
 *
 * Every message carries `gw` so that nothing else on the channel is mistaken for one.
 */
import type { FleetState } from '../../otel/state';

/** What can be gathered across workers. */
export type GatherKind = 'metrics' | 'console';

export interface Piece {
  /** The worker's index (0 … N−1). */
  worker: number;
  data: string;
  /** Set when this is what a worker that has since exited last reported. */
  retired?: boolean;
}

/** The poller's result and the model names Ollama serves, as the polling worker last saw them. */
export interface PolledState {
  state: FleetState | undefined;
  served: string[];
}

export type ToPrimary =
  | { gw: 'gather'; id: number; kind: GatherKind }
  | { gw: 'collected'; id: number; kind: GatherKind; data: string }
  | { gw: 'state'; polled: PolledState }
  | { gw: 'listening'; port: number };

export type ToWorker = { gw: 'collect'; id: number; kind: GatherKind } | { gw: 'gathered'; id: number; pieces: Piece[] } | { gw: 'state'; polled: PolledState };

export function isMessage<T extends { gw: string }>(m: unknown): m is T {
  return typeof m === 'object' && m !== null && typeof (m as { gw?: unknown }).gw === 'string';
}

/** The environment variable that tells a forked worker its index. */
export const WORKER_INDEX_ENV = 'GATEWAY_WORKER_INDEX';
