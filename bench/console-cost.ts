/**
 * What the console costs: the gateway's CPU per LLM call with the console on and with
 * CONSOLE=false (the same streamed chats against bench/fake-ollama-fast), its CPU while idle with
 * and without a page polling the API as the page does (every 2 s: now, models, calls), and the
 * history's memory: the bound its rings are allocated to, and the heap after GC of an empty and of
 * a full history (every model slot, every bucket, every recent call), with the cost of one poll
 * of the full one.
 *
 * Usage: npm run bench:console [-- --calls N --rounds N --idle-seconds N]
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { History, modelRingBytes, DEFAULT_HISTORY, type FinishedCall } from '../otel/history/history';
import { series, summaries } from '../otel/history/view';
import { cpuMs, freePort, liveChildren, startNode, waitForPort } from '../test/helpers/procs';
import { numberFlag, parseFlags, stopChildrenOnInterrupt } from './cli';

const SCRIPT = 'bench:console';
const flags = parseFlags(SCRIPT, "the console's CPU and memory cost", [
  { name: 'calls', value: 'N', help: 'streamed chats per measurement (default 4000)' },
  { name: 'rounds', value: 'N', help: 'alternating on/off rounds (default 3)' },
  { name: 'idle-seconds', value: 'N', help: 'length of each idle measurement (default 30)' },
]);
const CALLS = numberFlag(flags, SCRIPT, 'calls', 4000);
const ROUNDS = numberFlag(flags, SCRIPT, 'rounds', 3);
const IDLE_SECONDS = numberFlag(flags, SCRIPT, 'idle-seconds', 30);
const CONCURRENCY = 16;
const DIST = path.resolve(__dirname, '..');
const RESULTS = path.join(DIST, '..', 'bench', 'results', 'local');

stopChildrenOnInterrupt(liveChildren);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });

function request(port: number, method: string, path: string, body?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      res.on('data', () => {});
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`${path} answered ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const CHAT = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue?' }] });

async function traffic(port: number, calls: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < calls) {
      next++;
      await request(port, 'POST', '/api/chat', CHAT);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

async function startGateway(fakePort: number, consoleOn: boolean): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const child = startNode(path.join(DIST, 'src', 'main.js'), [], {
    OLLAMA_HOST: `127.0.0.1:${fakePort}`,
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'WARN',
    OLLAMA_POLL_INTERVAL_SECONDS: '15',
    CONSOLE: String(consoleOn),
  });
  await waitForPort(port);
  return { child, port };
}

/** Gateway CPU µs per call over `CALLS` calls, after a warm-up. */
async function cpuPerCall(fakePort: number, consoleOn: boolean): Promise<number> {
  const { child, port } = await startGateway(fakePort, consoleOn);
  try {
    await traffic(port, 500);
    const before = cpuMs(child.pid!);
    await traffic(port, CALLS);
    return ((cpuMs(child.pid!) - before) * 1000) / CALLS;
  } finally {
    child.kill('SIGKILL');
  }
}

/** What the page asks for every 2 s. */
async function pollLikeThePage(port: number): Promise<void> {
  await Promise.all([
    request(port, 'GET', '/console/api/v1/now'),
    request(port, 'GET', '/console/api/v1/models?minutes=15'),
    request(port, 'GET', '/console/api/v1/calls?limit=200'),
  ]);
}

/** Gateway CPU ms per second while idle, with or without a page polling. */
async function idleCpu(fakePort: number, polling: boolean): Promise<number> {
  const { child, port } = await startGateway(fakePort, true);
  try {
    // Some history to show: 600 calls in the recent list and the current buckets.
    await traffic(port, 600);
    await sleep(1000);
    const before = cpuMs(child.pid!);
    const started = performance.now();
    while (performance.now() - started < IDLE_SECONDS * 1000) {
      if (polling) await pollLikeThePage(port);
      await sleep(2000);
    }
    return (cpuMs(child.pid!) - before) / ((performance.now() - started) / 1000);
  } finally {
    child.kill('SIGKILL');
  }
}

