/**
 * What scrapes, console queries and Ollama's listings cost the gateway, with figures to compare
 * builds: the gateway runs as a child process in front of an in-process upstream.
 *
 *   1. 200 junk model names (404s) on every LLM endpoint, then: the exposition's size, the
 *      gateway's CPU per scrape, and a scrape's latency alone (the event loop it blocks);
 *   2. chat p50 alone, then with four scrapers in a loop;
 *   3. an `/api/ps` of 150,000 loaded models (~11 MiB): the CPU of a scrape, and of `now`.
 *
 * Usage: node .build/bench/scrape-cost.js [path/to/src/main.js] [junk|ps]   (default: this build's, both)
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fixture } from '../test/helpers/fixtures';
import { cpuMs } from '../test/helpers/procs';
import { httpReq } from './hostile-figures/clients';
import { setGatewayMain, startGw, stopGw, type Gw } from './hostile-figures/gateway';

const JUNK_LABELS = 200;
const PS_MODELS = 150_000;
const LLM_PATHS = ['/api/chat', '/api/generate', '/api/embed', '/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses', '/v1/messages'];

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor(s.length / 2)]!;
};

/** A minimal Ollama: answers `llama3.2` chats from the recorded fixture, 404s every other model, and lists `ps`. */
async function upstream(ps: Buffer): Promise<{ origin: string; close(): Promise<void> }> {
  const chat = fixture('chat-nostream.json');
  const srv = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, body: Buffer | string) => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
        res.end(body);
      };
      if (req.method === 'GET' && req.url === '/api/version') return send(200, '{"version":"0.20.0"}');
      if (req.method === 'GET' && req.url === '/api/tags')
        return send(200, '{"models":[{"name":"llama3.2:latest","model":"llama3.2:latest","size":2019393189}]}');
      if (req.method === 'GET' && req.url === '/api/ps') return send(200, ps);
      let model = '';
      try {
        model = String((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { model?: unknown }).model);
      } catch {
        // not JSON: a 404 like any unknown model
      }
      if (req.url === '/api/chat' && (model === 'llama3.2' || model === 'llama3.2:latest')) return send(200, chat);
      send(404, `{"error":"model '${model}' not found"}`);
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    origin: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    close: () => new Promise((r) => srv.close(() => r())),
  };
}

const chatBody = JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: 'hi' }] });
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

async function chat(gw: Gw): Promise<number> {
  const r = await httpReq(gw.port, {
    method: 'POST',
    path: '/api/chat',
    body: chatBody,
    headers: { 'content-type': 'application/json' },
    timeoutMs: 30_000,
    agent,
  });
  if (r.status !== 200) throw new Error(`chat answered ${r.status}`);
  return r.ms;
}

async function scrapeOnce(gw: Gw, p = '/metrics'): Promise<{ ms: number; bytes: number }> {
  const r = await httpReq(gw.port, { path: p, timeoutMs: 60_000, agent });
  if (r.status !== 200) throw new Error(`${p} answered ${r.status}`);
  return { ms: r.ms, bytes: r.bytes };
}

/** CPU (ms) and latency of `n` sequential GETs of `p`. */
async function costOf(gw: Gw, n: number, p = '/metrics'): Promise<{ cpuMs: number; p50Ms: number; bytes: number }> {
  const cpu0 = cpuMs(gw.child.pid!);
  const ms: number[] = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const r = await scrapeOnce(gw, p);
    ms.push(r.ms);
    bytes = r.bytes;
  }
  return { cpuMs: (cpuMs(gw.child.pid!) - cpu0) / n, p50Ms: median(ms), bytes };
}

async function chatP50(gw: Gw, seconds: number): Promise<number> {
  const ms: number[] = [];
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) ms.push(await chat(gw));
  return median(ms);
}

