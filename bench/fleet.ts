/**
 * npm run bench:fleet — the figures behind "Several Ollama servers": how many cold loads warm
 * routing avoids against a round-robin balancer, and how long failover takes.
 *
 * Three fake Ollamas, each holding ONE model in memory at a time (as a GPU box holding one large
 * model does): a call for a model that is not loaded waits COLD_LOAD_MS, loads it and evicts the
 * other. Starting with one model warm on each box, the same seeded sequence of calls for three
 * models is sent (a) round-robin straight to the boxes, as a model-unaware load balancer does,
 * and (b) through the gateway with OLLAMA_HOST listing the three. Then one box is killed under
 * load: the time until calls succeed elsewhere, and until the gateway reports it out of rotation.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { metricsText, sample, startGatewayFor } from '../test/helpers/gateway';

const COLD_LOAD_MS = 300;
const MODELS = ['m1:latest', 'm2:latest', 'm3:latest'];
const CALLS = Number(process.argv.find((a) => a.startsWith('--calls='))?.split('=')[1] ?? 120);
const CONCURRENCY = 3;

if (process.argv.includes('--help')) {
  console.log('npm run bench:fleet [-- --calls=N]   cold loads (warm routing vs round-robin) and failover time');
  process.exit(0);
}

class LoadingFake {
  loaded: string;
  coldLoads = 0;
  calls = 0;
  readonly server: http.Server;
  port = 0;
  constructor(initial: string) {
    this.loaded = initial;
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }
  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }
  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  private json(res: http.ServerResponse, body: unknown): void {
    const s = JSON.stringify(body);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
    res.end(s);
  }
  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (req.url === '/api/version') return this.json(res, { version: '0.12.0' });
    if (req.url === '/api/tags') return this.json(res, { models: MODELS.map((name) => ({ name, model: name, size: 4e9 })) });
    if (req.url === '/api/ps') return this.json(res, { models: [{ name: this.loaded, model: this.loaded, size: 5e9, size_vram: 5e9, context_length: 4096 }] });
    const model = (JSON.parse(Buffer.concat(chunks).toString() || '{}') as { model?: string }).model ?? '';
    const name = model.includes(':') ? model : `${model}:latest`;
    this.calls++;
    let loadNs = 20e6;
    if (name !== this.loaded) {
      this.coldLoads++;
      this.loaded = name;
      loadNs = COLD_LOAD_MS * 1e6;
      await new Promise((r) => setTimeout(r, COLD_LOAD_MS));
    }
    this.json(res, {
      model,
      created_at: new Date().toISOString(),
      message: { role: 'assistant', content: 'ok' },
      done: true,
      done_reason: 'stop',
      total_duration: loadNs + 50e6,
      load_duration: loadNs,
      prompt_eval_count: 10,
      prompt_eval_duration: 10e6,
      eval_count: 5,
      eval_duration: 40e6,
    });
  }
  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/** A fixed pseudo-random sequence of models (the same for both runs). */
function sequence(n: number): string[] {
  let x = 12345;
  return Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return MODELS[x % MODELS.length].replace(':latest', '');
  });
}

const chat = (origin: string, model: string) =>
  fetch(`${origin}/api/chat`, { method: 'POST', body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }], stream: false }) }).then(
    async (r) => {
      await r.arrayBuffer();
      return r.status;
    },
  );

async function drive(models: string[], target: (i: number) => string): Promise<{ ms: number; failed: number }> {
  let next = 0;
  let failed = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < models.length) {
        const i = next++;
        if ((await chat(target(i), models[i]).catch(() => 0)) !== 200) failed++;
      }
    }),
  );
  return { ms: performance.now() - started, failed };
}

async function fakes(): Promise<LoadingFake[]> {
  return Promise.all(MODELS.map((m) => new LoadingFake(m).start()));
}

async function main(): Promise<void> {
  const models = sequence(CALLS);

  const rr = await fakes();
  const rrRun = await drive(models, (i) => rr[i % rr.length].origin);
  const rrCold = rr.reduce((n, f) => n + f.coldLoads, 0);
  await Promise.all(rr.map((f) => f.close()));

  const warm = await fakes();
  const gw = await startGatewayFor(warm.map((f) => f.origin).join(','), { OLLAMA_POLL_INTERVAL_SECONDS: '1', LOG_LEVEL: 'ERROR' });
  await gw.gw.poller!.pollNow();
  const warmRun = await drive(models, () => gw.url);
  const warmCold = warm.reduce((n, f) => n + f.coldLoads, 0);

  // Failover: kill the first box while calls keep coming.
  const victim = warm[0];
  const victimName = `127.0.0.1:${victim.port}`;
  let stop = false;
  const outcomes: { at: number; status: number }[] = [];
  const load = Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (!stop) outcomes.push({ status: await chat(gw.url, 'm1').catch(() => 0), at: performance.now() });
    }),
  );
  await new Promise((r) => setTimeout(r, 300));
  const killedAt = performance.now();
  await victim.close();
  let markedDownMs: number | undefined;
  while (performance.now() - killedAt < 10_000) {
    if (sample(await metricsText(gw.url), 'ollama_backend_healthy', { backend: victimName }) === 0) {
      markedDownMs = performance.now() - killedAt;
      break;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 1000));
  stop = true;
  await load;
  const after = outcomes.filter((o) => o.at > killedAt);
  const firstOk = after.find((o) => o.status === 200);
  const failedAfterKill = after.filter((o) => o.status !== 200).length;
  const failovers = sample(await metricsText(gw.url), 'ollama_backend_failovers_total', { from: victimName, to: `127.0.0.1:${warm[1].port}` }) ?? 0;
  const failovers2 = sample(await metricsText(gw.url), 'ollama_backend_failovers_total', { from: victimName, to: `127.0.0.1:${warm[2].port}` }) ?? 0;
  await gw.close();
  await Promise.all(warm.slice(1).map((f) => f.close()));

  const pct = (n: number) => `${((100 * n) / CALLS).toFixed(0)}%`;
  console.log(
    `# Fleet: ${MODELS.length} boxes holding one model each, ${CALLS} calls over ${MODELS.length} models, ${CONCURRENCY} at a time, cold load ${COLD_LOAD_MS} ms\n`,
  );
  console.log('| routing | cold loads | share of calls | wall time s | failed |');
  console.log('|---|---|---|---|---|');
  console.log(`| round-robin (model-unaware) | ${rrCold} | ${pct(rrCold)} | ${(rrRun.ms / 1000).toFixed(2)} | ${rrRun.failed} |`);
  console.log(`| gateway (warm routing) | ${warmCold} | ${pct(warmCold)} | ${(warmRun.ms / 1000).toFixed(2)} | ${warmRun.failed} |`);
  console.log(`\nCold loads avoided: ${rrCold - warmCold} of ${rrCold}.`);
  console.log(
    `\nFailover (box killed under ${CONCURRENCY} concurrent callers): first call succeeding elsewhere ${firstOk ? (firstOk.at - killedAt).toFixed(1) : '–'} ms after the kill; ` +
      `marked out of rotation after ${markedDownMs === undefined ? '> 10000' : markedDownMs.toFixed(1)} ms; calls failed after the kill: ${failedAfterKill}; failovers: ${failovers + failovers2}.`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
