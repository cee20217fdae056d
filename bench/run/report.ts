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
  peakRssOneMb?: number;
  liveHeapMb?: number;
  eldP99Ms?: number;
  eldIdleP99Ms?: number;
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
        peakRssOneMb: rs.some((r) => r.peakRssOneMb !== undefined) ? Math.max(...rs.map((r) => r.peakRssOneMb ?? 0)) : undefined,
        liveHeapMb: med(rs.map((r) => r.liveHeapMb)),
        // An isolated chunk costs a whole wakeup: S6's is the run's CPU over every chunk it relayed.
        cpuUsPerChunk: s.id === 'S6' ? med(rs.map((r) => r.cpuUsPerChunk)) : undefined,
        eldP99Ms: med(rs.map((r) => r.eldP99Ms)),
        eldIdleP99Ms: med(rs.map((r) => r.eldIdleP99Ms)),
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
    '| scenario | target | req/s | × direct | p50 ms | p99 ms | p99 added ms | TTFT added ms | CPU µs/req | CPU µs/chunk | peak RSS MB | largest process MB | live heap MB | ELD p99 ms | errors | noise req/s | noise CPU |',
  );
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    lines.push(
      `| ${r.scenario} | ${r.target} | ${fmt(r.rps, 0)} | ${fmt(r.rpsRatio, 2)} | ${fmt(r.p50Ms)} | ${fmt(r.p99Ms)} | ${r.target === 'direct' ? '–' : fmt(r.addedP99Ms)} | ${r.target === 'direct' ? '–' : fmt(r.addedTtftMs, 2)} | ${fmt(r.cpuUsPerRequest)} | ${fmt(r.cpuUsPerChunk, 2)} | ${fmt(r.peakRssMb, 0)} | ${fmt(r.peakRssOneMb, 0)} | ${fmt(r.liveHeapMb, 1)} | ${fmt(r.eldP99Ms)} | ${r.errors} | ${fmt(r.rpsNoise * 100, 0)}% | ${r.cpuNoise === undefined ? '–' : `${fmt(r.cpuNoise * 100, 0)}%`} |`,
    );
  }
  lines.push('');
  lines.push(...renderTargets(rows));
  lines.push('');
  lines.push(
    'ELD p99 is the event-loop delay under load less the probe\'s own idle reading. CPU per chunk: S2 is (S2 − S1) per request over its chunks (back to back); S6 is the whole run\'s CPU over every chunk (each one a wakeup). The `*-workers` targets run GATEWAY_WORKERS=2; their RSS is the sum of the processes, "largest process" one worker.',
  );
  lines.push('');
  for (const n of notes) lines.push(`Note: ${n}`);
  return lines.join('\n') + '\n';
}

/** Every target of the performance goals, measured or not, with its limit. */
export function renderTargets(rows: Row[]): string[] {
  const get = (s: string, t: TargetName) => rows.find((r) => r.scenario === s && r.target === t);
  const out: string[] = [];
  const check = (label: string, value: number | undefined, limit: number | undefined, unit: string, atLeast = false) => {
    if (value === undefined || limit === undefined || Number.isNaN(value) || Number.isNaN(limit)) {
      out.push(`| ${label} | – | ${fmt(limit, 2)}${unit} | not measured |`);
      return;
    }
    const met = atLeast ? value >= limit : value <= limit;
    out.push(`| ${label} | ${fmt(value, 2)}${unit} | ${atLeast ? '≥ ' : '≤ '}${fmt(limit, 2)}${unit} | ${met ? 'met' : 'not met'} |`);
  };
  const cpu = (s: string, t: TargetName) => get(s, t)?.cpuUsPerRequest;
  const times = (k: number, v: number | undefined) => (v === undefined ? undefined : k * v);
  const plus = (v: number | undefined, k: number) => (v === undefined ? undefined : v + k);
  check('S1 gateway CPU/request vs 1.3 × bare Node proxy', cpu('S1', 'gateway'), times(1.3, cpu('S1', 'node-baseline')), ' µs');
  check('S4 gateway CPU/request vs 1.3 × bare Node proxy', cpu('S4', 'gateway'), times(1.3, cpu('S4', 'node-baseline')), ' µs');
  check('S2 gateway CPU/chunk (back to back) vs nginx', get('S2', 'gateway')?.cpuUsPerChunk, get('S2', 'nginx')?.cpuUsPerChunk, ' µs');
  check(
    'S6 gateway CPU/isolated chunk vs 1.15 × bare Node proxy',
    get('S6', 'gateway')?.cpuUsPerChunk,
    times(1.15, get('S6', 'node-baseline')?.cpuUsPerChunk),
    ' µs',
  );
  check("S3 gateway p99 added vs nginx's + 2 ms", get('S3', 'gateway')?.addedP99Ms, plus(get('S3', 'nginx')?.addedP99Ms, 2), ' ms');
  check('S3 gateway TTFT added', get('S3', 'gateway')?.addedTtftMs, 2, ' ms');
  for (const t of ['gateway', 'gateway-workers'] as const) {
    check(`S5 ${t} p99 added vs nginx's + 20 ms`, get('S5', t)?.addedP99Ms, plus(get('S5', 'nginx')?.addedP99Ms, 20), ' ms');
    check(`S5 ${t} event-loop delay p99`, get('S5', t)?.eldP99Ms, 20, ' ms');
    check(`S5 ${t} errors`, get('S5', t)?.errors, 0, '');
  }
  check('S5 peak RSS of one worker (gateway-workers)', get('S5', 'gateway-workers')?.peakRssOneMb, 130, ' MB');
  check('S5 peak RSS, one process (gateway)', get('S5', 'gateway')?.peakRssMb, 130, ' MB');
  check('S5 live heap after GC, one worker', get('S5', 'gateway-workers')?.liveHeapMb ?? get('S5', 'gateway')?.liveHeapMb, 30, ' MB');
  const traced = cpu('S1', 'gateway-traced');
  const plain = cpu('S1', 'gateway');
  check(
    "S1 tracing on: extra CPU/request vs the bare proxy's CPU/request",
    traced !== undefined && plain !== undefined ? traced - plain : undefined,
    cpu('S1', 'node-baseline'),
    ' µs',
  );
  check('S5 gateway-traced-workers throughput, × direct', get('S5', 'gateway-traced-workers')?.rpsRatio, 0.99, '', true);
  const ratio = (s: string) => {
    const w = get(s, 'gateway-workers')?.rps;
    const one = get(s, 'gateway')?.rps;
    return w !== undefined && one ? w / one : undefined;
  };
  check('S1 throughput, 2 workers × one (load generator on the same 2 cores)', ratio('S1'), 1.8, '', true);
  // Had each worker a core of its own: twice the cores at the CPU each request costs with two workers.
  const w1 = cpu('S1', 'gateway-workers');
  check('S1 throughput, 2 workers × one, per core available (2 × CPU/req one ÷ CPU/req two)', w1 && plain ? (2 * plain) / w1 : undefined, 1.8, '', true);
  check('S5 throughput, 2 workers × one (paced: direct bounds both)', ratio('S5'), 1.8, '', true);
  return ['| target | measured | limit | |', '|---|---|---|---|', ...out];
}

export function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 1024 ** 3)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}${spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr?.trim() ? `, ${spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim()}` : ''}`;
}
