/**
 * The command lines of the benchmark scripts: `--name value` (or `--name=value`) flags from a
 * declared list, `--help` printing them, anything else refused; and interruption that takes the
 * script's child processes down with it.
 */
import type { ChildProcess } from 'node:child_process';

export interface Flag {
  name: string;
  /** What a value looks like, e.g. `N` or `LIST`; absent for a switch. */
  value?: string;
  help: string;
}

/** Parses `argv` against `flags`; prints help and exits 0 on `--help`, exits 2 on anything unknown. */
export function parseFlags(script: string, summary: string, flags: readonly Flag[], argv = process.argv.slice(2)): Map<string, string> {
  const out = new Map<string, string>();
  const usage = () =>
    [
      `${script}: ${summary}`,
      '',
      `Usage: ${script} [flags]`,
      ...flags.map((f) => `  --${f.name}${f.value ? ` ${f.value}` : ''}`.padEnd(30) + f.help),
      `  --help`.padEnd(30) + 'this text',
      '',
    ].join('\n');
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      process.stdout.write(usage());
      process.exit(0);
    }
    const m = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/.exec(arg);
    const flag = m ? flags.find((f) => f.name === m[1]) : undefined;
    if (!m || !flag) {
      process.stderr.write(`${script}: unknown argument ${JSON.stringify(arg)} (see --help)\n`);
      process.exit(2);
    }
    if (!flag.value) {
      out.set(flag.name, 'true');
      continue;
    }
    const value = m[2] ?? argv[++i];
    if (value === undefined || value.startsWith('--')) {
      process.stderr.write(`${script}: --${flag.name} needs a value (${flag.value})\n`);
      process.exit(2);
    }
    out.set(flag.name, value);
  }
  return out;
}

/** A number flag, or `def`; exits 2 when it is not a positive number. */
export function numberFlag(flags: Map<string, string>, script: string, name: string, def: number): number {
  const raw = flags.get(name);
  if (raw === undefined) return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    process.stderr.write(`${script}: --${name} must be a positive number, not ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return n;
}

/**
 * Ctrl-C or SIGTERM stops the script's children first (SIGTERM, then SIGKILL for any still there)
 * and exits 130 / 143, so no gateway or fake is left running.
 */
export function stopChildrenOnInterrupt(children: () => Iterable<ChildProcess>): void {
  const stop = (code: number) => {
    for (const c of children()) c.kill('SIGTERM');
    setTimeout(() => {
      for (const c of children()) c.kill('SIGKILL');
      process.exit(code);
    }, 500).unref();
  };
  process.once('SIGINT', () => stop(130));
  process.once('SIGTERM', () => stop(143));
}
