/**
 * `npm run bench:profile`: where the gateway's CPU goes. Runs one benchmark scenario against a
 * gateway started with `--cpu-prof`, stops it with SIGTERM so the profile is written, and ranks
 * the profile's self time by part of the stack (OpenTelemetry metrics, tracing, instrumentation-http,
 * Koa, pino, http-proxy, Node's HTTP and streams, our modules, GC), in µs per request.
 *
 *   node .build/bench/profile.js [--scenario S1] [--seconds 6] [--traced] [--workers N] [--baseline] [--build DIR] [--top 25] [--out DIR]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, startNode, tracked, waitForPort } from '../test/helpers/procs';
import { numberFlag, parseFlags, stopChildrenOnInterrupt } from './cli';
import { measure } from './run/measure';
import { SCENARIOS } from './run/scenarios';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Parts of the stack, tried in order against a frame's script URL (or name, for V8's own). */
const PARTS: [string, (url: string, name: string) => boolean][] = [
  ['GC', (_u, n) => n === '(garbage collector)'],
  ['idle', (_u, n) => n === '(idle)'],
  ['V8/native (program)', (_u, n) => n === '(program)'],
  ['OTel metrics (sdk-metrics)', (u) => u.includes('@opentelemetry/sdk-metrics')],
  ['OTel instrumentation-http', (u) => u.includes('@opentelemetry/instrumentation')],
  [
    'OTel async context',
    (u) => u.includes('@opentelemetry/context-async-hooks') || u.includes('node:internal/async_hooks') || u.includes('async_local_storage'),
  ],
  ['OTel tracing SDK + OTLP export', (u) => /@opentelemetry\/(sdk-trace|exporter|otlp|core|resources|api)/.test(u)],
  [
    'Koa + router',
    (u) => /node_modules\/(koa|@koa|koa-compose|delegates|cookies|accepts|type-is|content-type|statuses|http-errors|on-finished|vary|encodeurl|mime)/.test(u),
  ],
  ['pino (logs)', (u) => /node_modules\/(pino|sonic-boom|thread-stream|fast-redact|quick-format|atomic-sleep|on-exit-leak-free)/.test(u)],
  [
    'http-proxy',
    (u) =>
      u.includes('node_modules/http-proxy') ||
      u.includes('node_modules/eventemitter3') ||
      u.includes('node_modules/requires-port') ||
      u.includes('follow-redirects'),
  ],
  ['Node HTTP (server + client)', (u) => /node:(_http_|http|internal\/http)/.test(u)],
  [
    'Node streams, net, timers',
    (u) =>
      /node:(net|stream|internal\/(streams|stream_base|timers|net|tcp|dns|buffer|process\/task_queues|event_target|events)|events|timers|buffer|internal\/perf)/.test(
        u,
      ),
  ],
  ['gateway: protocol parsers', (u) => u.includes('/src/protocol/')],
  ['gateway: proxy + tap', (u) => u.includes('/src/proxy/')],
  ['gateway: request body, extract', (u) => u.includes('/src/request/')],
  ['gateway: telemetry (otel/)', (u) => /\/otel\/[^/]+\.js/.test(u)],
  ['gateway: dispatch, call, limits', (u) => /\/src\/[^/]+\.js/.test(u) || u.includes('/src/endpoints/') || u.includes('/src/cluster/')],
  ['Node other', (u) => u.startsWith('node:')],
  ['other JS', () => true],
];

function partOf(url: string, name: string): string {
  for (const [part, test] of PARTS) if (test(url, name)) return part;
  return 'other JS';
}

/** Self time (µs) by part and by function. */
function rank(profile: CpuProfile): { parts: Map<string, number>; functions: Map<string, number>; totalUs: number } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const parts = new Map<string, number>();
  const functions = new Map<string, number>();
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    const part = partOf(f.url, f.functionName);
    if (part === 'idle') continue;
    totalUs += us;
    parts.set(part, (parts.get(part) ?? 0) + us);
    const where = f.url ? `${f.url.replace(/^.*node_modules\//, '').replace(/^.*\/(src|otel|bench)\//, '$1/')}:${f.lineNumber + 1}` : '';
    const key = `${f.functionName || '(anonymous)'} ${where}`.trim();
    functions.set(key, (functions.get(key) ?? 0) + us);
  }
  return { parts, functions, totalUs };
}

