/**
 * Budgets and rate limits, reckoned from the usage ledger. Each account (a tenant, or one end user
 * of a tenant) is read from the ledger when a call of it arrives: the hourly sums since its
 * earliest calendar window began, and its rolling windows' sums. To that the book adds what only
 * this process knows yet: calls it admitted that are still running (for request limits), and calls
 * that finished here whose rows the ledger has not committed, or committed after the reading
 * began. A call is admitted while every limit's use is below its maximum; a call in progress is
 * never cut, so a limit is overshot by at most the calls running when it was crossed (here, and
 * at any other replica writing the same ledger) and the tokens of those calls.
 *
 * Concurrent arrivals share one reading; the check after it and the call's registration happen in
 * one turn of the event loop, so this process never admits past a request limit. A ledger that
 * does not answer within `readTimeoutMs` leaves the last reading in use (and this process's own
 * calls counted), and is said in the log once per outage.
 */
import type { UsageRecord } from '../../otel/usage';
import type { Logger } from '../logger';
import { HOUR_MS, REFUSED_REASONS, type BudgetQuery, type BudgetReading, type CallSums, type RollingSums } from '../ledger/schema';
import { checkedModelName, type Limit, type LimitSet, type TenantRules, type TokenRule } from '../tenants/rules';
import type { CallIdentity } from '../tenants/registry';
import { windowEnd, windowStart } from './calendar';

/** Where the book reads recorded usage: the ledger's store. */
export interface BudgetSource {
  budget(q: BudgetQuery): Promise<BudgetReading>;
}

export type Scope = 'tenant' | 'user';

/** One limit of one account, as of one moment. */
export interface LimitState {
  limit: Limit;
  scope: Scope;
  tenant: string;
  user?: string;
  used: number;
  remaining: number;
  /** When enough of the use leaves the window (rolling), or the window ends (calendar): epoch ms. */
  resetAt: number;
}

/** Limits as of one moment: the tenants' and some of their end users', and how many users each has. */
export interface BudgetSnapshot {
  states: LimitState[];
  /** Per tenant, its end users with limits that the book holds (seen lately). */
  usersSeen: ReadonlyMap<string, number>;
}

export type Verdict = { ok: true; release: () => void; states: readonly LimitState[] } | { ok: false; exceeded: LimitState; states: readonly LimitState[] };

/** A call that finished here, as the budgets count it. */
interface Local extends CallSums {
  time: number;
  start: number;
  /** The ledger's commit number once written. */
  seq?: number;
}

interface Reading {
  /** When it began (Date.now()): it holds every row committed before. */
  at: number;
  /** The commit number when it began: rows committed later may be missing from it. */
  seq: number;
  data: BudgetReading;
}

class Account {
  read: Reading | undefined;
  reading: { startedAt: number; promise: Promise<void> } | undefined;
  local: Local[] = [];
  readonly running = new Map<number, number>();

  constructor(
    readonly tenant: string,
    readonly user: string | undefined,
    public set: LimitSet,
    public timeZone: string,
  ) {}

  get scope(): Scope {
    return this.user === undefined ? 'tenant' : 'user';
  }
}

export interface BudgetOptions {
  log: Logger;
  /** How long an arrival waits for the ledger before using the last reading. */
  readTimeoutMs: number;
  /** A reading this recent serves an arrival (0: each arrival waits for a reading begun after it). */
  freshMs: number;
}

/** Accounts kept at most (end users of busy apps); the idle ones are forgotten first. */
export const MAX_ACCOUNTS = 10_000;
/** Local calls kept per account at most (while the ledger cannot take writes). */
const MAX_LOCAL = 50_000;
const REFUSED: ReadonlySet<string> = new Set(REFUSED_REASONS);

/** A call's tokens as a limit counts them. */
export function tokensOf(x: CallSums, rule: TokenRule): number {
  const input = x.input - x.cached * (1 - rule.cachedWeight);
  return rule.count === 'input' ? input : rule.count === 'output' ? x.output : input + x.output;
}

function amountOf(limit: Limit, x: CallSums, rule: TokenRule): number {
  return limit.measure === 'tokens' ? tokensOf(x, rule) : limit.measure === 'gpu_seconds' ? x.gpu : 0;
}

