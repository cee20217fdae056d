/**
 * `npm run bench`: what does the gateway add? Measures, interleaved in one run, the same workloads
 * sent directly to a fast fake Ollama, through the gateway, through nginx as a plain streaming
 * proxy, and through the gateway with tracing on (exporting to an OTLP endpoint that discards).
 * Loopback only, bounded in time. Prints a markdown table and writes JSON.
 *
 *   node dist/bench/run.js [--seconds 4] [--rounds 3] [--scenarios S1,S2,S3,S4,S5]
 *                          [--targets direct,gateway,nginx,gateway-traced,node-baseline] [--out bench/results/latest.json] [--quick]
 *
 * `node-baseline` is a bare http-proxy with nothing measured: the floor for a Node.js proxy.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { childPids, cpuMs, findNginx, freePort, rssBytes, startNginx, startNode, waitForPort } from './procs';

type TargetName = 'direct' | 'gateway' | 'nginx' | 'gateway-traced' | 'node-baseline';

interface Target {
  name: TargetName;
  port: number;
  /** The proxy's processes (none for direct). */
  pids(): number[];
  /** Event-loop delay since the last call (gateway targets). */
  eld?(): Promise<ProbeStats>;
}

interface Scenario {
  id: string;
  title: string;
  method: 'GET' | 'POST';
  path: string;
  body?: string;
  headers: Record<string, string>;
  connections: number;
  /** Minimum seconds, whatever --seconds says (long streams need time to complete). */
  minSeconds: number;
  /** Lines the proxy forwards per response. */
  chunks: number;
  ttftProbe: boolean;
}

const SCENARIOS: Scenario[] = [
  {
    id: 'S1',
    title: 'non-streaming /api/chat, small answer, 50 connections',
    method: 'POST',
    path: '/api/chat',
    body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"Why is the sky blue?"}]}',
    headers: {},
    connections: 50,
    minSeconds: 0,
    chunks: 1,
    ttftProbe: false,
  },
  {
    id: 'S2',
    title: 'streaming /api/chat, 32 tokens, no delay, 50 connections',
    method: 'POST',
    path: '/api/chat',
    body: '{"model":"llama3.2","messages":[{"role":"user","content":"Why is the sky blue?"}]}',
    headers: { 'x-bench-tokens': '32' },
    connections: 50,
    minSeconds: 0,
    chunks: 33,
    ttftProbe: false,
  },
  {
    id: 'S3',
    title: '200 concurrent streams, 64 tokens at 20 ms',
    method: 'POST',
    path: '/api/chat',
    body: '{"model":"llama3.2","messages":[{"role":"user","content":"Why is the sky blue?"}]}',
    headers: { 'x-bench-tokens': '64', 'x-bench-delay-ms': '20' },
    connections: 200,
    minSeconds: 6,
    chunks: 65,
    ttftProbe: true,
  },
  {
    id: 'S4',
    title: 'GET /api/tags pass-through, 50 connections',
    method: 'GET',
    path: '/api/tags',
    headers: {},
    connections: 50,
    minSeconds: 0,
    chunks: 1,
    ttftProbe: false,
  },
  {
    id: 'S5',
    title: '1,000 concurrent slow streams, 64 tokens at 50 ms',
    method: 'POST',
    path: '/api/chat',
    body: '{"model":"llama3.2","messages":[{"role":"user","content":"Why is the sky blue?"}]}',
    headers: { 'x-bench-tokens': '64', 'x-bench-delay-ms': '50' },
    connections: 1000,
    minSeconds: 8,
    chunks: 65,
    ttftProbe: false,
  },
];

interface Measurement {
  round: number;
  scenario: string;
  target: TargetName;
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  ttftMs?: number;
  cpuUsPerRequest?: number;
  peakRssMb?: number;
  eldP99Ms?: number;
  /** V8 heap size at the end of the run (gateway targets). */
  heapTotalMb?: number;
  errors: number;
}

function args(): { seconds: number; rounds: number; scenarios: string[]; targets: TargetName[]; out: string; quick: boolean } {
  const a = process.argv.slice(2);
  const get = (name: string) => {
    const i = a.indexOf(`--${name}`);
    return i === -1 ? undefined : a[i + 1];
  };
  const quick = a.includes('--quick');
  return {
    quick,
    seconds: Number(get('seconds') ?? (quick ? 1 : 4)),
    rounds: Number(get('rounds') ?? (quick ? 1 : 3)),
    scenarios: (get('scenarios') ?? 'S1,S2,S3,S4,S5').split(','),
    targets: (get('targets') ?? (quick ? 'direct,gateway,gateway-traced' : 'direct,gateway,nginx,gateway-traced,node-baseline')).split(',') as TargetName[],
    out: get('out') ?? path.join('bench', 'results', quick ? 'quick.json' : 'latest.json'),
  };
}

