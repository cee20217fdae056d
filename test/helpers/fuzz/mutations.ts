/** Mutations of generated requests: their bodies, their chunked framing, their headers; random bytes; byte-level damage. */
import { enc, latin1, type Req } from './records';
import type { Rng } from './rng';

/** Body mutations: garbage, truncation, odd JSON. */
export function mutateBody(r: Rng, body: Buffer, model: unknown): { body: Buffer; note: string } {
  const m = JSON.stringify(typeof model === 'string' ? model : 'llama3.2');
  return r.weighted<() => { body: Buffer; note: string }>([
    [3, () => ({ body: r.bytes(r.range(1, 2000)), note: 'random body' })],
    [3, () => ({ body: body.subarray(0, r.int(body.length)), note: 'truncated JSON' })],
    [2, () => ({ body: enc(`{"model": ${m}, oops`), note: 'malformed JSON' })],
    [2, () => ({ body: Buffer.alloc(0), note: 'empty body' })],
    [2, () => ({ body: enc(r.pick(['null', '[]', '"x"', '123', 'true', '{}', '[{"model":"llama3.2"}]'])), note: 'non-object JSON' })],
    [1, () => ({ body: enc(`{"model":${m},"messages":${'['.repeat(50_000)}${']'.repeat(50_000)}}`), note: 'deep nesting' })],
    [1, () => ({ body: enc(`{"model":${m},"x":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}`), note: 'deep objects' })],
    [2, () => ({ body: enc(`{"model":${m},"model":"fuzz-reset","model":123}`), note: 'duplicate keys' })],
    [1, () => ({ body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body]), note: 'BOM' })],
    [1, () => ({ body: Buffer.from(body.toString('utf8'), 'utf16le'), note: 'UTF-16' })],
    [1, () => ({ body: Buffer.concat([enc('{"model":"'), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82]), enc('","prompt":"x"}')]), note: 'invalid UTF-8' })],
    [1, () => ({ body: enc(`{"model":${m},"prompt":"x",}`), note: 'trailing comma' })],
    [1, () => ({ body: enc(`{"model":${m},"n":NaN,"i":Infinity}`), note: 'NaN literal' })],
    [1, () => ({ body: enc(`{"model":${m},"n":${'9'.repeat(400)}}`), note: 'huge number' })],
    [1, () => ({ body: Buffer.concat([body, enc('\n{"model":"llama3.2"}')]), note: 'two documents' })],
    [1, () => ({ body: Buffer.concat([body, enc(' '.repeat(r.range(1, 5000)))]), note: 'trailing whitespace' })],
  ])();
}

/** A chunked encoding of `body`; with `bad`, one framing error. */
export function chunkedEncoding(r: Rng, body: Buffer, bad: boolean, notes: string[]): Buffer {
  const pieces: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    const n = Math.min(body.length - at, r.chance(0.5) ? r.range(1, 64) : r.range(64, 70_000));
    let size = n.toString(16);
    if (r.chance(0.2)) size = size.toUpperCase();
    if (r.chance(0.05)) size = '000' + size;
    const ext = r.chance(0.05) ? ';name=value' : '';
    pieces.push(latin1(`${size}${ext}\r\n`), body.subarray(at, at + n), latin1('\r\n'));
    at += n;
  }
  const trailer = r.chance(0.05) ? 'X-Trailer: 1\r\n' : '';
  pieces.push(latin1(`0\r\n${trailer}\r\n`));
  if (!bad) return Buffer.concat(pieces);
  const kind = r.int(10);
  const last = pieces.length - 1;
  switch (kind) {
    case 0:
      pieces.splice(0, 1, latin1('zz\r\n'));
      notes.push('chunked: non-hex size');
      break;
    case 1:
      pieces.splice(0, 1, latin1(`${(body.length + 100).toString(16)}\r\n`));
      notes.push('chunked: size larger than data');
      break;
    case 2:
      pieces.splice(0, 1, latin1('1\r\n'));
      notes.push('chunked: size smaller than data');
      break;
    case 3:
      if (pieces.length > 1) pieces.splice(2, 1);
      notes.push('chunked: CRLF missing after data');
      break;
    case 4:
      pieces.splice(last, 1);
      notes.push('chunked: no last chunk');
      break;
    case 5:
      pieces.splice(0, 1, latin1('ffffffffffffffffffff\r\n'));
      notes.push('chunked: size overflow');
      break;
    case 6:
      pieces.splice(0, 1, latin1('-1\r\n'));
      notes.push('chunked: negative size');
      break;
    case 7:
      pieces.splice(last, 1, latin1(`0;${'e'.repeat(20_000)}\r\n\r\n`));
      notes.push('chunked: huge extension');
      break;
    case 8:
      pieces.splice(last, 1, latin1('0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n'));
      notes.push('chunked: framing headers in trailer');
      break;
    default:
      for (let p = 0; p < pieces.length; p++) pieces[p] = latin1(pieces[p].toString('latin1').replace(/\r\n/g, '\n'));
      notes.push('chunked: bare LF');
  }
  return Buffer.concat(pieces);
}

