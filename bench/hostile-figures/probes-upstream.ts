/**
 * Probes 4, 5, 6 and 8: an upstream the fake cannot imitate (a `Trailer:` header, a reset right
 * after the headers, a `101`, one 30 MB SSE event written in 64 KB pieces), played by test/helpers'
 * scripted upstream.
 */
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { fixture } from '../../test/helpers/fixtures';
import { chunk, chunkedReply, close, HostileUpstream, raw, reply, reset, wait, write, type Script } from '../../test/helpers/hostile-upstream';
import { httpReq, rawExchange } from './clients';
import { CHAT, mb, MiB, peakRssBytes, secs, sleep, type Probe, type Row } from './common';
import { alive, crashText, startGw, statusOf, stopGw, type Gw } from './gateway';
import { grew, scrape, sum, type Sample } from './metrics';

const NOT_FOUND = (): Script => reply(404, 'application/json; charset=utf-8', '{"error":"not found"}');

/** An upstream that answers `/api/version` as Ollama does, and everything else as `otherwise` says. */
async function tinyUpstream(): Promise<HostileUpstream> {
  const up = await new HostileUpstream().start();
  up.on('/api/version', () => reply(200, 'application/json; charset=utf-8', '{"version":"0.12.0"}'));
  return up;
}

/** 4. A pass-through response with a `Trailer:` header. */
export const probeTrailer: Probe = async () => {
  const rows: Row[] = [];
  const cases: { name: string; response: string; version: '1.1' | '1.0' }[] = [
    {
      name: 'Content-Length + `Trailer:`, HTTP/1.1 client',
      response: 'HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 11\r\nTrailer: X-Checksum\r\n\r\n{"ok":true}',
      version: '1.1',
    },
    {
      name: 'chunked + `Trailer:`, HTTP/1.1 client',
      response:
        'HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\nb\r\n{"ok":true}\r\n0\r\nX-Checksum: abc\r\n\r\n',
      version: '1.1',
    },
    {
      name: 'chunked + `Trailer:`, HTTP/1.0 client',
      response:
        'HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\nb\r\n{"ok":true}\r\n0\r\nX-Checksum: abc\r\n\r\n',
      version: '1.0',
    },
  ];
  let current = cases[0];
  const up = await tinyUpstream();
  up.otherwise = () => [write(current.response)];
  let gw = await startGw(up.origin);
  try {
    for (const c of cases) {
      current = c;
      if (gw.exited) gw = await startGw(up.origin);
      const r = await rawExchange(gw.port, `GET /api/tags HTTP/${c.version}\r\nHost: 127.0.0.1:${gw.port}\r\n\r\n`, { timeoutMs: 5000 });
      await sleep(500);
      const ok = await alive(gw);
      const client = r.parsed
        ? `${r.parsed.status}${r.parsed.headers.trailer ? ' (Trailer header relayed)' : ''}`
        : `no response${r.error ? ` (${r.error})` : ''}`;
      rows.push({
        figure: c.name,
        value: `client got ${client}; gateway ${ok ? 'survived (/healthz 200)' : gw.exited ? crashText(gw) : 'alive but /healthz failed'}`,
      });
    }
  } finally {
    await stopGw(gw);
    await up.close();
  }
  return rows;
};

/**
 * 5. A reset (TCP RST) right after the headers of a 200 NDJSON stream, from a tiny upstream: once
 * with no body byte sent, once after the first NDJSON line; and, for comparison, a plain close (FIN)
 * after the first line.
 */
export const probeResetAfterHeaders: Probe = async () => {
  const rows: Row[] = [];
  const firstLine = fixture('chat-stream.ndjson').subarray(0, fixture('chat-stream.ndjson').indexOf(10) + 1);
  let bodyBytes: Buffer = Buffer.alloc(0);
  let rst = true;
  const up = await tinyUpstream();
  up.otherwise = (req) =>
    req.method !== 'POST' || req.path !== '/api/chat'
      ? NOT_FOUND()
      : [
          write('HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n'),
          ...(bodyBytes.length ? [write(chunk(bodyBytes))] : []),
          wait(50),
          rst ? reset() : close(),
        ];
  let gw = await startGw(up.origin);
  try {
    for (const c of [
      { name: 'RST after headers only', bytes: Buffer.alloc(0), rst: true },
      { name: 'RST after headers + first line', bytes: firstLine, rst: true },
      { name: 'FIN after headers + first line', bytes: firstLine, rst: false },
    ]) {
      bodyBytes = c.bytes;
      rst = c.rst;
      if (gw.exited) gw = await startGw(up.origin);
      const before = await scrape(gw);
      const r = await httpReq(gw.port, { method: 'POST', path: '/api/chat', body: CHAT(), timeoutMs: 10_000 });
      await sleep(500);
      const after = gw.exited ? undefined : await scrape(gw);
      const client = r.status
        ? `${r.status}, ${r.bytes} body bytes, ${r.complete ? 'body ended normally' : `body cut (${r.error})`}`
        : `no response (${r.error})`;
      rows.push({
        figure: c.name,
        value: `client saw ${client}; counted ${grew(before, after, 'ollama_requests_total', 'status', { endpoint: '/api/chat' })}; error ${grew(before, after, 'ollama_request_errors_total', 'reason', { endpoint: '/api/chat' })}; ${gw.exited ? crashText(gw) : 'process alive'}`,
      });
    }
  } finally {
    await stopGw(gw);
    await up.close();
  }
  return rows;
};