/** First-byte times of streamed responses sent one after another while the load runs. */
async function probeTtft(port: number, s: Scenario, until: number): Promise<number[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  while (performance.now() < until) {
    times.push(
      await new Promise<number>((resolve, reject) => {
        const t0 = performance.now();
        const req = http.request({ host: '127.0.0.1', port, path: s.path, method: s.method, headers: s.headers, agent }, (res) => {
          let first = -1;
          res.on('data', () => {
            if (first < 0) first = performance.now() - t0;
          });
          res.on('end', () => resolve(first));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(s.body);
      }),
    );
  }
  agent.destroy();
  return times;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function measure(target: Target, s: Scenario, seconds: number, round: number): Promise<Measurement> {
  const pids = target.pids();
  await target.eld?.(); // reset
  const cpu0 = pids.reduce((n, p) => n + cpuMs(p), 0);
  let peakRss = 0;
  const sampler = setInterval(() => {
    peakRss = Math.max(
      peakRss,
      pids.reduce((n, p) => n + rssBytes(p), 0),
    );
  }, 100);
  const duration = Math.max(seconds, s.minSeconds);
  const probes = s.ttftProbe ? probeTtft(target.port, s, performance.now() + duration * 1000 - 1500) : Promise.resolve([]);
  const result = await autocannon({
    url: `http://127.0.0.1:${target.port}${s.path}`,
    method: s.method,
    body: s.body,
    headers: { 'content-type': 'application/json', ...s.headers },
    connections: s.connections,
    duration,
    timeout: 30,
  });
  const ttfts = await probes;
  clearInterval(sampler);
  const cpu = pids.reduce((n, p) => n + cpuMs(p), 0) - cpu0;
  const eld = await target.eld?.();
  const requests = result.requests.total;
  return {
    round,
    scenario: s.id,
    target: target.name,
    requests,
    rps: requests / duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    ttftMs: ttfts.length ? median(ttfts) : undefined,
    cpuUsPerRequest: pids.length && requests ? (cpu * 1000) / requests : undefined,
    peakRssMb: pids.length ? peakRss / 1024 / 1024 : undefined,
    eldP99Ms: eld?.eldP99Ms,
    heapTotalMb: eld?.heapTotalMb,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

interface ProbeStats {
  eldP99Ms: number;
  eldMaxMs: number;
  heapUsedMb: number;
  heapTotalMb: number;
}

function ipcStats(child: ChildProcess): () => Promise<ProbeStats> {
  return () =>
    new Promise((resolve) => {
      child.once('message', (m) => resolve(m as ProbeStats));
      child.send({ type: 'stats' });
    });
}

const fmt = (n: number | undefined, digits = 1) => (n === undefined || Number.isNaN(n) ? '–' : n.toFixed(digits));

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
  process.on('SIGINT', () => process.exit(130));

  const fakePort = await freePort();
  const otlpPort = await freePort();
  children.push(startNode(path.join(dist, 'bench', 'fake-ollama-fast.js'), [String(fakePort), String(otlpPort)], {}));
  await waitForPort(fakePort);

  const targets: Target[] = [];
  const notes: string[] = [];
  for (const name of opt.targets) {
    if (name === 'direct') {
      targets.push({ name, port: fakePort, pids: () => [] });
      continue;
    }
    const port = await freePort();
    if (name === 'nginx') {
      const nginx = findNginx();
      if (!nginx) {
        notes.push('nginx skipped: not installed (apt-get install nginx-light)');
        continue;
      }
      const child = startNginx(nginx, path.join(tmp, 'nginx'), port, fakePort);
      children.push(child);
      await waitForPort(port);
      targets.push({ name, port, pids: () => [child.pid!, ...childPids(child.pid!)] });
      continue;
    }
    if (name === 'node-baseline') {
      const child = startNode(path.join(dist, 'bench', 'baseline-proxy.js'), [String(port), String(fakePort)], {}, true);
      children.push(child);
      await waitForPort(port);
      targets.push({ name, port, pids: () => [child.pid!], eld: ipcStats(child) });
      continue;
    }
    const env: Record<string, string> = {
      OLLAMA_HOST: `127.0.0.1:${fakePort}`,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'INFO',
      OLLAMA_POLL_INTERVAL_SECONDS: '15',
      ...(process.env.BENCH_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_NODE_OPTIONS } : {}),
    };
    if (name === 'gateway-traced') Object.assign(env, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlpPort}`, OTEL_TRACES_EXPORTER: 'otlp' });
    const child = startNode(path.join(dist, 'bench', 'gateway-probe.js'), [], env, true);
    children.push(child);
    await waitForPort(port);
    targets.push({ name, port, pids: () => [child.pid!], eld: ipcStats(child) });
  }

  const scenarios = SCENARIOS.filter((s) => opt.scenarios.includes(s.id));
  const results: Measurement[] = [];
  for (let round = 1; round <= opt.rounds; round++) {
    for (const s of scenarios) {
      // Rotate the order each round so no target always runs first or last.
      const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]);
      for (const t of order) {
        const m = await measure(t, s, opt.seconds, round);
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

interface Row {
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

function summarize(results: Measurement[], scenarios: Scenario[], names: TargetName[]): Row[] {
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

function renderMarkdown(rows: Row[], scenarios: Scenario[], opt: ReturnType<typeof args>, notes: string[]): string {
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

function machine(): string {
  const cpus = os.cpus();
  return `${cpus.length} × ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 1024 ** 3)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}${spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr?.trim() ? `, ${spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim()}` : ''}`;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
