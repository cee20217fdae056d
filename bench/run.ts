/**
 * `npm run bench`: what does the gateway add? Measures, interleaved in one run, the same workloads
 * sent directly to a fast fake Ollama, through the gateway, through nginx as a plain streaming
 * proxy, and through the gateway with tracing on (exporting to an OTLP endpoint that discards).
 * Loopback only, bounded in time. Prints a markdown table and writes JSON.
 *
 *   node dist/bench/run.js [--seconds 4] [--rounds 3] [--scenarios S1,S2,S3,S4,S5,S6]
 *                          [--targets direct,gateway,nginx,gateway-traced,node-baseline,undici-baseline,gateway-workers,gateway-traced-workers]
 *                          [--out FILE] [--quick] [--help]
 *
 * `node-baseline` is a bare http-proxy with nothing measured: the floor for a Node.js proxy;
 * `undici-baseline` the same with undici's pool as the upstream client. The
 * `*-workers` targets are the gateway with GATEWAY_WORKERS=2. The end of the report says which of
 * the performance targets are met.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, startNode, waitForPort } from '../test/helpers/procs';
import { numberFlag, parseFlags, stopChildrenOnInterrupt } from './cli';
import { measure } from './run/measure';
import { fmt, machine, renderMarkdown, summarize } from './run/report';
import { SCENARIOS, type Measurement, type Options, type TargetName } from './run/scenarios';
import { startTargets } from './run/targets';

/** Where results go by default: an untracked folder; the table in docs/PERFORMANCE.md is updated on purpose. */
const RESULTS_DIR = path.join('bench', 'results', 'local');

const ALL_TARGETS = 'direct,gateway,nginx,gateway-traced,node-baseline,undici-baseline,gateway-workers,gateway-traced-workers,gateway-no-ledger';

function args(): Options {
  const flags = parseFlags('bench', 'what the gateway adds, against direct, nginx and a bare Node proxy', [
    { name: 'seconds', value: 'N', help: 'seconds per measurement (default 4; 1 with --quick)' },
    { name: 'rounds', value: 'N', help: 'rounds, interleaved (default 3; 1 with --quick)' },
    { name: 'scenarios', value: 'LIST', help: 'S1,S2,S3,S4,S5,S6 (default all)' },
    { name: 'targets', value: 'LIST', help: `${ALL_TARGETS} (default all)` },
    { name: 'out', value: 'FILE', help: `the JSON results (default ${RESULTS_DIR}/latest.json)` },
    { name: 'quick', help: 'every scenario for a second, without nginx' },
  ]);
  const quick = flags.has('quick');
  const list = (name: string, def: string) => (flags.get(name) ?? def).split(',');
  return {
    quick,
    seconds: numberFlag(flags, 'bench', 'seconds', quick ? 1 : 4),
    rounds: numberFlag(flags, 'bench', 'rounds', quick ? 1 : 3),
    scenarios: list('scenarios', 'S1,S2,S3,S4,S5,S6'),
    targets: list('targets', quick ? 'direct,gateway,gateway-traced,gateway-workers' : ALL_TARGETS) as TargetName[],
    out: flags.get('out') ?? path.join(RESULTS_DIR, quick ? 'quick.json' : 'latest.json'),
  };
}

async function main(): Promise<void> {
  const opt = args();
  const dist = path.resolve(__dirname, '..');
  const children: ChildProcess[] = [];
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'ollama-gw-bench-'));
  const cleanup = () => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  stopChildrenOnInterrupt(() => children);

  const fakePort = await freePort();
  const otlpPort = await freePort();
  children.push(startNode(path.join(dist, 'bench', 'fake-ollama-fast.js'), [String(fakePort), String(otlpPort)], {}));
  await waitForPort(fakePort);
  const { targets, notes } = await startTargets(opt.targets, fakePort, otlpPort, tmp, children);

  // The short variant holds the long streams to 5 s: time for the slowest (3.2 s) to complete.
  const scenarios = SCENARIOS.filter((s) => opt.scenarios.includes(s.id)).map((s) => (opt.quick ? { ...s, minSeconds: Math.min(s.minSeconds, 5) } : s));
  const results: Measurement[] = [];
  for (let round = 1; round <= opt.rounds; round++) {
    for (const s of scenarios) {
      // Rotate the order each round so no target always runs first or last.
      const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]);
      for (const t of order) {
        const m = await measure(t, s, opt.seconds, round, opt.quick ? 200 : 1000);
        results.push(m);
        process.stderr.write(
          `round ${round} ${s.id} ${t.name}: ${fmt(m.rps, 0)} req/s, p99 ${fmt(m.p99Ms)} ms, cpu ${fmt(m.cpuUsPerRequest)} µs/req, rss ${fmt(m.peakRssMb, 0)} MB, heap ${fmt(m.heapTotalMb, 0)} MB, eld p99 ${fmt(m.eldP99Ms)} ms, errors ${m.errors}\n`,
        );
      }
    }
  }

  const summary = summarize(
    results,
    scenarios,
    targets.map((t) => t.name),
  );
  const report = renderMarkdown(summary, scenarios, opt, notes);
  process.stdout.write(report);
  mkdirSync(path.dirname(opt.out), { recursive: true });
  writeFileSync(opt.out, JSON.stringify({ date: new Date().toISOString(), machine: machine(), options: opt, notes, summary, results }, null, 2) + '\n');
  process.stderr.write(`wrote ${opt.out}\n`);
  const errors = results.reduce((n, r) => n + r.errors, 0);
  process.exit(errors > 0 ? 1 : 0);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
