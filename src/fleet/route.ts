/**
 * Which backend an LLM call goes to: a pure function of the model, each backend's state and load,
 * and the conversation's affinity, so every rule is a unit test (test/unit/route.test.ts).
 *
 * 1. A routable backend where the model is loaded; among those, the fewest calls in flight.
 * 2. Else one that has the model on disk (fewest in flight, so cold loads spread).
 * 3. Else, when none has it, the routable backend with the fewest in flight (Ollama answers 404,
 *    or pulls, as it would).
 * Ties go round the list (`spread`), so equal backends share the load. With affinity, the
 * backend the conversation used before wins while it is routable, as warm as the best, and not
 * overloaded (at most AFFINITY_MAX_EXTRA calls more in flight than the least busy).
 * When no backend is routable, all are ranked the same way: the call is tried rather than refused.
 */
import type { RoutingReason } from '../../otel/instruments';

export interface BackendView {
  name: string;
  /** Up, or due a trial call (fleet/health.ts). */
  routable: boolean;
  /** LLM calls this gateway has at it now. */
  inFlight: number;
  /** Whether its state is known (a poll succeeded); without it, nothing is known about its models. */
  known: boolean;
  /** Normalised names of the models loaded in memory, and on disk. */
  loaded: ReadonlySet<string>;
  onDisk: ReadonlySet<string>;
  /** Memory its loaded models take (`/api/ps` size), at the last poll. */
  memoryBytes: number;
}

export interface RouteRequest {
  /** The model as Ollama resolves it (normalised), when the body named one. */
  model: string | undefined;
  /** The backend this conversation went to before (ROUTING_AFFINITY=prefix). */
  affinity?: string;
  /** Backends already tried by this call. */
  exclude?: ReadonlySet<string>;
  /** Rotates ties (a counter the caller increments per call). */
  spread?: number;
}

export interface RouteChoice {
  /** The backends to try, best first: the first is the choice, the rest its failover order. */
  order: string[];
  reason: RoutingReason;
  /** Whether the chosen backend had the model loaded; undefined when its state is unknown. */
  warm: boolean | undefined;
  /**
   * How many backends at the head of `order` are as good as the first (as warm): a call waiting
   * for a slot may take any of them.
   */
  equal: number;
}

/** How many more calls than the least busy backend an affinity backend may have and still be chosen. */
export const AFFINITY_MAX_EXTRA = 4;

const TIER_REASON: readonly RoutingReason[] = ['loaded', 'on_disk', 'none_has_it'];

function tier(b: BackendView, model: string | undefined): number {
  if (model === undefined || !b.known) return 2;
  if (b.loaded.has(model)) return 0;
  return b.onDisk.has(model) ? 1 : 2;
}

/** Ranks the backends for a call; undefined only when there are none left to try. */
export function route(req: RouteRequest, backends: readonly BackendView[]): RouteChoice | undefined {
  const open = backends.filter((b) => !req.exclude?.has(b.name));
  if (open.length === 0) return undefined;
  const routable = open.filter((b) => b.routable);
  const pool = routable.length > 0 ? routable : open;
  const n = backends.length;
  const spread = req.spread ?? 0;
  const index = new Map(backends.map((b, i) => [b.name, (i - (spread % n) + n) % n]));
  const ranked = pool
    .map((b) => ({ b, tier: tier(b, req.model) }))
    .sort((x, y) => x.tier - y.tier || x.b.inFlight - y.b.inFlight || index.get(x.b.name)! - index.get(y.b.name)!);
  const best = ranked[0]!;
  const warmOf = (r: { b: BackendView; tier: number }): boolean | undefined => (r.tier === 0 ? true : r.b.known ? false : undefined);
  const equal = ranked.filter((r) => r.tier === best.tier).length;

  if (req.affinity !== undefined) {
    const sticky = ranked.find((r) => r.b.name === req.affinity);
    const least = Math.min(...ranked.map((r) => r.b.inFlight));
    if (sticky && sticky.b.routable && sticky.tier <= best.tier && sticky.b.inFlight - least <= AFFINITY_MAX_EXTRA) {
      return { order: [sticky.b.name, ...ranked.filter((r) => r !== sticky).map((r) => r.b.name)], reason: 'affinity', warm: warmOf(sticky), equal };
    }
  }
  return { order: ranked.map((r) => r.b.name), reason: TIER_REASON[best.tier]!, warm: warmOf(best), equal };
}

/**
 * Where a pass-through request goes when X-Ollama-Backend names none (several backends), the rule
 * the README states:
 * - `pull`: the routable backend with the least memory taken by loaded models (Ollama reports no
 *   free memory; this is the one with the most room), ties in list order;
 * - `show`, `push`, `copy`, `delete`: a routable backend that has the model (loaded first, then
 *   on disk; fewest in flight), else the first routable one (Ollama answers 404);
 * - `create` and blob uploads, and everything else (`/`, `/api/version`, unknown paths): the first
 *   routable backend in OLLAMA_HOST order, so the blobs of a create and the create land together.
 */
export type ManagementRule = 'pull' | 'by_model' | 'first';

export function managementRule(method: string, path: string): ManagementRule {
  if (method === 'POST' && path === '/api/pull') return 'pull';
  if ((method === 'POST' && (path === '/api/show' || path === '/api/push' || path === '/api/copy')) || (method === 'DELETE' && path === '/api/delete')) {
    return 'by_model';
  }
  return 'first';
}

/** The backend for a pass-through request under `rule` (`model` read from the body for `by_model`). */
export function routeManagement(rule: ManagementRule, model: string | undefined, backends: readonly BackendView[]): string | undefined {
  const routable = backends.filter((b) => b.routable);
  const pool = routable.length > 0 ? routable : backends;
  if (pool.length === 0) return undefined;
  if (rule === 'pull') return pool.reduce((best, b) => (b.memoryBytes < best.memoryBytes ? b : best)).name;
  if (rule === 'by_model') {
    const choice = route({ model }, pool);
    if (choice && choice.reason !== 'none_has_it') return choice.order[0];
  }
  return pool[0]!.name;
}
