/**
 * The primary process of a gateway with `GATEWAY_WORKERS` > 1. It serves nothing itself: it forks
 * the workers (node:cluster shares the one listening port and hands connections out in turn),
 * replaces a worker that dies, relays the polling worker's view of Ollama to the others, and
 * answers a worker's "gather" so that any worker can serve a scrape of the whole gateway.
 *
 * Worker 0 polls Ollama and exports its state gauges; whichever process holds index 0 after a
 * restart takes that role. A worker's last scrape is kept: when it has died its counters stay in
 * the sum (so no counter of the gateway ever goes back), and when it is too busy to answer in
 * time the previous piece stands in. The console's history is kept the same way: what a worker
 * that died had recorded up to the last gather stays in the console, folded into one snapshot.
 *
 * The primary merges the metrics itself (it serves nothing else, so the merge costs no worker's
 * event loop) from each live worker's latest piece and what exited workers had counted: a worker
 * that answered and then died during a gather is in the sum once, as retired, never also as live.
 * Gathers of the metrics are shared by every asking worker and paced by their cost (pacing.ts).
 */
import cluster, { type Worker } from 'node:cluster';
import { performance } from 'node:perf_hooks';
import { exemplarsLine, mergeExemplars } from '../../otel/exemplars';
import { mergeExpositions, type ExpositionPiece } from '../../otel/exposition-merge';
import { DEFAULT_HISTORY } from '../../otel/history/history';
import { retireSnapshot, type ConsoleSnapshot } from '../../otel/history/snapshot';
import { PacedRendering } from '../../otel/pacing';
import { ollamaOrigins, type Config } from '../config';
import type { Logger } from '../logger';
import { isMessage, WORKER_INDEX_ENV, type GatherKind, type Piece, type PolledState, type ToPrimary, type ToWorker } from './messages';

/** How long a gather waits for the workers' pieces. */
const GATHER_TIMEOUT_MS = 2000;
/** Wait before replacing a worker that died, so a crash loop does not spin. */
const RESTART_DELAY_MS = 1000;

interface Slot {
  worker: Worker | undefined;
  listening: boolean;
  /** The last piece of each kind this slot's workers reported. */
  last: Map<GatherKind, string>;
}

interface PendingGather {
  kind: GatherKind;
  waiting: Set<number>;
  pieces: Map<number, string>;
  timer: NodeJS.Timeout;
  done: (pieces: Map<number, string>) => void;
}

/**
 * The metrics of the whole gateway: each live worker's latest piece, and one exposition of what
 * every exited worker had counted. A piece moves from live to retired when its worker exits, in
 * one step, so it is always counted exactly once.
 */
export class MetricsBook {
  private readonly live = new Map<number, string>();
  private retired = '';
  /** What each counter and histogram series was last written as (see mergeExpositions). */
  private readonly floors = new Map<string, number>();

  /** The latest piece of the worker in `slot`. */
  report(slot: number, text: string): void {
    this.live.set(slot, text);
  }

  /** The worker in `slot` has exited: its last piece now counts as retired. */
  retire(slot: number): void {
    const last = this.live.get(slot);
    this.live.delete(slot);
    if (last !== undefined) this.retired = mergeExpositions([{ text: this.retired }, { text: last, countersOnly: true }]);
  }

  /** The exposition of the whole gateway now. */
  merged(): string {
    const pieces: ExpositionPiece[] = [...this.live.entries()].sort((a, b) => a[0] - b[0]).map(([, text]) => ({ text }));
    if (this.retired !== '') pieces.push({ text: this.retired, countersOnly: true });
    // The workers' exemplars ride on a comment line of their own, the newest per bucket.
    return mergeExpositions(pieces, this.floors) + exemplarsLine(mergeExemplars([...this.live.values()]));
  }
}

