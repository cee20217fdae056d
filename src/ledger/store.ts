/**
 * Where the ledger lives: an embedded SQLite file under GATEWAY_DATA_DIR (Node's built-in
 * `node:sqlite`: nothing to install, nothing to run), or PostgreSQL (`LEDGER_URL=postgres://…`)
 * for several gateway replicas writing one ledger. The same statements run on both (`schema.ts`).
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { UsageRecord } from '../../otel/usage';
import {
  budgetSql,
  hourRowOf,
  rollingRowOf,
  type BudgetQuery,
  type BudgetReading,
  callValues,
  DAY_MS,
  DDL,
  INSERT_CALL,
  numbered,
  rollupsOf,
  rollupValues,
  ROLLUP_TABLE,
  SCHEMA_VERSION,
  upsertRollup,
  usageRowOf,
  usageSql,
  type UsageQuery,
  type UsageRow,
} from './schema';

export interface LedgerStore {
  /** Where it is, for logs (a file's path, or the PostgreSQL host and database; never a password). */
  readonly where: string;
  /** Writes a batch of calls and their rollups in one transaction. */
  insert(rows: readonly UsageRecord[]): Promise<void>;
  usage(q: UsageQuery): Promise<UsageRow[]>;
  /** What one account's budgets need: its hourly sums since a time, and its rolling windows. */
  budget(q: BudgetQuery): Promise<BudgetReading>;
  /** Deletes raw rows older than `rawBefore`, and rollups older than `rollupsBefore` when given. */
  prune(rawBefore: number, rollupsBefore?: number): Promise<void>;
  close(): Promise<void>;
}

/** The file name of the SQLite ledger under GATEWAY_DATA_DIR. */
export const SQLITE_FILE = 'ledger.sqlite';

interface SqliteStatement {
  run(...params: (string | number | null)[]): unknown;
  all(...params: (string | number | null)[]): Record<string, unknown>[];
}
interface SqliteDatabase {
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  close(): void;
}

/**
 * Loads `node:sqlite`. Some Node versions print an ExperimentalWarning when it loads; the gateway
 * prints nothing on stderr, so exactly that warning is held back while it loads.
 */
function loadSqlite(): { DatabaseSync: new (file: string) => SqliteDatabase } {
  const original = process.emitWarning;
  process.emitWarning = function (this: unknown, warning: string | Error, ...rest: unknown[]): void {
    const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
    const text = typeof warning === 'string' ? warning : warning.message;
    if ((type === 'ExperimentalWarning' || (warning as Error).name === 'ExperimentalWarning') && /SQLite/i.test(text)) return;
    return (original as (...a: unknown[]) => void).call(process, warning, ...rest);
  } as typeof process.emitWarning;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('node:sqlite') as { DatabaseSync: new (file: string) => SqliteDatabase };
  } finally {
    process.emitWarning = original;
  }
}

export class SqliteStore implements LedgerStore {
  private readonly db: SqliteDatabase;
  private readonly insertCall: SqliteStatement;
  private readonly upsert: Record<'hour' | 'day', SqliteStatement>;

