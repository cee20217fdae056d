/**
 * `node .build/bench/ledger-cost.js [--rows N]`: what the usage ledger costs per call. Builds
 * realistic ledger rows (20 tenants, 200 users, 8 models over 30 days), then measures:
 * - on the call's path: building the row and handing it to the writer (µs per call);
 * - off it: the writer's batched SQLite transactions (CPU µs per call) and the bytes on disk
 *   (raw rows, indexes and rollups), extrapolated per million calls.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { usageRecordOf, type UsageRecord } from '../otel/usage';
import { SqliteStore } from '../src/ledger/store';
import { LedgerWriter } from '../src/ledger/writer';
import { createLogger } from '../src/logger';
import { numberFlag, parseFlags } from './cli';

const flags = parseFlags('ledger-cost', "the usage ledger's cost per call", [{ name: 'rows', value: 'N', help: 'calls to write (default 200000)' }]);
const N = numberFlag(flags, 'ledger-cost', 'rows', 200_000);

const MODELS = ['llama3.2:latest', 'qwen3:8b', 'gemma3:12b', 'mistral:7b', 'phi4:latest', 'deepseek-r1:8b', 'all-minilm:latest', 'gpt-oss:20b'];
const DAY = 86_400_000;

function rowAt(i: number, start: number): UsageRecord {
  const tenant = `team-${i % 20}`;
  return usageRecordOf(
    {
      status: 200,
      streamed: true,
      summary: {
        inputTokens: 300 + (i % 900),
        cachedTokens: i % 200,
        outputTokens: 50 + (i % 400),
        loadDurationNs: 2e7,
        promptEvalDurationNs: 1e8,
        evalDurationNs: 2e9,
        totalDurationNs: 2.2e9,
      },
    },
    { model: MODELS[i % MODELS.length]!, endpoint: '/api/chat', wallSeconds: 2.3, ttftSeconds: 0.2, stalls: 0, wasInFlight: true },
    {
      owner: { tenant, user: i % 3 === 0 ? undefined : `user-${i % 200}@example.com`, keyFingerprint: '1a2b3c4d' },
      operation: 'chat',
      backend: undefined,
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      numCtx: undefined,
      loadedContext: undefined,
      now: start + Math.floor((i / N) * 30 * DAY),
    },
  );
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'ledger-cost-'));
  const file = path.join(dir, 'ledger.sqlite');
  const store = new SqliteStore(file);
  const quiet = createLogger('error', new Writable({ write: (_c, _e, cb) => cb() }));
  let written = 0;
  // Batches as the writer makes them (500 rows), flushed as fast as the database takes them.
  const writer = new LedgerWriter(
    store,
    quiet,
    { written: (n) => (written += n), dropped: () => {} },
    {
      flushMs: 3_600_000,
      batchRows: 500,
      maxBuffered: N + 1,
      rawRetentionDays: 0,
      rollupRetentionDays: 0,
    },
  );
  const start = Date.now() - 30 * DAY;
  const rows: UsageRecord[] = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) rows.push(rowAt(i, start));
  const buildNs = Number(process.hrtime.bigint() - t0) / N;
  const t1 = process.hrtime.bigint();
  for (const r of rows) writer.record(r);
  const recordNs = Number(process.hrtime.bigint() - t1) / N;
  const cpu0 = process.cpuUsage();
  const w0 = process.hrtime.bigint();
  await writer.flush();
  const wallS = Number(process.hrtime.bigint() - w0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const timed = async (q: Parameters<SqliteStore['usage']>[0]) => {
    await store.usage(q);
    const q0 = process.hrtime.bigint();
    const rows = await store.usage(q);
    return { rows: rows.length, ms: Number(process.hrtime.bigint() - q0) / 1e6 };
  };
  const year = await timed({ from: start - 335 * DAY, to: start + 31 * DAY, by: ['tenant', 'user', 'model'], step: 'day' });
  const byTenant = await timed({ from: start - 335 * DAY, to: start + 31 * DAY, by: ['tenant'] });
  await writer.close();
  const bytes = readdirSync(dir).reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
  rmSync(dir, { recursive: true, force: true });
  const perCallUs = (cpu.user + cpu.system) / N;
  console.log(`calls written: ${written}`);
  console.log(`on the call's path: build the row ${(buildNs / 1000).toFixed(2)} µs + hand it to the writer ${(recordNs / 1000).toFixed(3)} µs per call`);
  console.log(`off it (batched SQLite writes): ${perCallUs.toFixed(1)} µs CPU per call; ${(N / wallS).toFixed(0)} calls/s written`);
  console.log(
    `on disk: ${(bytes / N).toFixed(0)} bytes per call, ${(((bytes / N) * 1e6) / 2 ** 20).toFixed(0)} MiB per million calls (raw rows, indexes, hourly and daily sums)`,
  );
  console.log(
    `a year by tenant, user and model, per day: ${year.rows} rows in ${year.ms.toFixed(1)} ms; a year by tenant: ${byTenant.rows} rows in ${byTenant.ms.toFixed(1)} ms`,
  );
}

void main();
