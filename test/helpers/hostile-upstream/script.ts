/** The scripts a hostile upstream plays: the steps (write, wait, reset, …) and builders of whole answers. */

/** One move of a scripted answer. */
export type Step =
  /** Write these bytes (waits until the socket can take more: a slow reader slows the script). */
  | { kind: 'write'; data: Buffer }
  /** Do nothing for a while. */
  | { kind: 'wait'; ms: number }
  /** Write `data` every `everyMs`, forever, until the peer goes away. */
  | { kind: 'repeat'; data: Buffer; everyMs: number }
  /** Send a TCP RST (`socket.resetAndDestroy()`). */
  | { kind: 'reset' }
  /** Half-close: send FIN, keep reading. */
  | { kind: 'end' }
  /** Close the connection (FIN, then destroy). */
  | { kind: 'close' }
  /** Stop answering; the connection stays open until the peer closes it. */
  | { kind: 'hang' };

export type Script = Step[];

const CRLF = '\r\n';
const toBuffer = (data: string | Buffer): Buffer => (typeof data === 'string' ? Buffer.from(data, 'utf8') : data);

export const write = (data: string | Buffer): Step => ({ kind: 'write', data: toBuffer(data) });
export const wait = (ms: number): Step => ({ kind: 'wait', ms });
export const repeat = (data: string | Buffer, everyMs: number): Step => ({ kind: 'repeat', data: toBuffer(data), everyMs });
export const reset = (): Step => ({ kind: 'reset' });
export const end = (): Step => ({ kind: 'end' });
export const close = (): Step => ({ kind: 'close' });
export const hang = (): Step => ({ kind: 'hang' });

export type HeaderList = Record<string, string | number> | [string, string | number][];

/** A response head: status line, headers in the given order, blank line. */
export function head(status: number, headers: HeaderList = {}, reason = REASONS[status] ?? 'Unknown', version = 'HTTP/1.1'): string {
  const list = Array.isArray(headers) ? headers : Object.entries(headers);
  return `${version} ${status} ${reason}${CRLF}${list.map(([k, v]) => `${k}: ${v}${CRLF}`).join('')}${CRLF}`;
}

const REASONS: Record<number, string> = { 101: 'Switching Protocols', 200: 'OK', 400: 'Bad Request', 404: 'Not Found', 500: 'Internal Server Error' };

/** One chunk of a chunked body. */
export function chunk(data: string | Buffer): Buffer {
  const b = toBuffer(data);
  return Buffer.concat([Buffer.from(b.length.toString(16) + CRLF), b, Buffer.from(CRLF)]);
}

/** The last chunk, with optional trailer fields. */
export function lastChunk(trailers: Record<string, string> = {}): string {
  return `0${CRLF}${Object.entries(trailers)
    .map(([k, v]) => `${k}: ${v}${CRLF}`)
    .join('')}${CRLF}`;
}

/** A complete answer framed by Content-Length. */
export function reply(status: number, contentType: string, body: string | Buffer, extra: HeaderList = {}): Script {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const extraList = Array.isArray(extra) ? extra : Object.entries(extra);
  return [write(Buffer.concat([Buffer.from(head(status, [['Content-Type', contentType], ['Content-Length', b.length], ...extraList])), b]))];
}

/** A complete chunked answer, one chunk per piece (as Ollama flushes a stream), `gapMs` apart. */
export function chunkedReply(
  status: number,
  contentType: string,
  pieces: (string | Buffer)[],
  opts: { gapMs?: number; extra?: HeaderList; trailers?: Record<string, string> } = {},
): Script {
  const extraList = Array.isArray(opts.extra) ? opts.extra : Object.entries(opts.extra ?? {});
  const steps: Script = [write(head(status, [['Content-Type', contentType], ['Transfer-Encoding', 'chunked'], ...extraList]))];
  for (const piece of pieces) {
    if (opts.gapMs) steps.push(wait(opts.gapMs));
    steps.push(write(chunk(piece)));
  }
  steps.push(write(lastChunk(opts.trailers)));
  return steps;
}

/** The head of a chunked 200 stream, as Ollama starts one. */
export function streamHead(contentType: string): Script {
  return [
    write(
      head(200, [
        ['Content-Type', contentType],
        ['Transfer-Encoding', 'chunked'],
      ]),
    ),
  ];
}

/** `101 Switching Protocols` to a request that asked for no upgrade; then the peer waits, as an upgraded one would. */
export function switchingProtocols(): Script {
  return [
    write(
      head(101, [
        ['Connection', 'Upgrade'],
        ['Upgrade', 'websocket'],
      ]),
    ),
    hang(),
  ];
}

/** Arbitrary bytes, then `then` (default: keep the connection open). */
export function raw(bytes: string | Buffer, then: Step = hang()): Script {
  return [write(bytes), then];
}
