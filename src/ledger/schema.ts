/**
 * The ledger's schema and every query, written once for SQLite and PostgreSQL: `?` placeholders
 * (numbered for PostgreSQL by `numbered`), types both know, and `INSERT … ON CONFLICT DO UPDATE`,
 * which both run. Times are epoch milliseconds (BIGINT); durations are seconds (DOUBLE PRECISION).
 *
 * - `ledger_calls`: one row per finished call (raw; pruned after LEDGER_RAW_RETENTION_DAYS).
 * - `ledger_usage_hour` / `ledger_usage_day`: sums per (UTC hour or day, tenant, user, model),
 *   updated in the same transaction as the raw rows, so a year of usage reads a few thousand rows.
 */
import type { UsageRecord } from '../../otel/usage';

export const SCHEMA_VERSION = 1;

const SUM_COLUMNS = [
  'requests',
  'errors',
  'remote_requests',
  'input_tokens',
  'cached_tokens',
  'output_tokens',
  'gpu_seconds',
  'gpu_seconds_estimated',
  'load_seconds',
  'loads',
  'option_reloads',
  'wall_seconds',
] as const;
export type SumColumn = (typeof SUM_COLUMNS)[number];
export { SUM_COLUMNS };

const INTEGER_SUMS: ReadonlySet<SumColumn> = new Set([
  'requests',
  'errors',
  'remote_requests',
  'input_tokens',
  'cached_tokens',
  'output_tokens',
  'loads',
  'option_reloads',
]);

function rollupTable(name: string): string {
  const sums = SUM_COLUMNS.map((c) => `${c} ${INTEGER_SUMS.has(c) ? 'BIGINT' : 'DOUBLE PRECISION'} NOT NULL DEFAULT 0`).join(',\n  ');
  return `CREATE TABLE IF NOT EXISTS ${name} (
  bucket BIGINT NOT NULL,
  tenant TEXT NOT NULL,
  end_user TEXT NOT NULL,
  model TEXT NOT NULL,
  ${sums},
  PRIMARY KEY (bucket, tenant, end_user, model)
)`;
}

export const DDL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS ledger_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS ledger_calls (
  time BIGINT NOT NULL,
  tenant TEXT NOT NULL,
  end_user TEXT NOT NULL,
  key_fingerprint TEXT NOT NULL,
  model TEXT NOT NULL,
  location TEXT NOT NULL,
  backend TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  operation TEXT NOT NULL,
  status INTEGER NOT NULL,
  error TEXT NOT NULL,
  input_tokens BIGINT NOT NULL,
  cached_tokens BIGINT NOT NULL,
  output_tokens BIGINT NOT NULL,
  load_seconds DOUBLE PRECISION NOT NULL,
  prompt_seconds DOUBLE PRECISION NOT NULL,
  generation_seconds DOUBLE PRECISION NOT NULL,
  queue_seconds DOUBLE PRECISION NOT NULL,
  wall_seconds DOUBLE PRECISION NOT NULL,
  gpu_seconds DOUBLE PRECISION NOT NULL,
  gpu_seconds_estimated DOUBLE PRECISION NOT NULL,
  loads INTEGER NOT NULL,
  option_reloads INTEGER NOT NULL,
  trace_id TEXT NOT NULL
)`,
  `CREATE INDEX IF NOT EXISTS ledger_calls_time ON ledger_calls (time)`,
  `CREATE INDEX IF NOT EXISTS ledger_calls_tenant_time ON ledger_calls (tenant, time)`,
  rollupTable('ledger_usage_hour'),
  rollupTable('ledger_usage_day'),
];

export const INSERT_CALL = `INSERT INTO ledger_calls (time, tenant, end_user, key_fingerprint, model, location, backend, endpoint, operation, status, error,
  input_tokens, cached_tokens, output_tokens, load_seconds, prompt_seconds, generation_seconds, queue_seconds, wall_seconds,
  gpu_seconds, gpu_seconds_estimated, loads, option_reloads, trace_id)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;

