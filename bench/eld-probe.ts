/**
 * An event-loop delay monitor the benchmark and the soak read over the IPC channel:
 * {"type":"stats"} → { eldP99Ms, eldMaxMs, heapUsedMb, heapTotalMb, rssMb, handles, sockets },
 * after which the monitor resets. With `gc: true` (and --expose-gc) it collects garbage first.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

export function installEldProbe(): void {
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  process.on('message', (msg: { type?: string; gc?: boolean }) => {
    if (msg?.type !== 'stats') return;
    if (msg.gc) (globalThis as { gc?: () => void }).gc?.();
    const mem = process.memoryUsage();
    const resources = process.getActiveResourcesInfo();
    process.send?.({
      eldP99Ms: eld.percentile(99) / 1e6,
      eldMaxMs: eld.max / 1e6,
      heapUsedMb: mem.heapUsed / 2 ** 20,
      heapTotalMb: mem.heapTotal / 2 ** 20,
      rssMb: mem.rss / 2 ** 20,
      handles: resources.length,
      sockets: resources.filter((r) => r === 'TCPSocketWrap').length,
    });
    eld.reset();
  });
}
