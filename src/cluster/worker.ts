/**
 * A worker's side of the cluster channel (see primary.ts): it gathers every worker's piece when it
 * serves a scrape, gives its own piece when asked, and publishes (worker 0) or receives (the
 * others) the latest poll of Ollama.
 */
import { isMessage, type GatherKind, type Piece, type PolledState, type ToPrimary, type ToWorker } from './messages';

/** Longest a worker waits for the primary's answer to a gather (the primary itself waits less). */
const GATHER_WAIT_MS = 5000;

export class WorkerLink {
  private nextId = 1;
  private readonly waiting = new Map<number, (pieces: Piece[]) => void>();
  private readonly collectors = new Map<GatherKind, () => Promise<string>>();
  private stateListener: ((polled: PolledState) => void) | undefined;

  constructor(
    /** This worker's index (0 … N−1); worker 0 polls Ollama. */
    readonly index: number,
    private readonly channel: NodeJS.Process = process,
  ) {
    channel.on('message', (m: unknown) => this.onMessage(m));
  }

  get polls(): boolean {
    return this.index === 0;
  }

  /** How this worker answers a `collect` of `kind`. */
  collect(kind: GatherKind, fn: () => Promise<string>): void {
    this.collectors.set(kind, fn);
  }

  /** Every worker's piece of `kind` (this one's included); rejects when the primary does not answer. */
  gather(kind: GatherKind): Promise<Piece[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error('the other workers did not answer in time'));
      }, GATHER_WAIT_MS);
      this.waiting.set(id, (pieces) => {
        clearTimeout(timer);
        resolve(pieces);
      });
      this.send({ gw: 'gather', id, kind });
    });
  }

  listening(port: number): void {
    this.send({ gw: 'listening', port });
  }

  /** Worker 0: the latest poll, for the primary to pass on. */
  publishState(polled: PolledState): void {
    this.send({ gw: 'state', polled });
  }

  /** The other workers: told each poll that worker 0 made. */
  onState(fn: (polled: PolledState) => void): void {
    this.stateListener = fn;
  }

  private send(m: ToPrimary): void {
    if (this.channel.connected && this.channel.send) this.channel.send(m);
  }

  private onMessage(m: unknown): void {
    if (!isMessage<ToWorker>(m)) return;
    switch (m.gw) {
      case 'gathered':
        this.waiting.get(m.id)?.(m.pieces);
        this.waiting.delete(m.id);
        return;
      case 'state':
        this.stateListener?.(m.polled);
        return;
      case 'collect': {
        const fn = this.collectors.get(m.kind);
        const reply = (data: string) => this.send({ gw: 'collected', id: m.id, kind: m.kind, data });
        if (!fn) return reply('');
        // A piece that cannot be had now is not sent: the primary uses this worker's previous one.
        fn().then(reply, () => {});
        return;
      }
    }
  }
}
