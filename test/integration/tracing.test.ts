/**
 * Traces, as a collector receives them over OTLP/HTTP: one trace per request joined to the
 * caller's, a GenAI client span per LLM call with the conventions' attributes, Ollama's phases as
 * child spans, W3C trace context carried to Ollama, and OTLP metrics equal to `/metrics`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { FakeOllama } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { metricsText, sample } from '../helpers/gateway';
import { OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver';
import { freePort, runGateway, type GatewayProcess } from '../helpers/process';

const SERVER = 2;
const CLIENT = 3;
const INTERNAL = 1;
const ERROR = 2;

interface Caller {
  traceId: string;
  spanId: string;
  traceparent: string;
}

function caller(): Caller {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

interface TracedStack {
  fake: FakeOllama;
  receiver: OtlpReceiver;
  gw: { p: GatewayProcess; url: string };
  close(): Promise<void>;
}

/** A fake Ollama, an OTLP receiver and the gateway process exporting to it. */
async function tracedStack(env: Record<string, string> = {}): Promise<TracedStack> {
  const fake = await new FakeOllama().start();
  const receiver = await new OtlpReceiver().start();
  const gw = await startTracedGateway(fake, receiver, env);
  return {
    fake,
    receiver,
    gw,
    close: async () => {
      gw.p.child.kill('SIGTERM');
      await gw.p.exit;
      await receiver.close();
      await fake.close();
    },
  };
}

async function startTracedGateway(fake: FakeOllama, receiver: OtlpReceiver, env: Record<string, string>): Promise<{ p: GatewayProcess; url: string }> {
  const port = await freePort();
  const p = runGateway({
    OLLAMA_HOST: fake.origin,
    HOST: '127.0.0.1',
    PORT: String(port),
    OTEL_SERVICE_NAME: 'gateway-under-test',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '50',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_METRIC_EXPORT_INTERVAL: '250',
    ...env,
  });
  await p.waitFor('gateway listening');
  return { p, url: `http://127.0.0.1:${port}` };
}

/** The spans of the caller's trace once the GenAI span (and its children) have arrived. */
async function traceOf(receiver: OtlpReceiver, c: Caller, minSpans: number): Promise<ReceivedSpan[]> {
  return receiver.waitFor(() => {
    const spans = receiver.trace(c.traceId);
    return spans.length >= minSpans && spans.some((s) => s.attributes['gen_ai.operation.name']) ? spans : undefined;
  }, `trace ${c.traceId}`);
}

function one(spans: ReceivedSpan[], pred: (s: ReceivedSpan) => boolean, what: string): ReceivedSpan {
  const found = spans.filter(pred);
  assert.equal(found.length, 1, `expected one ${what}, got ${found.map((s) => s.name).join(', ')}`);
  return found[0];
}

const ms = (ns: bigint) => Number(ns) / 1e6;

