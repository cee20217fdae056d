/**
 * Tenants end to end: a tenants file of three (one an Open WebUI-like app asserting its users),
 * traffic from each through the real SDKs and plain HTTP, a restart in the middle, and then the
 * usage API, the CLI, `/metrics` and the access log agreeing with the calls made. Also: a header
 * asserting a user from a tenant that may not is stripped before Ollama, and the file is re-read
 * when it changes (a bad one keeps the tenants in use).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';
import { fixture } from '../helpers/fixtures';
import { MAIN } from '../helpers/process';
import { eventually } from '../helpers/wait';

const run = promisify(execFile);

const TENANTS = `
tenants:
  - name: research
    keys: [sk-research]
  - name: batch
    keys: [sk-batch]
  - name: webui
    keys: [sk-webui]
    users: { header: X-OpenWebUI-User-Id }
`;

const nativeChat = JSON.parse(fixture('chat-nostream.json').toString()) as { prompt_eval_count: number; eval_count: number };
const openaiChat = JSON.parse(fixture('openai-chat-nostream.json').toString()) as { usage: { prompt_tokens: number; completion_tokens: number } };

interface Made {
  requests: number;
  input: number;
  output: number;
}

describe('tenants, end users and the usage ledger', () => {
  it('agree call for call across the usage API, the CLI, /metrics and the log, through a restart', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tenants-'));
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(file, TENANTS);
    const env = { GATEWAY_TENANTS_FILE: file, GATEWAY_DATA_DIR: path.join(dir, 'data'), LEDGER_URL: '', METRICS_BEARER_TOKEN: 'op-tenants-books' };
    const made = new Map<string, Made>();
    const add = (key: string, input: number, output: number) => {
      const m = made.get(key) ?? { requests: 0, input: 0, output: 0 };
      m.requests++;
      m.input += input;
      m.output += output;
      made.set(key, m);
    };
    const chat = (stack: TestStack, key: string, headers: Record<string, string> = {}) =>
      fetch(`${stack.url}/api/chat`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, ...headers },
        body: '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}',
      }).then(async (r) => {
        assert.equal(r.status, 200);
        await r.text();
      });
    let stack = await startStack(env);
    try {
      // First life: each tenant calls; the app asserts two users; batch forges a user header.
      await chat(stack, 'sk-research');
      add('research/', nativeChat.prompt_eval_count, nativeChat.eval_count);
      await chat(stack, 'sk-webui', { 'X-OpenWebUI-User-Id': 'alice', 'X-OpenWebUI-User-Email': 'alice@example.com' });
      add('webui/alice', nativeChat.prompt_eval_count, nativeChat.eval_count);
      assert.equal(stack.fake.last('/api/chat')!.headers['x-openwebui-user-id'], 'alice', "the app's own header is forwarded");
      await chat(stack, 'sk-batch', { 'X-OpenWebUI-User-Id': 'ceo' });
      add('batch/', nativeChat.prompt_eval_count, nativeChat.eval_count);
      assert.equal(stack.fake.last('/api/chat')!.headers['x-openwebui-user-id'], undefined, 'a header no one vouched for never reaches Ollama');
      const first = await metricsText(stack.url, env.METRICS_BEARER_TOKEN);
      assert.equal(sample(first, 'ollama_tenant_requests_total', { tenant: 'batch', model: 'llama3.2:latest', status: '200' }), 1);
      await stack.close();

      // Second life, on the same data directory.
      stack = await startStack(env);
      const openai = (key: string, user?: string) =>
        new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: key, maxRetries: 0, defaultHeaders: user ? { 'X-OpenWebUI-User-Id': user } : {} });
      for (const user of ['alice', 'bob', 'bob']) {
        await openai('sk-webui', user).chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
        add(`webui/${user}`, openaiChat.usage.prompt_tokens, openaiChat.usage.completion_tokens);
      }
      await chat(stack, 'sk-research');
      add('research/', nativeChat.prompt_eval_count, nativeChat.eval_count);
      const refused = await fetch(`${stack.url}/api/chat`, { method: 'POST', headers: { authorization: 'Bearer sk-nobody' }, body: '{}' });
      assert.equal(refused.status, 401);

      const line = stack.logs.find((l) => l.msg === 'request' && l.tenant === 'webui' && l.user === 'bob');
      assert.ok(line, 'the access log line carries tenant and user');
      assert.ok(!JSON.stringify(stack.logs).includes('sk-webui'), 'no key in the log');

      // The usage API: every tenant's with the operator's token (a tenant's key reads its own).
      assert.equal((await fetch(`${stack.url}/console/api/v1/usage`)).status, 401);
      const auth = { authorization: 'Bearer op-tenants-books' };
      const usageUrl = `${stack.url}/console/api/v1/usage?from=1d&by=tenant,user,model`;
      let body: { from: string; to: string; rows: Record<string, unknown>[] } = { from: '', to: '', rows: [] };
      const total = [...made.values()].reduce((n, m) => n + m.requests, 0);
      await eventually(async () => {
        body = (await (await fetch(usageUrl, { headers: auth })).json()) as typeof body;
        return body.rows.reduce((n, r) => n + (r.requests as number), 0) === total;
      }, 'the ledger has every call');
      const got = new Map(body.rows.map((r) => [`${String(r.tenant)}/${r.user === null ? '' : String(r.user)}`, r]));
      assert.deepEqual([...got.keys()].sort(), [...made.keys()].sort());
      for (const [key, m] of made) {
        const r = got.get(key)!;
        assert.equal(r.requests, m.requests, key);
        assert.equal(r.input_tokens, m.input, key);
        assert.equal(r.output_tokens, m.output, key);
        assert.equal(r.model, 'llama3.2:latest');
        assert.ok((r.gpu_seconds as number) > 0, key);
      }
      // The /v1 calls carry no durations: their GPU time is the gateway's estimate, and only theirs.
      assert.ok((got.get('webui/bob')!.gpu_seconds_estimated as number) > 0);
      assert.equal(got.get('research/')!.gpu_seconds_estimated, 0);

      const csv = await fetch(`${stack.url}/console/api/v1/usage?from=1d&by=tenant`, { headers: { ...auth, accept: 'text/csv' } });
      assert.match(csv.headers.get('content-type') ?? '', /^text\/csv/);
      const lines = (await csv.text()).trim().split('\r\n');
      assert.match(lines[0]!, /^tenant,requests,errors,remote_requests,input_tokens,cached_tokens,output_tokens,gpu_seconds,gpu_seconds_estimated,/);
      assert.deepEqual(
        lines.slice(1).map((l) => l.split(',').slice(0, 2).join(',')),
        ['batch,1', 'research,2', 'webui,4'],
      );
      assert.equal((await fetch(`${stack.url}/console/api/v1/usage?step=week`, { headers: auth })).status, 400);

      // /metrics of this life: its own calls by tenant.
      const m = await metricsText(stack.url, env.METRICS_BEARER_TOKEN);
      assert.equal(sample(m, 'ollama_tenant_requests_total', { tenant: 'webui', model: 'llama3.2:latest', status: '200' }), 3);
      assert.equal(
        sample(m, 'ollama_tenant_tokens_total', { tenant: 'webui', model: 'llama3.2:latest', type: 'output' }),
        3 * openaiChat.usage.completion_tokens,
      );
      assert.ok(!/ollama_tenant_[a-z_]+\{[^}]*user=/.test(m), 'end users are never a label');

      // The CLI reads the same ledger, the same rows.
      await stack.close();
      const cli = await run(process.execPath, [MAIN, 'usage', '--since', '1d', '--by', 'tenant,user,model', '--format', 'json'], {
        env: { PATH: process.env.PATH, ...env },
      });
      assert.equal(cli.stderr, '');
      assert.deepEqual((JSON.parse(cli.stdout) as typeof body).rows, body.rows);
      const one = await run(process.execPath, [MAIN, 'usage', '--since', '1d', '--by', 'tenant,user', '--tenant', 'webui', '--format', 'json'], {
        env: { PATH: process.env.PATH, ...env },
      });
      assert.deepEqual(
        (JSON.parse(one.stdout) as typeof body).rows.map((r) => [r.tenant, r.user, r.requests]),
        [
          ['webui', 'alice', 2],
          ['webui', 'bob', 2],
        ],
      );
      const table = await run(process.execPath, [MAIN, 'usage', '--since', '1d', '--by', 'tenant'], { env: { PATH: process.env.PATH, ...env } });
      assert.match(table.stdout.split('\n')[0]!, /^tenant\s+requests/);
    } finally {
      await stack.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('re-reads the tenants file when it changes, and keeps the tenants in use when the new one is bad', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tenants-'));
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(file, 'tenants: [{name: a, keys: [k1]}]\n');
    const stack = await startStack({ GATEWAY_TENANTS_FILE: file });
    const status = (key: string) =>
      fetch(`${stack.url}/api/tags`, { headers: { authorization: `Bearer ${key}` } }).then(async (r) => {
        await r.text();
        return r.status;
      });
    try {
      assert.equal(await status('k2'), 401);
      writeFileSync(file, 'tenants: [{name: a, keys: [k1]}, {name: b, keys: [k2]}]\n');
      await eventually(async () => (await status('k2')) === 200, 'the new key is admitted');
      writeFileSync(file, 'tenants: [{name: a, keys: [k1]}, {name: b, keys: [k2]\n');
      await eventually(
        () => stack.logs.some((l) => l.msg === 'tenants file not reloaded: it is not valid; keeping the tenants in use'),
        'the bad file is reported',
      );
      assert.equal(await status('k2'), 200, 'the tenants in use stay');
      assert.equal(readFileSync(file, 'utf8').includes('k2'), true);
    } finally {
      await stack.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