export function callValues(r: UsageRecord): (string | number)[] {
  return [
    r.time,
    r.tenant,
    r.user,
    r.keyFingerprint,
    r.model,
    r.location,
    r.backend,
    r.endpoint,
    r.operation,
    r.status,
    r.error,
    r.inputTokens,
    r.cachedTokens,
    r.outputTokens,
    r.loadSeconds,
    r.promptSeconds,
    r.generationSeconds,
    r.queueSeconds,
    r.wallSeconds,
    r.gpuSeconds,
    r.gpuSecondsEstimated,
    r.loads,
    r.optionReloads,
    r.traceId,
  ];
}

export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

export type Step = 'hour' | 'day';
export const ROLLUP_TABLE: Readonly<Record<Step, string>> = { hour: 'ledger_usage_hour', day: 'ledger_usage_day' };
export const STEP_MS: Readonly<Record<Step, number>> = { hour: HOUR_MS, day: DAY_MS };

export function upsertRollup(table: string): string {
  const cols = SUM_COLUMNS.join(', ');
  const marks = SUM_COLUMNS.map(() => '?').join(', ');
  const sets = SUM_COLUMNS.map((c) => `${c} = ${table}.${c} + excluded.${c}`).join(', ');
  return `INSERT INTO ${table} (bucket, tenant, end_user, model, ${cols}) VALUES (?, ?, ?, ?, ${marks})
  ON CONFLICT (bucket, tenant, end_user, model) DO UPDATE SET ${sets}`;
}

export type Sums = Record<SumColumn, number>;

/** One rollup row to add: its key and its sums. */
export interface RollupDelta {
  bucket: number;
  tenant: string;
  user: string;
  model: string;
  sums: Sums;
}

const zero = (): Sums => Object.fromEntries(SUM_COLUMNS.map((c) => [c, 0])) as Sums;

/** A batch of calls summed per (bucket, tenant, user, model) of `step`: one upsert per group. */
export function rollupsOf(rows: readonly UsageRecord[], step: Step): RollupDelta[] {
  const width = STEP_MS[step];
  const groups = new Map<string, RollupDelta>();
  for (const r of rows) {
    const bucket = Math.floor(r.time / width) * width;
    const key = `${bucket}\u0000${r.tenant}\u0000${r.user}\u0000${r.model}`;
    let g = groups.get(key);
    if (!g) {
      g = { bucket, tenant: r.tenant, user: r.user, model: r.model, sums: zero() };
      groups.set(key, g);
    }
    const s = g.sums;
    s.requests += 1;
    s.errors += r.error === '' ? 0 : 1;
    s.remote_requests += r.location === 'remote' ? 1 : 0;
    s.input_tokens += r.inputTokens;
    s.cached_tokens += r.cachedTokens;
    s.output_tokens += r.outputTokens;
    s.gpu_seconds += r.gpuSeconds;
    s.gpu_seconds_estimated += r.gpuSecondsEstimated;
    s.load_seconds += r.loadSeconds;
    s.loads += r.loads;
    s.option_reloads += r.optionReloads;
    s.wall_seconds += r.wallSeconds;
  }
  return [...groups.values()];
}

export function rollupValues(d: RollupDelta): (string | number)[] {
  return [d.bucket, d.tenant, d.user, d.model, ...SUM_COLUMNS.map((c) => d.sums[c])];
}

/** The grouping keys a usage query may ask for. */
export const GROUP_KEYS = ['tenant', 'user', 'model'] as const;
export type GroupKey = (typeof GROUP_KEYS)[number];
const GROUP_COLUMN: Readonly<Record<GroupKey, string>> = { tenant: 'tenant', user: 'end_user', model: 'model' };

export interface UsageQuery {
  /** Epoch ms, inclusive; rounded down to the rollup's bucket. */
  from: number;
  /** Epoch ms, exclusive; rounded up to the rollup's bucket. */
  to: number;
  by: readonly GroupKey[];
  step?: Step;
  /** Only this tenant's (and user's) usage, for budgets. */
  tenant?: string;
  user?: string;
}

