/**
 * Fair queueing in front of the backends: each backend runs at most its slots of LLM calls at once
 * (BACKEND_PARALLEL); the gateway holds the rest and releases them by weighted fair share across
 * tenants, measured in tokens served, rather than first-come.
 *
 * The rule is start-time fair queueing over tokens. Each tenant has a virtual finish time `finish`:
 * every call released advances it by the tokens the call is expected to cost over the tenant's
 * weight, and the call's real token count corrects it once known. A waiting tenant's start is
 * `max(virtualNow, finish)`; the tenant with the smallest start goes next (interactive tenants
 * before batch ones, ties by arrival). `virtualNow` is the start of the call released last, so a
 * tenant that was idle keeps no credit beyond "now" (the decay), while one that has had little
 * recently starts ahead of one that has had much. Within a tenant, first-come.
 *
 * A call waits for any of its candidate backends (routing's best tier, best first) and is released
 * to the first of them with a free slot, so queueing composes with routing instead of pinning a
 * call to a backend chosen before it waited. Pure of I/O: the caller supplies the clock and timers.
 */
import { performance } from 'node:perf_hooks';
import type { Priority, TenantPolicy } from './tenant';

export type QueueOrder = 'fair' | 'fifo';

export interface FairQueueOptions {
  /** Slots per backend name. */
  slots: ReadonlyMap<string, number>;
  /** Most calls waiting at once (all tenants); beyond it a call is refused at once. */
  maxWaiting: number;
  /** Longest a call may wait, ms; then it is refused. */
  maxWaitMs: number;
  /** Most calls running at once over all backends (MAX_CONCURRENT_REQUESTS), when set. */
  maxRunning?: number;
  /** `fifo`: first-come across tenants (for comparison); `fair` by default. */
  order?: QueueOrder;
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
}

export type Refusal = 'queue_full' | 'queue_timeout';

/** A call's place in the queue; what it is told when it is released or refused. */
export interface Ticket {
  /** Released to `backend` (one of its candidates); `slot` gives the slot back, once. */
  onRelease: (grant: Grant) => void;
  onRefuse: (why: Refusal, message: string) => void;
}

export interface Grant {
  backend: string;
  /** Ms between asking and release (0 when a slot was free). */
  waitedMs: number;
  /** How many calls were ahead of this one when it joined (0 when it did not wait). */
  position: number;
  slot: Slot;
}

export interface Slot {
  /** The call finished: its real token count corrects its tenant's share; frees the slot. */
  release(tokens?: number): void;
  /** The call failed over to `backend`: the slot moves with it. */
  moveTo(backend: string): void;
}

interface Waiter {
  tenant: TenantState;
  candidates: readonly string[];
  ticket: Ticket;
  joinedAt: number;
  seq: number;
  position: number;
  timer: unknown;
}

interface TenantState {
  policy: TenantPolicy;
  finish: number;
  waiting: Waiter[];
  running: number;
  /** Mean tokens per call (moving), the cost charged when a call is released. */
  meanTokens: number;
}

/** What a call is charged before its tokens are known, until its tenant has a history. */
const FIRST_GUESS_TOKENS = 256;
/** Weight of the newest call in a tenant's mean tokens per call. */
const MEAN_ALPHA = 0.2;

/** Queue depth and running calls per tenant, for `/metrics` and the console. */
export interface TenantQueue {
  tenant: string;
  priority: Priority;
  waiting: number;
  running: number;
}

/** How long a tenant's calls wait: the one waiting longest now, and the last one released. */
export interface TenantWaits {
  /** How long the tenant's first waiting call has waited so far, ms (0: none waits). */
  longestMs: number;
  /** The wait of its last call released (0 when a slot was free), and how long ago that was, ms. */
  last?: { waitedMs: number; agoMs: number };
}

/** Tenants whose last wait is kept; the least recently released is forgotten first. */
const MAX_LAST_WAITS = 1024;

export class FairQueue {
  private readonly busy = new Map<string, number>();
  private readonly tenants = new Map<string, TenantState>();
  private virtualNow = 0;
  private seq = 0;
  private waitingCount = 0;
  private running = 0;
  private readonly now: () => number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (t: unknown) => void;
  private readonly fifo: boolean;
  /** Per tenant, its last released call's wait and when (this queue's clock), newest last. */
  private readonly lastWaits = new Map<string, { waitedMs: number; at: number }>();

