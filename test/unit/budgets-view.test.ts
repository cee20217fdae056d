/**
 * What the console's budgets API is made of: the book's snapshot lists a bounded number of each
 * tenant's end users (the most recently seen) and counts them all; the view lists the tenants with
 * limits or a place in the fair queue, only those it is given, end users fullest first.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { usageRecord } from '../helpers/ledger-cases';
import { Budgets } from '../../src/budgets/book';
import { budgetsView, type BudgetsInput } from '../../src/endpoints/budgets';
import { createLogger } from '../../src/logger';
import { policyOf } from '../../src/scheduler/tenant';
import { parseRules, type TenantRules } from '../../src/tenants/rules';

const quiet = createLogger('error', new Writable({ write: (_c, _e, cb) => cb() }));

const RULES: Record<string, TenantRules> = {
  webui: parseRules({ limits: { requests_per_minute: 100 }, users: { limits: { requests_per_minute: 2 } } }, 'webui'),
  other: parseRules({ users: { limits: { tokens_per_day: 10 } } }, 'other'),
  plain: parseRules({}, 'plain'),
};

function book(): Budgets {
  return new Budgets(undefined, (t) => RULES[t], { log: quiet, readTimeoutMs: 1000, freshMs: 0 });
}

/** Admits one call of `tenant` (as `user`) that finishes at once with 3 tokens. */
async function call(b: Budgets, tenant: string, user?: string): Promise<void> {
  const v = await b.admit({ tenant, user });
  assert.ok(v.ok);
  b.finished(usageRecord({ time: Date.now(), tenant, user: user ?? '', inputTokens: 2, outputTokens: 1, wallSeconds: 0 }));
  v.release();
}

describe("the budgets' snapshot for the console", () => {
  it("lists at most the asked number of a tenant's end users, the most recently seen, and counts them all", async () => {
    const b = book();
    for (let i = 0; i < 25; i++) await call(b, 'webui', `user-${i}`);
    await call(b, 'webui', 'user-3');
    await call(b, 'other', 'someone');
    const snap = await b.snapshot(['webui'], 5);
    const users = snap.states.filter((s) => s.user !== undefined).map((s) => s.user);
    assert.deepEqual(users, ['user-3', 'user-24', 'user-23', 'user-22', 'user-21']);
    assert.deepEqual([...snap.usersSeen], [['webui', 25]]);
    // The tenant's own limit, and nothing of a tenant not asked for.
    assert.deepEqual(
      snap.states.filter((s) => s.user === undefined).map((s) => [s.tenant, s.limit.name, s.used]),
      [['webui', 'requests_per_minute', 26]],
    );
    assert.ok(snap.states.every((s) => s.tenant === 'webui'));
  });
});

describe("the budgets API's view", () => {
  const now = Date.UTC(2026, 0, 1, 12);
  const input = (over: Partial<BudgetsInput> = {}): BudgetsInput => ({
    now,
    tenants: ['webui', 'other', 'plain'],
    limits: { states: [], usersSeen: new Map() },
    userLimits: (t) => RULES[t]?.user?.limits,
    policy: (t) => policyOf(t, undefined),
    ...over,
  });

  it("gives the tenants with limits, in the configuration's order, end users fullest first", async () => {
    const b = book();
    await call(b, 'webui', 'a');
    await call(b, 'webui', 'b');
    await call(b, 'webui', 'b');
    await call(b, 'webui', 'c');
    const limits = await b.snapshot(['webui', 'other', 'plain'], 20);
    const view = budgetsView(input({ limits }));
    assert.equal(view.fairQueue, false);
    assert.deepEqual(
      view.tenants.map((t) => t.tenant),
      ['webui', 'other'],
      'a tenant without limits and without a queue is left out',
    );
    const webui = view.tenants[0]!;
    assert.equal(webui.queue, undefined);
    assert.deepEqual(
      webui.users!.shown.map((u) => [u.user, u.limits[0]!.used, u.limits[0]!.reached]),
      [
        ['b', 2, true],
        ['a', 1, false],
        ['c', 1, false],
      ],
    );
    assert.deepEqual(view.tenants[1]!.users, { limits: [{ name: 'tokens_per_day', measure: 'tokens', window: 'day', limit: 10 }], seen: 0, shown: [] });
  });

  it('gives, with the fair queue on, each tenant that has calls in it or had lately; the tenants asked for only', () => {
    const queue = {
      tenants: [{ tenant: 'plain', priority: 'interactive' as const, waiting: 2, running: 1 }],
      waits: new Map([
        ['plain', { longestMs: 1500, last: { waitedMs: 250, agoMs: 4000 } }],
        ['other', { longestMs: 0, last: { waitedMs: 0, agoMs: 100 } }],
      ]),
    };
    const view = budgetsView(input({ queue }));
    assert.equal(view.fairQueue, true);
    const plain = view.tenants.find((t) => t.tenant === 'plain')!;
    assert.deepEqual(plain.queue, { waiting: 2, running: 1, longestWaitSeconds: 1.5, lastWait: { seconds: 0.25, secondsAgo: 4 } });
    assert.deepEqual(plain.limits, []);
    assert.deepEqual(view.tenants.find((t) => t.tenant === 'webui')!.queue, { waiting: 0, running: 0, longestWaitSeconds: 0, lastWait: null });
    // Given one tenant (the one a tenant's key may see), nothing of another shows.
    assert.deepEqual(
      budgetsView(input({ queue, tenants: ['other'] })).tenants.map((t) => t.tenant),
      ['other'],
    );
  });
});
