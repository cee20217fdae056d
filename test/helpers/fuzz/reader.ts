/**
 * Reads the responses on one fuzz socket as the bytes arrive: just enough HTTP/1.1 to know when a
 * response ends (Content-Length, chunked, or until the close), keeping at most 1 MiB of a head or a
 * chunk-size line and, only when asked, the bodies.
 */

type State = 'head' | 'body' | 'size' | 'data' | 'crlf' | 'trailers' | 'close' | 'dead';
/** What a step of `feed` returns instead of the next offset: stop reading this chunk, or keep its rest for the next one. */
const STOP = -1;
const KEEP = -2;

export class ResponseReader {
  statuses: number[] = [];
  /** Headers of the first response (lower-case names). */
  first: Map<string, string> | undefined;
  complete = 0;
  bytes = 0;
  broken = false;
  /** Bodies of the complete responses, when kept. */
  readonly bodies: Buffer[] = [];
  private state: State = 'head';
  private pending: Buffer = Buffer.alloc(0);
  private remaining = 0;
  private current: Buffer[] = [];

  constructor(
    private readonly methods: string[],
    private readonly keepBodies = false,
  ) {}

  feed(chunk: Buffer): void {
    this.bytes += chunk.length;
    const buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    let i = 0;
    while (i < buf.length) {
      const next = this.step(buf, i);
      if (next === STOP) return;
      if (next === KEEP) return this.keep(buf.subarray(i));
      i = next;
    }
  }

  onClose(): void {
    if (this.state === 'close') this.done();
  }

  /** Keeps an incomplete head or line for the next chunk, unless it is already absurdly long. */
  private keep(rest: Buffer): void {
    this.pending = rest;
    if (this.pending.length > 1 << 20) {
      this.state = 'dead';
      this.broken = true;
      this.pending = Buffer.alloc(0);
    }
  }

  /** Reads what the current state expects from `buf` at `i`; returns the offset after it (or STOP, KEEP). */
  private step(buf: Buffer, i: number): number {
    switch (this.state) {
      case 'dead':
        return STOP;
      case 'close':
        if (this.keepBodies) this.current.push(Buffer.from(buf.subarray(i)));
        return STOP;
      case 'head': {
        const end = buf.indexOf('\r\n\r\n', i);
        if (end === -1) return KEEP;
        this.onHead(buf.toString('latin1', i, end));
        return end + 4;
      }
      case 'body':
      case 'data':
      case 'crlf':
        return this.counted(buf, i);
      case 'size':
        return this.sizeLine(buf, i);
      case 'trailers': {
        const nl = buf.indexOf('\r\n', i);
        if (nl === -1) return KEEP;
        if (nl === i) this.done();
        return nl + 2;
      }
    }
  }

  /** Bytes of a counted stretch: a Content-Length body, a chunk's data, or the CRLF after it. */
  private counted(buf: Buffer, i: number): number {
    const n = Math.min(this.remaining, buf.length - i);
    if (this.keepBodies && this.state !== 'crlf') this.current.push(Buffer.from(buf.subarray(i, i + n)));
    this.remaining -= n;
    if (this.remaining === 0) {
      if (this.state === 'body') this.done();
      else if (this.state === 'data') {
        this.state = 'crlf';
        this.remaining = 2;
      } else this.state = 'size';
    }
    return i + n;
  }

  /** A chunk-size line. */
  private sizeLine(buf: Buffer, i: number): number {
    const nl = buf.indexOf('\r\n', i);
    if (nl === -1) return KEEP;
    const size = parseInt(buf.toString('latin1', i, nl).split(';')[0].trim(), 16);
    if (!Number.isFinite(size) || size < 0) {
      this.state = 'dead';
      this.broken = true;
    } else if (size === 0) this.state = 'trailers';
    else {
      this.state = 'data';
      this.remaining = size;
    }
    return nl + 2;
  }

  private onHead(head: string): void {
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    if (!m) {
      this.state = 'dead';
      this.broken = true;
      return;
    }
    const status = Number(m[1]);
    if (status >= 100 && status < 200 && status !== 101) return; // interim (100 Continue)
    this.statuses.push(status);
    if (status === 101) {
      this.state = 'dead';
      return;
    }
    const headers = new Map<string, string>();
    for (const line of head.split('\r\n').slice(1)) {
      const c = line.indexOf(':');
      if (c > 0) headers.set(line.slice(0, c).trim().toLowerCase(), line.slice(c + 1).trim());
    }
    this.first ??= headers;
    const method = this.methods[this.statuses.length - 1] ?? 'GET';
    if (method === 'HEAD' || status === 204 || status === 304) return this.done();
    if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
      this.state = 'size';
      return;
    }
    const cl = headers.get('content-length');
    if (cl !== undefined) {
      this.remaining = Number(cl);
      if (!Number.isFinite(this.remaining) || this.remaining < 0) {
        this.state = 'dead';
        this.broken = true;
      } else if (this.remaining === 0) this.done();
      else this.state = 'body';
      return;
    }
    this.state = 'close';
  }

  private done(): void {
    this.complete++;
    this.state = 'head';
    if (this.keepBodies) this.bodies.push(Buffer.concat(this.current));
    this.current = [];
  }
}
