/**
 * Budgets, rate limits and model access through the clients people use: the OpenAI and Anthropic
 * SDKs retry the 429 they get and succeed once the window has passed; ollama-js shows the error.
 * Every limit kind refuses the call past it, in the API family's shape, with Retry-After and the
 * SDKs' rate-limit headers, forwards nothing, and keeps refusing after a restart (the budgets are
 * reckoned from the ledger). A model outside a tenant's list is refused with 403.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { FakeOllama } from '../helpers/fake-ollama';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';
import { runWorkers } from '../helpers/process';
import { fixture } from '../helpers/fixtures';

const nativeChat = JSON.parse(fixture('chat-nostream.json').toString()) as {
  prompt_eval_count: number;
  eval_count: number;
  load_duration: number;
  prompt_eval_duration: number;
  eval_duration: number;
};
const NATIVE_TOKENS = nativeChat.prompt_eval_count + nativeChat.eval_count;
const NATIVE_GPU = (nativeChat.load_duration + nativeChat.prompt_eval_duration + nativeChat.eval_duration) / 1e9;

const TENANTS = `
tenants:
  - name: picky
    keys: [sk-picky]
    models: [llama3.2, "qwen3:*"]
  - name: burst
    keys: [sk-burst]
    limits: { rolling: [{ seconds: 2, requests: 1 }] }
  - name: rpm
    keys: [sk-rpm]
    limits: { requests_per_minute: 2 }
  - name: tpm
    keys: [sk-tpm]
    limits: { tokens_per_minute: ${NATIVE_TOKENS} }
  - name: daily
    keys: [sk-daily]
    time_zone: Pacific/Auckland
    limits: { tokens_per_day: ${NATIVE_TOKENS + 1} }
  - name: monthly
    keys: [sk-monthly]
    limits: { tokens_per_month: 10, count_tokens: output }
  - name: gpu-day
    keys: [sk-gpu-day]
    limits: { gpu_seconds_per_day: ${NATIVE_GPU / 2} }
  - name: gpu-month
    keys: [sk-gpu-month]
    limits: { gpu_seconds_per_month: ${NATIVE_GPU / 2} }
  - name: webui
    keys: [sk-webui]
    users: { header: X-OpenWebUI-User-Id, limits: { tokens_per_day: ${NATIVE_TOKENS} } }
`;

const CHAT = '{"model":"llama3.2","stream":false,"messages":[{"role":"user","content":"hi"}]}';

function nativeChatCall(stack: TestStack, key: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${stack.url}/api/chat`, { method: 'POST', headers: { authorization: `Bearer ${key}`, ...headers }, body: CHAT });
}

describe('budgets, rate limits and model access', () => {
  let dir: string;
  let env: Record<string, string>;
  let stack: TestStack;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'budgets-'));
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(file, TENANTS);
    env = { GATEWAY_TENANTS_FILE: file, GATEWAY_DATA_DIR: path.join(dir, 'data'), LEDGER_URL: '' };
    stack = await startStack(env);
  });
  after(async () => {
    await stack.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const forwarded = (p: string) => stack.fake.requests.filter((r) => r.url.split('?')[0] === p).length;

  it('refuses a model outside the tenant list with 403 in each family, and forwards nothing', async () => {
    const before = stack.fake.requests.length;
    const native = await fetch(`${stack.url}/api/chat`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-picky' },
      body: '{"model":"mistral","messages":[]}',
    });
    assert.equal(native.status, 403);
    const body = (await native.json()) as { error: string };
    assert.match(body.error, /may not use model "mistral"/);
    const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'sk-picky', maxRetries: 0 });
    await assert.rejects(
      openai.chat.completions.create({ model: 'gemma3:4b', messages: [{ role: 'user', content: 'hi' }] }),
      (err: unknown) => err instanceof OpenAI.PermissionDeniedError && err.code === 'model_not_allowed',
    );
    const anthropic = new Anthropic({ baseURL: stack.url, apiKey: 'sk-picky', maxRetries: 0 });
    await assert.rejects(
      anthropic.messages.create({ model: 'mistral', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
      (err: unknown) => err instanceof Anthropic.PermissionDeniedError,
    );
    assert.equal(stack.fake.requests.length, before, 'nothing was forwarded');
    // Allowed: the name without its tag is :latest's, and a pattern matches any tag.
    assert.equal((await nativeChatCall(stack, 'sk-picky')).status, 200);
    const qwen = await fetch(`${stack.url}/api/chat`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-picky' },
      body: '{"model":"Qwen3:8B","stream":false,"messages":[]}',
    });
    assert.notEqual(qwen.status, 403);
    await qwen.text();
    const text = await metricsText(stack.url);
    assert.equal(sample(text, 'ollama_request_errors_total', { reason: 'model_not_allowed', endpoint: '/api/chat', model: 'mistral:latest' }), 1);
  });

  it('the OpenAI SDK retries the 429 of a short rolling window and succeeds after it', async () => {
    const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'sk-burst', maxRetries: 2 });
    const { data: first, response } = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
    assert.ok(first.choices.length > 0);
    // An admitted call's answer says what is left, as OpenAI's API does on every answer.
    assert.equal(response.headers.get('x-ratelimit-limit-requests'), '1');
    assert.equal(response.headers.get('x-ratelimit-remaining-requests'), '0');
    const was = forwarded('/v1/chat/completions');
    // Straight after: refused (raw, to see the answer), then the SDK waits it out.
    const raw = await fetch(`${stack.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-burst', 'content-type': 'application/json' },
      body: '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}',
    });
    assert.equal(raw.status, 429);
    const err = (await raw.json()) as { error: { type: string; code: string; message: string } };
    assert.equal(err.error.code, 'rate_limit_exceeded');
    assert.equal(err.error.type, 'requests');
    assert.match(err.error.message, /requests_per_2s/);
    assert.equal(raw.headers.get('x-ratelimit-limit-requests'), '1');
    assert.equal(raw.headers.get('x-ratelimit-remaining-requests'), '0');
    assert.match(raw.headers.get('x-ratelimit-reset-requests') ?? '', /^(\d+ms|[12]s)$/);
    const retryMs = Number(raw.headers.get('retry-after-ms'));
    assert.ok(retryMs > 0 && retryMs <= 2000, `retry-after-ms ${retryMs}`);
    assert.ok(Number(raw.headers.get('retry-after')) >= 1);
    assert.match(raw.headers.get('x-ollama-gateway-limit') ?? '', /^requests_per_2s; scope=tenant; reset=/);
    assert.equal(forwarded('/v1/chat/completions'), was, 'the refused call was not forwarded');
    const started = Date.now();
    const second = await openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
    assert.ok(second.choices.length > 0);
    assert.equal(forwarded('/v1/chat/completions'), was + 1);
    assert.ok(Date.now() - started < 6000);
  });

  it('the Anthropic SDK does the same on /v1/messages, with anthropic-ratelimit-* headers', async () => {
    // The window of the previous test has passed by the time this one has waited its own.
    await new Promise((r) => setTimeout(r, 2100));
    const anthropic = new Anthropic({ baseURL: stack.url, apiKey: 'sk-burst', maxRetries: 2 });
    const ask = () => anthropic.messages.create({ model: 'llama3.2', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
    await ask();
    const raw = await fetch(`${stack.url}/v1/messages`, {
      method: 'POST',
      headers: { 'x-api-key': 'sk-burst', 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: '{"model":"llama3.2","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}',
    });
    assert.equal(raw.status, 429);
    const err = (await raw.json()) as { type: string; error: { type: string; message: string } };
    assert.equal(err.type, 'error');
    assert.equal(err.error.type, 'rate_limit_error');
    assert.equal(raw.headers.get('anthropic-ratelimit-requests-limit'), '1');
    assert.equal(raw.headers.get('anthropic-ratelimit-requests-remaining'), '0');
    assert.ok(Date.parse(raw.headers.get('anthropic-ratelimit-requests-reset') ?? '') > Date.now() - 1000);
    const was = forwarded('/v1/messages');
    const answer = await ask();
    assert.ok(answer.content.length > 0);
    assert.equal(forwarded('/v1/messages'), was + 1);
  });

  it('ollama-js shows the 429 of requests_per_minute and tokens_per_minute; the OpenAI SDK its headers', async () => {
    const ollama = (key: string) => new Ollama({ host: stack.url, headers: { authorization: `Bearer ${key}` } });
    for (let i = 0; i < 2; i++) await ollama('sk-rpm').chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
    await assert.rejects(ollama('sk-rpm').chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }), (err: Error & { status_code?: number }) => {
      assert.equal(err.status_code, 429);
      assert.match(err.message, /requests_per_minute: limit 2 requests, used 2/);
      return true;
    });
    await ollama('sk-tpm').chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
    await assert.rejects(
      ollama('sk-tpm').chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }),
      /tokens_per_minute: limit \d+ tokens, used \d+/,
    );
    // The OpenAI SDK, told not to retry, sees the minute's reset in its own headers.
    const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'sk-tpm', maxRetries: 0 });
    await assert.rejects(openai.chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }), (err: unknown) => {
      assert.ok(err instanceof OpenAI.RateLimitError);
      const retry = Number(err.headers?.get('retry-after'));
      assert.ok(retry >= 55 && retry <= 60, `retry-after ${retry}`);
      assert.match(err.headers?.get('x-ratelimit-reset-tokens') ?? '', /^(5\d|60)s$|^1m0s$/);
      assert.equal(err.headers?.get('x-ratelimit-remaining-tokens'), '0');
      return true;
    });
  });

  it('calendar budgets refuse past them until the day or month ends in their time zone, through a restart', async () => {
    const ollama = (key: string) => new Ollama({ host: stack.url, headers: { authorization: `Bearer ${key}` } });
    const chat = (key: string) => ollama(key).chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
    // Each first call is admitted (its budget untouched), and overshoots by its own tokens or GPU time.
    for (const key of ['sk-daily', 'sk-monthly', 'sk-gpu-day', 'sk-gpu-month']) await chat(key);
    // tokens_per_day is one token more than a call: the first call leaves one token, which admits a second.
    await chat('sk-daily');
    // Each refusal through a different client: the SDKs' own errors carry the message and headers.
    const expect429 = async (key: string, client: 'openai' | 'anthropic' | 'ollama', limit: RegExp) => {
      let caught: unknown;
      try {
        if (client === 'openai') {
          await new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: key, maxRetries: 0 }).chat.completions.create({
            model: 'llama3.2',
            messages: [{ role: 'user', content: 'hi' }],
          });
        } else if (client === 'anthropic') {
          await new Anthropic({ baseURL: stack.url, apiKey: key, maxRetries: 0 }).messages.create({
            model: 'llama3.2',
            max_tokens: 10,
            messages: [{ role: 'user', content: 'hi' }],
          });
        } else await chat(key);
      } catch (err) {
        caught = err;
      }
      assert.ok(caught, `${key}: refused`);
      const err = caught as Error & { status?: number; status_code?: number; headers?: Headers };
      assert.equal(err.status ?? err.status_code, 429, key);
      assert.match(err.message, limit);
      if (client === 'openai') assert.ok(err instanceof OpenAI.RateLimitError);
      if (client === 'anthropic') assert.ok(err instanceof Anthropic.RateLimitError);
      return { reset: err.headers?.get('x-ollama-gateway-limit') ?? '', retry: Number(err.headers?.get('retry-after')) };
    };
    const check = async () => {
      const daily = await expect429('sk-daily', 'openai', /tokens_per_day/);
      // Midnight in Auckland, not UTC: a whole number of hours (or quarter hours) from now, within a day.
      const resetAt = Date.parse(/reset=(\S+)/.exec(daily.reset)![1]!);
      const local = new Intl.DateTimeFormat('en-GB', { timeZone: 'Pacific/Auckland', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(resetAt);
      assert.equal(local, '00:00');
      assert.ok(daily.retry > 0 && daily.retry <= 86_400);
      const monthly = await expect429('sk-monthly', 'anthropic', /tokens_per_month: limit 10 tokens/);
      const monthEnd = new Date(Date.parse(/reset=(\S+)/.exec(monthly.reset)![1]!));
      assert.equal(monthEnd.getUTCDate(), 1);
      assert.equal(monthEnd.getUTCHours(), 0);
      await expect429('sk-gpu-day', 'ollama', /gpu_seconds_per_day: limit [\d.]+ GPU seconds/);
      await expect429('sk-gpu-month', 'openai', /gpu_seconds_per_month/);
    };
    await check();
    // The ledger holds what was used: a new process refuses the same calls.
    await stack.close();
    stack = await startStack(env);
    await check();
    assert.equal(stack.fake.requests.length, 0, 'nothing reached the new Ollama');
    const text = await metricsText(stack.url);
    assert.equal(sample(text, 'ollama_gateway_budget_remaining', { tenant: 'monthly', kind: 'tokens_per_month' }), 0);
    assert.equal(sample(text, 'ollama_gateway_budget_limit', { tenant: 'monthly', kind: 'tokens_per_month' }), 10);
    assert.equal(sample(text, 'ollama_gateway_budget_remaining', { tenant: 'daily', kind: 'tokens_per_day' }), 0);
  });

  it('an end-user limit holds each asserted user to it, apart from the others', async () => {
    const openai = (user: string) =>
      new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'sk-webui', maxRetries: 0, defaultHeaders: { 'X-OpenWebUI-User-Id': user } });
    await nativeChatCall(stack, 'sk-webui', { 'X-OpenWebUI-User-Id': 'alice' }).then((r) => r.text());
    await assert.rejects(
      openai('alice').chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }),
      (err: unknown) => err instanceof OpenAI.RateLimitError && /end user "alice" of tenant "webui"/.test(err.message),
    );
    const bob = await openai('bob').chat.completions.create({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] });
    assert.ok(bob.choices.length > 0);
    // The tenant itself has no limit: a call without a user goes through.
    assert.equal((await nativeChatCall(stack, 'sk-webui')).status, 200);
  });

  it("a queue full of one tenant's calls stops at its token budget, not after the queue drains", async () => {
    const qdir = mkdtempSync(path.join(os.tmpdir(), 'budgets-queue-'));
    const file = path.join(qdir, 'tenants.yaml');
    writeFileSync(file, `tenants:\n  - name: spender\n    keys: [sk-spender]\n    limits: { tokens_per_day: ${NATIVE_TOKENS * 2} }\n`);
    const q = await startStack({ GATEWAY_TENANTS_FILE: file, GATEWAY_DATA_DIR: path.join(qdir, 'data'), LEDGER_URL: '', BACKEND_PARALLEL: '1' });
    try {
      // All six arrive with the budget untouched and wait for the one slot; the third to start finds it spent.
      const statuses = await Promise.all(Array.from({ length: 6 }, () => nativeChatCall(q, 'sk-spender').then(async (r) => (await r.text(), r.status))));
      assert.deepEqual(
        statuses.slice().sort((a, b) => a - b),
        [200, 200, 429, 429, 429, 429],
      );
      assert.equal(q.fake.requests.filter((r) => r.url === '/api/chat').length, 2, 'only the calls within the budget reached Ollama');
    } finally {
      await q.close();
      rmSync(qdir, { recursive: true, force: true });
    }
  });

  it('holds a request limit across worker processes sharing the SQLite ledger', async () => {
    const wdir = mkdtempSync(path.join(os.tmpdir(), 'budgets-workers-'));
    const file = path.join(wdir, 'tenants.yaml');
    writeFileSync(file, 'tenants:\n  - name: counted\n    keys: [sk-counted]\n    limits: { requests_per_minute: 3 }\n');
    const fake = await new FakeOllama().start();
    const w = await runWorkers(fake.origin, 2, { GATEWAY_TENANTS_FILE: file, GATEWAY_DATA_DIR: path.join(wdir, 'data'), LEDGER_URL: '' });
    try {
      const statuses: number[] = [];
      // One after another, each on a new connection: the workers take turns.
      for (let i = 0; i < 8; i++) {
        const r = await fetch(`${w.url}/api/chat`, { method: 'POST', headers: { authorization: 'Bearer sk-counted', connection: 'close' }, body: CHAT });
        await r.text();
        statuses.push(r.status);
      }
      assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429, 429, 429]);
      assert.equal(fake.requests.filter((r) => r.url === '/api/chat').length, 3);
    } finally {
      await w.stop();
      await fake.close();
      rmSync(wdir, { recursive: true, force: true });
    }
  });
});