/** Header mutations: framing headers, odd names and values, sizes. */
export function mutateHeaders(r: Rng, req: Req, notes: string[]): void {
  const n = r.range(1, 2);
  for (let k = 0; k < n; k++) {
    const len = req.framing === 'chunked' ? (req.rawChunked?.length ?? 0) : req.body.length;
    const m = r.int(24);
    if (m < 8) mutateFraming(r, req, notes, m, len);
    else if (m < 16) mutateSyntax(r, req, notes, m);
    else mutateMeaning(r, req, notes, m);
  }
}

/** Mutations 0–7: Content-Length and Transfer-Encoding that disagree with the body, or with each other. */
function mutateFraming(r: Rng, req: Req, notes: string[], m: number, len: number): void {
  switch (m) {
    case 0:
      req.headers.push(['Content-Length', String(len)], ['Content-Length', String(len)]);
      req.framing = 'none';
      notes.push('duplicate equal Content-Length');
      break;
    case 1:
      req.headers.push(['Content-Length', String(len)], ['Content-Length', String(len + 1)]);
      req.framing = 'none';
      notes.push('conflicting Content-Length');
      break;
    case 2:
      req.headers.push(['Content-Length', r.pick(['-1', '+5', '0x10', ' 12 ', '1e3', 'abc', '99999999999999999999', '', `${len}, ${len}`])]);
      req.framing = 'none';
      notes.push('odd Content-Length');
      break;
    case 3:
      req.headers.push(['Content-Length', String(len + r.range(1, 500))]);
      req.framing = 'none';
      notes.push('Content-Length over the body (body never completes)');
      break;
    case 4:
      if (len > 1) {
        req.headers.push(['Content-Length', String(r.int(len))]);
        req.framing = 'none';
        notes.push('Content-Length under the body (rest is a next "request")');
      }
      break;
    case 5:
      req.headers.push(['Transfer-Encoding', 'chunked'], ['Content-Length', String(len)]);
      if (req.framing === 'length') req.rawChunked = chunkedEncoding(r, req.body, false, notes);
      req.framing = 'none';
      notes.push('Transfer-Encoding and Content-Length');
      break;
    case 6:
      req.headers.push(['Transfer-Encoding', r.pick(['gzip', 'gzip, chunked', 'chunked, gzip', 'identity', 'Chunked', 'chunked ', 'chunked;q=1', 'x-custom'])]);
      if (req.framing === 'length') req.rawChunked = chunkedEncoding(r, req.body, false, notes);
      req.framing = 'none';
      notes.push('odd Transfer-Encoding');
      break;
    case 7:
      req.headers.push(['Transfer-Encoding', 'chunked'], ['Transfer-Encoding', 'chunked']);
      if (req.framing === 'length') req.rawChunked = chunkedEncoding(r, req.body, false, notes);
      req.framing = 'none';
      notes.push('duplicate Transfer-Encoding');
      break;
  }
}

/** Mutations 8–15: header fields and lines that break the syntax (NUL, bare CR or LF, obs-fold, non-token names, many fields). */
function mutateSyntax(r: Rng, req: Req, notes: string[], m: number): void {
  switch (m) {
    case 8:
      req.headers.push(['Transfer-Encoding ', 'chunked']);
      notes.push('space before colon');
      break;
    case 9:
      req.headers.push(['X-Nul', 'a\u0000b']);
      notes.push('NUL in header value');
      break;
    case 10:
      req.headers.push(['X-Folded', 'a\r\n continued']);
      notes.push('obs-fold');
      break;
    case 11:
      req.headers.push(['Bad(Name)', 'x']);
      notes.push('non-token header name');
      break;
    case 12:
      req.headers.push(['X-Utf8', 'ünïcödé 🦙']);
      notes.push('UTF-8 header value');
      break;
    case 13:
      req.headers.push(['X-Bare-CR', 'a\rb']);
      notes.push('bare CR in value');
      break;
    case 14:
      req.eol = '\n';
      notes.push('bare LF line endings');
      break;
    case 15:
      for (let h = 0; h < r.range(100, 600); h++) req.headers.push([`X-H${h}`, 'v']);
      notes.push('hundreds of headers');
      break;
  }
}