function finished(model: string, i: number): FinishedCall {
  return {
    operation: 'chat',
    traceId: undefined,
    measures: { model, endpoint: '/api/chat', wallSeconds: 0.5 + (i % 7) / 10, ttftSeconds: 0.05 + (i % 13) / 100, stalls: 0, wasInFlight: true },
    outcome: {
      status: i % 50 === 0 ? 500 : 200,
      reason: i % 50 === 0 ? 'upstream_5xx' : undefined,
      streamed: true,
      summary: { inputTokens: 40, outputTokens: 200, evalDurationNs: 4e9, loadDurationNs: 2e7, promptEvalDurationNs: 3e7, totalDurationNs: 4.2e9 },
    },
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const gc = (globalThis as { gc?: () => void }).gc;

function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc!();
  return process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers;
}

/** The history's memory: empty, and with every model slot and bucket and the recent list full. */
function historyMemory(): Record<string, number> {
  if (!gc) throw new Error('run with node --expose-gc (npm run bench:console does)');
  let now = 0;
  const keep: History[] = [];
  const base = heapAfterGc();
  keep.push(new History({ now: () => now }));
  const empty = heapAfterGc() - base;
  const full = new History({ now: () => now });
  const models = DEFAULT_HISTORY.maxModels + 1;
  for (let b = 0; b < DEFAULT_HISTORY.buckets; b++) {
    now = b * DEFAULT_HISTORY.bucketMs;
    for (let m = 0; m < models; m++) {
      const name = m === models - 1 ? 'other' : `model-${m}`;
      full.started(name);
      full.finished(finished(name, b * models + m));
    }
  }
  keep.push(full);
  const fullBytes = heapAfterGc() - base - empty;
  // One poll of the full history: the snapshot and the views the page asks for (after warm-up).
  const poll = () => {
    const snap = full.snapshot();
    return JSON.stringify(summaries(snap, 15)).length + JSON.stringify(series(snap, 15)).length + JSON.stringify(snap.recent.slice(0, 200)).length;
  };
  for (let i = 0; i < 10; i++) poll();
  const times: number[] = [];
  let json = 0;
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    json = poll();
    times.push(performance.now() - t0);
  }
  const pollMs = median(times);
  // The sink's own work per call, in process: what CONSOLE=true adds to each call's CPU.
  const sink = new History();
  const calls = 200_000;
  const sample = Array.from({ length: 64 }, (_, i) => finished(`model-${i % 4}`, i));
  for (let i = 0; i < 20_000; i++) {
    sink.started('model-0');
    sink.finished(sample[i % 64]!);
  }
  const t1 = performance.now();
  for (let i = 0; i < calls; i++) {
    sink.started(sample[i % 64]!.measures.model);
    sink.finished(sample[i % 64]!);
  }
  const sinkUsPerCall = ((performance.now() - t1) * 1000) / calls;
  return {
    ringBytesPerModel: modelRingBytes(DEFAULT_HISTORY.buckets),
    ringBytesBound: full.ringBytes,
    heapEmptyBytes: empty,
    heapFullBytes: fullBytes,
    fullPollMs: pollMs,
    sinkUsPerCall,
    fullPollJsonBytes: json,
    modelsKept: keep[1]!.modelCount,
  };
}

async function main(): Promise<void> {
  const memory = historyMemory();
  process.stderr.write(`history memory: ${JSON.stringify(memory)}\n`);

  const fakePort = await freePort();
  const fake = startNode(path.join(DIST, 'bench', 'fake-ollama-fast.js'), [String(fakePort), String(await freePort())], {});
  await waitForPort(fakePort);
  try {
    const on: number[] = [];
    const off: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate which runs first, so neither always gets the warmer machine.
      const order = r % 2 === 0 ? [true, false] : [false, true];
      for (const consoleOn of order) {
        const us = await cpuPerCall(fakePort, consoleOn);
        (consoleOn ? on : off).push(us);
        process.stderr.write(`round ${r + 1} console ${consoleOn ? 'on ' : 'off'}: ${us.toFixed(1)} µs CPU per call\n`);
      }
    }
    const idle = await idleCpu(fakePort, false);
    const polled = await idleCpu(fakePort, true);
    process.stderr.write(`idle: ${idle.toFixed(2)} ms CPU/s; with a page polling: ${polled.toFixed(2)} ms CPU/s\n`);
    const result = {
      calls: CALLS,
      rounds: ROUNDS,
      cpuUsPerCallOn: median(on),
      cpuUsPerCallOff: median(off),
      cpuUsPerCallConsole: median(on) - median(off),
      idleCpuMsPerSecond: idle,
      pollingCpuMsPerSecond: polled,
      ...memory,
      node: process.version,
    };
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(path.join(RESULTS, 'console-cost.json'), JSON.stringify(result, null, 2) + '\n');
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  } finally {
    fake.kill('SIGKILL');
    agent.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${SCRIPT}: ${(err as Error).stack ?? String(err)}\n`);
  for (const c of liveChildren()) c.kill('SIGKILL');
  process.exit(1);
});
