/**
 * A tenant with a model list keeps to it everywhere Ollama takes a model name: LLM calls in any
 * spelling Ollama reads as the same body, the transcription form, the model management it passes
 * through (show, create, copy, delete, pull, push, `GET /v1/models/{model}`), and the listings,
 * which show it only its models. Refusals forward nothing. A tenant without a list is untouched.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { startStack, type TestStack } from '../helpers/gateway';
import { exchange, rawRequest } from '../helpers/raw-client';

const TENANTS = `
tenants:
  - name: picky
    keys: [sk-picky]
    models: [llama3.2, "qwen3:*"]
  - name: free
    keys: [sk-free]
`;

describe('model access beyond the LLM calls', () => {
  let dir: string;
  let stack: TestStack;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'model-access-'));
    const file = path.join(dir, 'tenants.yaml');
    writeFileSync(file, TENANTS);
    stack = await startStack({ GATEWAY_TENANTS_FILE: file });
  });
  after(async () => {
    await stack.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const port = () => Number(new URL(stack.url).port);
  const send = async (method: string, target: string, body: string | Buffer | undefined, key = 'sk-picky', headers: Record<string, string> = {}) => {
    const x = await exchange(
      port(),
      rawRequest(method, target, { body, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers } }),
    );
    assert.equal(x.responses.length, 1, x.describe());
    return x.responses[0]!;
  };
  const forwardedTo = (p: string) => stack.fake.requests.filter((r) => r.url.split('?')[0] === p).length;

  it('refuses management naming a model outside the list, in every spelling Go reads, and forwards nothing', async () => {
    const cases: [string, string, string][] = [
      ['POST', '/api/show', '{"model":"mistral"}'],
      ['POST', '/api/show', '{"name":"mistral"}'],
      ['POST', '/api/create', '{"model":"mistral","from":"llama3.2"}'],
      // An allowed name made from a forbidden model: it would then run under the allowed name.
      ['POST', '/api/create', '{"model":"llama3.2","from":"mistral"}'],
      ['POST', '/api/create', '{"model":"qwen3:mine","FROM":"gemma3:4b"}'],
      ['POST', '/api/copy', '{"source":"mistral","destination":"qwen3:stolen"}'],
      ['POST', '/api/copy', '{"source":"llama3.2","destination":"mistral"}'],
      ['DELETE', '/api/delete', '{"model":"mistral"}'],
      // Go's decoder: keys match without case, the last one wins.
      ['DELETE', '/api/delete', '{"model":"llama3.2","MODEL":"all-minilm"}'],
      ['DELETE', '/api/delete', '{"model":"","name":"all-minilm"}'],
      ['DELETE', '/api/delete', '{"Name":"all-minilm"} trailing bytes Go never reads'],
      ['POST', '/api/pull', '{"model":"hf.co/someone/big-model"}'],
      ['POST', '/api/push', '{"name":"mistral:latest"}'],
    ];
    const before = stack.fake.requests.length;
    for (const [method, target, body] of cases) {
      const r = await send(method, target, body);
      assert.equal(r.status, 403, `${method} ${target} ${body}: ${r.body.toString()}`);
      assert.match((JSON.parse(r.body.toString()) as { error: string }).error, /tenant "picky" may not use model/);
    }
    // A path spelled otherwise is the same path.
    assert.equal((await send('DELETE', '/api/%64elete', '{"model":"mistral"}')).status, 403);
    assert.equal(stack.fake.requests.length, before, 'nothing was forwarded');
  });

  it('refuses a management body Go would not read, rather than guess its model', async () => {
    const before = stack.fake.requests.length;
    for (const body of ['{"model":5}', '{"model":"llama3.2"', '', '["mistral"]']) {
      const r = await send('DELETE', '/api/delete', body);
      assert.equal(r.status, 400, body);
    }
    assert.equal(stack.fake.requests.length, before);
  });

  it('forwards management of the tenant’s own models, and everything for a tenant without a list', async () => {
    const show = forwardedTo('/api/show');
    assert.equal((await send('POST', '/api/show', '{"model":"LLAMA3.2:latest"}')).status, 200);
    assert.equal(forwardedTo('/api/show'), show + 1);
    const copy = forwardedTo('/api/copy');
    await send('POST', '/api/copy', '{"source":"qwen3:8b","destination":"qwen3:mine"}');
    assert.equal(forwardedTo('/api/copy'), copy + 1);
    const del = forwardedTo('/api/delete');
    await send('DELETE', '/api/delete', '{"model":"mistral"}', 'sk-free');
    assert.equal(forwardedTo('/api/delete'), del + 1);
    const forwarded = stack.fake.requests.at(-1)!;
    assert.equal(forwarded.body.toString(), '{"model":"mistral"}', 'the body goes on as sent');
  });

  it('shows the tenant only its models in /api/tags, /api/ps and /v1/models, through ollama-js and the OpenAI SDK', async () => {
    const ollama = (key: string) => new Ollama({ host: stack.url, headers: { authorization: `Bearer ${key}` } });
    const picky = (await ollama('sk-picky').list()).models.map((m) => m.name);
    const all = (await ollama('sk-free').list()).models.map((m) => m.name);
    assert.ok(all.includes('all-minilm:latest'), `the fixture lists a model outside the list: ${all.join(', ')}`);
    assert.deepEqual(
      picky,
      all.filter((n) => n === 'llama3.2:latest' || n.startsWith('qwen3:')),
    );
    assert.ok(picky.length > 0);
    const openai = (key: string) => new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: key, maxRetries: 0 });
    const ids = async (key: string) => {
      const out: string[] = [];
      for await (const m of openai(key).models.list()) out.push(m.id);
      return out;
    };
    const allIds = await ids('sk-free');
    assert.deepEqual(
      await ids('sk-picky'),
      allIds.filter((n) => n === 'llama3.2:latest' || n.startsWith('qwen3:')),
    );
    const ps = await ollama('sk-picky').ps();
    for (const m of ps.models) assert.ok(m.name === 'llama3.2:latest' || m.name.startsWith('qwen3:'), m.name);
  });

  it('refuses GET /v1/models/{model} for a model outside the list, however the path spells it', async () => {
    const before = stack.fake.requests.length;
    for (const target of ['/v1/models/mistral', '/v1/models/mistral%3Alatest', '/v1/models/%6Distral', '/v1/models/%ZZ']) {
      const r = await send('GET', target, undefined);
      assert.ok(r.status === 403, `${target}: ${r.status}`);
    }
    assert.equal(stack.fake.requests.length, before);
    await send('GET', '/v1/models/qwen3%3A8b', undefined);
    assert.equal(stack.fake.requests.length, before + 1);
  });

  it('refuses an LLM call naming another model in any spelling Ollama reads as it', async () => {
    const before = stack.fake.requests.length;
    for (const body of [
      '{"model":"llama3.2","MODEL":"mistral","messages":[]}',
      '{"model":"llama3.2","Model":"gemma3:4b","stream":false,"messages":[]}',
      '{"model":" MISTRAL ","messages":[]}',
      '{"model":"library/mistral","messages":[]}',
      '{"model":"registry.ollama.ai/library/mistral:latest","messages":[]}',
      '{"model":"llama3.2:latest@sha256:0000","messages":[]}',
    ]) {
      const r = await send('POST', '/api/chat', body);
      assert.equal(r.status, 403, body);
    }
    // The transcription form: Go's FormValue takes the query's model before the form's.
    const boundary = 'b0undary';
    const form = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="model"\r\n\r\nllama3.2\r\n` +
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--${boundary}--\r\n`,
    );
    const r = await send('POST', '/v1/audio/transcriptions?model=mistral', form, 'sk-picky', { 'content-type': `multipart/form-data; boundary=${boundary}` });
    assert.equal(r.status, 403);
    assert.equal(stack.fake.requests.length, before);
  });
});