/** Mutations 16–23: big values, Host, Expect, Upgrade, Content-Encoding, traceparent, hop-by-hop fields. */
function mutateMeaning(r: Rng, req: Req, notes: string[], m: number): void {
  switch (m) {
    case 16:
      req.headers.push(['X-Big', 'b'.repeat(r.pick([8_000, 15_000, 20_000, 70_000]))]);
      notes.push('big header value');
      break;
    case 17: {
      const host = req.headers.findIndex(([h]) => h === 'Host');
      if (r.chance(0.5)) req.headers.splice(host, 1);
      else req.headers.push(['Host', 'second.example']);
      notes.push('missing or duplicate Host');
      break;
    }
    case 18:
      req.headers.push(['Expect', r.pick(['100-continue', '100-Continue', 'garbage'])]);
      notes.push('Expect');
      break;
    case 19:
      req.headers.push(['Connection', 'Upgrade'], ['Upgrade', r.pick(['websocket', 'h2c', 'garbage'])]);
      notes.push('Upgrade');
      break;
    case 20:
      req.headers.push(['Content-Type', 'application/json'], ['Content-Encoding', r.pick(['gzip', 'br', 'deflate'])]);
      notes.push('Content-Encoding (body not encoded)');
      break;
    case 21:
      req.headers.push(
        ['traceparent', r.pick(['00-zz-yy-01', '00-' + '0'.repeat(32) + '-' + '0'.repeat(16) + '-01', 'x'.repeat(1000)])],
        ['tracestate', ',,,='],
      );
      notes.push('odd traceparent');
      break;
    case 22:
      req.headers.push(['Connection', 'close, x-fuzz-id, authorization']);
      notes.push('Connection names end-to-end headers');
      // The gateway may drop the id now; nothing to correlate then.
      break;
    default:
      req.headers.push(['Proxy-Connection', 'keep-alive'], ['Keep-Alive', 'timeout=1'], ['TE', 'trailers'], ['Trailer', 'X-T']);
      notes.push('hop-by-hop headers');
  }
}

export function randomGarbage(r: Rng, notes: string[]): Buffer {
  notes.push('random bytes');
  return randomGarbageBytes(r);
}

function randomGarbageBytes(r: Rng): Buffer {
  return r.weighted<() => Buffer>([
    [4, () => r.bytes(r.range(1, 2048))],
    [
      2,
      () =>
        Buffer.concat([
          latin1(r.pick(['POST /api/chat HTTP/1.1\r\n', 'GET / HTTP/1.1\r\nHost: x\r\n', 'POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\n'])),
          r.bytes(r.range(1, 1024)),
        ]),
    ],
    [1, () => latin1(Array.from({ length: r.range(1, 600) }, () => String.fromCharCode(r.range(32, 126))).join(''))],
    [1, () => latin1('\r\n\r\n'.repeat(r.range(1, 50)))],
    [1, () => latin1('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')],
    [1, () => latin1('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')],
    [1, () => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), r.bytes(200)])],
    [1, () => latin1('GET /' + 'a'.repeat(r.range(10_000, 100_000)) + ' HTTP/1.1\r\nHost: x\r\n\r\n')],
  ])();
}

/** Byte-level damage to a serialised request; what was sent is then no longer known exactly. */
export function damage(r: Rng, bytes: Buffer, notes: string[]): Buffer {
  if (r.chance(0.5)) {
    const at = r.int(bytes.length + 1);
    notes.push(`random bytes inserted at ${at}`);
    return Buffer.concat([bytes.subarray(0, at), r.bytes(r.range(1, 64)), bytes.subarray(at)]);
  }
  const out = Buffer.from(bytes);
  const n = r.range(1, 8);
  for (let k = 0; k < n; k++) out[r.int(out.length)] = r.int(256);
  notes.push(`${n} bytes flipped`);
  return out;
}
