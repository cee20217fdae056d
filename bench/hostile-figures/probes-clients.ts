/** Probes 1, 2, 3 and 7: clients that send what no SDK would (a 5 MB model name, stalled 55 MB bodies, spelled paths, POST /healthz). */
import { performance } from 'node:perf_hooks';
import { RawConnection } from '../../test/helpers/raw-client';
import { httpReq, rawExchange } from './clients';
import { CHAT, errText, MiB, mb, peakRssBytes, secs, sleep, type Probe, type Row } from './common';
import { crashText, rssOf, startGw, statusOf, stopGw, type Gw } from './gateway';
import { grew, scrape, sum } from './metrics';

/** 1. A 5 MB `model` string. */
export const probeModelName: Probe = async (fake) => {
  const rows: Row[] = [];
  fake.recordRequests = false;
  const gw = await startGw(fake.origin);
  try {
    const name = (c: string) => 'm'.repeat(5 * MiB - 1) + c;
    const first = await httpReq(gw.port, { method: 'POST', path: '/api/chat', body: CHAT(name('a'), { stream: false }), timeoutMs: 30_000, keepBody: false });
    rows.push({ figure: 'first request (5 MB model)', value: first.status ? `${first.status} in ${secs(first.ms)}` : `no answer (${first.error})` });
    const measureScrape = async (label: string) => {
      if (gw.exited) return rows.push({ figure: label, value: crashText(gw) });
      const s = await httpReq(gw.port, { path: '/metrics', timeoutMs: 60_000, keepBody: false });
      const what =
        s.status === undefined
          ? `no answer (${s.error})`
          : `${s.status}, ${s.bytes.toLocaleString('en-US')} bytes (${mb(s.bytes)}) in ${secs(s.ms)}${s.error ? ` (${s.error})` : ''}`;
      const errLine = gw.stderr
        .split('\n')
        .map((l) => l.trim())
        .find((l) => /^\w*Error\b/.test(l));
      rows.push({
        figure: label,
        value: gw.exited ? `${what}; then ${crashText(gw)}` : `${what}${s.error && errLine ? `; stderr: ${errLine.slice(0, 100)}` : ''}`,
      });
    };
    await measureScrape('next /metrics scrape: size, time');
    const statuses: string[] = [];
    for (let i = 0; i < 10 && !gw.exited; i++) {
      const r = await httpReq(gw.port, {
        method: 'POST',
        path: '/api/chat',
        body: CHAT(name(String.fromCharCode(98 + i)), { stream: false }),
        timeoutMs: 30_000,
        keepBody: false,
      });
      statuses.push(r.status ? String(r.status) : (r.error ?? 'none'));
    }
    await sleep(500);
    rows.push({ figure: '10 more such requests: answers', value: statuses.join(' ') || 'not sent' });
    rows.push({ figure: 'process after the 11 requests', value: statusOf(gw) });
    rows.push({ figure: 'gateway RSS after the 11 requests', value: rssOf(gw) });
    await measureScrape('/metrics scrape after the 11: size, time');
    rows.push({ figure: 'process at the end', value: statusOf(gw) });
  } finally {
    fake.recordRequests = true;
    await stopGw(gw);
  }
  return rows;
};

/** 2. Twelve clients declaring 60 MB bodies, sending 55 MB and stalling. */
export const probeStalledBodies: Probe = async (fake) => {
  const rows: Row[] = [];
  fake.recordRequests = false;
  const gw = await startGw(fake.origin, { MAX_REQUEST_BODY_MB: '64' });
  const clients: StalledClient[] = [];
  try {
    const rss0 = rssOf(gw);
    for (let i = 0; i < 12; i++) clients.push({ conn: await RawConnection.open(gw.port), sent: 0 });
    const t0 = performance.now();
    await Promise.all(clients.map((c) => sendStalled(gw, c)));
    const sendMs = performance.now() - t0;
    const sentTotal = clients.reduce((a, c) => a + Math.min(c.sent, SENT), 0);
    rows.push({ figure: 'bytes written by the 12 clients', value: `${mb(sentTotal)} in ${secs(sendMs)}` });
    rows.push({ figure: 'gateway RSS before / right after the sends', value: `${rss0} / ${rssOf(gw)}` });
    rows.push({ figure: 'clients right after the sends', value: describeClients(clients) });
    await sleep(10_000);
    rows.push({ figure: 'gateway RSS 10 s later (peak)', value: gw.exited ? crashText(gw) : `${rssOf(gw)} (peak ${mb(peakRssBytes(gw.child.pid!))})` });
    rows.push({ figure: 'clients 10 s later', value: describeClients(clients) });
    const m = gw.exited ? undefined : await scrape(gw);
    const gauge = m?.find((s) => s.name === 'ollama_gateway_buffered_body_bytes');
    rows.push({ figure: 'ollama_gateway_buffered_body_bytes 10 s later', value: gauge ? String(gauge.value) : 'not exported' });
    rows.push({ figure: 'recorded errors', value: grew(undefined, m, 'ollama_request_errors_total', 'reason') });
    rows.push({ figure: 'process', value: statusOf(gw) });
  } finally {
    for (const c of clients) c.conn.destroy();
    fake.recordRequests = true;
    await stopGw(gw);
  }
  return rows;
};

