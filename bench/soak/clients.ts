/**
 * The soak's clients: a request over node:http that may leave early, a raw-socket request (the
 * fuzzer's client), a body held open byte by byte, and a reader that pauses; and what each expects.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { runPlan, type ClientResult, type Plan } from '../../test/helpers/fuzz';
import type { Ctx, Outcome, Verdict } from './types';

export interface Reply {
  status: number;
  body: Buffer;
  outcome: Outcome;
}

/** One request. `hangUp` makes the client leave: before the response, after the first chunk, or on the last. */
export function request(
  ctx: Ctx,
  method: string,
  p: string,
  body: Buffer | string | undefined,
  hangUp?: 'before' | 'mid' | 'end',
  headers: Record<string, string> = {},
): Promise<Reply> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    let settled = false;
    const done = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      resolve({ status, body: Buffer.concat(chunks), outcome });
    };
    // `path` as given, byte for byte: a URL would resolve `..` and `%2E` and refuse absolute form.
    const req = http.request({ host: '127.0.0.1', port: ctx.port, path: p, method, agent: hangUp ? false : ctx.agent, headers }, (res) => {
      status = res.statusCode ?? 0;
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        if (hangUp === 'mid' && chunks.length === 1) {
          req.destroy();
          done('cancelled');
        }
      });
      res.on('end', () => {
        done('full');
      });
      res.on('error', () => done('broken'));
      res.on('aborted', () => done('broken'));
    });
    req.on('error', () => done(hangUp ? 'cancelled' : 'broken'));
    if (hangUp === 'before') {
      // Late enough that the gateway has read the request even under load (a request it never
      // read is not one it can count), early enough that Ollama (hanging) has not answered.
      req.end(body);
      setTimeout(() => {
        req.destroy();
        done('cancelled');
      }, 250);
      return;
    }
    if (hangUp === 'end') {
      // Leave as the last line arrives: after reading, before the response is consumed.
      req.on('response', (res) =>
        res.on('data', (c: Buffer) => {
          if (c.includes('"done":true')) {
            req.destroy();
            done('cancelled');
          }
        }),
      );
    }
    req.end(body);
  });
}

export const expectFull = (r: Reply, body: Buffer, status = 200) =>
  r.outcome === 'full' && r.status === status && r.body.equals(body) ? { ok: true } : { ok: false, why: `${r.outcome} ${r.status} ${r.body.length}B` };
export const expectStatus = (r: Reply, status: number) =>
  r.outcome === 'full' && r.status === status ? { ok: true } : { ok: false, why: `${r.outcome} ${r.status}` };

/** A request written over a raw socket (pipelining, unfinished bodies), read by the fuzzer's client. */
export function raw(ctx: Ctx, parts: Plan['parts'], expect: number, methods: string[], keepBodies = false): Promise<ClientResult> {
  return runPlan(ctx.port, { index: -1, kind: 'soak', parts, expect, methods, records: new Map(), notes: [], keepBodies });
}

export const head = (method: string, p: string, headers: Record<string, string | number>) =>
  `${method} ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers)
    .map(([h, v]) => `${h}: ${v}\r\n`)
    .join('')}\r\n`;
export const post = (p: string, body: string) => head('POST', p, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) }) + body;

/** The raw answer was `status` with headers matching `headers`. */
export function expectRaw(r: ClientResult, status: number, headers: Record<string, RegExp> = {}): Verdict {
  if (r.statuses[0] !== status) return { ok: false, why: `${r.end} ${r.statuses.join('+') || '-'}` };
  for (const [h, re] of Object.entries(headers))
    if (!re.test(r.first?.get(h) ?? '')) return { ok: false, why: `${status} ${h}: ${r.first?.get(h) ?? 'absent'}` };
  return { ok: true };
}

/**
 * An LLM body held open: `data` written, then one more byte every 300 ms (so the body timeout does
 * not fire) until `stop()`, then silence. Resolves with the status and headers of the answer.
 */
export function hold(ctx: Ctx, data: Buffer, trickle: Buffer): { stop(): void; answer: Promise<{ status: number; headers: Map<string, string> }> } {
  const socket = net.connect({ port: ctx.port, host: '127.0.0.1' });
  let left = trickle;
  let giveUp: NodeJS.Timeout | undefined;
  let done: (status: number) => void = () => {};
  const timer = setInterval(() => {
    if (left.length > 1 && socket.writable) {
      socket.write(left.subarray(0, 1));
      left = left.subarray(1);
    }
  }, 300);
  const answer = new Promise<{ status: number; headers: Map<string, string> }>((resolve) => {
    let got = Buffer.alloc(0);
    done = (status: number) => {
      clearInterval(timer);
      clearTimeout(giveUp);
      const headers = new Map<string, string>();
      const text = got.toString('latin1');
      for (const line of text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n').slice(1)) {
        const i = line.indexOf(':');
        if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
      }
      socket.destroy();
      resolve({ status, headers });
    };
    giveUp = setTimeout(() => done(0), 15_000);
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.includes('\r\n\r\n')) done(Number(/^HTTP\/1\.1 (\d{3})/.exec(got.toString('latin1'))?.[1] ?? -1));
    });
    socket.on('error', () => done(0));
    socket.on('close', () => done(0));
  });
  socket.write(data);
  return {
    stop: () => {
      clearInterval(timer);
      // The 408 is due REQUEST_BODY_TIMEOUT_SECONDS (1 s) from now.
      clearTimeout(giveUp);
      giveUp = setTimeout(() => done(0), 4000);
    },
    answer,
  };
}

/** Reads a response while not reading for `pauseMs` after the headers (a slow reader); digests the body. */
export function slowRead(
  ctx: Ctx,
  body: string,
  pauseMs: number,
  giveUpMs: number,
): Promise<{ status: number; outcome: Outcome; bytes: number; sha256: string }> {
  return new Promise((resolve) => {
    const hash = createHash('sha256');
    let bytes = 0;
    let status = 0;
    let settled = false;
    const done = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(giveUp);
      req.destroy();
      resolve({ status, outcome, bytes, sha256: hash.digest('hex') });
    };
    const giveUp = setTimeout(() => done('broken'), giveUpMs);
    const req = http.request(`${ctx.url}/api/chat`, { method: 'POST', agent: false }, (res) => {
      status = res.statusCode ?? 0;
      res.pause();
      setTimeout(() => {
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          hash.update(chunk);
        });
        res.on('end', () => done('full'));
        res.on('error', () => done('broken'));
        res.on('aborted', () => done('broken'));
        res.on('close', () => done(res.complete ? 'full' : 'broken'));
        res.resume();
      }, pauseMs);
    });
    req.on('error', () => done('broken'));
    req.end(body);
  });
}