  constructor(private readonly opts: FairQueueOptions) {
    for (const name of opts.slots.keys()) this.busy.set(name, 0);
    this.now = opts.now ?? (() => performance.now());
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms).unref());
    this.clearTimer = opts.clearTimer ?? ((t) => clearTimeout(t as NodeJS.Timeout));
    this.fifo = opts.order === 'fifo';
  }

  /** Calls waiting now, all tenants. */
  get depth(): number {
    return this.waitingCount;
  }

  /**
   * Asks for a slot at one of `candidates` (best first) for `tenant`. The ticket is told once:
   * released (perhaps at once, synchronously) or refused. Returns a function that withdraws the
   * call from the queue (its client left); it does nothing once the call was released or refused.
   */
  enqueue(policy: TenantPolicy, candidates: readonly string[], ticket: Ticket): () => void {
    const tenant = this.tenantOf(policy);
    // Every free slot is one no waiting call can take (released calls are dispatched at once), so
    // a free slot among this call's candidates passes nobody.
    const backend = this.freeAmong(candidates);
    if (backend !== undefined) {
      this.grant(tenant, backend, ticket, 0, 0);
      return () => {};
    }
    if (this.waitingCount >= this.opts.maxWaiting) {
      ticket.onRefuse('queue_full', `${this.waitingCount} calls are already waiting for a slot at Ollama (QUEUE_MAX_WAITING)`);
      return () => {};
    }
    const w: Waiter = { tenant, candidates, ticket, joinedAt: this.now(), seq: this.seq++, position: this.waitingCount, timer: undefined };
    w.timer = this.setTimer(() => {
      if (!this.remove(w)) return;
      ticket.onRefuse('queue_timeout', this.timeoutMessage());
    }, this.opts.maxWaitMs);
    tenant.waiting.push(w);
    this.waitingCount++;
    return () => {
      if (this.remove(w)) this.clearTimer(w.timer);
    };
  }

  /** Says which cap kept the call waiting: the whole gateway's, or its backends' slots. */
  private timeoutMessage(): string {
    const seconds = this.opts.maxWaitMs / 1000;
    const max = this.opts.maxRunning;
    if (max !== undefined && this.running >= max) return `all ${max} slots to Ollama stayed busy for ${seconds} s (MAX_CONCURRENT_REQUESTS)`;
    return `no slot at a backend that can take this call came free for ${seconds} s (BACKEND_PARALLEL, QUEUE_TIMEOUT_SECONDS)`;
  }

  /** Per tenant: calls waiting and running now (tenants with neither are left out). */
  snapshot(): TenantQueue[] {
    const out: TenantQueue[] = [];
    for (const t of this.tenants.values()) {
      if (t.waiting.length > 0 || t.running > 0)
        out.push({ tenant: t.policy.name, priority: t.policy.priority, waiting: t.waiting.length, running: t.running });
    }
    return out;
  }

  /**
   * Per tenant with a call waiting, or one released lately: how long its calls wait. Read on
   * demand (the console), never on a call's path.
   */
  waits(): Map<string, TenantWaits> {
    const now = this.now();
    const out = new Map<string, TenantWaits>();
    for (const [name, l] of this.lastWaits) out.set(name, { longestMs: 0, last: { waitedMs: l.waitedMs, agoMs: Math.max(0, now - l.at) } });
    for (const t of this.tenants.values()) {
      const first = t.waiting[0];
      if (!first) continue;
      const w = out.get(t.policy.name);
      const longestMs = Math.max(0, now - first.joinedAt);
      if (w) w.longestMs = longestMs;
      else out.set(t.policy.name, { longestMs });
    }
    return out;
  }

  private startOf(t: TenantState): number {
    return Math.max(this.virtualNow, t.finish);
  }

  /** Whether tenant `a` (start `sa`) goes before tenant `b` (start `sb`). */
  private before(a: TenantState, sa: number, b: TenantState, sb: number): boolean {
    const pa = a.policy.priority === 'interactive' ? 0 : 1;
    const pb = b.policy.priority === 'interactive' ? 0 : 1;
    if (pa !== pb) return pa < pb;
    return sa < sb;
  }

  private tenantOf(policy: TenantPolicy): TenantState {
    let t = this.tenants.get(policy.name);
    if (!t) {
      t = { policy, finish: this.virtualNow, waiting: [], running: 0, meanTokens: FIRST_GUESS_TOKENS };
      this.tenants.set(policy.name, t);
    }
    // The configuration may have changed the tenant's weight or class since.
    t.policy = policy;
    return t;
  }

  private freeAmong(candidates: readonly string[]): string | undefined {
    if (this.opts.maxRunning !== undefined && this.running >= this.opts.maxRunning) return undefined;
    for (const b of candidates) {
      const slots = this.opts.slots.get(b);
      if (slots !== undefined && this.busy.get(b)! < slots) return b;
    }
    return undefined;
  }

  /** Takes `w` out of its tenant's queue; `leaving`: it goes without a slot (withdrawn, timed out). */
  private remove(w: Waiter, leaving = true): boolean {
    const q = w.tenant.waiting;
    const i = q.indexOf(w);
    if (i === -1) return false;
    q.splice(i, 1);
    this.waitingCount--;
    if (leaving) this.forget(w.tenant);
    return true;
  }

  /**
   * Drops a tenant's state once it has nothing waiting or running and no lead to keep. Only the
   * state in the map: a call's slot holds its tenant's state and must never drop a newer one.
   */
  private forget(t: TenantState): void {
    if (t.waiting.length === 0 && t.running === 0 && t.finish <= this.virtualNow && this.tenants.get(t.policy.name) === t) this.tenants.delete(t.policy.name);
  }

  private grant(t: TenantState, backend: string, ticket: Ticket, waitedMs: number, position: number): void {
    const guess = t.meanTokens;
    const cost = guess / t.policy.weight;
    const start = this.startOf(t);
    this.virtualNow = start;
    t.finish = start + cost;
    t.running++;
    this.running++;
    let at = backend;
    this.busy.set(at, this.busy.get(at)! + 1);
    const name = t.policy.name;
    this.lastWaits.delete(name);
    this.lastWaits.set(name, { waitedMs, at: this.now() });
    if (this.lastWaits.size > MAX_LAST_WAITS) this.lastWaits.delete(this.lastWaits.keys().next().value!);
    let released = false;
    const slot: Slot = {
      release: (tokens) => {
        if (released) return;
        released = true;
        if (tokens !== undefined && tokens >= 0) {
          // The real cost replaces the guess in the tenant's share, and in its next guess.
          t.finish += (tokens - guess) / t.policy.weight;
          t.meanTokens += MEAN_ALPHA * (tokens - t.meanTokens);
        }
        t.running--;
        this.running--;
        this.busy.set(at, this.busy.get(at)! - 1);
        this.forget(t);
        this.dispatch();
      },
      moveTo: (to) => {
        if (released || !this.busy.has(to)) return;
        this.busy.set(at, this.busy.get(at)! - 1);
        this.busy.set(to, this.busy.get(to)! + 1);
        at = to;
        this.dispatch();
      },
    };
    ticket.onRelease({ backend, waitedMs, position, slot });
  }

  /** Releases waiting calls while a slot is free for one of them. */
  private dispatch(): void {
    while (this.waitingCount > 0) {
      const next = this.pick();
      if (!next) return;
      const [w, backend] = next;
      // Released, not leaving: its tenant's state must stay while its call runs.
      this.remove(w, false);
      this.clearTimer(w.timer);
      this.grant(w.tenant, backend, w.ticket, this.now() - w.joinedAt, w.position);
    }
  }

  /** The waiting call to release next and its backend, or undefined when none can start. */
  private pick(): [Waiter, string] | undefined {
    let best: [Waiter, string] | undefined;
    let bestStart = 0;
    for (const t of this.tenants.values()) {
      // Within a tenant, first-come: the first of its calls that some free slot can take.
      let found: [Waiter, string] | undefined;
      for (const w of t.waiting) {
        const b = this.freeAmong(w.candidates);
        if (b !== undefined) {
          found = [w, b];
          break;
        }
      }
      if (!found) continue;
      if (this.fifo) {
        if (!best || found[0].seq < best[0].seq) best = found;
        continue;
      }
      const start = this.startOf(t);
      if (!best || this.before(t, start, best[0].tenant, bestStart) || (!this.before(best[0].tenant, bestStart, t, start) && found[0].seq < best[0].seq)) {
        best = found;
        bestStart = start;
      }
    }
    return best;
  }
}