/** A usage row: the grouping keys asked for, `time` (ISO) with a step, and the sums. */
export type UsageRow = Partial<Record<GroupKey, string | null>> & { time?: string } & Sums;

/**
 * The rollup a query reads: daily when it asks for days, or when its window is whole UTC days;
 * hourly otherwise. The window is widened to whole buckets of it.
 */
export function plan(q: UsageQuery): { table: string; from: number; to: number; bucketMs: number } {
  // Without a step, a window of whole days, or one longer than a week (widened to whole days),
  // reads the daily sums: a year is then a few rows per tenant, user and model.
  const daily = q.step === 'day' || (q.step === undefined && ((q.from % DAY_MS === 0 && q.to % DAY_MS === 0) || q.to - q.from > 7 * DAY_MS));
  const width = daily ? DAY_MS : HOUR_MS;
  return {
    table: daily ? ROLLUP_TABLE.day : ROLLUP_TABLE.hour,
    from: Math.floor(q.from / width) * width,
    to: Math.ceil(q.to / width) * width,
    bucketMs: width,
  };
}

/** Rows one usage answer holds at most. */
export const MAX_USAGE_ROWS = 100_000;

/** The SQL and parameters of a usage query. */
export function usageSql(q: UsageQuery): { sql: string; params: (string | number)[] } {
  const p = plan(q);
  const keys = GROUP_KEYS.filter((k) => q.by.includes(k)).map((k) => GROUP_COLUMN[k]);
  // The rollup's own bucket when the step is its width (grouped in its key's order, no sort).
  const stepBucket = q.step === undefined ? [] : [STEP_MS[q.step] === p.bucketMs ? 'bucket' : `(bucket / ${STEP_MS[q.step]}) * ${STEP_MS[q.step]}`];
  const groups = [...stepBucket, ...keys];
  const select = [...(q.step === undefined ? [] : [`${stepBucket[0]} AS time`]), ...keys, ...SUM_COLUMNS.map((c) => `SUM(${c}) AS ${c}`)].join(', ');
  const where = ['bucket >= ?', 'bucket < ?'];
  const params: (string | number)[] = [p.from, p.to];
  if (q.tenant !== undefined) {
    where.push('tenant = ?');
    params.push(q.tenant);
  }
  if (q.user !== undefined) {
    where.push('end_user = ?');
    params.push(q.user);
  }
  const group = groups.length === 0 ? '' : ` GROUP BY ${groups.join(', ')} ORDER BY ${groups.join(', ')}`;
  return { sql: `SELECT ${select} FROM ${p.table} WHERE ${where.join(' AND ')}${group} LIMIT ${MAX_USAGE_ROWS}`, params };
}

/** A database row of `usageSql` as a usage row (PostgreSQL returns sums of BIGINT as strings). */
export function usageRowOf(q: UsageQuery, db: Record<string, unknown>): UsageRow {
  const row: Record<string, unknown> = {};
  if (q.step !== undefined) row.time = new Date(Number(db.time)).toISOString();
  for (const k of GROUP_KEYS) {
    if (!q.by.includes(k)) continue;
    const v = db[GROUP_COLUMN[k]];
    row[k] = k === 'user' && (v === '' || v === null) ? null : String(v);
  }
  for (const c of SUM_COLUMNS) {
    const n = Number(db[c] ?? 0);
    row[c] = INTEGER_SUMS.has(c) ? n : Math.round(n * 1e6) / 1e6;
  }
  return row as UsageRow;
}

/** `?` placeholders as PostgreSQL's `$1, $2, …`. */
export function numbered(sql: string): string {
  let i = 0;
  return sql.replace(/\?/g, () => `$${++i}`);
}

