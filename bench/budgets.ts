/**
 * npm run bench:budgets — what admission by budgets and rate limits adds to a call.
 *
 * 1. One ledger reading of an account (what an arrival that finds no fresh reading waits for), and
 *    `Budgets.admit` alone, on a ledger holding ROWS calls of the limited tenant over the last day
 *    (USERS end users): a tenant without limits; one with tenant limits (requests per minute,
 *    tokens per day, a rolling hour of tokens); the same with an end user's limits too (two
 *    accounts read), on SQLite and, when PostgreSQL is installed, on PostgreSQL. Median and p95 µs
 *    per admission, each awaited before the next (every arrival waits for its own reading, as the
 *    gateway does: freshMs 0), and the mean when 16 arrive at once (they share a reading).
 * 2. A short non-streamed chat through the gateway (SQLite ledger, a fake Ollama answering at once),
 *    alternating a tenant without limits and one with them: median and p95 latency of each.
 *
 * `--rows=N` (default 100000), `--users=N` (200), `--calls=N` (2000 admissions, and end-to-end calls
 * per tenant), `--json`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { usageRecordOf, type UsageRecord } from '../otel/usage';
import { Budgets } from '../src/budgets/book';
import { windowStart } from '../src/budgets/calendar';
import { HOUR_MS, type BudgetQuery } from '../src/ledger/schema';
import { SqliteStore, PostgresStore, type LedgerStore } from '../src/ledger/store';
import { createLogger } from '../src/logger';
import { parseRules, type TenantRules } from '../src/tenants/rules';
import { startGatewayFor } from '../test/helpers/gateway';
import { requirePostgres, startPostgres } from '../test/helpers/postgres';

const arg = (name: string, def: number): number => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? def);
const ROWS = arg('rows', 100_000);
const USERS = arg('users', 200);
const CALLS = arg('calls', 2000);
const JSON_OUT = process.argv.includes('--json');

if (process.argv.includes('--help')) {
  console.log('npm run bench:budgets [-- --rows=N --users=N --calls=N --json]');
  process.exit(0);
}

const quiet = createLogger('error', new Writable({ write: (_c, _e, cb) => cb() }));
const DAY = 86_400_000;

const RULES: Record<string, TenantRules> = {
  free: parseRules({}, 'free'),
  limited: parseRules({ limits: { requests_per_minute: 1e9, tokens_per_day: 1e12, rolling: [{ seconds: 3600, tokens: 1e12 }] } }, 'limited'),
  users: parseRules(
    {
      limits: { requests_per_minute: 1e9, tokens_per_day: 1e12, rolling: [{ seconds: 3600, tokens: 1e12 }] },
      users: { header: 'x-user', limits: { tokens_per_day: 1e12, rolling: [{ seconds: 3600, requests: 1e9 }] } },
    },
    'users',
  ),
};

function rowAt(i: number, tenant: string, now: number): UsageRecord {
  return usageRecordOf(
    {
      status: 200,
      streamed: true,
      summary: {
        inputTokens: 300 + (i % 900),
        cachedTokens: 0,
        outputTokens: 50 + (i % 400),
        evalDurationNs: 2e9,
        promptEvalDurationNs: 1e8,
        totalDurationNs: 2.1e9,
      },
    },
    { model: 'llama3.2:latest', endpoint: '/api/chat', wallSeconds: 2.1, ttftSeconds: 0.2, stalls: 0, wasInFlight: true },
    {
      owner: { tenant, user: `user-${i % USERS}`, keyFingerprint: '1a2b3c4d' },
      operation: 'chat',
      backend: undefined,
      traceId: undefined,
      numCtx: undefined,
      loadedContext: undefined,
      now: now - Math.floor((i / ROWS) * DAY),
    },
  );
}

/** Fills `store` with ROWS calls of each limited tenant over the last day. */
async function fill(store: LedgerStore): Promise<void> {
  const now = Date.now();
  for (const tenant of ['limited', 'users']) {
    for (let i = 0; i < ROWS; i += 1000) {
      const batch: UsageRecord[] = [];
      for (let j = i; j < Math.min(ROWS, i + 1000); j++) batch.push(rowAt(j, tenant, now));
      await store.insert(batch);
    }
  }
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

interface AdmitFigures {
  ledger: string;
  case: string;
  p50Us: number;
  p95Us: number;
  meanUs: number;
  burst16MeanUs: number;
}

interface ReadingFigures {
  ledger: string;
  account: string;
  p50Us: number;
}

/** One ledger reading as an arrival that finds none fresh makes it. */
async function readingCost(ledger: string, store: LedgerStore): Promise<ReadingFigures[]> {
  const now = Date.now();
  const hoursFrom = Math.floor(windowStart('day', now, 'UTC') / HOUR_MS) * HOUR_MS;
  const queries: [string, BudgetQuery][] = [
    ['tenant', { tenant: 'limited', hoursFrom, rolling: [60_000, 3_600_000], now }],
    ['end user', { tenant: 'users', user: 'user-7', hoursFrom, rolling: [3_600_000], now }],
  ];
  const out: ReadingFigures[] = [];
  for (const [account, q] of queries) {
    const times: number[] = [];
    for (let i = 0; i < 60; i++) {
      const t0 = performance.now();
      await store.budget(q);
      if (i >= 10) times.push((performance.now() - t0) * 1000);
    }
    out.push({ ledger, account, p50Us: round(quantile(times, 0.5)) });
  }
  return out;
}

async function admitCost(ledger: string, store: LedgerStore): Promise<AdmitFigures[]> {
  const budgets = new Budgets(store, (t) => RULES[t], { log: quiet, readTimeoutMs: 5000, freshMs: 0 });
  const out: AdmitFigures[] = [];
  const cases: [string, { tenant: string; user?: string }][] = [
    ['no limits', { tenant: 'free' }],
    ['tenant limits', { tenant: 'limited' }],
    ['tenant and end-user limits', { tenant: 'users', user: 'user-7' }],
  ];
  for (const [name, who] of cases) {
    const times: number[] = [];
    for (let i = 0; i < CALLS + 100; i++) {
      const t0 = performance.now();
      const v = await budgets.admit({ ...who });
      const t = performance.now() - t0;
      if (v.ok) v.release();
      if (i >= 100) times.push(t * 1000);
    }
    const bursts = Math.max(1, Math.floor(CALLS / 16));
    const t0 = performance.now();
    for (let b = 0; b < bursts; b++) {
      const vs = await Promise.all(Array.from({ length: 16 }, () => budgets.admit({ ...who })));
      for (const v of vs) if (v.ok) v.release();
    }
    const burst = ((performance.now() - t0) * 1000) / (bursts * 16);
    out.push({
      ledger,
      case: name,
      p50Us: round(quantile(times, 0.5)),
      p95Us: round(quantile(times, 0.95)),
      meanUs: round(mean(times)),
      burst16MeanUs: round(burst),
    });
  }
  budgets.close();
  return out;
}

/** An Ollama that answers a non-streamed chat at once. */
async function instantOllama(): Promise<{ origin: string; close: () => Promise<void> }> {
  const body = Buffer.from(
    JSON.stringify({
      model: 'llama3.2',
      created_at: '2026-11-25T19:20:14Z',
      message: { role: 'assistant', content: 'hello' },
      done: true,
      done_reason: 'stop',
      total_duration: 60_000_000,
      load_duration: 1_000_000,
      prompt_eval_count: 26,
      prompt_eval_duration: 20_000_000,
      eval_count: 8,
      eval_duration: 30_000_000,
    }),
  );
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length }).end(body));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

