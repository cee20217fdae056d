/**
 * The usage ledger: what one call is charged (GPU time reported, estimated or none), the rollups
 * answering the same sums as the raw rows on SQLite, and the writer that never blocks a call:
 * batches, a bounded buffer while the database is down, and nothing lost on close.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import type { CallOutcome } from '../../otel/call';
import type { CallMeasures } from '../../otel/call-metrics';
import { usageRecordOf, type UsageContext, type UsageRecord } from '../../otel/usage';
import { row, storeAnswersSums } from '../helpers/ledger-cases';
import { SqliteStore, type LedgerStore } from '../../src/ledger/store';
import { LedgerWriter } from '../../src/ledger/writer';
import { createLogger } from '../../src/logger';
import type { BudgetReading } from '../../src/ledger/schema';

const measures = (over: Partial<CallMeasures> = {}): CallMeasures => ({
  model: 'llama3.2',
  endpoint: '/api/chat',
  wallSeconds: 2,
  ttftSeconds: undefined,
  stalls: 0,
  wasInFlight: true,
  ...over,
});
const ctx = (over: Partial<UsageContext> = {}): UsageContext => ({
  owner: { tenant: 't', user: 'u', keyFingerprint: 'abcd1234' },
  operation: 'chat',
  backend: undefined,
  traceId: undefined,
  numCtx: undefined,
  loadedContext: undefined,
  now: 1_800_000_000_000,
  ...over,
});

describe('GPU time of a call', () => {
  it("is Ollama's load + prompt evaluation + generation when the answer reports them", () => {
    const outcome: CallOutcome = {
      status: 200,
      streamed: false,
      summary: {
        inputTokens: 40,
        cachedTokens: 10,
        outputTokens: 5,
        loadDurationNs: 1e9,
        promptEvalDurationNs: 2e8,
        evalDurationNs: 3e8,
        totalDurationNs: 1.6e9,
      },
    };
    const r = usageRecordOf(outcome, measures(), ctx());
    assert.equal(r.gpuSeconds, 1.5);
    assert.equal(r.gpuSecondsEstimated, 0);
    assert.equal(r.loads, 1, 'a load of a second loaded the model, and the call is charged it');
    assert.equal(r.loadSeconds, 1);
    assert.equal(r.queueSeconds, 2 - 1.6);
    assert.deepEqual([r.inputTokens, r.cachedTokens, r.outputTokens], [40, 10, 5]);
  });

  it("is the gateway's wall time, marked estimated, when the answer carries no durations (/v1/*)", () => {
    const r = usageRecordOf({ status: 200, streamed: true, summary: { inputTokens: 30, outputTokens: 6 } }, measures({ wallSeconds: 0.75 }), ctx());
    assert.equal(r.gpuSeconds, 0.75);
    assert.equal(r.gpuSecondsEstimated, 0.75);
  });

  it('is none for a remote (cloud) model, and none for a call that got no answer', () => {
    const remote = usageRecordOf(
      { status: 200, streamed: false, summary: { inputTokens: 3, outputTokens: 4, evalDurationNs: 5e9, remoteHost: 'https://ollama.com:443' } },
      measures({ remote: true }),
      ctx(),
    );
    assert.equal(remote.gpuSeconds, 0);
    assert.equal(remote.location, 'remote');
    assert.equal(remote.outputTokens, 4, 'its tokens still count');
    const refused = usageRecordOf({ status: 502, reason: 'upstream_unreachable', streamed: false }, measures(), ctx());
    assert.equal(refused.gpuSeconds, 0);
    assert.equal(refused.error, 'upstream_unreachable');
  });

  it('counts a load apart as an option reload when the call asked for another num_ctx than the loaded one', () => {
    const loading: CallOutcome = { status: 200, streamed: false, summary: { loadDurationNs: 3e9, evalDurationNs: 1e8 } };
    assert.equal(usageRecordOf(loading, measures(), ctx({ numCtx: 8192, loadedContext: 4096 })).optionReloads, 1);
    assert.equal(usageRecordOf(loading, measures(), ctx({ numCtx: 4096, loadedContext: 4096 })).optionReloads, 0);
    const warm: CallOutcome = { status: 200, streamed: false, summary: { loadDurationNs: 2e7, evalDurationNs: 1e8 } };
    assert.equal(usageRecordOf(warm, measures(), ctx({ numCtx: 8192, loadedContext: 4096 })).optionReloads, 0, 'no load, no reload');
  });
});

const quiet = () =>
  createLogger(
    'error',
    new Writable({
      write(_c, _e, cb) {
        cb();
      },
    }),
  );

describe('the SQLite ledger', () => {
  it('answers per tenant, user and model, by hour and day, the sums of the rows written', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ledger-'));
    const store = new SqliteStore(path.join(dir, 'sub', 'ledger.sqlite'));
    try {
      await storeAnswersSums(store);
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A store that fails while `down` is set and records what it was given. */
class FlakyStore implements LedgerStore {
  readonly where = 'flaky';
  down = false;
  written: UsageRecord[] = [];
  batches = 0;
  insert(rows: readonly UsageRecord[]): Promise<void> {
    if (this.down) return Promise.reject(new Error('connection refused'));
    this.batches++;
    this.written.push(...rows);
    return Promise.resolve();
  }
  usage(): Promise<never[]> {
    return Promise.resolve([]);
  }
  budget(): Promise<BudgetReading> {
    return Promise.resolve({ hours: [], rolling: new Map() });
  }
  prune(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

describe('the ledger writer', () => {
  const opts = { flushMs: 3_600_000, batchRows: 3, maxBuffered: 5, rawRetentionDays: 0, rollupRetentionDays: 0 };

  it('writes in batches, keeps rows while the database is down, drops the oldest past its bound and counts them', async () => {
    const store = new FlakyStore();
    let written = 0;
    let dropped = 0;
    const w = new LedgerWriter(store, quiet(), { written: (n) => (written += n), dropped: (n) => (dropped += n) }, opts);
    store.down = true;
    for (let i = 0; i < 7; i++) w.record(row(i, 't', '', 'm', i + 1));
    await w.flush();
    assert.equal(w.pending, 5);
    assert.equal(dropped, 2);
    store.down = false;
    await w.flush();
    assert.equal(w.pending, 0);
    assert.equal(written, 5);
    assert.deepEqual(
      store.written.map((r) => r.inputTokens),
      [3, 4, 5, 6, 7],
      'the newest five, in order',
    );
    assert.equal(store.batches, 2, 'batches of three');
    await w.close();
  });

  it('writes everything waiting on close', async () => {
    const store = new FlakyStore();
    const w = new LedgerWriter(store, quiet(), { written: () => {}, dropped: () => {} }, opts);
    for (let i = 0; i < 4; i++) w.record(row(i, 't', '', 'm', 1));
    await w.close();
    assert.equal(store.written.length, 4);
    w.record(row(9, 't', '', 'm', 1));
    assert.equal(w.pending, 0, 'nothing is taken after close');
  });
});