const DECLARED = 60 * MiB;
const SENT = 55 * MiB;
const PREFIX = Buffer.from('{"model":"llama3.2","messages":[{"role":"user","content":"');
const FILLER = Buffer.alloc(MiB, 'x');
const FIRST = Buffer.concat([PREFIX, FILLER.subarray(PREFIX.length)]);

interface StalledClient {
  conn: RawConnection;
  sent: number;
}

/** Declares 60 MB and writes 55 MB of it (1 MB at a time, waiting for the socket to drain), then stalls. */
async function sendStalled(gw: Gw, c: StalledClient): Promise<void> {
  const deadline = Date.now() + 120_000;
  const sock = c.conn.socket;
  sock.write(`POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nContent-Type: application/json\r\nContent-Length: ${DECLARED}\r\n\r\n`);
  while (c.sent < SENT && !c.conn.closed && !sock.destroyed && Date.now() < deadline) {
    const piece = c.sent === 0 ? FIRST : FILLER;
    c.sent += piece.length;
    if (!sock.write(piece)) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        const done = () => {
          clearTimeout(t);
          sock.off('drain', done);
          sock.off('close', done);
          resolve();
        };
        sock.once('drain', done);
        sock.once('close', done);
      });
    }
  }
}

/** How many clients got which status, closed without one, or still wait. */
function describeClients(clients: StalledClient[]): string {
  const counts = new Map<string, number>();
  for (const { conn } of clients) {
    const status = conn.responses()[0]?.status;
    const what =
      status !== undefined ? String(status) : conn.closed ? `closed without a response${conn.error ? ` (${errText(conn.error)})` : ''}` : 'still waiting';
    counts.set(what, (counts.get(what) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${n}× ${k}`).join(', ');
}

/** 3. Other spellings of /api/chat. */
export const probePaths: Probe = async (fake) => {
  const rows: Row[] = [];
  let gw = await startGw(fake.origin);
  try {
    for (const target of ['//api/chat', '/api//chat', '/api/%63hat', 'http://x/api/chat']) {
      if (gw.exited) gw = await startGw(fake.origin);
      const before = await scrape(gw);
      const seen = fake.requests.length;
      const body = CHAT('llama3.2', { stream: false });
      const r = await rawExchange(
        gw.port,
        `POST ${target} HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
        { timeoutMs: 10_000 },
      );
      await sleep(300);
      const after = gw.exited ? undefined : await scrape(gw);
      const counted = sum(after, 'ollama_requests_total', { endpoint: '/api/chat' }) - sum(before, 'ollama_requests_total', { endpoint: '/api/chat' });
      const received = fake.requests
        .slice(seen)
        .filter((q) => !(q.method === 'GET' && q.url === '/api/version'))
        .map((q) => `${q.method} ${q.url}`);
      const client = r.parsed ? String(r.parsed.status) : `no response${r.error ? ` (${r.error})` : ''}`;
      const countedText = Number.isNaN(counted) ? 'metrics unavailable' : counted > 0 ? 'counted' : 'NOT counted';
      rows.push({
        figure: `\`${target}\``,
        value: `${countedText} as endpoint="/api/chat"; client got ${client}; fake received ${received.length ? received.map((x) => `\`${x}\``).join(', ') : 'nothing'}${gw.exited ? `; ${crashText(gw)}` : ''}`,
      });
    }
  } finally {
    await stopGw(gw);
  }
  return rows;
};

/** 7. POST /healthz. */
export const probePostHealthz: Probe = async (fake) => {
  const rows: Row[] = [];
  const gw = await startGw(fake.origin);
  try {
    const seen = fake.requests.length;
    const r = await httpReq(gw.port, { method: 'POST', path: '/healthz', body: '{}', headers: { authorization: 'Bearer anything' }, timeoutMs: 10_000 });
    await sleep(300);
    const received = fake.requests.slice(seen).filter((q) => q.url.includes('healthz'));
    rows.push({ figure: 'client got', value: r.status ? `${r.status}${r.headers?.allow ? ` (Allow: ${r.headers.allow})` : ''}` : `no response (${r.error})` });
    rows.push({ figure: 'fake Ollama received it', value: received.length ? `yes: ${received.map((q) => `\`${q.method} ${q.url}\``).join(', ')}` : 'no' });
  } finally {
    await stopGw(gw);
  }
  return rows;
};
