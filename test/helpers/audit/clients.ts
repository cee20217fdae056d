/** The audit's clients: each behaviour of the script, over plain HTTP or a raw socket (pipelining). */
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { parseResponses } from '../raw-client';
import type { Attempt, PlannedCall } from './plan';
import { CALL_HEADER } from './upstream';

/** What the client saw of one attempt. */
export interface Seen {
  id: string;
  /** The status of the answer, 0 when none came. */
  status: number;
  /** The final event arrived. */
  sawFinal: boolean;
  /** The client closed before the end of the body, on purpose. */
  closedEarly: boolean;
  /** When it closed early (performance.now()). */
  leftAt?: number;
  /** The connection broke under the client (not on purpose). */
  broken?: string;
}

const PROMPT = 'Why is the sky blue?';

/** The request body of a call. */
export function requestBody(call: PlannedCall): string {
  const { model, streamed } = call;
  const messages = [{ role: 'user', content: PROMPT }];
  switch (call.family.endpoint) {
    case '/api/chat':
      return JSON.stringify({ model, messages, stream: streamed });
    case '/api/generate':
      return JSON.stringify({ model, prompt: PROMPT, stream: streamed });
    case '/api/embed':
    case '/v1/embeddings':
      return JSON.stringify({ model, input: PROMPT });
    case '/v1/chat/completions':
      return JSON.stringify({ model, messages, stream: streamed, ...(streamed && call.includeUsage ? { stream_options: { include_usage: true } } : {}) });
    case '/v1/completions':
      return JSON.stringify({ model, prompt: PROMPT, stream: streamed, ...(streamed && call.includeUsage ? { stream_options: { include_usage: true } } : {}) });
    case '/v1/responses':
      return JSON.stringify({ model, input: PROMPT, stream: streamed });
    case '/v1/messages':
      return JSON.stringify({ model, max_tokens: 1024, messages, stream: streamed });
  }
}

/** The end of the final event of each streamed family (the client closes once it has it). */
const FINAL: Record<PlannedCall['family']['api'], RegExp> = {
  native: /"done":true[^\n]*\n/,
  openai: /data: \[DONE\]\n\n/,
  responses: /"type":"response\.completed"\}\n\n/,
  anthropic: /"type":"message_stop"\}\n\n/,
};

/** Sends one attempt over HTTP and treats the answer as `call.behaviour` says. */
export function send(port: number, agent: http.Agent | false, call: PlannedCall, attempt: Attempt, timeoutMs = 30_000): Promise<Seen> {
  const body = requestBody(call);
  return new Promise((resolve) => {
    const seen: Seen = { id: attempt.id, status: 0, sawFinal: false, closedEarly: false };
    let tail = '';
    let done = false;
    const finish = (broken?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (broken !== undefined && !seen.closedEarly) seen.broken = broken;
      resolve(seen);
    };
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: call.family.endpoint,
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), [CALL_HEADER]: attempt.id },
      },
      (res) => {
        seen.status = res.statusCode ?? 0;
        const final = FINAL[call.family.api];
        res.on('data', (c: Buffer) => {
          if (done) return;
          tail = (tail + c.toString('latin1')).slice(-4096);
          if (call.streamed && final.test(tail)) seen.sawFinal = true;
          const leave = (call.behaviour === 'abort' && res.statusCode === 200) || (call.behaviour === 'close-final' && seen.sawFinal);
          if (leave) {
            seen.closedEarly = true;
            seen.leftAt = performance.now();
            // As the SDKs do: the socket goes, whatever of the body is still to come.
            req.destroy();
            finish();
          }
        });
        res.on('end', () => finish());
        res.on('error', (e) => finish(e.message));
        res.on('close', () => finish(res.complete ? undefined : 'closed before the end'));
      },
    );
    req.on('error', (e) => finish(e.message));
    const timer = setTimeout(() => {
      req.destroy();
      finish(`no end in ${timeoutMs} ms`);
    }, timeoutMs);
    req.end(body);
  });
}

/** Two calls written in one write on one connection (the second with `Connection: close`), both read to the end. */
export function pipeline(port: number, first: PlannedCall, second: PlannedCall, timeoutMs = 30_000): Promise<Seen[]> {
  const request = (call: PlannedCall, close: boolean) => {
    const body = requestBody(call);
    return (
      `POST ${call.family.endpoint} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\n${CALL_HEADER}: ${call.attempts[0].id}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n${close ? 'Connection: close\r\n' : ''}\r\n${body}`
    );
  };
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = net.connect(port, '127.0.0.1', () => socket.write(request(first, false) + request(second, true)));
    let done = false;
    const finish = (broken?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const parsed = parseResponses(Buffer.concat(chunks), { closed: true });
      resolve(
        [first, second].map((call, i) => {
          const r = parsed.responses[i];
          const final = FINAL[call.family.api];
          return {
            id: call.attempts[0].id,
            status: r?.status ?? 0,
            sawFinal: call.streamed && r !== undefined && final.test(r.body.toString('latin1')),
            closedEarly: false,
            broken: r === undefined || r.incomplete ? (broken ?? 'incomplete') : undefined,
          };
        }),
      );
    };
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('close', () => finish());
    socket.on('error', (e) => finish(e.message));
    const timer = setTimeout(() => finish(`no end in ${timeoutMs} ms`), timeoutMs);
  });
}