describe('traces exported over OTLP', () => {
  let stack: TracedStack;
  let fake: FakeOllama;
  let receiver: OtlpReceiver;
  let gw: { p: GatewayProcess; url: string };

  before(async () => {
    // The fair queue on (it is off by default), so a call's span carries its turn in it.
    stack = await tracedStack({ BACKEND_PARALLEL: '4' });
    ({ fake, receiver, gw } = stack);
  });
  after(() => stack.close());

  it("joins the caller's trace: server span → GenAI span → phases and the HTTP call to Ollama, which gets the trace context", async () => {
    const c = caller();
    const res = await fetch(`${gw.url}/api/chat`, {
      method: 'POST',
      headers: { traceparent: c.traceparent },
      body: JSON.stringify({
        model: 'llama3.2',
        messages: [{ role: 'user', content: 'Why is the sky blue?' }],
        options: { temperature: 0.2, top_k: 40, num_predict: 128, seed: 42 },
      }),
    });
    await res.text();
    const spans = await traceOf(receiver, c, 6);

    const server = one(spans, (s) => s.kind === SERVER, 'server span');
    assert.equal(server.parentSpanId, c.spanId);
    assert.equal(server.resource['service.name'], 'gateway-under-test');

    const llm = one(spans, (s) => s.name === 'chat llama3.2', 'GenAI span');
    assert.equal(llm.kind, CLIENT);
    assert.equal(llm.parentSpanId, server.spanId);
    const a = llm.attributes;
    assert.equal(a['gen_ai.operation.name'], 'chat');
    assert.equal(a['gen_ai.provider.name'], 'ollama');
    assert.equal(a['gen_ai.request.model'], 'llama3.2');
    assert.equal(a['gen_ai.response.model'], 'llama3.2');
    assert.equal(a['gen_ai.request.stream'], true);
    assert.equal(a['gen_ai.request.temperature'], 0.2);
    assert.equal(a['gen_ai.request.top_k'], 40);
    assert.equal(a['gen_ai.request.max_tokens'], 128);
    assert.equal(a['gen_ai.request.seed'], 42);
    assert.deepEqual(a['gen_ai.response.finish_reasons'], ['stop']);
    assert.equal(a['gen_ai.usage.input_tokens'], 37);
    assert.equal(a['gen_ai.usage.output_tokens'], 31);
    assert.equal(a['server.address'], '127.0.0.1');
    assert.equal(a['server.port'], fake.port);
    assert.equal(a['error.type'], undefined);
    assert.equal(a['gen_ai.input.messages'], undefined, 'no prompt text unless the operator opts in');
    // Its turn in the gateway's fair queue: a free slot, so nobody ahead.
    assert.equal(a['ollama_gateway.tenant'], 'anonymous');
    assert.equal(a['ollama_gateway.queue.position'], 0);
    assert.equal(a['ollama_gateway.queue.wait_seconds'], 0);
    assert.equal(llm.status.code, 0);
    const first = llm.events.find((e) => e.name === 'gen_ai.first_token');
    assert.ok(first && first.timeNs >= llm.startNs && first.timeNs <= llm.endNs, 'first-token event inside the span');

    // Ollama's phases, placed from its reported durations (chat-stream.ndjson's final line).
    const load = one(spans, (s) => s.name === 'ollama.load_model', 'load span');
    const prompt = one(spans, (s) => s.name === 'ollama.prompt_eval', 'prompt span');
    const gen = one(spans, (s) => s.name === 'ollama.generation', 'generation span');
    for (const s of [load, prompt, gen]) {
      assert.equal(s.parentSpanId, llm.spanId);
      assert.equal(s.kind, INTERNAL);
    }
    assert.ok(Math.abs(ms(load.endNs - load.startNs) - 23.605102) < 0.01);
    assert.ok(Math.abs(ms(prompt.endNs - prompt.startNs) - 31.29) < 0.01);
    assert.ok(Math.abs(ms(gen.endNs - gen.startNs) - 428.816) < 0.01);
    assert.ok(prompt.endNs <= gen.startNs + 1000n, 'prompt evaluation ends where generation starts');
    assert.ok(load.startNs >= llm.startNs, 'load starts inside the call');

    // The HTTP call to Ollama is the GenAI span's child, and carried the trace context.
    const upstream = one(spans, (s) => s.kind === CLIENT && s.parentSpanId === llm.spanId, 'upstream HTTP span');
    const sent = fake.last('/api/chat')!.headers.traceparent as string;
    assert.match(sent, new RegExp(`^00-${c.traceId}-${upstream.spanId}-01$`));
  });

  it('traces OpenAI calls, streaming and not, with response id and usage', async () => {
    const c1 = caller();
    const c2 = caller();
    const sdk = (c: Caller) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'x', maxRetries: 0, defaultHeaders: { traceparent: c.traceparent } });
    await sdk(c1).chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'Say this is a test' }], max_tokens: 16, temperature: 0.5 });
    for await (const _ of await sdk(c2).chat.completions.create({
      model: 'llama3.2',
      messages: [{ role: 'user', content: 'Say this is a test' }],
      stream: true,
    }))
      void _;

    const plain = one(await traceOf(receiver, c1, 3), (s) => s.name === 'chat llama3.2', 'GenAI span');
    assert.equal(plain.attributes['gen_ai.request.stream'], false);
    assert.equal(plain.attributes['gen_ai.response.id'], 'chatcmpl-512');
    assert.equal(plain.attributes['gen_ai.request.max_tokens'], 16);
    assert.equal(plain.attributes['gen_ai.usage.output_tokens'], 6);
    assert.equal(plain.events.length, 0);

    const streamed = one(await traceOf(receiver, c2, 3), (s) => s.name === 'chat llama3.2', 'GenAI span');
    assert.equal(streamed.attributes['gen_ai.request.stream'], true);
    assert.equal(streamed.attributes['gen_ai.response.id'], 'chatcmpl-607');
    assert.equal(streamed.attributes['gen_ai.usage.input_tokens'], 30);
    assert.equal(streamed.attributes['gen_ai.usage.output_tokens'], 6);
    assert.ok(streamed.events.some((e) => e.name === 'gen_ai.first_token'));
  });

  it('names generate calls text_completion and embed calls embeddings', async () => {
    const c1 = caller();
    const c2 = caller();
    await (
      await fetch(`${gw.url}/api/generate`, {
        method: 'POST',
        headers: { traceparent: c1.traceparent },
        body: '{"model":"llama3.2","prompt":"haiku","stream":false}',
      })
    ).text();
    await (
      await fetch(`${gw.url}/api/embed`, { method: 'POST', headers: { traceparent: c2.traceparent }, body: '{"model":"all-minilm","input":["a","b"]}' })
    ).text();
    const gen = one(await traceOf(receiver, c1, 3), (s) => s.attributes['gen_ai.operation.name'] !== undefined, 'GenAI span');
    assert.equal(gen.name, 'text_completion llama3.2');
    const emb = one(await traceOf(receiver, c2, 3), (s) => s.attributes['gen_ai.operation.name'] !== undefined, 'GenAI span');
    assert.equal(emb.name, 'embeddings all-minilm');
    assert.equal(emb.attributes['gen_ai.usage.input_tokens'], 16);
  });

  it('marks an upstream failure as an error with error.type', async () => {
    const c = caller();
    // Every attempt is reset (a reset on a reused connection is retried once, as a stale one).
    fake.byModel.set('llama3.2', () => ({ kind: 'reset' }));
    const res = await fetch(`${gw.url}/api/chat`, {
      method: 'POST',
      headers: { traceparent: c.traceparent },
      body: '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}',
    }).finally(() => fake.byModel.delete('llama3.2'));
    assert.equal(res.status, 502);
    await res.text();
    const llm = one(await traceOf(receiver, c, 2), (s) => s.name === 'chat llama3.2', 'GenAI span');
    assert.equal(llm.status.code, ERROR);
    assert.equal(llm.attributes['error.type'], 'upstream_unreachable');
    assert.match(llm.status.message ?? '', /closed the connection before answering/);
  });

  it('marks a 404 from Ollama with its status code as error.type', async () => {
    const c = caller();
    await (
      await fetch(`${gw.url}/api/chat`, {
        method: 'POST',
        headers: { traceparent: c.traceparent },
        body: '{"model":"llama3.3","messages":[{"role":"user","content":"hi"}]}',
      })
    ).text();
    const llm = one(await traceOf(receiver, c, 2), (s) => s.name === 'chat llama3.3', 'GenAI span');
    assert.equal(llm.status.code, ERROR);
    assert.equal(llm.attributes['error.type'], '404');
  });

  it('ends the span of a call the client abandoned without an error, saying the client cancelled', async () => {
    const c = caller();
    fake.next({ kind: 'body', status: 200, contentType: 'application/x-ndjson', body: fixture('chat-stream.ndjson'), gapMs: 50 });
    await new Promise<void>((resolve) => {
      const req = http.request(`${gw.url}/api/chat`, { method: 'POST', headers: { traceparent: c.traceparent } }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      req.end('{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}');
    });
    const llm = one(await traceOf(receiver, c, 2), (s) => s.name === 'chat llama3.2', 'GenAI span');
    assert.equal(llm.status.code, 0);
    assert.equal(llm.attributes['ollama_gateway.client_cancelled'], true);
    assert.equal(llm.attributes['error.type'], undefined);
  });

  it('pushes over OTLP the same measurements /metrics serves', async () => {
    const exposition = await metricsText(gw.url);
    const tokens = sample(exposition, 'ollama_tokens_generated_total', { model: 'llama3.2:latest' });
    assert.ok(tokens !== undefined && tokens > 0);
    const requests = [...exposition.matchAll(/^ollama_requests_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    // Exports are periodic: wait for one taken after every request above was recorded.
    await receiver.waitFor(() => {
      const last = receiver.points[receiver.points.length - 1] ?? [];
      const t = last.find((x) => x.metric === 'ollama_tokens_generated_total' && x.attributes.model === 'llama3.2:latest')?.value;
      const r = last.filter((x) => x.metric === 'ollama_requests_total').reduce((n, p) => n + (p.value ?? 0), 0);
      return t === tokens && r === requests ? true : undefined;
    }, `an OTLP export with ${tokens} tokens and ${requests} requests, as /metrics shows`);
  });
});

describe('content capture (opt-in)', () => {
  let stack: TracedStack;
  let receiver: OtlpReceiver;
  let gw: { p: GatewayProcess; url: string };

  before(async () => {
    stack = await tracedStack({ OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'true', GENAI_CAPTURE_MAX_CHARS: '12' });
    ({ receiver, gw } = stack);
  });
  after(() => stack.close());

  it('records prompt and answer as GenAI messages, each text cut to GENAI_CAPTURE_MAX_CHARS', async () => {
    const c = caller();
    await (
      await fetch(`${gw.url}/api/chat`, {
        method: 'POST',
        headers: { traceparent: c.traceparent },
        body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue? Answer in one sentence.' }] }),
      })
    ).text();
    const llm = one(await traceOf(receiver, c, 3), (s) => s.name === 'chat llama3.2', 'GenAI span');
    assert.deepEqual(JSON.parse(llm.attributes['gen_ai.input.messages'] as string), [{ role: 'user', parts: [{ type: 'text', content: 'Why is the s…' }] }]);
    assert.deepEqual(JSON.parse(llm.attributes['gen_ai.output.messages'] as string), [
      { role: 'assistant', parts: [{ type: 'text', content: 'The sky appe…' }], finish_reason: 'stop' },
    ]);
  });
});

describe('without an OTLP endpoint', () => {
  it('runs without export errors or retry noise, and still carries trace context to Ollama', async () => {
    const fake = await new FakeOllama().start();
    const port = await freePort();
    const p = runGateway({ OLLAMA_HOST: fake.origin, HOST: '127.0.0.1', PORT: String(port), OTEL_BSP_SCHEDULE_DELAY: '50' });
    try {
      await p.waitFor('gateway listening');
      const c = caller();
      const res = await fetch(`http://127.0.0.1:${port}/api/chat`, {
        method: 'POST',
        headers: { traceparent: c.traceparent },
        body: '{"model":"llama3.2","stream":false}',
      });
      assert.equal(res.status, 200);
      await res.text();
      await new Promise((r) => setTimeout(r, 300));
      assert.match(fake.last('/api/chat')!.headers.traceparent as string, new RegExp(`^00-${c.traceId}-`));
      p.child.kill('SIGTERM');
      assert.equal(await p.exit, 0);
      assert.equal(p.stderr, '', 'nothing on stderr');
      assert.ok(!p.lines.some((l) => /export|ECONNREFUSED|4318/i.test(JSON.stringify(l))), 'no export noise in the logs');
    } finally {
      p.child.kill('SIGKILL');
      await fake.close();
    }
  });
});

describe('tracing who made a call', () => {
  it('puts the tenant and the end user it asserted on the GenAI span, and neither key nor forged user', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'traced-tenants-'));
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(file, 'tenants:\n  - { name: webui, keys: [sk-webui], users: {} }\n  - { name: batch, keys: [sk-batch] }\n');
    const stack = await tracedStack({ GATEWAY_TENANTS_FILE: file });
    try {
      const send = async (key: string, user: string) => {
        const c = caller();
        const res = await fetch(`${stack.gw.url}/api/chat`, {
          method: 'POST',
          headers: { traceparent: c.traceparent, authorization: `Bearer ${key}`, 'x-openwebui-user-id': user },
          body: '{"model":"llama3.2","stream":false}',
        });
        await res.text();
        return one(await traceOf(stack.receiver, c, 3), (s) => s.name === 'chat llama3.2', 'GenAI span').attributes;
      };
      const asserted = await send('sk-webui', 'alice');
      assert.equal(asserted['ollama_gateway.tenant'], 'webui');
      assert.equal(asserted['enduser.id'], 'alice');
      const forged = await send('sk-batch', 'alice');
      assert.equal(forged['ollama_gateway.tenant'], 'batch');
      assert.equal(forged['enduser.id'], undefined, 'a tenant that may not assert users has none');
      assert.ok(!JSON.stringify([asserted, forged]).includes('sk-'), 'no key on a span');
    } finally {
      await stack.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