  constructor(readonly where: string) {
    mkdirSync(path.dirname(where), { recursive: true });
    const { DatabaseSync } = loadSqlite();
    this.db = new DatabaseSync(where);
    // WAL: readers (the usage API, the CLI) never wait for the writer; several worker processes
    // may write, each waiting its turn up to the busy timeout. The timeout comes first: workers
    // starting together switch a new file to WAL at once, and the loser must wait, not fail.
    this.db.exec('PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
    this.db.exec('BEGIN IMMEDIATE');
    try {
      for (const ddl of DDL) this.db.exec(ddl);
      this.db.prepare('INSERT INTO ledger_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING').run('schema_version', String(SCHEMA_VERSION));
      this.db.exec('COMMIT');
    } catch (err) {
      this.db.exec('ROLLBACK');
      throw err;
    }
    this.insertCall = this.db.prepare(INSERT_CALL);
    this.upsert = { hour: this.db.prepare(upsertRollup(ROLLUP_TABLE.hour)), day: this.db.prepare(upsertRollup(ROLLUP_TABLE.day)) };
  }

  insert(rows: readonly UsageRecord[]): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    this.db.exec('BEGIN IMMEDIATE');
    try {
      for (const r of rows) this.insertCall.run(...callValues(r));
      for (const step of ['hour', 'day'] as const) for (const d of rollupsOf(rows, step)) this.upsert[step].run(...rollupValues(d));
      this.db.exec('COMMIT');
    } catch (err) {
      try {
        this.db.exec('ROLLBACK');
      } catch {
        // The transaction may not have begun.
      }
      return Promise.reject(err as Error);
    }
    return Promise.resolve();
  }

  usage(q: UsageQuery): Promise<UsageRow[]> {
    const { sql, params } = usageSql(q);
    return Promise.resolve(
      this.db
        .prepare(sql)
        .all(...params)
        .map((r) => usageRowOf(q, r)),
    );
  }

  budget(q: BudgetQuery): Promise<BudgetReading> {
    const { hours, rolling } = budgetSql(q);
    try {
      return Promise.resolve({
        hours: hours
          ? this.statement(hours.sql)
              .all(...hours.params)
              .map(hourRowOf)
          : [],
        rolling: new Map(rolling.map((r) => [r.ms, rollingRowOf(this.statement(r.sql).all(...r.params)[0])])),
      });
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** Prepared statements by text: a budget's few shapes are prepared once. */
  private readonly prepared = new Map<string, SqliteStatement>();
  private statement(sql: string): SqliteStatement {
    let s = this.prepared.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      if (this.prepared.size < 64) this.prepared.set(sql, s);
    }
    return s;
  }

  prune(rawBefore: number, rollupsBefore?: number): Promise<void> {
    this.db.prepare('DELETE FROM ledger_calls WHERE time < ?').run(rawBefore);
    if (rollupsBefore !== undefined) {
      this.db.prepare(`DELETE FROM ${ROLLUP_TABLE.hour} WHERE bucket < ?`).run(rollupsBefore);
      this.db.prepare(`DELETE FROM ${ROLLUP_TABLE.day} WHERE bucket < ?`).run(Math.floor(rollupsBefore / DAY_MS) * DAY_MS);
    }
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.db.close();
    return Promise.resolve();
  }
}

/** The part of the `pg` package's Pool the ledger uses. */
interface PgPool {
  query(sql: string, params?: unknown[]): Promise<{ rows: Record<string, unknown>[] }>;
  connect(): Promise<{ query(sql: string, params?: unknown[]): Promise<unknown>; release(err?: Error): void }>;
  end(): Promise<void>;
  on(event: 'error', listener: (err: Error) => void): void;
}

/** The ledger on PostgreSQL, through the `pg` package (loaded only when LEDGER_URL asks for it). */
export class PostgresStore implements LedgerStore {
  readonly where: string;
  private readonly pool: PgPool;
  private ready: Promise<void> | undefined;

