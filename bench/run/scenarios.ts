/** What the benchmark measures: the targets, the scenarios (workloads), and one measurement. */

export type TargetName =
  'direct' | 'gateway' | 'nginx' | 'gateway-traced' | 'node-baseline' | 'gateway-workers' | 'gateway-traced-workers' | 'undici-baseline' | 'gateway-no-ledger';

/** Worker processes of the `*-workers` targets. */
export const BENCH_WORKERS = 2;

export interface Target {
  name: TargetName;
  port: number;
  /** The proxy's processes (none for direct). */
  pids(): number[];
  /** Event-loop delay since the last call (gateway targets); with `gc`, after a full collection. */
  eld?(gc?: boolean): Promise<ProbeStats>;
}

export interface Scenario {
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

export const SCENARIOS: Scenario[] = [
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
  {
    id: 'S6',
    title: '300 concurrent streams, 64 tokens at 10 ms (every chunk an isolated wakeup)',
    method: 'POST',
    path: '/api/chat',
    body: '{"model":"llama3.2","messages":[{"role":"user","content":"Why is the sky blue?"}]}',
    headers: { 'x-bench-tokens': '64', 'x-bench-delay-ms': '10' },
    connections: 300,
    minSeconds: 6,
    chunks: 65,
    ttftProbe: false,
  },
];

export interface Measurement {
  round: number;
  scenario: string;
  target: TargetName;
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  ttftMs?: number;
  cpuUsPerRequest?: number;
  /** CPU per forwarded chunk: the whole run's CPU over every chunk relayed. */
  cpuUsPerChunk?: number;
  peakRssMb?: number;
  /** The largest single process's peak (one worker, for the `*-workers` targets). */
  peakRssOneMb?: number;
  /** The event-loop delay p99 under load, less the probe's own reading when idle. */
  eldP99Ms?: number;
  /** The probe's idle reading, subtracted above. */
  eldIdleP99Ms?: number;
  /** The live heap after a full GC at the end of the run (largest worker). */
  liveHeapMb?: number;
  /** V8 heap size at the end of the run (gateway targets). */
  heapTotalMb?: number;
  errors: number;
}

export interface ProbeStats {
  eldP99Ms: number;
  eldMaxMs: number;
  heapUsedMb: number;
  heapTotalMb: number;
  rssMb?: number;
}

export interface Options {
  seconds: number;
  rounds: number;
  scenarios: string[];
  targets: TargetName[];
  out: string;
  quick: boolean;
}
