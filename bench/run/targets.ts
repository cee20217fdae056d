/** The targets, started: the fake directly, nginx, the bare Node proxy, the gateway with and without tracing. */
import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { childPids, findNginx, freePort, startNginx, startNode, waitForPort } from '../../test/helpers/procs';
import { ipcStats } from './measure';
import { BENCH_WORKERS, type Target, type TargetName } from './scenarios';

export interface Started {
  targets: Target[];
  /** Targets skipped, and why. */
  notes: string[];
}

/** Starts each of `names` in front of the fake on `fakePort` (tracing exports to `otlpPort`); every process started goes into `children`. */
export async function startTargets(names: TargetName[], fakePort: number, otlpPort: number, tmp: string, children: ChildProcess[]): Promise<Started> {
  const dist = path.resolve(__dirname, '..', '..');
  const targets: Target[] = [];
  const notes: string[] = [];
  for (const name of names) {
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
    if (name === 'node-baseline' || name === 'undici-baseline') {
      const script = name === 'node-baseline' ? 'baseline-proxy.js' : 'undici-proxy.js';
      const child = startNode(path.join(dist, 'bench', script), [String(port), String(fakePort)], {}, true);
      children.push(child);
      await waitForPort(port);
      targets.push({ name, port, pids: () => [child.pid!], eld: ipcStats(child) });
      continue;
    }
    targets.push(await startGatewayTarget(name, port, fakePort, otlpPort, dist, children));
  }
  return { targets, notes };
}

async function startGatewayTarget(name: TargetName, port: number, fakePort: number, otlpPort: number, dist: string, children: ChildProcess[]): Promise<Target> {
  const workers = name.endsWith('-workers');
  const env: Record<string, string> = {
    OLLAMA_HOST: `127.0.0.1:${fakePort}`,
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'INFO',
    OLLAMA_POLL_INTERVAL_SECONDS: '15',
    GATEWAY_WORKERS: String(workers ? BENCH_WORKERS : 1),
    // The probe's live-heap reading runs a full collection at the end of each run.
    NODE_OPTIONS: ['--expose-gc', process.env.BENCH_NODE_OPTIONS ?? ''].join(' ').trim(),
  };
  // The usage ledger is on by default (SQLite in a folder of the run's own); one target runs without it.
  if (name === 'gateway-no-ledger') env.LEDGER_URL = 'off';
  else env.GATEWAY_DATA_DIR = path.join(os.tmpdir(), `ollama-gw-bench-ledger-${process.pid}-${port}`);
  if (name.startsWith('gateway-traced')) Object.assign(env, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlpPort}`, OTEL_TRACES_EXPORTER: 'otlp' });
  const child = startNode(path.join(dist, 'bench', 'gateway-probe.js'), [], env, true);
  children.push(child);
  await waitForPort(port);
  // Every worker must be up before the first run (the port answers once the first one is).
  if (workers) for (let i = 0; i < 100 && childPids(child.pid!).length < BENCH_WORKERS; i++) await new Promise((r) => setTimeout(r, 100));
  return { name, port, pids: () => [child.pid!, ...(workers ? childPids(child.pid!) : [])], eld: ipcStats(child) };
}
