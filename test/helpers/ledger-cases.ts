/**
 * One scenario for every ledger store (SQLite and PostgreSQL run the same statements): rows
 * written in two batches, then the sums by tenant, user and model, by hour and day, and pruning.
 */
import assert from 'node:assert/strict';
import type { CallMeasures } from '../../otel/call-metrics';
import { usageRecordOf, type UsageRecord } from '../../otel/usage';
import { toCsv, usageQuery } from '../../src/ledger/api';
import type { LedgerStore } from '../../src/ledger/store';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** A finished call of `n` input tokens, `2n` output, one cached, with Ollama's durations. */
export function row(time: number, tenant: string, user: string, model: string, n: number): UsageRecord {
  const measures: CallMeasures = { model, endpoint: '/api/chat', wallSeconds: 2, ttftSeconds: undefined, stalls: 0, wasInFlight: true };
  return usageRecordOf(
    { status: 200, streamed: false, summary: { inputTokens: n, cachedTokens: 1, outputTokens: 2 * n, promptEvalDurationNs: n * 1e6, evalDurationNs: n * 2e6 } },
    measures,
    {
      owner: { tenant, user: user || undefined },
      operation: 'chat',
      backend: undefined,
      traceId: undefined,
      numCtx: undefined,
      loadedContext: undefined,
      now: time,
    },
  );
}

export async function storeAnswersSums(store: LedgerStore): Promise<void> {
  const t0 = Date.UTC(2026, 10, 30, 22, 15);
  const rows = [
    row(t0, 'a', 'u1', 'm1', 10),
    row(t0 + HOUR, 'a', 'u1', 'm1', 20),
    row(t0 + 2 * HOUR, 'a', 'u2', 'm2', 30), // the next UTC day
    row(t0 + 2 * HOUR, 'b', '', 'm1', 40),
  ];
  await store.insert(rows.slice(0, 2));
  await store.insert(rows.slice(2));
  const all = await store.usage(usageQuery({ from: String(t0 - DAY), to: String(t0 + DAY), by: 'tenant' }, 0));
  assert.deepEqual(
    all.map((r) => [r.tenant, r.requests, r.input_tokens, r.output_tokens, r.cached_tokens]),
    [
      ['a', 3, 60, 120, 3],
      ['b', 1, 40, 80, 1],
    ],
  );
  const gpuA = rows.filter((r) => r.tenant === 'a').reduce((s, r) => s + r.gpuSeconds, 0);
  assert.ok(Math.abs(all[0]!.gpu_seconds - gpuA) < 1e-9);
  const byUser = await store.usage(usageQuery({ from: String(t0 - DAY), to: String(t0 + DAY), by: 'tenant,user' }, 0));
  assert.deepEqual(
    byUser.map((r) => [r.tenant, r.user, r.requests]),
    [
      ['a', 'u1', 2],
      ['a', 'u2', 1],
      ['b', null, 1],
    ],
  );
  const daily = await store.usage(usageQuery({ from: String(t0 - DAY), to: String(t0 + DAY), by: 'model', step: 'day' }, 0));
  assert.deepEqual(
    daily.map((r) => [r.time, r.model, r.requests]),
    [
      ['2026-11-30T00:00:00.000Z', 'm1', 2],
      ['2026-12-01T00:00:00.000Z', 'm1', 1],
      ['2026-12-01T00:00:00.000Z', 'm2', 1],
    ],
  );
  // 22:15 to 23:00: the window widens to whole hours, 22:00 to 23:00.
  const hourly = await store.usage(usageQuery({ from: String(t0), to: String(Date.UTC(2026, 10, 30, 23)), by: 'tenant', step: 'hour' }, 0));
  assert.deepEqual(
    hourly.map((r) => [r.time, r.requests]),
    [['2026-11-30T22:00:00.000Z', 1]],
    'only the hour asked for',
  );
  const q = usageQuery({ from: String(t0 - DAY), to: String(t0 + DAY), by: 'tenant,user' }, 0);
  assert.match(toCsv(q, byUser).split('\r\n')[0]!, /^tenant,user,requests,/);
  assert.match(toCsv(q, byUser).split('\r\n')[3]!, /^b,,1,/);
  // Usage of one tenant's one user in a window, as budgets read it.
  const one = await store.usage({ ...usageQuery({ from: String(t0 - DAY), to: String(t0 + DAY), by: '' }, 0), tenant: 'a', user: 'u1' });
  assert.deepEqual(
    one.map((r) => [r.requests, r.input_tokens]),
    [[2, 30]],
  );
  await store.prune(t0 + 2 * HOUR);
  const after = await store.usage(usageQuery({ from: String(t0 - DAY), to: String(t0 + DAY), by: 'tenant' }, 0));
  assert.equal(after[0]!.requests, 3, 'pruning raw rows keeps the rollups');
}

/** A ledger row of a finished call: a plain chat of tenant `team`, with what `over` says. */
export function usageRecord(over: Partial<UsageRecord> & { time: number }): UsageRecord {
  return {
    tenant: 'team',
    user: '',
    keyFingerprint: '',
    model: 'llama3.2:latest',
    location: 'local',
    backend: '',
    endpoint: '/api/chat',
    operation: 'chat',
    status: 200,
    error: '',
    inputTokens: 0,
    cachedTokens: 0,
    outputTokens: 0,
    loadSeconds: 0,
    promptSeconds: 0,
    generationSeconds: 0,
    queueSeconds: 0,
    wallSeconds: 0.5,
    gpuSeconds: 0,
    gpuSecondsEstimated: 0,
    loads: 0,
    optionReloads: 0,
    traceId: '',
    ...over,
  };
}
