/**
 * The budgets' book against hostile volumes: readings of the ledger paced by their own cost (a
 * limited tenant's volume cannot make every call read its whole history), request limits exact in
 * one process whatever the pace, and what this process counts on its own (no ledger, or one that
 * cannot take writes) bounded without forgetting what it counted.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import type { UsageRecord } from '../../otel/usage';
import { Budgets, type BudgetSource } from '../../src/budgets/book';
import type { BudgetQuery, BudgetReading } from '../../src/ledger/schema';
import { createLogger } from '../../src/logger';
import { parseRules, type TenantRules } from '../../src/tenants/rules';

const quiet = createLogger('error', new Writable({ write: (_c, _e, cb) => cb() }));

/** A ledger whose every reading costs `ms` of the event loop (as SQLite's do), counting them. */
class CostlyLedger implements BudgetSource {
  readings = 0;
  constructor(private readonly ms: number) {}
  budget(q: BudgetQuery): Promise<BudgetReading> {
    this.readings++;
    const until = performance.now() + this.ms;
    while (performance.now() < until);
    return Promise.resolve({ hours: [], rolling: new Map(q.rolling.map((ms) => [ms, { requests: 0, input: 0, cached: 0, output: 0, gpu: 0 }])) });
  }
}

const rules = (limits: Record<string, unknown>): TenantRules => parseRules({ limits }, 't');

describe('the budgets book', () => {
  it('paces costly readings: arrivals right after one share it, and a request limit stays exact', async () => {
    const ledger = new CostlyLedger(5);
    const r = rules({ rolling: [{ seconds: 60, requests: 5 }] });
    const budgets = new Budgets(ledger, () => r, { log: quiet, readTimeoutMs: 5000, freshMs: 0 });
    let admitted = 0;
    for (let i = 0; i < 20; i++) {
      const v = await budgets.admit({ tenant: 't' });
      if (v.ok) admitted++;
    }
    assert.equal(admitted, 5, 'the running calls are counted between readings');
    assert.ok(ledger.readings < 10, `${ledger.readings} readings for 20 arrivals`);
  });
});

/** A finished call of `tenant` as the ledger would record it. */
const call = (tenant: string, time: number, tokens: number): UsageRecord =>
  ({ tenant, user: '', error: '', time, wallSeconds: 1, inputTokens: tokens, cachedTokens: 0, outputTokens: 0, gpuSeconds: 0 }) as unknown as UsageRecord;

describe('the calls an account counts on its own', () => {
  it('counts every call the ledger dropped, past the calls it keeps one by one', async () => {
    const r = rules({ tokens_per_day: 60_000, rolling: [{ seconds: 86_400, requests: 60_000 }] });
    const budgets = new Budgets(new CostlyLedger(0), () => r, { log: quiet, readTimeoutMs: 5000, freshMs: 0 });
    const now = Date.now();
    // One token each: a day's budget that only the count of calls, not their size, exhausts. The
    // ledger was down: its writer dropped them, in the batches it drops.
    for (let batch = 0; batch < 60; batch++) {
      const rows: UsageRecord[] = [];
      for (let i = 0; i < 1000; i++) rows.push(call('t', now - 60_000 + batch * 1000 + i, 1));
      for (const row of rows) budgets.finished(row);
      budgets.dropped(rows);
    }
    const v = await budgets.admit({ tenant: 't' });
    const used = Object.fromEntries(v.states.map((s) => [s.limit.name, s.used]));
    assert.equal(v.ok, false, `the 60,000 calls are all counted: ${JSON.stringify(used)}`);
    assert.ok(used.tokens_per_day! >= 60_000, JSON.stringify(used));
    assert.ok(used['requests_per_86400s']! >= 60_000, JSON.stringify(used));
  });
});
