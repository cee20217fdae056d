/** One measurement: a scenario's load against one target (autocannon), with CPU, memory, event-loop delay and, where asked, first-byte times. */
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { cpuMs, rssBytes } from '../../test/helpers/procs';
import type { Measurement, ProbeStats, Scenario, Target } from './scenarios';

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

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** `idleMs`: how long the probe's idle reading takes (the timer's own offset, subtracted from the loaded one). */
export async function measure(target: Target, s: Scenario, seconds: number, round: number, idleMs = 1000): Promise<Measurement> {
  const pids = target.pids();
  let idle: ProbeStats | undefined;
  if (target.eld) {
    await target.eld(); // reset
    await new Promise((r) => setTimeout(r, idleMs));
    idle = await target.eld();
  }
  const cpu0 = pids.reduce((n, p) => n + cpuMs(p), 0);
  let peakRss = 0;
  let peakOne = 0;
  const sampler = setInterval(() => {
    const each = pids.map(rssBytes);
    peakRss = Math.max(
      peakRss,
      each.reduce((n, b) => n + b, 0),
    );
    peakOne = Math.max(peakOne, ...each);
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
  // The live heap: what is left after a full collection (the probe runs one when asked).
  const afterGc = await target.eld?.(true);
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
    cpuUsPerChunk: pids.length && requests ? (cpu * 1000) / (requests * s.chunks) : undefined,
    peakRssMb: pids.length ? peakRss / 1024 / 1024 : undefined,
    peakRssOneMb: pids.length ? peakOne / 1024 / 1024 : undefined,
    eldP99Ms: eld && idle ? Math.max(0, eld.eldP99Ms - idle.eldP99Ms) : undefined,
    eldIdleP99Ms: idle?.eldP99Ms,
    liveHeapMb: afterGc?.heapUsedMb,
    heapTotalMb: eld?.heapTotalMb,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

export function ipcStats(child: ChildProcess): (gc?: boolean) => Promise<ProbeStats> {
  return (gc = false) =>
    new Promise((resolve) => {
      child.once('message', (m) => resolve(m as ProbeStats));
      child.send({ type: 'stats', gc });
    });
}
