/**
 * The usage API (`GET /console/api/v1/usage`) and the CLI's answer: the question parsed and
 * bounded, the rows as JSON (`{"from","to","rows"}`), CSV or a text table.
 */
import { isTenantName } from '../tenants/file';
import { GROUP_KEYS, plan, SUM_COLUMNS, type GroupKey, type Step, type UsageQuery, type UsageRow } from './schema';

export class UsageQueryError extends Error {}

const DAY_MS = 86_400_000;
/** The longest window one question may cover. */
export const MAX_WINDOW_DAYS = 3660;

/**
 * A time: an ISO 8601 date or date-time (`2026-12-01`, `2026-12-01T10:00:00Z`), epoch
 * milliseconds, or, relative to `now`, a duration back (`30d`, `12h`, `90m`).
 */
export function parseTime(raw: string, now: number, name: string): number {
  const v = raw.trim();
  if (v.length === 0 || v.length > 40) throw new UsageQueryError(`${name} must be an ISO 8601 time, epoch milliseconds, or a duration back such as 30d`);
  const rel = /^(\d{1,6})([mhdw])$/.exec(v);
  if (rel) return now - Number(rel[1]) * { m: 60_000, h: 3_600_000, d: DAY_MS, w: 7 * DAY_MS }[rel[2] as 'm' | 'h' | 'd' | 'w'];
  if (/^\d{1,15}$/.test(v)) return Number(v);
  const t = /^\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(v) ? Date.parse(v) : NaN;
  if (!Number.isFinite(t)) throw new UsageQueryError(`${name} must be an ISO 8601 time, epoch milliseconds, or a duration back such as 30d`);
  return t;
}

export function parseBy(raw: string | null | undefined): GroupKey[] {
  if (raw === null || raw === undefined || raw.trim() === '') return ['tenant'];
  const keys = raw.split(',').map((k) => k.trim());
  for (const k of keys)
    if (!(GROUP_KEYS as readonly string[]).includes(k)) throw new UsageQueryError(`by must be a comma-separated list of ${GROUP_KEYS.join(', ')}`);
  return GROUP_KEYS.filter((k) => keys.includes(k));
}

export function parseStep(raw: string | null | undefined): Step | undefined {
  if (raw === null || raw === undefined || raw === '') return undefined;
  if (raw !== 'hour' && raw !== 'day') throw new UsageQueryError('step must be hour or day');
  return raw;
}

/** One tenant's name, or undefined for every tenant. */
export function parseTenant(raw: string | null | undefined): string | undefined {
  if (raw === null || raw === undefined || raw === '') return undefined;
  if (!isTenantName(raw)) throw new UsageQueryError('tenant must be a tenant\'s name: 1 to 64 letters, digits, ".", "_" or "-"');
  return raw;
}

/** Builds the query from its parts (all optional: the last 30 days by tenant, every tenant). */
export function usageQuery(
  parts: { from?: string | null; to?: string | null; by?: string | null; step?: string | null; tenant?: string | null },
  now: number,
): UsageQuery {
  const to = parts.to ? parseTime(parts.to, now, 'to') : now;
  const from = parts.from ? parseTime(parts.from, now, 'from') : to - 30 * DAY_MS;
  if (!(from < to)) throw new UsageQueryError('from must be before to');
  if (to - from > MAX_WINDOW_DAYS * DAY_MS) throw new UsageQueryError(`the window may cover at most ${MAX_WINDOW_DAYS} days`);
  const tenant = parseTenant(parts.tenant);
  return { from, to, by: parseBy(parts.by), step: parseStep(parts.step), ...(tenant === undefined ? {} : { tenant }) };
}

/** The columns of a CSV or table answer, in order. */
export function columnsOf(q: UsageQuery): string[] {
  return [...(q.step ? ['time'] : []), ...GROUP_KEYS.filter((k) => q.by.includes(k)), ...SUM_COLUMNS];
}

const csvCell = (v: unknown): string => {
  const s = v === null || v === undefined ? '' : String(v);
  // A leading =, +, - or @ would be a formula to a spreadsheet.
  const safe = /^[=+\-@]/.test(s) && !/^-?\d/.test(s) ? `'${s}` : s;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
};

export function toCsv(q: UsageQuery, rows: readonly UsageRow[]): string {
  const cols = columnsOf(q);
  return [cols.join(','), ...rows.map((r) => cols.map((c) => csvCell((r as Record<string, unknown>)[c])).join(','))].join('\r\n') + '\r\n';
}

export function toTable(q: UsageQuery, rows: readonly UsageRow[]): string {
  const cols = columnsOf(q);
  const cells = [cols, ...rows.map((r) => cols.map((c) => String((r as Record<string, unknown>)[c] ?? '-')))];
  const widths = cols.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return (
    cells.map((row) => row.map((c, i) => (i < (q.step ? 1 : 0) + q.by.length ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')).join('\n') + '\n'
  );
}

/** The JSON answer: the window as the rollups answered it (widened to whole buckets). */
export function toJson(q: UsageQuery, rows: readonly UsageRow[]): { from: string; to: string; rows: readonly UsageRow[] } {
  const p = plan(q);
  return { from: new Date(p.from).toISOString(), to: new Date(p.to).toISOString(), rows };
}

const jsonError = (status: number, error: string) => ({ status, type: 'application/json; charset=utf-8', body: JSON.stringify({ error }) });

/**
 * The HTTP answer to `GET /console/api/v1/usage?…`. `viewer`: the tenant whose key asked, which
 * reads its own rows only (its users and models included); undefined for the operator's token (or
 * a gateway without keys), which reads every tenant's, or the one `tenant=` names.
 */
export async function usageAnswer(
  read: (q: UsageQuery) => Promise<UsageRow[]>,
  params: URLSearchParams,
  accept: string | undefined,
  now: number,
  viewer?: string,
): Promise<{ status: number; type: string; body: string }> {
  let q: UsageQuery;
  try {
    q = usageQuery({ from: params.get('from'), to: params.get('to'), by: params.get('by'), step: params.get('step'), tenant: params.get('tenant') }, now);
  } catch (err) {
    if (err instanceof UsageQueryError) return jsonError(400, err.message);
    throw err;
  }
  if (viewer !== undefined) {
    if (q.tenant !== undefined && q.tenant !== viewer)
      return jsonError(403, `a tenant's key reads only its own tenant's usage (${viewer}); every tenant's takes METRICS_BEARER_TOKEN`);
    q = { ...q, tenant: viewer };
  }
  const format = params.get('format');
  if (format !== null && format !== 'csv' && format !== 'json') return jsonError(400, 'format must be csv or json');
  const csv = format === 'csv' || (format === null && accept !== undefined && /\btext\/csv\b/i.test(accept));
  const rows = await read(q);
  if (csv) return { status: 200, type: 'text/csv; charset=utf-8', body: toCsv(q, rows) };
  return { status: 200, type: 'application/json; charset=utf-8', body: JSON.stringify(toJson(q, rows)) };
}