/** Error reasons of calls the gateway refused before Ollama saw them: they ran nothing. */
export const REFUSED_REASONS = [
  'rate_limited',
  'model_not_allowed',
  'queue_full',
  'queue_timeout',
  'body_too_large',
  'body_timeout',
  'body_buffer_full',
  'body_unreadable',
] as const;

/** What a budget needs of one account's (a tenant's, or one of its end users') recorded calls. */
export interface BudgetQuery {
  tenant: string;
  /** One end user's calls; undefined: all the tenant's. */
  user?: string;
  /** The hourly sums from this hour on (the earliest calendar window's start); undefined: none. */
  hoursFrom?: number;
  /** The rolling windows, in ms, ending at `now`. */
  rolling: readonly number[];
  now: number;
}

/** Token and GPU sums of some calls. */
export interface CallSums {
  input: number;
  cached: number;
  output: number;
  gpu: number;
}

export interface RollingSums extends CallSums {
  /** Calls that started in the window and were forwarded (not refused by the gateway). */
  requests: number;
  /** The earliest start among those (epoch ms); undefined when none. */
  firstStart?: number;
  /** The earliest end of a call in the window (its tokens leave the window first). */
  firstEnd?: number;
}

export interface BudgetReading {
  hours: (CallSums & { bucket: number })[];
  rolling: Map<number, RollingSums>;
}

const refusedList = REFUSED_REASONS.map((r) => `'${r}'`).join(', ');

/** The statements and parameters of a budget reading: the hourly sums, and one per rolling window. */
export function budgetSql(q: BudgetQuery): {
  hours?: { sql: string; params: (string | number)[] };
  rolling: { ms: number; sql: string; params: (string | number)[] }[];
} {
  const who = q.user === undefined ? 'tenant = ?' : 'tenant = ? AND end_user = ?';
  const whoParams = q.user === undefined ? [q.tenant] : [q.tenant, q.user];
  const hours =
    q.hoursFrom === undefined
      ? undefined
      : {
          sql: `SELECT bucket, SUM(input_tokens) AS input, SUM(cached_tokens) AS cached, SUM(output_tokens) AS output, SUM(gpu_seconds) AS gpu
  FROM ${ROLLUP_TABLE.hour} WHERE ${who} AND bucket >= ? GROUP BY bucket`,
          params: [...whoParams, q.hoursFrom],
        };
  const rolling = q.rolling.map((ms) => {
    const since = q.now - ms;
    // A call's start is its end less its wall time; refused calls ran nothing and do not count.
    const started = `(time - wall_seconds * 1000 >= ? AND error NOT IN (${refusedList}))`;
    return {
      ms,
      sql: `SELECT SUM(CASE WHEN ${started} THEN 1 ELSE 0 END) AS requests, MIN(CASE WHEN ${started} THEN time - wall_seconds * 1000 END) AS first_start,
  SUM(input_tokens) AS input, SUM(cached_tokens) AS cached, SUM(output_tokens) AS output, SUM(gpu_seconds) AS gpu, MIN(time) AS first_end
  FROM ledger_calls WHERE ${who} AND time >= ?`,
      params: [since, since, ...whoParams, since],
    };
  });
  return { hours, rolling };
}

const num = (v: unknown): number => {
  const n = Number(v ?? 0);
  return Number.isFinite(n) ? n : 0;
};
const maybe = (v: unknown): number | undefined => (v === null || v === undefined ? undefined : num(v));

export function hourRowOf(db: Record<string, unknown>): CallSums & { bucket: number } {
  return { bucket: num(db.bucket), input: num(db.input), cached: num(db.cached), output: num(db.output), gpu: num(db.gpu) };
}

export function rollingRowOf(db: Record<string, unknown> | undefined): RollingSums {
  if (!db) return { requests: 0, input: 0, cached: 0, output: 0, gpu: 0 };
  return {
    requests: num(db.requests),
    firstStart: maybe(db.first_start),
    firstEnd: maybe(db.first_end),
    input: num(db.input),
    cached: num(db.cached),
    output: num(db.output),
    gpu: num(db.gpu),
  };
}