export function runPrimary(config: Config, log: Logger, destinations: { traces: string; metrics: string[] }): void {
  const n = config.workers;
  const slots: Slot[] = Array.from({ length: n }, () => ({ worker: undefined, listening: false, last: new Map() }));
  /** What exited workers had counted is folded into one exposition (bounded whatever the restarts). */
  const book = new MetricsBook();
  /** What exited workers' consoles had recorded, up to their last gather (one snapshot, bounded). */
  let retiredConsole: string | undefined;
  let polled: PolledState | undefined;
  let stopping = false;
  let announced = false;
  let nextGather = 1;
  const pending = new Map<number, PendingGather>();

  const send = (w: Worker | undefined, m: ToWorker) => {
    if (w && w.isConnected()) w.send(m);
  };

  const finishGather = (id: number) => {
    const g = pending.get(id);
    if (!g) return;
    pending.delete(id);
    clearTimeout(g.timer);
    g.done(g.pieces);
  };

  /** Asks every listening worker for its piece of `kind`; resolves when all answered, or in GATHER_TIMEOUT_MS. */
  const collectAll = (kind: GatherKind): Promise<Map<number, string>> =>
    new Promise((done) => {
      const id = nextGather++;
      const waiting = new Set<number>();
      slots.forEach((slot, i) => {
        if (slot.worker?.isConnected() && slot.listening) waiting.add(i);
      });
      const g: PendingGather = { kind, waiting, pieces: new Map(), timer: setTimeout(() => finishGather(id), GATHER_TIMEOUT_MS), done };
      g.timer.unref();
      pending.set(id, g);
      if (waiting.size === 0) return finishGather(id);
      for (const i of waiting) send(slots[i]!.worker, { gw: 'collect', id, kind });
    });

  // Every worker asking for the metrics while a gather is under way gets that gather's merge.
  const metrics = new PacedRendering<string>(async () => {
    await collectAll('metrics');
    const t0 = performance.now();
    const value = book.merged();
    return { value, costMs: performance.now() - t0 };
  });

  const gather = (asker: Worker, askerId: number, kind: GatherKind) => {
    if (kind === 'metrics') {
      metrics.get().then(
        (data) => send(asker, { gw: 'gathered', id: askerId, pieces: [{ worker: -1, data }] }),
        // No answer: the asker's scrape times out and gets 503, rather than a partial sum.
        (err: unknown) => log.error({ reason: (err as Error).message }, 'merging the metrics of the workers failed'),
      );
      return;
    }
    collectAll(kind).then((answered) => {
      const pieces: Piece[] = [];
      slots.forEach((slot, i) => {
        const data = answered.get(i) ?? slot.last.get(kind);
        if (data !== undefined) pieces.push({ worker: i, data });
      });
      if (kind === 'console' && retiredConsole !== undefined) pieces.push({ worker: -1, data: retiredConsole, retired: true });
      send(asker, { gw: 'gathered', id: askerId, pieces });
    });
  };

  const onMessage = (index: number, worker: Worker, m: unknown) => {
    if (!isMessage<ToPrimary>(m)) return;
    const slot = slots[index]!;
    switch (m.gw) {
      case 'listening':
        slot.listening = true;
        if (!announced && slots.every((s) => s.listening)) {
          announced = true;
          // Whatever LOG_LEVEL says: where it listens and where telemetry goes is always worth a line.
          log
            .child({}, { level: 'info' })
            .info({ listen: `${config.host}:${m.port}`, ollama: ollamaOrigins(config), workers: n, ...destinations }, 'gateway listening');
        }
        return;
      case 'state':
        polled = m.polled;
        for (const s of slots) if (s.worker !== worker) send(s.worker, { gw: 'state', polled: m.polled });
        return;
      case 'gather':
        return gather(worker, m.id, m.kind);
      case 'collected': {
        // A message of a worker this slot no longer holds (it has exited and was retired) is stale.
        if (slot.worker !== worker) return;
        const g = pending.get(m.id);
        slot.last.set(m.kind, m.data);
        if (m.kind === 'metrics') book.report(index, m.data);
        if (!g) return;
        g.pieces.set(index, m.data);
        g.waiting.delete(index);
        if (g.waiting.size === 0) finishGather(m.id);
        return;
      }
    }
  };

  const retireConsole = (last: string | undefined) => {
    if (last === undefined) return;
    try {
      const before = retiredConsole === undefined ? undefined : (JSON.parse(retiredConsole) as ConsoleSnapshot);
      retiredConsole = JSON.stringify(retireSnapshot(before, JSON.parse(last) as ConsoleSnapshot, Date.now(), DEFAULT_HISTORY.maxModels));
    } catch (err) {
      log.error({ reason: (err as Error).message }, "keeping an exited worker's console history failed");
    }
  };

  const fork = (index: number) => {
    const worker = cluster.fork({ [WORKER_INDEX_ENV]: String(index) });
    const slot = slots[index]!;
    slot.worker = worker;
    slot.listening = false;
    worker.on('message', (m: unknown) => onMessage(index, worker, m));
    // A new worker starts from the latest state the poller reported (the poller itself re-polls).
    if (polled !== undefined && index !== 0) worker.once('online', () => send(worker, { gw: 'state', polled: polled! }));
    worker.on('exit', (code, signal) => {
      if (slot.worker !== worker) return;
      const everListened = slot.listening;
      slot.worker = undefined;
      slot.listening = false;
      book.retire(index);
      retireConsole(slot.last.get('console'));
      slot.last.clear();
      for (const [id, g] of pending) {
        if (g.waiting.delete(index) && g.waiting.size === 0) finishGather(id);
      }
      if (stopping) {
        if (slots.every((s) => s.worker === undefined)) {
          log.info('shutdown complete');
          log.flush(() => process.exit(0));
        }
        return;
      }
      if (!everListened && !announced) {
        // It could not start (the port is taken, say): the others would fail alike.
        log.error({ worker: index, code, signal }, 'a worker failed to start; stopping');
        stopping = true;
        for (const s of slots) s.worker?.process.kill('SIGTERM');
        log.flush(() => process.exit(1));
        return;
      }
      log.error({ worker: index, code, signal }, 'a worker exited; starting another in its place');
      setTimeout(() => {
        if (!stopping) fork(index);
      }, RESTART_DELAY_MS).unref();
    });
  };

  for (let i = 0; i < n; i++) fork(i);

  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, workers: n }, 'shutting down: draining in-flight requests');
    for (const s of slots) s.worker?.process.kill('SIGTERM');
    if (slots.every((s) => s.worker === undefined)) log.flush(() => process.exit(0));
    // The workers exit within their grace; past it and a margin, they are not waited for.
    setTimeout(() => {
      for (const s of slots) s.worker?.process.kill('SIGKILL');
      log.flush(() => process.exit(0));
    }, config.shutdownGraceMs + 10_000).unref();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  // Each worker re-reads the tenants file itself.
  process.on('SIGHUP', () => {
    for (const s of slots) s.worker?.process.kill('SIGHUP');
  });
}