  constructor(url: string, onIdleError: (err: Error) => void = () => {}) {
    const u = new URL(url);
    this.where = `postgres://${u.hostname || u.searchParams.get('host') || 'localhost'}${u.port ? `:${u.port}` : ''}${u.pathname}`;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { Pool } = require('pg') as { Pool: new (o: object) => PgPool };
    // statement_timeout bounds a query the server runs; query_timeout one it never answers (a
    // server frozen, or a network dropping packets), so the writer and budgets get an error back.
    this.pool = new Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5000, statement_timeout: 30_000, query_timeout: 35_000 });
    // A connection that breaks while idle is the pool's to replace, never the process's to die of.
    this.pool.on('error', onIdleError);
  }

  /** Creates the tables once, on first use (several replicas may race: a lock orders them). */
  private schema(): Promise<void> {
    this.ready ??= (async () => {
      const c = await this.pool.connect();
      try {
        await c.query('BEGIN');
        await c.query('SELECT pg_advisory_xact_lock(7428391)');
        for (const ddl of DDL) await c.query(ddl);
        await c.query(numbered('INSERT INTO ledger_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING'), [
          'schema_version',
          String(SCHEMA_VERSION),
        ]);
        await c.query('COMMIT');
        c.release();
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        c.release(err as Error);
        throw err;
      }
    })().catch((err: unknown) => {
      this.ready = undefined;
      throw err;
    });
    return this.ready;
  }

  async insert(rows: readonly UsageRecord[]): Promise<void> {
    if (rows.length === 0) return;
    await this.schema();
    const c = await this.pool.connect();
    try {
      await c.query('BEGIN');
      // One statement for the whole batch of raw rows.
      const width = 24;
      const values = rows.map((_, i) => `(${Array.from({ length: width }, (_x, j) => `$${i * width + j + 1}`).join(', ')})`).join(', ');
      const head = INSERT_CALL.slice(0, INSERT_CALL.indexOf('VALUES'));
      await c.query(`${head}VALUES ${values}`, rows.flatMap(callValues));
      for (const step of ['hour', 'day'] as const) {
        const sql = numbered(upsertRollup(ROLLUP_TABLE[step]));
        // Sorted, so two replicas upserting the same groups lock them in the same order.
        const deltas = rollupsOf(rows, step).sort((a, b) => a.bucket - b.bucket || (a.tenant + a.user + a.model < b.tenant + b.user + b.model ? -1 : 1));
        for (const d of deltas) await c.query(sql, rollupValues(d));
      }
      await c.query('COMMIT');
      c.release();
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      c.release(err as Error);
      throw err;
    }
  }

  async usage(q: UsageQuery): Promise<UsageRow[]> {
    await this.schema();
    const { sql, params } = usageSql(q);
    const res = await this.pool.query(numbered(sql), params);
    return res.rows.map((r) => usageRowOf(q, r));
  }

  async budget(q: BudgetQuery): Promise<BudgetReading> {
    await this.schema();
    const { hours, rolling } = budgetSql(q);
    const [h, ...r] = await Promise.all([
      hours ? this.pool.query(numbered(hours.sql), hours.params) : Promise.resolve({ rows: [] }),
      ...rolling.map((w) => this.pool.query(numbered(w.sql), w.params)),
    ]);
    return { hours: h.rows.map(hourRowOf), rolling: new Map(rolling.map((w, i) => [w.ms, rollingRowOf(r[i]!.rows[0])])) };
  }

  async prune(rawBefore: number, rollupsBefore?: number): Promise<void> {
    await this.schema();
    await this.pool.query(numbered('DELETE FROM ledger_calls WHERE time < ?'), [rawBefore]);
    if (rollupsBefore !== undefined) {
      await this.pool.query(numbered(`DELETE FROM ${ROLLUP_TABLE.hour} WHERE bucket < ?`), [rollupsBefore]);
      await this.pool.query(numbered(`DELETE FROM ${ROLLUP_TABLE.day} WHERE bucket < ?`), [Math.floor(rollupsBefore / DAY_MS) * DAY_MS]);
    }
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}

export interface LedgerLocation {
  /** `off`, or a postgres:// URL; empty: SQLite under `dataDir`. */
  ledgerUrl: string;
  dataDir: string;
}

/** The store the configuration names, or undefined when the ledger is off. */
export function openStore(loc: LedgerLocation, onIdleError?: (err: Error) => void): LedgerStore | undefined {
  if (loc.ledgerUrl === 'off') return undefined;
  if (loc.ledgerUrl !== '') return new PostgresStore(loc.ledgerUrl, onIdleError);
  return new SqliteStore(path.resolve(loc.dataDir, SQLITE_FILE));
}
