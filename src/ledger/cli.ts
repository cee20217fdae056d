/**
 * `ollama-otel-gateway usage`: reads the ledger directly (SQLite under GATEWAY_DATA_DIR, or
 * LEDGER_URL), so it works while the gateway is stopped. `--format json` prints the rows the usage
 * API answers.
 */
import { ConfigError, loadConfig } from '../config';
import { toCsv, toJson, toTable, usageQuery, UsageQueryError } from './api';
import { openStore } from './store';

export const USAGE_HELP = `Usage: ollama-otel-gateway usage [--since 30d] [--until now] [--by tenant,user,model] [--step hour|day] [--tenant NAME] [--format table|csv|json]

Reads the usage ledger (GATEWAY_DATA_DIR, or LEDGER_URL) and prints requests, tokens and GPU time.
--since/--until take an ISO 8601 time, epoch milliseconds, or a duration back (30d, 12h, 90m);
--tenant keeps one tenant's rows.
`;

function options(args: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = /^--([a-z]+)=(.*)$/.exec(a);
    if (eq) out.set(eq[1]!, eq[2]!);
    else if (/^--[a-z]+$/.test(a) && i + 1 < args.length) out.set(a.slice(2), args[++i]!);
    else throw new UsageQueryError(`unexpected argument ${JSON.stringify(a)}`);
  }
  for (const k of out.keys()) if (!['since', 'until', 'by', 'step', 'tenant', 'format'].includes(k)) throw new UsageQueryError(`unknown option --${k}`);
  return out;
}

/** Runs the command; resolves to the exit code. */
export async function runUsageCommand(
  args: readonly string[],
  out: NodeJS.WritableStream = process.stdout,
  err: NodeJS.WritableStream = process.stderr,
): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    out.write(USAGE_HELP);
    return 0;
  }
  try {
    const o = options(args);
    const format = o.get('format') ?? 'table';
    if (!['table', 'csv', 'json'].includes(format)) throw new UsageQueryError('--format must be table, csv or json');
    const q = usageQuery({ from: o.get('since') ?? '30d', to: o.get('until'), by: o.get('by'), step: o.get('step'), tenant: o.get('tenant') }, Date.now());
    const config = loadConfig();
    const store = openStore(config);
    if (!store) throw new UsageQueryError('the usage ledger is off (LEDGER_URL=off)');
    try {
      const rows = await store.usage(q);
      out.write(format === 'json' ? `${JSON.stringify(toJson(q, rows), null, 2)}\n` : format === 'csv' ? toCsv(q, rows) : toTable(q, rows));
    } finally {
      await store.close();
    }
    return 0;
  } catch (e) {
    if (e instanceof UsageQueryError || e instanceof ConfigError) {
      err.write(`ollama-otel-gateway usage: ${e.message}\n${e instanceof UsageQueryError ? USAGE_HELP : ''}`);
      return 2;
    }
    err.write(`ollama-otel-gateway usage: ${(e as Error).message}\n`);
    return 1;
  }
}
