/** The benchmark's summary: medians over rounds, ratios to the direct target, the markdown table and the targets met or not. */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { median } from './measure';
import type { Measurement, Options, Scenario, TargetName } from './scenarios';

export const fmt = (n: number | undefined, digits = 1) => (n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits));

export interface Row {
  scenario: string;
  target: TargetName;
  rps: number;
  rpsRatio: number;
  p50Ms: number;
  p99Ms: number;
  addedP99Ms: number;
  ttftMs?: number;
  addedTtftMs?: number;
  cpuUsPerRequest?: number;
  cpuUsPerChunk?: number;
  peakRssMb?: number;
  eldP99Ms?: number;
  errors: number;
  /** Spread of req/s across rounds, as (max − min) / median. */
  rpsNoise: number;
  cpuNoise?: number;
}

export function summarize(results: Measurement[], scenarios: Scenario[], names: TargetName[]): Row[] {
  const rows: Row[] = [];
  const of = (s: string, t: TargetName) => results.filter((r) => r.scenario === s && r.target === t);
  const med = (xs: (number | undefined)[]) => {
    const v = xs.filter((x): x is number => x !== undefined);
    return v.length ? median(v) : undefined;
  };
  const noise = (xs: (number | undefined)[]) => {
    const v = xs.filter((x): x is number => x !== undefined);
    return v.length > 1 ? (Math.max(...v) - Math.min(...v)) / median(v) : 0;
  };
  for (const s of scenarios) {
    const direct = of(s.id, 'direct');
    const dRps = med(direct.map((r) => r.rps));
    const dP99 = med(direct.map((r) => r.p99Ms));
    const dTtft = med(direct.map((r) => r.ttftMs));
    for (const t of names) {
      const rs = of(s.id, t);
      if (!rs.length) continue;
      const rps = med(rs.map((r) => r.rps))!;
      const p99 = med(rs.map((r) => r.p99Ms))!;
      const ttft = med(rs.map((r) => r.ttftMs));
      rows.push({
        scenario: s.id,
        target: t,
        rps,
        rpsRatio: dRps ? rps / dRps : NaN,
        p50Ms: med(rs.map((r) => r.p50Ms))!,
        p99Ms: p99,
        addedP99Ms: dP99 !== undefined ? p99 - dP99 : NaN,
        ttftMs: ttft,
        addedTtftMs: ttft !== undefined && dTtft !== undefined ? ttft - dTtft : undefined,
        cpuUsPerRequest: med(rs.map((r) => r.cpuUsPerRequest)),
        peakRssMb: rs.some((r) => r.peakRssMb !== undefined) ? Math.max(...rs.map((r) => r.peakRssMb ?? 0)) : undefined,
        eldP99Ms: med(rs.map((r) => r.eldP99Ms)),
        errors: rs.reduce((n, r) => n + r.errors, 0),
        rpsNoise: noise(rs.map((r) => r.rps)),
        cpuNoise: t === 'direct' ? undefined : noise(rs.map((r) => r.cpuUsPerRequest)),
      });
    }
  }
  // CPU per streamed chunk: (S2 − S1) per request, over S2's chunks.
  const s2 = scenarios.find((s) => s.id === 'S2');
  for (const r of rows.filter((x) => x.scenario === 'S2')) {
    const s1 = rows.find((x) => x.scenario === 'S1' && x.target === r.target);
    if (s2 && s1?.cpuUsPerRequest !== undefined && r.cpuUsPerRequest !== undefined)
      r.cpuUsPerChunk = (r.cpuUsPerRequest - s1.cpuUsPerRequest) / (s2.chunks - 1);
  }
  return rows;
}

export function renderMarkdown(rows: Row[], scenarios: Scenario[], opt: Options, notes: string[]): string {
  const lines: string[] = [];
  lines.push(`## Benchmark (${opt.rounds} round${opt.rounds > 1 ? 's' : ''}, ${opt.seconds} s per run; medians over rounds)`);
  lines.push('');
  lines.push(`Machine: ${machine()}`);
  lines.push('');
  for (const s of scenarios) lines.push(`- **${s.id}**: ${s.title}`);
  lines.push('');
  lines.push(
    '| scenario | target | req/s | × direct | p50 ms | p99 ms | p99 added ms | TTFT added ms | CPU µs/req | CPU µs/chunk | peak RSS MB | ELD p99 ms | errors | noise req/s | noise CPU |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    lines.push(
      `| ${r.scenario} | ${r.target} | ${fmt(r.rps, 0)} | ${fmt(r.rpsRatio, 2)} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${r.target === 'direct' ? '–' : fmt(r.addedP99Ms)} | ${r.target === 'direct' ? '–' : fmt(r.addedTtftMs, 2)} | ${fmt(r.cpuUsPerRequest)} | ${fmt(r.cpuUsPerChunk, 2)} | ${fmt(r.peakRssMb, 0)} | ${fmt(r.eldP99Ms)} | ${r.errors} | ${fmt(r.rpsNoise * 100, 0)}% | ${r.cpuNoise === undefined ? '–' : `${fmt(r.cpuNoise * 100, 0)}%`} |`,
    );
  }
  lines.push('');
  const get = (s: string, t: TargetName) => rows.find((r) => r.scenario === s && r.target === t);
  const targetsLines: string[] = [];
  const check = (label: string, value: number | undefined, limit: number | undefined, unit = '') => {
    if (value === undefined || limit === undefined || Number.isNaN(value)) return;
    targetsLines.push(`| ${label} | ${fmt(value, 2)}${unit} | ${fmt(limit, 2)}${unit} | ${value <= limit ? 'met' : 'not met'} |`);
  };
  const n1 = get('S1', 'nginx')?.cpuUsPerRequest;
  const n4 = get('S4', 'nginx')?.cpuUsPerRequest;
  const nChunk = get('S2', 'nginx')?.cpuUsPerChunk;
  check('S1 gateway CPU/request vs 5 × nginx', get('S1', 'gateway')?.cpuUsPerRequest, n1 !== undefined ? 5 * n1 : undefined, ' µs');
  check('S4 gateway CPU/request vs 5 × nginx', get('S4', 'gateway')?.cpuUsPerRequest, n4 !== undefined ? 5 * n4 : undefined, ' µs');
  check('S2 gateway CPU/chunk vs nginx', get('S2', 'gateway')?.cpuUsPerChunk, nChunk, ' µs');
  check('S3 gateway p99 added', get('S3', 'gateway')?.addedP99Ms, 2, ' ms');
  check('S3 gateway TTFT added', get('S3', 'gateway')?.addedTtftMs, 2, ' ms');
  check('S5 gateway event-loop delay p99', get('S5', 'gateway')?.eldP99Ms, 20, ' ms');
  check('S5 gateway errors', get('S5', 'gateway')?.errors, 0);
  check('S5 gateway peak RSS', get('S5', 'gateway')?.peakRssMb, 100, ' MB');
  if (targetsLines.length) {
    lines.push('| target (full instrumentation, tracing off) | measured | limit | |');
    lines.push('|---|---|---|---|');
    lines.push(...targetsLines);
    lines.push('');
  }
  for (const n of notes) lines.push(`Note: ${n}`);
  return lines.join('\n') + '\n';
}

export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 1024 ** 3)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}${spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr?.trim() ? `, ${spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim()}` : ''}`;
}
