/**
 * An event-loop delay monitor the benchmark and the soak read over the IPC channel:
 * {"type":"stats"} → { eldP99Ms, eldMaxMs, heapUsedMb, heapTotalMb, rssMb, handles, sockets },
 * after which the monitor resets. With `gc: true` (and --expose-gc) it collects garbage first.
 *
 * In the primary of a gateway with several workers (node:cluster), the question goes to every
 * worker (each runs this probe too) and the answer is the worst event-loop delay, the largest
 * worker's heap and memory, and the workers' figures one by one.
 */
import cluster from 'node:cluster';
import { monitorEventLoopDelay } from 'node:perf_hooks';

interface Stats {
  eldP99Ms: number;
  eldMaxMs: number;
  heapUsedMb: number;
  heapTotalMb: number;
  rssMb: number;
  handles: number;
  sockets: number;
  workers?: Stats[];
}

type StatsRequest = { type?: string; gc?: boolean };

function own(eld: ReturnType<typeof monitorEventLoopDelay>, msg: StatsRequest): Stats {
  if (msg.gc) (globalThis as { gc?: () => void }).gc?.();
  const mem = process.memoryUsage();
  const resources = process.getActiveResourcesInfo();
  const stats = {
    eldP99Ms: eld.percentile(99) / 1e6,
    eldMaxMs: eld.max / 1e6,
    heapUsedMb: mem.heapUsed / 2 ** 20,
    heapTotalMb: mem.heapTotal / 2 ** 20,
    rssMb: mem.rss / 2 ** 20,
    handles: resources.length,
    sockets: resources.filter((r) => r === 'TCPSocketWrap').length,
  };
  eld.reset();
  return stats;
}

async function fromWorkers(msg: StatsRequest): Promise<Stats[]> {
  const workers = Object.values(cluster.workers ?? {}).filter((w) => w !== undefined && w.isConnected());
  return Promise.all(
    workers.map(
      (w) =>
        new Promise<Stats>((resolve) => {
          const onMessage = (m: { probe?: Stats }) => {
            if (m?.probe === undefined) return;
            w!.off('message', onMessage);
            resolve(m.probe);
          };
          w!.on('message', onMessage);
          w!.send({ probe: 'stats', gc: msg.gc });
        }),
    ),
  );
}

export function installEldProbe(): void {
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  if (cluster.isWorker) {
    process.on('message', (msg: { probe?: string; gc?: boolean }) => {
      if (msg?.probe === 'stats') process.send?.({ probe: own(eld, { gc: msg.gc }) });
    });
    return;
  }
  process.on('message', (msg: StatsRequest) => {
    if (msg?.type !== 'stats') return;
    const mine = own(eld, msg);
    void fromWorkers(msg).then((workers) => {
      if (workers.length === 0) return process.send?.(mine);
      const max = (f: (s: Stats) => number) => Math.max(...workers.map(f));
      process.send?.({
        eldP99Ms: max((s) => s.eldP99Ms),
        eldMaxMs: max((s) => s.eldMaxMs),
        heapUsedMb: max((s) => s.heapUsedMb),
        heapTotalMb: max((s) => s.heapTotalMb),
        rssMb: max((s) => s.rssMb),
        handles: mine.handles,
        sockets: mine.sockets,
        workers,
      });
    });
  });
}
