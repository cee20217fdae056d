/**
 * `npm run soak`: drives the gateway (a separate process, as users run it) for a bounded time with
 * a mix of traffic against a fake Ollama that misbehaves on a schedule, then checks the books:
 *
 * - every instrumented request is counted exactly once in ollama_requests_total (per model);
 * - every client got its full response or a clean error of the expected kind;
 * - no upstream request keeps running after its client left;
 * - the gateway's open sockets and active handles return to their baseline;
 * - its memory after the run stays within a margin of before (RSS and heap: before, peak, after).
 *
 * Loopback only. Prints one summary table; exits 1 when a book does not balance.
 *
 *   node dist/bench/soak.js [--seconds 180] [--concurrency 48] [--slow-streams 200]
 */
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FakeOllama, withoutUsageEvent, type Behavior } from '../test/helpers/fake-ollama';
import { fixture } from '../test/helpers/fixtures';
import { freePort, startNode, waitForPort } from './procs';

interface Stats {
  heapUsedMb: number;
  rssMb: number;
  handles: number;
  sockets: number;
}

type Outcome = 'full' | 'status' | 'broken' | 'cancelled';

interface Kind {
  name: string;
  weight: number;
  /** Counted in ollama_requests_total under this model label (undefined: not instrumented). */
  label?: string;
  run(ctx: Ctx): Promise<{ ok: boolean; why?: string }>;
}

interface Ctx {
  url: string;
  agent: http.Agent;
}

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? def : Number(process.argv[i + 1]);
};

interface Reply {
  status: number;
  body: Buffer;
  outcome: Outcome;
}

/** One request. `hangUp` makes the client leave: before the response, after the first chunk, or on the last. */
function request(ctx: Ctx, method: string, p: string, body: Buffer | string | undefined, hangUp?: 'before' | 'mid' | 'end', headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let status = 0;
    let settled = false;
    const done = (outcome: Outcome) => {
      if (settled) return;
      settled = true;
      resolve({ status, body: Buffer.concat(chunks), outcome });
    };
    const req = http.request(`${ctx.url}${p}`, { method, agent: hangUp ? false : ctx.agent, headers }, (res) => {
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

const CHAT = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue?' }] });
const chatFor = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] });
const expectFull = (r: Reply, body: Buffer, status = 200) =>
  r.outcome === 'full' && r.status === status && r.body.equals(body) ? { ok: true } : { ok: false, why: `${r.outcome} ${r.status} ${r.body.length}B` };
const expectStatus = (r: Reply, status: number) => (r.outcome === 'full' && r.status === status ? { ok: true } : { ok: false, why: `${r.outcome} ${r.status}` });

function fault(fake: FakeOllama, model: string, make: () => Behavior): string {
  fake.byModel.set(model, make);
  return model;
}

