/**
 * The gateway driven by the OpenAI SDK against Ollama's `/v1` API: exact token counts for every
 * stream, and a client that sees precisely the stream it asked for.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { metricsText, sample, startStack, type TestStack } from '../helpers/gateway';

const M = { model: 'llama3.2:latest' };
const messages = [{ role: 'user' as const, content: 'Say this is a test' }];

async function rawPost(url: string, path: string, body: unknown): Promise<{ status: number; contentType: string | null; bytes: Buffer }> {
  const res = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, contentType: res.headers.get('content-type'), bytes: Buffer.from(await res.arrayBuffer()) };
}

describe('OpenAI SDK through the gateway', () => {
  let stack: TestStack;
  let client: OpenAI;
  before(async () => {
    stack = await startStack();
    client = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: 'ollama', maxRetries: 0 });
  });
  after(() => stack.close());

  it('answers a non-streamed chat completion and counts its usage', async () => {
    const res = await client.chat.completions.create({ model: 'llama3.2', messages });
    assert.equal(res.choices[0].message.content, 'This is a test.');
    assert.equal(res.usage?.completion_tokens, 6);
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/v1/chat/completions', status: '200' }), 1);
    assert.equal(sample(m, 'ollama_tokens_processed_total', M), 30);
    assert.equal(sample(m, 'ollama_tokens_generated_total', M), 6);
    // No gateway-side timing for a single JSON answer, and Ollama reports none on /v1.
    assert.equal(sample(m, 'ollama_tokens_per_second_count', M), undefined);
  });

  it('knows the token counts of a stream whose client did not ask for usage, and hides the usage from it', async () => {
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const c of await client.chat.completions.create({ model: 'llama3.2', messages, stream: true })) chunks.push(c);
    assert.equal(chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), 'This is a test.');
    assert.ok(
      chunks.every((c) => c.usage === undefined || c.usage === null),
      'no usage reaches a client that did not ask',
    );
    assert.ok(
      chunks.every((c) => c.choices.length > 0),
      'no usage-only chunk reaches the client',
    );

    // Ollama was asked for usage on the client's behalf.
    const sent = JSON.parse(stack.fake.last('/v1/chat/completions')!.body.toString()) as { stream_options?: { include_usage?: boolean } };
    assert.equal(sent.stream_options?.include_usage, true);

    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_tokens_processed_total', M), 60);
    assert.equal(sample(m, 'ollama_tokens_generated_total', M), 12);
    assert.equal(sample(m, 'ollama_tokens_per_second_count', M), 1);
  });

  it('sends a stream without include_usage byte for byte as Ollama sends it without the gateway', async () => {
    const body = { model: 'llama3.2', messages, stream: true };
    const direct = await rawPost(stack.fake.origin, '/v1/chat/completions', body);
    const via = await rawPost(stack.url, '/v1/chat/completions', body);
    assert.equal(via.status, 200);
    assert.equal(via.contentType, direct.contentType);
    assert.deepEqual(via.bytes, direct.bytes);
  });

  it('leaves a stream with include_usage untouched and counts it once', async () => {
    const before = sample(await metricsText(stack.url), 'ollama_tokens_generated_total', M) ?? 0;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const c of await client.chat.completions.create({ model: 'llama3.2', messages, stream: true, stream_options: { include_usage: true } })) {
      if (c.usage) usage = c.usage;
    }
    assert.equal(usage?.completion_tokens, 6);
    const body = { model: 'llama3.2', messages, stream: true, stream_options: { include_usage: true } };
    const direct = await rawPost(stack.fake.origin, '/v1/chat/completions', body);
    const via = await rawPost(stack.url, '/v1/chat/completions', body);
    assert.deepEqual(via.bytes, direct.bytes);
    assert.equal(sample(await metricsText(stack.url), 'ollama_tokens_generated_total', M), before + 12);
  });

  it('streams /v1/completions without usage, stripping the zeroed usage Ollama adds to each chunk', async () => {
    const body = { model: 'llama3.2', prompt: 'Say this is a test', stream: true };
    const direct = await rawPost(stack.fake.origin, '/v1/completions', body);
    const before = sample(await metricsText(stack.url), 'ollama_tokens_generated_total', M) ?? 0;
    const via = await rawPost(stack.url, '/v1/completions', body);
    assert.deepEqual(via.bytes.toString(), direct.bytes.toString());
    assert.equal(sample(await metricsText(stack.url), 'ollama_tokens_generated_total', M), before + 5);

    let text = '';
    for await (const c of await client.completions.create({ model: 'llama3.2', prompt: 'Say this is a test', stream: true })) text += c.choices[0]?.text ?? '';
    assert.equal(text, 'This is a test.');
  });

  it('answers a non-streamed completion', async () => {
    const res = await client.completions.create({ model: 'llama3.2', prompt: 'Say this is a test', max_tokens: 16 });
    assert.ok(res.choices[0].text.length > 0);
    const m = await metricsText(stack.url);
    // Two streamed calls in the previous test, this one third.
    assert.equal(sample(m, 'ollama_requests_total', { ...M, endpoint: '/v1/completions', status: '200' }), 3);
  });

  it('creates embeddings (base64, the SDK default) and counts their input tokens', async () => {
    const res = await client.embeddings.create({ model: 'all-minilm', input: 'Why is the sky blue?' });
    assert.ok(res.data[0].embedding.length > 0);
    const m = await metricsText(stack.url);
    const E = { model: 'all-minilm:latest' };
    assert.equal(sample(m, 'ollama_requests_total', { ...E, endpoint: '/v1/embeddings', status: '200' }), 1);
    assert.equal(sample(m, 'ollama_tokens_processed_total', E), 8);
  });

  it("returns Ollama's 404 for an unknown model to the SDK unchanged, and counts it", async () => {
    await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages }), (err: InstanceType<typeof OpenAI.APIError>) => {
      return err.status === 404 && /model 'gpt-4o' not found/.test(err.message);
    });
    const m = await metricsText(stack.url);
    assert.equal(sample(m, 'ollama_requests_total', { model: 'gpt-4o:latest', endpoint: '/v1/chat/completions', status: '404' }), 1);
  });

  it('lists models through the pass-through', async () => {
    const models = await client.models.list();
    assert.deepEqual(
      models.data.map((x) => x.id),
      ['qwen3:8b', 'llama3.2:latest', 'all-minilm:latest'],
    );
  });
});
