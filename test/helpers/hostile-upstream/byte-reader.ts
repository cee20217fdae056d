import type net from 'node:net';

/** Buffers a socket's bytes and hands them out by delimiter or count. */
export class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  private discarding = false;
  private wake: (() => void) | undefined;

  constructor(socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      if (this.discarding) return;
      this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
      this.poke();
    });
    const stop = () => {
      this.ended = true;
      this.poke();
    };
    socket.on('end', stop);
    socket.on('close', stop);
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private async more(): Promise<boolean> {
    if (this.ended) return false;
    await new Promise<void>((r) => (this.wake = r));
    return true;
  }

  /** The bytes up to `delim` (consumed with it), or undefined if the connection ends first. */
  async upTo(delim: string): Promise<Buffer | undefined> {
    for (;;) {
      const at = this.buf.indexOf(delim);
      if (at !== -1) {
        const out = this.buf.subarray(0, at);
        this.buf = this.buf.subarray(at + delim.length);
        return out;
      }
      if (!(await this.more())) return undefined;
    }
  }

  /** Consumes `n` bytes; false if the connection ends first. */
  async skip(n: number): Promise<boolean> {
    while (n > 0) {
      if (this.buf.length === 0 && !(await this.more())) return false;
      const take = Math.min(n, this.buf.length);
      this.buf = this.buf.subarray(take);
      n -= take;
    }
    return true;
  }

  /** Drops whatever arrives from now on (after the script stopped reading). */
  discard(): void {
    this.discarding = true;
    this.buf = Buffer.alloc(0);
  }
}