async function junk(gw: Gw): Promise<void> {
  for (let i = 0; i < JUNK_LABELS; i++) {
    await Promise.all(
      LLM_PATHS.map((p) =>
        httpReq(gw.port, {
          method: 'POST',
          path: p,
          body: JSON.stringify({ model: `junk-${i}`, max_tokens: 8, messages: [{ role: 'user', content: 'x' }], prompt: 'x', input: 'x' }),
          headers: { 'content-type': 'application/json' },
          timeoutMs: 10_000,
          agent,
        }),
      ),
    );
  }
}

async function junkFigures(main: string): Promise<void> {
  const up = await upstream(Buffer.from('{"models":[]}'));
  const gw = await startGw(up.origin, { OLLAMA_POLL_INTERVAL_SECONDS: '5' });
  try {
    await chat(gw);
    await junk(gw);
    const scrapes = await costOf(gw, 20);
    console.log(`| 200 junk labels: exposition size | ${(scrapes.bytes / 1e6).toFixed(2)} MB |`);
    console.log(`| 200 junk labels: CPU per scrape (20 back to back) | ${scrapes.cpuMs.toFixed(1)} ms |`);
    console.log(`| 200 junk labels: scrape latency p50 | ${scrapes.p50Ms.toFixed(1)} ms |`);
    const alone = await chatP50(gw, 4);
    let stop = false;
    const scrapers = Array.from({ length: 4 }, async () => {
      while (!stop) await scrapeOnce(gw).catch(() => undefined);
    });
    const withScrapers = await chatP50(gw, 8);
    stop = true;
    await Promise.all(scrapers);
    console.log(`| chat p50 alone → with four scrapers in a loop | ${alone.toFixed(2)} ms → ${withScrapers.toFixed(2)} ms |`);
  } finally {
    await stopGw(gw);
    await up.close();
  }
  void main;
}

async function psFigures(): Promise<void> {
  const models = Array.from({ length: PS_MODELS }, (_, i) => ({
    name: `m${i}`,
    size: 3e9,
    size_vram: 3e9,
    context_length: 4096,
  }));
  const ps = Buffer.from(JSON.stringify({ models }));
  const up = await upstream(ps);
  const gw = await startGw(up.origin, { OLLAMA_POLL_INTERVAL_SECONDS: '2', CONSOLE: 'true' });
  try {
    // The first poll lands.
    for (let i = 0; i < 100; i++) {
      const r = await httpReq(gw.port, { path: '/metrics', timeoutMs: 60_000, agent });
      if (r.body.includes('ollama_models_loaded')) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    const scrapes = await costOf(gw, 5);
    console.log(
      `| /api/ps of ${PS_MODELS} models (${(ps.length / 2 ** 20).toFixed(1)} MiB): scrape size, CPU, latency p50 | ${(scrapes.bytes / 1e6).toFixed(2)} MB, ${scrapes.cpuMs.toFixed(0)} ms, ${scrapes.p50Ms.toFixed(0)} ms |`,
    );
    const now = await costOf(gw, 10, '/console/api/v1/now');
    console.log(
      `| same: console \`now\` size, CPU, latency p50 (10 in a row) | ${(now.bytes / 1e6).toFixed(2)} MB, ${now.cpuMs.toFixed(1)} ms, ${now.p50Ms.toFixed(1)} ms |`,
    );
    const alone = await chatP50(gw, 5);
    console.log(`| same: chat p50 (polls every 2 s, no scraper) | ${alone.toFixed(2)} ms |`);
  } finally {
    await stopGw(gw);
    await up.close();
  }
}

async function main(): Promise<void> {
  const gatewayMain = path.resolve(process.argv[2] ?? path.join(__dirname, '..', 'src', 'main.js'));
  setGatewayMain(gatewayMain);
  console.log(`gateway: ${gatewayMain}\n`);
  console.log('| figure | value |');
  console.log('|---|---|');
  const only = process.argv[3];
  if (only !== 'ps') await junkFigures(gatewayMain);
  if (only !== 'junk') await psFigures();
  agent.destroy();
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