interface EndToEnd {
  tenant: string;
  p50Ms: number;
  p95Ms: number;
  meanMs: number;
}

async function endToEnd(dir: string): Promise<EndToEnd[]> {
  const ollama = await instantOllama();
  const file = path.join(dir, 'tenants.yaml');
  writeFileSync(
    file,
    `tenants:
  - name: free
    keys: [sk-free]
  - name: limited
    keys: [sk-limited]
    limits: { requests_per_minute: 1000000000, tokens_per_day: 1000000000000, rolling: [{ seconds: 3600, tokens: 1000000000000 }] }
`,
  );
  const gw = await startGatewayFor(ollama.origin, { GATEWAY_TENANTS_FILE: file, GATEWAY_DATA_DIR: path.join(dir, 'e2e'), LEDGER_URL: '', LOG_LEVEL: 'ERROR' });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const call = (key: string) =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      const req = http.request(
        `${gw.url}/api/chat`,
        { method: 'POST', agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`status ${res.statusCode}`))));
        },
      );
      req.on('error', reject);
      req.end('{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}');
    });
  const times: Record<string, number[]> = { free: [], limited: [] };
  for (let i = 0; i < CALLS + 200; i++) {
    // Alternating, so drift (the ledger growing, the JIT) falls on both alike.
    for (const tenant of i % 2 === 0 ? ['free', 'limited'] : ['limited', 'free']) {
      const ms = await call(`sk-${tenant}`);
      if (i >= 200) times[tenant]!.push(ms);
    }
  }
  agent.destroy();
  await gw.close();
  await ollama.close();
  return Object.entries(times).map(([tenant, xs]) => ({
    tenant,
    p50Ms: round(quantile(xs, 0.5), 3),
    p95Ms: round(quantile(xs, 0.95), 3),
    meanMs: round(mean(xs), 3),
  }));
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'budgets-bench-'));
  try {
    const admits: AdmitFigures[] = [];
    const readings: ReadingFigures[] = [];
    const sqlite = new SqliteStore(path.join(dir, 'ledger.sqlite'));
    await fill(sqlite);
    readings.push(...(await readingCost('SQLite', sqlite)));
    admits.push(...(await admitCost('SQLite', sqlite)));
    await sqlite.close();
    let pgNote: string | undefined;
    const missing = requirePostgres();
    if (missing === false) {
      const pg = await startPostgres();
      try {
        const store = new PostgresStore(pg.url);
        await fill(store);
        readings.push(...(await readingCost('PostgreSQL', store)));
        admits.push(...(await admitCost('PostgreSQL', store)));
        await store.close();
      } finally {
        pg.stop();
      }
    } else pgNote = `PostgreSQL skipped: ${missing}`;
    const e2e = await endToEnd(dir);
    if (JSON_OUT) {
      console.log(JSON.stringify({ rows: ROWS, users: USERS, calls: CALLS, readings, admits, e2e }, null, 2));
      return;
    }
    console.log(`Budgets: admission per call (${ROWS} calls of each limited tenant in the ledger over the last day, ${USERS} end users)\n`);
    console.log('| Ledger | One reading of | p50 µs |');
    console.log('|---|---|---:|');
    for (const r of readings) console.log(`| ${r.ledger} | ${r.account} | ${r.p50Us} |`);
    console.log('\nAdmissions, one after another (a reading serves those that follow it for 4 times its duration):\n');
    console.log('| Ledger | Case | p50 µs | p95 µs | mean µs | 16 at once, mean µs |');
    console.log('|---|---|---:|---:|---:|---:|');
    for (const a of admits) console.log(`| ${a.ledger} | ${a.case} | ${a.p50Us} | ${a.p95Us} | ${a.meanUs} | ${a.burst16MeanUs} |`);
    if (pgNote) console.log(`\n${pgNote}`);
    console.log(`\nA short non-streamed chat through the gateway (SQLite ledger), ${CALLS} calls each:\n`);
    console.log('| Tenant | p50 ms | p95 ms | mean ms |');
    console.log('|---|---:|---:|---:|');
    for (const e of e2e) console.log(`| ${e.tenant === 'free' ? 'without limits' : 'with limits'} | ${e.p50Ms} | ${e.p95Ms} | ${e.meanMs} |`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
