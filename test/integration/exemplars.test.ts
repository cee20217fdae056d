/**
 * Exemplars: with tracing on, `/metrics` served as OpenMetrics carries, on histogram buckets and
 * error counters, the trace ids of recent sampled calls; a real Prometheus stores them and
 * `/api/v1/query_exemplars` hands back trace ids the OTLP receiver also received. Unsampled calls
 * leave none; the classic format is unchanged; with two workers the newest call wins.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FakeOllama, fixtureBehavior } from '../helpers/fake-ollama';
import { OtlpReceiver } from '../helpers/otlp-receiver';
import { freePort, runGateway, runWorkers, type GatewayProcess } from '../helpers/process';
import { requireTool } from '../helpers/tools';

const OPENMETRICS = 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5';

interface Caller {
  traceId: string;
  traceparent: string;
}

/** A caller with a trace of its own; `sampled` false sets the W3C flags to 00 (not sampled). */
function caller(sampled = true): Caller {
  const traceId = randomBytes(16).toString('hex');
  return { traceId, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-${sampled ? '01' : '00'}` };
}

function tracingEnv(receiver: OtlpReceiver): Record<string, string> {
  return {
    OTEL_SERVICE_NAME: 'gateway-under-test',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '50',
    OLLAMA_POLL_INTERVAL_SECONDS: '0',
  };
}

/** One call on a connection of its own (so that, with several workers, the kernel's spread applies). */
function request(
  url: string,
  path: string,
  method: string,
  headers: Record<string, string>,
  body?: string,
): Promise<{ status: number; type: string; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'] ?? '', text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function chat(url: string, c: Caller, model = 'llama3.2'): Promise<number> {
  const body = JSON.stringify({ model, stream: false, messages: [{ role: 'user', content: 'hi' }] });
  return (await request(url, '/api/chat', 'POST', { traceparent: c.traceparent }, body)).status;
}

async function scrape(url: string, accept?: string): Promise<{ type: string; text: string }> {
  return request(url, '/metrics', 'GET', accept ? { accept } : {});
}

/** Every exemplar in an OpenMetrics text: the sample's name and the exemplar's trace id. */
function exemplarsOf(text: string): { name: string; line: string; traceId: string; spanId: string }[] {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\S* \S+ # \{trace_id="([0-9a-f]{32})",span_id="([0-9a-f]{16})"\} \S+ \S+$/.exec(line);
    if (m) out.push({ name: m[1]!, line, traceId: m[2]!, spanId: m[3]! });
  }
  return out;
}

describe('exemplars in one process', () => {
  let fake: FakeOllama;
  let receiver: OtlpReceiver;
  let gw: GatewayProcess;
  let url: string;
  const sampled = caller();
  const failed = caller();
  const unsampled = caller(false);

  before(async () => {
    fake = await new FakeOllama().start();
    receiver = await new OtlpReceiver().start();
    fake.byModel.set('missing', () => fixtureBehavior('error-model-not-found.json'));
    const port = await freePort();
    gw = runGateway({
      OLLAMA_HOST: fake.origin,
      HOST: '127.0.0.1',
      PORT: String(port),
      TRACE_UI_URL: 'http://jaeger.test:16686/trace/{trace_id}',
      ...tracingEnv(receiver),
    });
    await gw.waitFor('gateway listening');
    url = `http://127.0.0.1:${port}`;
    assert.equal(await chat(url, sampled), 200);
    assert.equal(await chat(url, failed, 'missing'), 404);
  });
  after(async () => {
    gw.child.kill('SIGTERM');
    await gw.exit;
    await receiver.close();
    await fake.close();
  });

  it('serves OpenMetrics with exemplars on histogram buckets when asked, and the classic text otherwise', async () => {
    const om = await scrape(url, OPENMETRICS);
    assert.equal(om.type, 'application/openmetrics-text; version=1.0.0; charset=utf-8');
    assert.ok(om.text.endsWith('# EOF\n'));
    assert.match(om.text, /^# TYPE ollama_requests counter$/m, "a counter's family is named without _total");
    assert.match(om.text, /^ollama_requests_total\{/m);
    const ex = exemplarsOf(om.text);
    const latency = ex.filter((e) => e.name === 'ollama_response_seconds_bucket' && e.traceId === sampled.traceId);
    assert.equal(latency.length, 1, 'one bucket of the response time carries the call');
    assert.ok(ex.some((e) => e.name === 'gen_ai_client_operation_duration_seconds_bucket' && e.traceId === sampled.traceId));
    assert.ok(ex.some((e) => e.name === 'gen_ai_client_token_usage_bucket' && e.traceId === sampled.traceId));
    // The exemplar's value lies in its bucket.
    const m = /le="([^"]+)"\} \S+ # \{[^}]*\} (\S+) /.exec(latency[0]!.line)!;
    assert.ok(Number(m[2]) <= (m[1] === '+Inf' ? Infinity : Number(m[1])));

    const classic = await scrape(url);
    assert.equal(classic.type, 'text/plain; version=0.0.4; charset=utf-8');
    assert.doesNotMatch(classic.text, /trace_id|# EOF/);
  });

  it("puts a failed call's trace on the error counter it increments, and nothing of an unsampled call", async () => {
    assert.equal(await chat(url, unsampled), 200);
    const ex = exemplarsOf((await scrape(url, OPENMETRICS)).text);
    const errors = ex.filter((e) => e.name === 'ollama_request_errors_total');
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.traceId, failed.traceId);
    assert.match(errors[0]!.line, /reason="upstream_4xx"/);
    assert.ok(!ex.some((e) => e.traceId === unsampled.traceId), 'an unsampled call leaves no exemplar');
    // The unsampled call did not replace the sampled one in the bucket they share.
    assert.ok(ex.some((e) => e.name === 'ollama_response_seconds_bucket' && e.traceId === sampled.traceId));
  });

  it('links each traced call of the console to TRACE_UI_URL with its trace id', async () => {
    const res = await fetch(`${url}/console/api/v1/calls`);
    const { calls } = (await res.json()) as { calls: { traceId?: string; traceUrl?: string }[] };
    const call = calls.find((c) => c.traceId === sampled.traceId);
    assert.equal(call?.traceUrl, `http://jaeger.test:16686/trace/${sampled.traceId}`);
  });

  it('reaches a real Prometheus: query_exemplars returns trace ids the OTLP receiver received', async (t) => {
    const skip = requireTool('prometheus');
    if (skip) return t.skip(skip);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'prom-ex-'));
    const promPort = await freePort();
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: gw\n    static_configs:\n      - targets: ['127.0.0.1:${new URL(url).port}']\n`,
    );
    const prom = spawn(
      'prometheus',
      [
        `--config.file=${path.join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
        '--enable-feature=exemplar-storage',
      ],
      { stdio: 'ignore' },
    );
    try {
      type Found = { seriesLabels: Record<string, string>; exemplars: { labels: Record<string, string>; value: string }[] }[];
      const q = encodeURIComponent('ollama_response_seconds_bucket');
      let found: Found = [];
      const until = Date.now() + 20_000;
      while (Date.now() < until) {
        try {
          const now = Date.now() / 1000;
          const res = await fetch(`http://127.0.0.1:${promPort}/api/v1/query_exemplars?query=${q}&start=${now - 600}&end=${now + 60}`);
          found = ((await res.json()) as { data: Found }).data ?? [];
          if (found.length > 0) break;
        } catch {
          /* not up yet */
        }
        await new Promise((r) => setTimeout(r, 250));
      }
      const ids = found.flatMap((s) => s.exemplars.map((e) => e.labels.trace_id));
      assert.ok(ids.includes(sampled.traceId), `Prometheus stored no exemplar of the call: ${JSON.stringify(found)}`);
      await receiver.waitFor(() => ids.every((id) => receiver.trace(id!).length > 0) || undefined, 'the exemplars’ traces');
    } finally {
      prom.kill('SIGTERM');
      await new Promise((r) => prom.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('exemplars through the workers’ merge', () => {
  it('shows, whichever worker scraped, the newest call of every bucket, whichever worker served it', async () => {
    const fake = await new FakeOllama().start();
    const receiver = await new OtlpReceiver().start();
    const w = await runWorkers(fake.origin, 2, tracingEnv(receiver));
    try {
      for (let round = 0; round < 6; round++) {
        // One call, then two: with the scrapes between, the newest call lands on either worker
        // (the primary hands connections to the workers in turn).
        let c = caller();
        for (let i = 0; i <= round % 2; i++) {
          c = caller();
          assert.equal(await chat(w.url, c), 200);
        }
        const ex = exemplarsOf((await scrape(w.url, OPENMETRICS)).text);
        const onLatency = ex.filter((e) => e.name === 'ollama_response_seconds_bucket');
        assert.ok(
          onLatency.some((e) => e.traceId === c.traceId),
          `round ${round}: the newest call is the exemplar of its bucket; got ${onLatency.map((e) => e.traceId).join(', ')}`,
        );
      }
      // The classic text shows none of it, the line that carries exemplars between processes included.
      const classic = await scrape(w.url);
      assert.equal(classic.type, 'text/plain; version=0.0.4; charset=utf-8');
      assert.doesNotMatch(classic.text, /trace_id|gateway-exemplars|# EOF/);
    } finally {
      await w.stop();
      await receiver.close();
      await fake.close();
    }
  });
});
