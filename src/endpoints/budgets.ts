/**
 * `/console/api/v1/budgets`: per tenant its limits (used, remaining, when each resets), those of its
 * end users seen lately, and its place in the fair queue. Built from what the budgets' book and the
 * queue say when asked (read on demand, nothing on a call's path); pure, so the answer is a function
 * of its inputs.
 */
import type { BudgetSnapshot, LimitState } from '../budgets/book';
import type { TenantQueue, TenantWaits } from '../scheduler/fair-queue';
import type { Priority, TenantPolicy } from '../scheduler/tenant';
import type { Limit } from '../tenants/rules';

/** End users listed per tenant at most: the most recently seen (the answer says how many there are). */
export const USERS_PER_TENANT = 20;

export interface BudgetsInput {
  /** Epoch ms. */
  now: number;
  /** The tenants the asker may see, in the configuration's order. */
  tenants: readonly string[];
  limits: BudgetSnapshot;
  /** The limits each end user of `tenant` has, when it has any. */
  userLimits: (tenant: string) => readonly Limit[] | undefined;
  /** This process's fair queue, when BACKEND_PARALLEL is on. */
  queue?: { tenants: readonly TenantQueue[]; waits: ReadonlyMap<string, TenantWaits> };
  policy: (tenant: string) => TenantPolicy;
}

/** A limit as configured: its name, what it counts, over which window, and its maximum. */
export interface LimitRule {
  name: string;
  measure: Limit['measure'];
  window: 'day' | 'month' | 'rolling';
  /** The length of a rolling window. */
  windowSeconds?: number;
  limit: number;
}

export interface LimitView extends LimitRule {
  used: number;
  remaining: number;
  /** used / limit (1 for a limit of 0). */
  usedRatio: number;
  /** At or past the limit: a call now is refused. */
  reached: boolean;
  /** When enough use leaves a rolling window, or the calendar window ends: ISO 8601. */
  resetAt: string;
  resetInSeconds: number;
}

export interface TenantBudgets {
  tenant: string;
  priority: Priority;
  weight: number;
  limits: LimitView[];
  /** Present when each end user of the tenant has limits. */
  users?: { limits: LimitRule[]; seen: number; shown: { user: string; limits: LimitView[] }[] };
  /** Present with the fair queue on. */
  queue?: { waiting: number; running: number; longestWaitSeconds: number; lastWait: { seconds: number; secondsAgo: number } | null };
}

export interface BudgetsView {
  /** Whether this process holds calls in a fair queue (BACKEND_PARALLEL). */
  fairQueue: boolean;
  tenants: TenantBudgets[];
}

function ruleOf(l: Limit): LimitRule {
  const w = l.window;
  return w.kind === 'rolling'
    ? { name: l.name, measure: l.measure, window: 'rolling', windowSeconds: w.ms / 1000, limit: l.max }
    : { name: l.name, measure: l.measure, window: w.kind, limit: l.max };
}

function viewOf(s: LimitState, now: number): LimitView {
  const max = s.limit.max;
  return {
    ...ruleOf(s.limit),
    used: s.used,
    remaining: s.remaining,
    usedRatio: max > 0 ? s.used / max : 1,
    reached: s.used >= max,
    resetAt: new Date(s.resetAt).toISOString(),
    resetInSeconds: Math.max(0, (s.resetAt - now) / 1000),
  };
}

const mostUsed = (l: readonly LimitView[]): number => l.reduce((m, v) => Math.max(m, v.usedRatio), 0);

/**
 * The tenants with limits of their own or for their end users, and, with the fair queue on, those
 * with calls waiting, running or released lately; in the configuration's order. End users by the
 * share of their fullest limit, fullest first.
 */
export function budgetsView(input: BudgetsInput): BudgetsView {
  const { now, queue } = input;
  const visible = new Set(input.tenants);
  const own = new Map<string, LimitView[]>();
  const users = new Map<string, Map<string, LimitView[]>>();
  for (const s of input.limits.states) {
    if (!visible.has(s.tenant)) continue;
    if (s.user === undefined) {
      let l = own.get(s.tenant);
      if (!l) own.set(s.tenant, (l = []));
      l.push(viewOf(s, now));
      continue;
    }
    let byUser = users.get(s.tenant);
    if (!byUser) users.set(s.tenant, (byUser = new Map()));
    let l = byUser.get(s.user);
    if (!l) byUser.set(s.user, (l = []));
    l.push(viewOf(s, now));
  }
  const queued = new Map((queue?.tenants ?? []).map((q) => [q.tenant, q]));
  const out: TenantBudgets[] = [];
  for (const tenant of input.tenants) {
    const userLimits = input.userLimits(tenant);
    const q = queued.get(tenant);
    const waits = queue?.waits.get(tenant);
    if (!own.has(tenant) && !userLimits?.length && !q && !waits) continue;
    const policy = input.policy(tenant);
    const entry: TenantBudgets = { tenant, priority: policy.priority, weight: policy.weight, limits: own.get(tenant) ?? [] };
    if (userLimits?.length) {
      const shown = [...(users.get(tenant) ?? new Map<string, LimitView[]>())]
        .map(([user, limits]) => ({ user, limits }))
        .sort((a, b) => mostUsed(b.limits) - mostUsed(a.limits) || (a.user < b.user ? -1 : 1));
      entry.users = { limits: userLimits.map(ruleOf), seen: input.limits.usersSeen.get(tenant) ?? shown.length, shown };
    }
    if (queue) {
      entry.queue = {
        waiting: q?.waiting ?? 0,
        running: q?.running ?? 0,
        longestWaitSeconds: (waits?.longestMs ?? 0) / 1000,
        lastWait: waits?.last ? { seconds: waits.last.waitedMs / 1000, secondsAgo: waits.last.agoMs / 1000 } : null,
      };
    }
    out.push(entry);
  }
  return { fairQueue: queue !== undefined, tenants: out };
}