/** 6. Upstream answers 101 to POST /api/chat. */
export const probe101: Probe = async () => {
  const rows: Row[] = [];
  const up = await tinyUpstream();
  up.otherwise = (req) =>
    req.method === 'POST' && req.path === '/api/chat'
      ? raw('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
      : NOT_FOUND();
  const gw = await startGw(up.origin, { UPSTREAM_IDLE_TIMEOUT_SECONDS: '10' });
  try {
    const before = await scrape(gw);
    // If the client is still waiting near the cap, read the gauge then, before it gives up.
    let atCap: Sample[] | undefined;
    let answered = false;
    const capTimer = setTimeout(() => void scrape(gw).then((m) => (atCap = answered ? undefined : m)), 14_000);
    const r = await httpReq(gw.port, { method: 'POST', path: '/api/chat', body: CHAT('llama3.2', { stream: false }), timeoutMs: 15_000 });
    answered = r.status !== undefined || r.error !== 'timeout';
    clearTimeout(capTimer);
    const answer =
      r.status !== undefined
        ? `${r.status} after ${secs(r.ms)}`
        : r.error === 'timeout'
          ? 'no answer within 15 s'
          : `connection ended without an answer after ${secs(r.ms)} (${r.error})`;
    rows.push({ figure: 'time until the client got an answer', value: answer });
    if (atCap) rows.push({ figure: 'ollama_requests_in_flight at 14 s, client still waiting (sum)', value: String(sum(atCap, 'ollama_requests_in_flight')) });
    await sleep(500);
    const after = gw.exited ? undefined : await scrape(gw);
    const inflight = sum(after, 'ollama_requests_in_flight');
    rows.push({
      figure: `ollama_requests_in_flight 0.5 s after ${answered ? 'the answer' : 'the client gave up'} (sum)`,
      value: Number.isNaN(inflight) ? 'metrics unavailable' : String(inflight),
    });
    rows.push({ figure: 'counted error reason', value: grew(before, after, 'ollama_request_errors_total', 'reason') });
    rows.push({ figure: 'process', value: statusOf(gw) });
  } finally {
    await stopGw(gw);
    await up.close();
  }
  return rows;
};

/** One SSE event of 30 MB, then the finishing event, the usage event and `[DONE]`. */
function hugeStream(): Buffer {
  const head =
    '{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795634900,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"';
  const tail = '"},"finish_reason":null}]}';
  const filler = 30 * MiB - head.length - tail.length - 8;
  return Buffer.from(
    `data: ${head}${'a'.repeat(filler)}${tail}\n\n` +
      'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795634900,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}\n\n' +
      'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1795634900,"model":"llama3.2","system_fingerprint":"fp_ollama","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":1,"total_tokens":13}}\n\n' +
      'data: [DONE]\n\n',
  );
}

/** `stream` cut into 64 KB pieces. */
function pieces64k(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let off = 0; off < stream.length; off += 64 * 1024) out.push(stream.subarray(off, off + 64 * 1024));
  return out;
}

/** Polls /healthz every 50 ms (on one kept-alive connection) until `finished()`; the worst latency, probes, failures. */
async function healthzWhile(gw: Gw, agent: http.Agent, finished: () => boolean): Promise<{ worst: number; n: number; failures: number }> {
  let worst = 0;
  let n = 0;
  let failures = 0;
  for (let i = 0; i < 4000 && !finished(); i++) {
    const t0 = performance.now();
    const r = await httpReq(gw.port, { path: '/healthz', timeoutMs: 10_000, agent });
    const ms = performance.now() - t0;
    n++;
    if (r.status !== 200) failures++;
    worst = Math.max(worst, ms);
    if (ms < 50) await sleep(50 - ms);
  }
  return { worst, n, failures };
}

/** 8. One 30 MB SSE event written in 64 KB pieces (each waits for the socket to drain). */
export const probeHugeEvent: Probe = async () => {
  const rows: Row[] = [];
  const stream = hugeStream();
  const up = await tinyUpstream();
  up.otherwise = (req) =>
    req.method !== 'POST' || req.path !== '/v1/chat/completions'
      ? NOT_FOUND()
      : chunkedReply(200, 'text/event-stream', pieces64k(stream), { extra: { 'Cache-Control': 'no-cache' } });
  const gw = await startGw(up.origin);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    let finished = false;
    const probe = healthzWhile(gw, agent, () => finished);
    const r = await httpReq(gw.port, {
      method: 'POST',
      path: '/v1/chat/completions',
      body: CHAT('llama3.2', { stream: true, stream_options: { include_usage: true } }),
      timeoutMs: 120_000,
      keepBody: false,
    });
    finished = true;
    const h = await probe;
    rows.push({
      figure: 'time for the client to receive it all',
      value:
        r.complete && r.bytes === stream.length
          ? `${secs(r.ms)} (${mb(r.bytes)}, byte count exact)`
          : `${r.error === 'timeout' ? 'not done within 120 s' : `ended after ${secs(r.ms)}`}: ${mb(r.bytes)} of ${mb(stream.length)} received${r.error ? ` (${r.error})` : ''}${r.status ? `, status ${r.status}` : ''}`,
    });
    rows.push({
      figure: 'worst /healthz latency (probed every 50 ms)',
      value: `${secs(h.worst)} over ${h.n} probes${h.failures ? `, ${h.failures} failed` : ''}`,
    });
    rows.push({ figure: 'gateway peak RSS', value: gw.exited ? crashText(gw) : mb(peakRssBytes(gw.child.pid!)) });
    rows.push({ figure: 'process', value: statusOf(gw) });
  } finally {
    agent.destroy();
    await stopGw(gw);
    await up.close();
  }
  return rows;
};
