/**
 * What a hostile upstream can buy, measured on the gateway process (`node dist/src/main.js`):
 *
 *  - a compression bomb (512 MiB of zeros, gzip'd to 0.5 MiB) answering a compressed OpenAI
 *    stream, once measured only (the client asked for usage: it gets the encoded bytes) and once
 *    relayed decoded (the usage event stripped): the gateway's CPU, and what the client got;
 *  - a response head trickled as `103 Early Hints` every 200 ms: how long the call is held;
 *  - a backend that reads a call whole and resets its kept-alive connection: how many times the
 *    upstream saw the one call.
 *
 * Usage: npm run bench:upstream
 */
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import zlib from 'node:zlib';
import { HostileUpstream, repeat, reply, reset } from '../test/helpers/hostile-upstream';
import { cpuMs, freePort, startNode, waitForPort } from '../test/helpers/procs';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const CHAT = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false });
const CHAT_ANSWER = '{"model":"llama3.2","message":{"role":"assistant","content":"ok"},"done":true}';

async function gateway(origin: string, env: Record<string, string> = {}) {
  const port = await freePort();
  const child = startNode(path.resolve(__dirname, '..', 'src', 'main.js'), [], {
    OLLAMA_HOST: origin,
    HOST: '127.0.0.1',
    PORT: String(port),
    LOG_LEVEL: 'ERROR',
    OLLAMA_POLL_INTERVAL_SECONDS: '0',
    ...env,
  });
  await waitForPort(port);
  return { child, url: `http://127.0.0.1:${port}` };
}

async function bomb(): Promise<string[]> {
  const gz = zlib.gzipSync(Buffer.alloc(512 * 2 ** 20, 0), { level: 9 });
  const up = await new HostileUpstream().start();
  up.on('/v1/chat/completions', () => reply(200, 'text/event-stream', gz, { 'Content-Encoding': 'gzip' }));
  const gw = await gateway(up.origin);
  const rows: string[] = [];
  try {
    for (const usage of [true, false]) {
      const c0 = cpuMs(gw.child.pid!);
      const body = JSON.stringify({ model: 'llama3.2', stream: true, stream_options: usage ? { include_usage: true } : undefined, messages: [] });
      // Read raw (node:http decodes nothing), to count what the client was sent.
      const got = await new Promise<number>((resolve) => {
        let n = 0;
        const req = http.request(`${gw.url}/v1/chat/completions`, { method: 'POST' }, (res) => {
          res.on('data', (c: Buffer) => (n += c.length));
          res.on('close', () => resolve(n));
        });
        req.on('error', () => resolve(n));
        req.end(body);
      });
      await sleep(1500); // the decoder may still be running after the client is done
      const what = usage ? 'measured only (client sent the encoded bytes)' : 'relayed decoded (usage stripped)';
      rows.push(
        `| compression bomb, ${what} | ${(gz.length / 2 ** 20).toFixed(2)} MiB in | gateway CPU ${(cpuMs(gw.child.pid!) - c0).toFixed(0)} ms; client sent ${(got / 2 ** 20).toFixed(1)} MiB |`,
      );
    }
  } finally {
    gw.child.kill('SIGTERM');
    await up.close();
  }
  return rows;
}

async function trickledHead(): Promise<string[]> {
  const up = await new HostileUpstream().start();
  up.on('/api/chat', () => [repeat('HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n', 200)]);
  const gw = await gateway(up.origin, { UPSTREAM_IDLE_TIMEOUT_SECONDS: '5' });
  try {
    const t0 = performance.now();
    const status = await fetch(`${gw.url}/api/chat`, { method: 'POST', body: CHAT, signal: AbortSignal.timeout(60_000) }).then(
      (r) => String(r.status),
      () => 'none within 60 s',
    );
    return [
      `| \`103 Early Hints\` every 200 ms (UPSTREAM_IDLE_TIMEOUT_SECONDS=5) | — | call and slot held ${((performance.now() - t0) / 1000).toFixed(1)} s; answer ${status} |`,
    ];
  } finally {
    gw.child.kill('SIGTERM');
    await up.close();
  }
}

async function resetAfterRequest(): Promise<string[]> {
  const ups = await Promise.all([0, 1].map(() => new HostileUpstream().start()));
  for (const up of ups) up.on('/api/chat', () => reply(200, 'application/json; charset=utf-8', CHAT_ANSWER));
  const gw = await gateway(ups.map((u) => u.origin).join(','));
  try {
    // Kept-alive connections at both, then every call is read whole and reset.
    for (let i = 0; i < 4; i++) await (await fetch(`${gw.url}/api/chat`, { method: 'POST', body: CHAT })).arrayBuffer();
    for (const up of ups) up.on('/api/chat', () => [reset()]);
    const before = ups.reduce((n, u) => n + u.requests.filter((r) => r.path === '/api/chat').length, 0);
    const status = (await fetch(`${gw.url}/api/chat`, { method: 'POST', body: CHAT })).status;
    const seen = ups.reduce((n, u) => n + u.requests.filter((r) => r.path === '/api/chat').length, 0) - before;
    return [`| two backends; the call is read whole, then the connection reset | — | upstream executions of one call: ${seen}; answer ${status} |`];
  } finally {
    gw.child.kill('SIGTERM');
    await Promise.all(ups.map((u) => u.close()));
  }
}

async function main(): Promise<void> {
  const rows = ['| What the upstream does | Input | Cost to the gateway |', '|---|---|---|'];
  for (const probe of [bomb, trickledHead, resetAfterRequest]) rows.push(...(await probe()));
  process.stdout.write(rows.join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:upstream failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