async function main(): Promise<void> {
  const seconds = arg('seconds', 180);
  const concurrency = arg('concurrency', 48);
  const slowStreams = arg('slow-streams', 200);
  const dist = path.resolve(__dirname, '..');

  const fake = await new FakeOllama().start();
  fake.recordRequests = false;
  const chatStream = fixture('chat-stream.ndjson');
  const nl = chatStream.indexOf('\n') + 1;
  const garbage = Buffer.concat([chatStream.subarray(0, nl), Buffer.from('<html>oops</html>\n'), chatStream.subarray(nl)]);
  const truncated = chatStream.subarray(0, chatStream.lastIndexOf('\n', chatStream.length - 2) + 1);
  const ndjson = (body: Buffer, extra: Partial<Extract<Behavior, { kind: 'body' }>> = {}): Behavior => ({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body, ...extra });
  const mReset = fault(fake, 'fault-reset', () => ({ kind: 'reset' }));
  const mResetMid = fault(fake, 'fault-reset-mid', () => ({ kind: 'reset-after', status: 200, contentType: 'application/x-ndjson', body: chatStream, bytes: 600 }));
  const mHang = fault(fake, 'fault-hang', () => ({ kind: 'hang' }));
  const mStall = fault(fake, 'fault-stall', () => ({ kind: 'stall', status: 200, contentType: 'application/x-ndjson', body: chatStream, bytes: 500, resumeAfterMs: 300 }));
  const mGarbage = fault(fake, 'fault-garbage', () => ndjson(garbage));
  const mErrorLine = fault(fake, 'fault-error-line', () => ndjson(fixture('error-midstream.ndjson')));
  const mTruncated = fault(fake, 'fault-truncated', () => ndjson(truncated));
  const mSlow = fault(fake, 'slow-stream', () => ndjson(chatStream, { gapMs: 40 }));

  const port = await freePort();
  const child = startNode(
    path.join(dist, 'bench', 'gateway-probe.js'),
    [],
    {
      OLLAMA_HOST: fake.origin,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'ERROR',
      UPSTREAM_IDLE_TIMEOUT_SECONDS: '1',
      MAX_REQUEST_BODY_MB: '1',
      OLLAMA_POLL_INTERVAL_SECONDS: '0',
      NODE_OPTIONS: '--expose-gc',
    },
    true,
  );
  const stats = (): Promise<Stats> =>
    new Promise((resolve) => {
      child.once('message', (m) => resolve(m as Stats));
      child.send({ type: 'stats', gc: true });
    });
  await waitForPort(port);
  const url = `http://127.0.0.1:${port}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency + slowStreams });
  const ctx: Ctx = { url, agent };

  const upload = randomBytes(4 * 1024 * 1024);
  const uploadDigest = createHash('sha256').update(upload).digest('hex');
  const L = (m: string) => (m.includes(':') ? m : `${m}:latest`);

  const kinds: Kind[] = [
    { name: 'native chat stream', weight: 10, label: 'llama3.2:latest', run: async (c) => expectFull(await request(c, 'POST', '/api/chat', CHAT), chatStream) },
    { name: 'native chat json', weight: 6, label: 'llama3.2:latest', run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor('llama3.2').replace('{', '{"stream":false,')), fixture('chat-nostream.json')) },
    { name: 'native generate stream', weight: 6, label: 'llama3.2:latest', run: async (c) => expectFull(await request(c, 'POST', '/api/generate', '{"model":"llama3.2","prompt":"Write a haiku about autumn leaves."}'), fixture('generate-stream.ndjson')) },
    { name: 'openai chat stream', weight: 6, label: 'llama3.2:latest', run: async (c) => expectFull(await request(c, 'POST', '/v1/chat/completions', '{"model":"llama3.2","stream":true,"messages":[]}'), withoutUsageEvent(fixture('openai-chat-stream.sse'))) },
    { name: 'openai chat json', weight: 4, label: 'llama3.2:latest', run: async (c) => expectFull(await request(c, 'POST', '/v1/chat/completions', '{"model":"llama3.2","messages":[]}'), fixture('openai-chat-nostream.json')) },
    { name: 'embed', weight: 4, label: 'all-minilm:latest', run: async (c) => expectFull(await request(c, 'POST', '/api/embed', '{"model":"all-minilm","input":["a","b"]}'), fixture('embed.json')) },
    { name: 'pass-through tags', weight: 4, run: async (c) => expectFull(await request(c, 'GET', '/api/tags', undefined), fixture('tags.json')) },
    { name: 'upload 4 MB blob', weight: 1, run: async (c) => expectStatus(await request(c, 'POST', `/api/blobs/sha256:${uploadDigest}`, upload), 201) },
    { name: 'upstream refuses', weight: 2, label: L(mReset), run: async (c) => expectStatus(await request(c, 'POST', '/api/chat', chatFor(mReset)), 502) },
    { name: 'upstream resets mid-stream', weight: 2, label: L(mResetMid), run: async (c) => { const r = await request(c, 'POST', '/api/chat', chatFor(mResetMid)); return r.outcome === 'broken' ? { ok: true } : { ok: false, why: r.outcome }; } },
    { name: 'upstream hangs', weight: 1, label: L(mHang), run: async (c) => expectStatus(await request(c, 'POST', '/api/chat', chatFor(mHang)), 504) },
    { name: 'upstream stalls, resumes', weight: 2, label: L(mStall), run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor(mStall)), chatStream) },
    { name: 'non-JSON line', weight: 2, label: L(mGarbage), run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor(mGarbage)), garbage) },
    { name: 'error line', weight: 2, label: L(mErrorLine), run: async (c) => expectFull(await request(c, 'POST', '/api/generate', chatFor(mErrorLine)), fixture('error-midstream.ndjson')) },
    { name: 'truncated stream', weight: 2, label: L(mTruncated), run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor(mTruncated)), truncated) },
    { name: 'client leaves before response', weight: 2, label: L(mHang), run: async (c) => { const r = await request(c, 'POST', '/api/chat', chatFor(mHang), 'before'); return { ok: r.outcome === 'cancelled', why: r.outcome }; } },
    { name: 'client leaves mid-stream', weight: 2, label: L(mSlow), run: async (c) => { const r = await request(c, 'POST', '/api/chat', chatFor(mSlow), 'mid'); return { ok: r.outcome === 'cancelled', why: r.outcome }; } },
    { name: 'client leaves at the end', weight: 2, label: 'llama3.2:latest', run: async (c) => { const r = await request(c, 'POST', '/api/chat', CHAT, 'end'); return { ok: r.outcome === 'cancelled' || r.outcome === 'full', why: r.outcome }; } },
    { name: 'body over the limit', weight: 1, label: 'unknown', run: async (c) => expectStatus(await request(c, 'POST', '/api/generate', JSON.stringify({ model: 'llama3.2', prompt: 'x'.repeat(1_200_000) })), 413) },
    { name: 'malformed JSON', weight: 2, label: 'unknown', run: async (c) => expectStatus(await request(c, 'POST', '/api/chat', '{"model": "llama3.2", oops'), 400) },
    { name: 'random model name', weight: 3, label: 'random', run: async (c) => expectStatus(await request(c, 'POST', '/api/chat', chatFor(`random-${randomBytes(6).toString('hex')}`)), 404) },
  ];
  const totalWeight = kinds.reduce((n, k) => n + k.weight, 0);
  const pick = () => {
    let r = Math.random() * totalWeight;
    for (const k of kinds) if ((r -= k.weight) < 0) return k;
    return kinds[0];
  };

  // Warm up, then take the baseline.
  for (const k of kinds) await k.run(ctx);
  agent.destroy();
  await new Promise((r) => setTimeout(r, 500));
  const before = await stats();

  const tally = new Map<string, { sent: number; failed: number; why: Map<string, number> }>();
  const expectedByLabel = new Map<string, number>();
  let peakRss = before.rssMb;
  let peakHeap = before.heapUsedMb;
  const sampler = setInterval(async () => {
    const s = await stats();
    peakRss = Math.max(peakRss, s.rssMb);
    peakHeap = Math.max(peakHeap, s.heapUsedMb);
  }, 1000);
  const until = performance.now() + seconds * 1000;
  const runOne = async (k: Kind) => {
    const t = tally.get(k.name) ?? { sent: 0, failed: 0, why: new Map<string, number>() };
    tally.set(k.name, t);
    t.sent++;
    if (k.label) expectedByLabel.set(k.label, (expectedByLabel.get(k.label) ?? 0) + 1);
    const r = await k.run(ctx).catch((err: Error) => ({ ok: false, why: err.message }));
    if (!r.ok) {
      t.failed++;
      t.why.set(r.why ?? '?', (t.why.get(r.why ?? '?') ?? 0) + 1);
    }
  };
  const worker = async () => {
    while (performance.now() < until) await runOne(pick());
  };
  // Hundreds of concurrent slow streams, in waves, beside the mixed traffic.
  const slowKind: Kind = { name: 'slow stream (concurrent wave)', weight: 0, label: L(mSlow), run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor(mSlow)), chatStream) };
  const waves = async () => {
    while (performance.now() < until - 2000) await Promise.all(Array.from({ length: slowStreams }, () => runOne(slowKind)));
  };
  await Promise.all([waves(), ...Array.from({ length: concurrency }, worker)]);
  clearInterval(sampler);

  // Traffic has stopped: let connections close, then read the books.
  agent.destroy();
  const settleUntil = Date.now() + 15_000;
  let after = await stats();
  while ((after.handles > before.handles + 2 || fake.active > 0) && Date.now() < settleUntil) {
    await new Promise((r) => setTimeout(r, 250));
    after = await stats();
  }
  const metrics = await (await fetch(`${url}/metrics`)).text();
  child.kill('SIGTERM');
  await fake.close();

  const counted = new Map<string, number>();
  for (const m of metrics.matchAll(/^ollama_requests_total\{model="([^"]*)",[^}]*\} (\d+)/gm)) counted.set(m[1], (counted.get(m[1]) ?? 0) + Number(m[2]));
  const books: { book: string; expected: string; actual: string; ok: boolean }[] = [];
  const warmupByLabel = new Map<string, number>();
  for (const k of kinds) if (k.label) warmupByLabel.set(k.label, (warmupByLabel.get(k.label) ?? 0) + 1);
  let randomExpected = 0;
  for (const [label, n] of expectedByLabel) {
    const want = n + (warmupByLabel.get(label) ?? 0);
    if (label === 'random') {
      randomExpected = want;
      continue;
    }
    const got = counted.get(label) ?? 0;
    books.push({ book: `requests counted, model ${label}`, expected: String(want), actual: String(got), ok: got === want });
  }
  const knownLabels = new Set([...expectedByLabel.keys()].filter((l) => l !== 'random'));
  const randomCounted = [...counted].filter(([l]) => !knownLabels.has(l)).reduce((n, [, v]) => n + v, 0);
  books.push({ book: 'requests counted, random model names', expected: String(randomExpected), actual: String(randomCounted), ok: randomCounted === randomExpected });
  const failures = [...tally].reduce((n, [, t]) => n + t.failed, 0);
  books.push({ book: 'clients that got neither their response nor the expected error', expected: '0', actual: String(failures), ok: failures === 0 });
  books.push({ book: 'upstream requests still running', expected: '0', actual: String(fake.active), ok: fake.active === 0 });
  const cancelled = (tally.get('client leaves mid-stream')?.sent ?? 0) + (tally.get('client leaves before response')?.sent ?? 0);
  books.push({ book: 'upstream requests abandoned ≥ clients that left', expected: `≥ ${cancelled}`, actual: String(fake.abandoned), ok: fake.abandoned >= cancelled });
  books.push({ book: 'active handles (before → after)', expected: `≤ ${before.handles + 2}`, actual: `${before.handles} → ${after.handles}`, ok: after.handles <= before.handles + 2 });
  books.push({ book: 'open sockets (before → after)', expected: `≤ ${before.sockets + 2}`, actual: `${before.sockets} → ${after.sockets}`, ok: after.sockets <= before.sockets + 2 });
  const heapMargin = 24;
  books.push({ book: 'heap used MB (before / peak / after GC)', expected: `after ≤ before + ${heapMargin}`, actual: `${before.heapUsedMb.toFixed(1)} / ${peakHeap.toFixed(1)} / ${after.heapUsedMb.toFixed(1)}`, ok: after.heapUsedMb <= before.heapUsedMb + heapMargin });
  books.push({ book: 'RSS MB (before / peak / after)', expected: 'reported', actual: `${before.rssMb.toFixed(0)} / ${peakRss.toFixed(0)} / ${after.rssMb.toFixed(0)}`, ok: true });

  const out: string[] = [];
  out.push(`## Soak: ${seconds} s, ${concurrency} mixed clients, waves of ${slowStreams} slow streams`, '');
  out.push('| traffic | sent | failed | why |', '|---|---|---|---|');
  for (const [name, t] of tally) out.push(`| ${name} | ${t.sent} | ${t.failed} | ${[...t.why].map(([w, n]) => `${w} ×${n}`).join(', ')} |`);
  out.push('', '| book | expected | actual | |', '|---|---|---|---|');
  for (const b of books) out.push(`| ${b.book} | ${b.expected} | ${b.actual} | ${b.ok ? 'balanced' : 'NOT BALANCED'} |`);
  process.stdout.write(out.join('\n') + '\n');
  process.exit(books.every((b) => b.ok) ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`soak failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});