async function main(): Promise<void> {
  const flags = parseFlags('bench:profile', 'ranked CPU profile of the gateway under one scenario', [
    { name: 'scenario', value: 'ID', help: 'S1..S6 (default S1)' },
    { name: 'seconds', value: 'N', help: 'load duration (default 6)' },
    { name: 'traced', help: 'tracing on, exporting to a discarding OTLP endpoint' },
    { name: 'workers', value: 'N', help: 'GATEWAY_WORKERS (default 1)' },
    { name: 'baseline', help: 'profile the bare http-proxy baseline instead of the gateway' },
    { name: 'build', value: 'DIR', help: "another build's output folder to profile (e.g. an older commit's .build), same layout" },
    { name: 'top', value: 'N', help: 'functions listed (default 25)' },
    { name: 'out', value: 'DIR', help: 'where the .cpuprofile files go (default a temporary folder)' },
  ]);
  const scenario = SCENARIOS.find((s) => s.id === (flags.get('scenario') ?? 'S1'));
  if (!scenario) throw new Error(`unknown scenario ${flags.get('scenario')}`);
  const seconds = numberFlag(flags, 'bench:profile', 'seconds', 6);
  const top = numberFlag(flags, 'bench:profile', 'top', 25);
  const dir = flags.get('out') ?? mkdtempSync(path.join(os.tmpdir(), 'ollama-gw-prof-'));
  const dist = path.resolve(__dirname, '..');
  const children: ChildProcess[] = [];
  stopChildrenOnInterrupt(() => children);
  process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));

  const fakePort = await freePort();
  const otlpPort = await freePort();
  children.push(startNode(path.join(dist, 'bench', 'fake-ollama-fast.js'), [String(fakePort), String(otlpPort)], {}));
  await waitForPort(fakePort);
  const port = await freePort();
  const env: Record<string, string> = {
    OLLAMA_HOST: `127.0.0.1:${fakePort}`,
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'INFO',
    GATEWAY_WORKERS: flags.get('workers') ?? '1',
  };
  if (flags.has('traced')) Object.assign(env, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlpPort}`, OTEL_TRACES_EXPORTER: 'otlp' });
  const gateway = tracked(
    spawn(
      process.execPath,
      [
        '--cpu-prof',
        `--cpu-prof-dir=${dir}`,
        ...(flags.has('baseline')
          ? [path.join(dist, 'bench', 'baseline-proxy.js'), String(port), String(fakePort)]
          : [path.join(flags.get('build') ?? dist, 'src', 'main.js')]),
      ],
      { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'inherit'] },
    ),
  );
  children.push(gateway);
  await waitForPort(port);
  // A short warm-up so the profile shows the steady state, not the JIT's first minutes.
  await measure({ name: 'gateway', port, pids: () => [] }, scenario, 1, 0);
  const m = await measure({ name: 'gateway', port, pids: () => [gateway.pid!] }, scenario, seconds, 1);
  await new Promise<void>((resolve) => {
    gateway.once('exit', () => resolve());
    gateway.kill('SIGTERM');
  });

  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  const profiles = files.map((f) => JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as CpuProfile);
  const parts = new Map<string, number>();
  const functions = new Map<string, number>();
  let totalUs = 0;
  for (const p of profiles) {
    const r = rank(p);
    totalUs += r.totalUs;
    for (const [k, v] of r.parts) parts.set(k, (parts.get(k) ?? 0) + v);
    for (const [k, v] of r.functions) functions.set(k, (functions.get(k) ?? 0) + v);
  }
  // The profile spans warm-up, load and shutdown; per request is over every request it saw.
  const requests = m.requests + Math.round(m.rps); // ~ the warm-up second
  const perReq = (us: number) => (us / requests).toFixed(1);
  const out: string[] = [];
  out.push(`## CPU profile: ${scenario.id} (${scenario.title})${flags.has('traced') ? ', tracing on' : ''}, ${files.length} process(es)`);
  out.push('');
  out.push(
    `${m.requests} requests in ${seconds} s (${m.rps.toFixed(0)} req/s), CPU ${m.cpuUsPerRequest?.toFixed(1)} µs/req by /proc; profile self time ${perReq(totalUs)} µs/req`,
  );
  out.push('');
  out.push('| part of the stack | µs/request | share |');
  out.push('| ----------------- | ---------- | ----- |');
  for (const [k, v] of [...parts].sort((a, b) => b[1] - a[1])) out.push(`| ${k} | ${perReq(v)} | ${((100 * v) / totalUs).toFixed(1)}% |`);
  out.push('');
  out.push(`| top functions (self) | µs/request |`);
  out.push('| -------------------- | ---------- |');
  for (const [k, v] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, top)) out.push(`| \`${k.replace(/\|/g, '\\|')}\` | ${perReq(v)} |`);
  out.push('');
  out.push(`profiles: ${dir}`);
  process.stdout.write(out.join('\n') + '\n');
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:profile failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
