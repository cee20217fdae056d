/**
 * Delivery over sockets: runs one plan on one connection (its writes, waits, half-closes, resets
 * and pauses) and reads the responses. Every socket has an idle timeout and a hard cap.
 */
import net from 'node:net';
import { ResponseReader } from './reader';
import type { Plan } from './records';

export type ClientEnd = 'answered' | 'server closed' | 'client reset' | 'idle timeout' | 'hard timeout' | 'connect failed' | `error ${string}`;

export interface ClientResult {
  end: ClientEnd;
  statuses: number[];
  broken: boolean;
  /** Headers of the first response. */
  first?: Map<string, string>;
  /** Bodies of the complete responses (with `keepBodies`). */
  bodies: Buffer[];
}

/** Longer than REQUEST_BODY_TIMEOUT_SECONDS (1) and UPSTREAM_IDLE_TIMEOUT_SECONDS (2) in FUZZ_ENV. */
export const IDLE_MS = 2500;
const HARD_MS = 12_000;

export function runPlan(port: number, plan: Plan): Promise<ClientResult> {
  return new Promise((resolve) => new PlanClient(port, plan, resolve).start());
}

/** One plan on one socket: `start` connects, then each part runs as the one before it completes. */
class PlanClient {
  private readonly reader: ResponseReader;
  private readonly socket: net.Socket;
  private settled = false;
  private connected = false;
  private step = 0;
  /** Re-checked on every chunk received while a part waits for the server. */
  private waiting: (() => void) | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    port: number,
    private readonly plan: Plan,
    private readonly resolve: (r: ClientResult) => void,
  ) {
    this.reader = new ResponseReader(plan.methods, plan.keepBodies);
    this.socket = net.connect({ port, host: '127.0.0.1' });
  }

  start(): void {
    const { socket, reader } = this;
    socket.setTimeout(IDLE_MS, () => this.finish('idle timeout'));
    this.later(HARD_MS, () => this.finish('hard timeout'));
    socket.on('error', (err: NodeJS.ErrnoException) => this.finish(this.connected ? `error ${err.code ?? err.message}` : 'connect failed'));
    socket.on('close', () => {
      reader.onClose();
      this.finish(this.answered() ? 'answered' : 'server closed');
    });
    socket.on('end', () => {
      // The server half-closed; give it a moment to close, then stop.
      this.later(200, () => this.finish(this.answered() ? 'answered' : 'server closed'));
    });
    socket.on('data', (c: Buffer) => {
      reader.feed(c);
      this.check();
    });
    socket.once('connect', () => {
      this.connected = true;
      this.run();
    });
  }

  private answered(): boolean {
    return this.reader.complete >= this.plan.expect && this.plan.expect > 0;
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  private finish(end: ClientEnd): void {
    if (this.settled) return;
    this.settled = true;
    for (const t of this.timers) clearTimeout(t);
    if (end === 'client reset') this.socket.resetAndDestroy();
    else this.socket.destroy();
    const { reader } = this;
    this.resolve({ end, statuses: reader.statuses, broken: reader.broken, first: reader.first, bodies: reader.bodies });
  }

  private check(): void {
    if (this.settled) return;
    const w = this.waiting;
    if (w) w();
    if (this.step >= this.plan.parts.length && this.answered()) this.finish('answered');
  }

  /** Runs the next part once `ready` holds (checked now and on every chunk received). */
  private when(ready: () => boolean): void {
    this.waiting = () => {
      if (ready()) {
        this.waiting = undefined;
        this.run();
      }
    };
    this.waiting();
  }

  private run(): void {
    if (this.settled) return;
    const { socket, plan } = this;
    if (this.step >= plan.parts.length) {
      if (plan.expect === 0) this.later(100, () => this.finish('answered'));
      this.check();
      return;
    }
    const part = plan.parts[this.step++];
    switch (part.t) {
      case 'write':
        if (!socket.destroyed && socket.writable) socket.write(part.data);
        return this.run();
      case 'wait':
        return this.later(part.ms, () => this.run());
      case 'end':
        socket.end();
        return this.run();
      case 'reset':
        return this.finish('client reset');
      case 'await-response': {
        const n = part.n;
        return this.when(() => this.reader.complete >= n);
      }
      case 'await-bytes':
        return this.when(() => this.reader.bytes > 0);
      case 'pause-read':
        socket.pause();
        // Our own idle timer must not fire while we are the ones not reading.
        socket.setTimeout(0);
        return this.later(part.ms, () => {
          socket.setTimeout(IDLE_MS, () => this.finish('idle timeout'));
          socket.resume();
          this.run();
        });
    }
  }
}
