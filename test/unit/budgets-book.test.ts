/**
 * The budget book while its ledger is slow: an arrival waits at most the read timeout, counted from
 * when it arrived, however many readings it waits for; then it is decided by the last reading and
 * the calls this process saw, and once only. Time is the test's (mocked timers), not the clock's.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { Budgets, type BudgetSource, type Verdict } from '../../src/budgets/book';
import type { BudgetQuery, BudgetReading } from '../../src/ledger/schema';
import { createLogger } from '../../src/logger';
import { parseRules } from '../../src/tenants/rules';

const READ_TIMEOUT_MS = 2000;

/** A ledger that answers only when told to (a frozen database, or a slow one). */
class HeldSource implements BudgetSource {
  private readonly held: (() => void)[] = [];
  budget(q: BudgetQuery): Promise<BudgetReading> {
    return new Promise((resolve) =>
      this.held.push(() => resolve({ hours: [], rolling: new Map(q.rolling.map((ms) => [ms, { requests: 0, input: 0, cached: 0, output: 0, gpu: 0 }])) })),
    );
  }
  /** Answers every reading asked so far, with nothing used. */
  answer(): void {
    for (const f of this.held.splice(0)) f();
  }
}

const lines: Record<string, unknown>[] = [];
const log = createLogger(
  'info',
  new Writable({
    write(chunk: Buffer, _e, cb) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      cb();
    },
  }),
);

/** Lets the resolved promises run (the mocked clock does not move). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}

describe('the budget book with a slow ledger', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: Date.UTC(2026, 11, 7, 12) }));
  afterEach(() => mock.timers.reset());

  it('decides an arrival within the read timeout of its arrival when a slow ledger answers each reading just inside it', async () => {
    const source = new HeldSource();
    const rules = parseRules({ limits: { tokens_per_day: 100 } }, 'team');
    const budgets = new Budgets(source, (t) => (t === 'team' ? rules : undefined), { log, readTimeoutMs: READ_TIMEOUT_MS, freshMs: 0 });
    const decided: { at: number; verdict: Verdict }[] = [];
    const arrive = () => {
      const arrival = Date.now();
      const v = budgets.admit({ tenant: 'team' });
      assert.ok(v instanceof Promise, 'a limited call waits for a reading');
      void v.then((verdict) => decided.push({ at: Date.now() - arrival, verdict }));
    };

    arrive();
    mock.timers.tick(1000);
    // The reading under way began before this arrival, so it may lack calls that ended since:
    // this arrival waits for it, then for one of its own.
    arrive();
    await settle();
    mock.timers.tick(800);
    source.answer();
    await settle();
    assert.deepEqual(
      decided.map((d) => d.at),
      [1800],
      'the first, by its reading',
    );
    // Its own reading began at 1.8 s and would answer at 3.6 s: 2.6 s after it arrived.
    mock.timers.tick(1200);
    await settle();
    assert.deepEqual(
      decided.map((d) => d.at),
      [1800, READ_TIMEOUT_MS],
      'the second, at the read timeout from its arrival',
    );
    for (const d of decided) assert.ok(d.verdict.ok, 'nothing used');
    assert.equal(
      lines.filter((l) => l.msg === 'budgets cannot read the usage ledger; limits use the last reading and the calls this process has seen').length,
      0,
      'the ledger answers: nothing to say',
    );
    budgets.close();
  });

  it('decides a call at its deadline once: counted as running once, whatever its reading does after', async () => {
    const source = new HeldSource();
    const rules = parseRules({ limits: { requests_per_minute: 5 } }, 'team');
    const budgets = new Budgets(source, (t) => (t === 'team' ? rules : undefined), { log, readTimeoutMs: READ_TIMEOUT_MS, freshMs: 0 });
    const v = budgets.admit({ tenant: 'team' });
    assert.ok(v instanceof Promise);
    mock.timers.tick(READ_TIMEOUT_MS);
    const verdict = await v;
    assert.ok(verdict.ok);
    // The slow reading answers now: the call is not decided (and counted as running) a second time.
    source.answer();
    await settle();
    const running = () => budgets.latest(['team']).find((s) => s.limit.name === 'requests_per_minute')!.used;
    assert.equal(running(), 1);
    verdict.release();
    assert.equal(running(), 0, 'no call left counted as running');
    budgets.close();
  });
});
