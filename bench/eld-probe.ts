/**
 * An event-loop delay monitor the benchmark reads over the IPC channel: {"type":"stats"} →
 * { eldP99Ms, eldMaxMs, heapUsedMb, heapTotalMb }, after which the monitor resets.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

export function installEldProbe(): void {
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  process.on('message', (msg: { type?: string }) => {
    if (msg?.type !== 'stats') return;
    const mem = process.memoryUsage();
    process.send?.({
      eldP99Ms: eld.percentile(99) / 1e6,
      eldMaxMs: eld.max / 1e6,
      heapUsedMb: mem.heapUsed / 2 ** 20,
      heapTotalMb: mem.heapTotal / 2 ** 20,
    });
    eld.reset();
  });
}