export class Budgets {
  private readonly accounts = new Map<string, Account>();
  private commitSeq = 0;
  /** Rows recorded here and not yet committed, with the accounts that count them. */
  private readonly pending = new Map<UsageRecord, Local[]>();
  private nextTicket = 1;
  private failing = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly source: BudgetSource | undefined,
    private readonly rulesOf: (tenant: string) => TenantRules | undefined,
    private readonly options: BudgetOptions,
  ) {}

  /** Whether the tenant may use `model` (the name as the body gives it); its allow-list when not. */
  modelAllowed(tenant: string, model: string | undefined): { ok: true } | { ok: false; allowed: readonly string[] } {
    const models = this.rulesOf(tenant)?.models;
    if (models === undefined || model === undefined || model.trim() === '') return { ok: true };
    const m = checkedModelName(model);
    return models.some((p) => p.test(m)) ? { ok: true } : { ok: false, allowed: models.map((p) => p.text) };
  }

  /** The accounts a call of `who` counts against, made when missing. */
  private accountsOf(who: CallIdentity): Account[] {
    const rules = this.rulesOf(who.tenant);
    if (!rules) return [];
    const out: Account[] = [];
    if (rules.tenant) out.push(this.account(who.tenant, undefined, rules.tenant, rules.timeZone));
    if (rules.user && who.user !== undefined) out.push(this.account(who.tenant, who.user, rules.user, rules.timeZone));
    return out;
  }

  private account(tenant: string, user: string | undefined, set: LimitSet, timeZone: string): Account {
    const key = user === undefined ? tenant : `${tenant}\u0000${user}`;
    let a = this.accounts.get(key);
    if (a) {
      // Most recently used last: the first idle ones are forgotten first.
      this.accounts.delete(key);
      if (a.set !== set || a.timeZone !== timeZone) {
        // The tenants file changed: new limits, the same use.
        a.set = set;
        a.timeZone = timeZone;
        a.read = undefined;
      }
    } else {
      a = new Account(tenant, user, set, timeZone);
      this.evict();
    }
    this.accounts.set(key, a);
    return a;
  }

  private evict(): void {
    if (this.accounts.size < MAX_ACCOUNTS) return;
    for (const [key, a] of this.accounts) {
      if (a.running.size === 0) {
        this.accounts.delete(key);
        return;
      }
    }
  }

  /**
   * Decides whether a call of `who` may start now. Resolves at once for a tenant without limits;
   * otherwise after the ledger's reading (or its timeout).
   */
  admit(who: CallIdentity): Verdict | Promise<Verdict> {
    const accounts = this.accountsOf(who);
    if (accounts.length === 0) return NO_LIMITS;
    const arrival = Date.now();
    const waits = accounts.map((a) => this.fresh(a, arrival)).filter((p): p is Promise<void> => p !== undefined);
    if (waits.length === 0) return this.decide(accounts);
    // A reading begun before this arrival is waited for, then a newer one: a slow ledger may take
    // almost the read timeout for each, but the arrival waits that long at most in all.
    return new Promise<Verdict>((resolve) => {
      // Decided once: a decision registers the call as running.
      let decided = false;
      const settle = () => {
        clearTimeout(timer);
        if (!decided) resolve(this.decide(accounts));
        decided = true;
      };
      const timer = setTimeout(settle, this.options.readTimeoutMs);
      timer.unref();
      void Promise.all(waits).then(settle);
    });
  }

  /** The check and the registration, in one turn: nothing else is admitted in between. */
  private decide(accounts: readonly Account[]): Verdict {
    const now = Date.now();
    const states = accounts.flatMap((a) => a.set.limits.map((l) => this.state(a, l, now)));
    const exceeded = latestReached(states);
    if (exceeded) return { ok: false, exceeded, states };
    const ticket = this.nextTicket++;
    for (const a of accounts) a.running.set(ticket, now);
    return {
      ok: true,
      states,
      release: () => {
        for (const a of accounts) a.running.delete(ticket);
      },
    };
  }

  /**
   * For a call admitted earlier that waited in a queue, as it is about to start: whether a token or
   * GPU-time limit was reached meanwhile, by the readings in hand and this process's calls (its
   * request was counted when it arrived). So a queue full of one tenant's calls does not run past
   * its budget: the overshoot stays bounded by the calls running at Ollama.
   */
  recheck(who: CallIdentity): { exceeded: LimitState; states: readonly LimitState[] } | undefined {
    const accounts = this.accountsOf(who);
    if (accounts.length === 0) return undefined;
    const now = Date.now();
    const states = accounts.flatMap((a) => a.set.limits.filter((l) => l.measure !== 'requests').map((l) => this.state(a, l, now)));
    const exceeded = latestReached(states);
    return exceeded && { exceeded, states };
  }

  /** A reading of `a` recent enough for an arrival at `arrival`, or the wait for one. */
  private fresh(a: Account, arrival: number): Promise<void> | undefined {
    if (!this.source) return undefined;
    const since = arrival - this.options.freshMs;
    if (a.read && a.read.at >= since) return undefined;
    // While the ledger does not answer, arrivals go on with the last reading rather than each
    // waiting out the timeout; one reading at a time per account finds when it answers again.
    if (this.failing) {
      if (!a.reading) void this.readAccount(a);
      return undefined;
    }
    if (a.reading) {
      if (a.reading.startedAt >= since) return a.reading.promise;
      // An older reading is under way: wait for it, then for one begun after this arrival.
      return a.reading.promise.then(() => this.fresh(a, arrival));
    }
    return this.readAccount(a);
  }

  private readAccount(a: Account): Promise<void> {
    const source = this.source!;
    const startedAt = Date.now();
    const seq = this.commitSeq;
    const calendar = a.set.limits.filter((l) => l.window.kind !== 'rolling');
    const hoursFrom =
      calendar.length === 0
        ? undefined
        : Math.floor(Math.min(...calendar.map((l) => windowStart(l.window.kind as 'day' | 'month', startedAt, a.timeZone))) / HOUR_MS) * HOUR_MS;
    const rolling = [...new Set(a.set.limits.flatMap((l) => (l.window.kind === 'rolling' ? [l.window.ms] : [])))];
    const query: BudgetQuery = { tenant: a.tenant, user: a.user, hoursFrom, rolling, now: startedAt };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.options.readTimeoutMs} ms`)), this.options.readTimeoutMs);
      timer.unref();
    });
    const promise = Promise.race([source.budget(query), timeout])
      .then(
        (data) => {
          if (!a.read || a.read.at <= startedAt) a.read = { at: startedAt, seq, data };
          // What the reading holds is no longer counted from here.
          a.local = a.local.filter((l) => l.seq === undefined || l.seq > seq);
          if (this.failing) {
            this.failing = false;
            this.options.log.warn({}, 'budgets read the usage ledger again');
          }
        },
        (err: unknown) => {
          if (!this.failing) {
            this.failing = true;
            this.options.log.error(
              { error: (err as Error).message },
              'budgets cannot read the usage ledger; limits use the last reading and the calls this process has seen',
            );
          }
        },
      )
      .finally(() => {
        clearTimeout(timer);
        if (a.reading?.promise === promise) a.reading = undefined;
      });
    a.reading = { startedAt, promise };
    return promise;
  }

  /** One limit's use as of `now`. */
  private state(a: Account, limit: Limit, now: number): LimitState {
    const rule = a.set.tokens;
    const seq = a.read?.seq ?? -1;
    // A local call counts unless the reading holds it.
    const unread = (l: Local) => l.seq === undefined || l.seq > seq;
    let used = 0;
    let resetAt: number;
    const w = limit.window;
    if (w.kind === 'rolling') {
      const since = now - w.ms;
      // A reading from before the window began holds none of its calls.
      const r: RollingSums | undefined = a.read && a.read.at >= since ? a.read.data.rolling.get(w.ms) : undefined;
      let oldest: number | undefined;
      const older = (t: number | undefined) => {
        if (t !== undefined && t >= since && (oldest === undefined || t < oldest)) oldest = t;
      };
      if (limit.measure === 'requests') {
        used += r?.requests ?? 0;
        older(r?.firstStart);
        for (const l of a.local)
          if (unread(l) && l.start >= since) {
            used++;
            older(l.start);
          }
        for (const start of a.running.values())
          if (start >= since) {
            used++;
            older(start);
          }
      } else {
        if (r) used += amountOf(limit, r, rule);
        older(r?.firstEnd);
        for (const l of a.local)
          if (unread(l) && l.time >= since) {
            used += amountOf(limit, l, rule);
            older(l.time);
          }
      }
      // When the oldest counted call leaves the window; unknown (it left already): a second.
      resetAt = oldest === undefined ? now + (used > 0 ? 1000 : w.ms) : Math.max(oldest + w.ms, now + 1);
    } else {
      const start = windowStart(w.kind, now, a.timeZone);
      const fromHour = Math.floor(start / HOUR_MS) * HOUR_MS;
      for (const h of a.read?.data.hours ?? []) if (h.bucket >= fromHour) used += amountOf(limit, h, rule);
      for (const l of a.local) if (unread(l) && l.time >= start) used += amountOf(limit, l, rule);
      resetAt = windowEnd(w.kind, now, a.timeZone);
    }
    used = Math.max(0, Math.round(used * 1000) / 1000);
    return { limit, scope: a.scope, tenant: a.tenant, user: a.user, used, remaining: Math.max(0, limit.max - used), resetAt };
  }

  /**
   * A finished call's ledger row (every call), before the ledger's writer has it. True when it
   * counts against a limit: the caller should then have it written at once, so other replicas see it.
   */
  finished(r: UsageRecord): boolean {
    if (REFUSED.has(r.error)) return false;
    const rules = this.rulesOf(r.tenant);
    if (!rules || (!rules.tenant && !rules.user)) return false;
    const accounts = this.accountsOf({ tenant: r.tenant, user: r.user === '' ? undefined : r.user });
    if (accounts.length === 0) return false;
    const local: Local = {
      time: r.time,
      start: r.time - r.wallSeconds * 1000,
      input: r.inputTokens,
      cached: r.cachedTokens,
      output: r.outputTokens,
      gpu: r.gpuSeconds,
    };
    const holders: Local[] = [];
    for (const a of accounts) {
      // One object per account: each prunes its own list.
      const l = { ...local };
      a.local.push(l);
      if (a.local.length > MAX_LOCAL) a.local.splice(0, a.local.length - MAX_LOCAL);
      holders.push(l);
    }
    if (this.source) this.pending.set(r, holders);
    return true;
  }

  /** Rows the ledger committed. */
  written(rows: readonly UsageRecord[]): void {
    const seq = ++this.commitSeq;
    for (const r of rows) {
      const holders = this.pending.get(r);
      if (!holders) continue;
      this.pending.delete(r);
      for (const l of holders) l.seq = seq;
    }
  }

  /** Rows the ledger dropped (its buffer was full): kept counted here until they age out. */
  dropped(rows: readonly UsageRecord[]): void {
    for (const r of rows) this.pending.delete(r);
  }

  /**
   * The limits of `tenants` (read now when the last reading is older than 5 s), and of their end
   * users seen lately: for the console and the usage API. Of each tenant's users the book still
   * holds (the `MAX_ACCOUNTS` used most recently, over all tenants), the `usersPerTenant` seen most
   * recently, each read as its tenant is; `usersSeen` counts them all. Never waits longer than one
   * reading.
   */
  async snapshot(tenants: readonly string[], usersPerTenant = 0): Promise<BudgetSnapshot> {
    const now = Date.now();
    const wanted = new Set(tenants);
    const accounts: Account[] = [];
    for (const t of tenants) {
      const rules = this.rulesOf(t);
      if (rules?.tenant) accounts.push(this.account(t, undefined, rules.tenant, rules.timeZone));
    }
    const usersSeen = new Map<string, number>();
    const users: Account[] = [];
    // Newest last in the map: walked from the end, the most recently seen come first.
    const all = [...this.accounts.values()];
    for (let i = all.length - 1; i >= 0; i--) {
      const a = all[i]!;
      if (a.user === undefined || !wanted.has(a.tenant) || this.rulesOf(a.tenant)?.user !== a.set) continue;
      const n = (usersSeen.get(a.tenant) ?? 0) + 1;
      usersSeen.set(a.tenant, n);
      if (n <= usersPerTenant) users.push(a);
    }
    accounts.push(...users);
    await Promise.all(accounts.map((a) => this.fresh(a, now - 5000)));
    const at = Date.now();
    return { states: accounts.flatMap((a) => a.set.limits.map((l) => this.state(a, l, at))), usersSeen };
  }

  /** The same, from the readings in hand (the metric callbacks cannot wait). */
  latest(tenants: readonly string[]): LimitState[] {
    const now = Date.now();
    const out: LimitState[] = [];
    for (const t of tenants) {
      const rules = this.rulesOf(t);
      if (!rules?.tenant) continue;
      const a = this.account(t, undefined, rules.tenant, rules.timeZone);
      if (this.source && !a.reading && (!a.read || a.read.at < now - 5000)) void this.readAccount(a);
      for (const l of a.set.limits) out.push(this.state(a, l, now));
    }
    return out;
  }

  /** Keeps the limited tenants' readings fresh for `/metrics` (every `everyMs`), until `close`. */
  start(tenants: () => readonly string[], everyMs = 10_000): void {
    this.timer = setInterval(() => this.latest(tenants()), everyMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** Of the limits reached, the one that frees last: a call cannot start before it. */
function latestReached(states: readonly LimitState[]): LimitState | undefined {
  let exceeded: LimitState | undefined;
  for (const s of states) if (s.used >= s.limit.max && (!exceeded || s.resetAt > exceeded.resetAt)) exceeded = s;
  return exceeded;
}

const NO_LIMITS: Verdict = { ok: true, release: () => {}, states: [] };
