/**
 * The GenAI metrics under both sets of names: today's by default, the newest conventions'
 * (semantic-conventions-genai v0.1.0) with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixtureBehavior } from '../helpers/fake-ollama';
import { metricsText, startStack } from '../helpers/gateway';

/** A streamed chat and a non-streamed one, then the exposition. */
async function traffic(env: Record<string, string>): Promise<string> {
  const stack = await startStack(env);
  try {
    stack.fake.next(fixtureBehavior('chat-stream.ndjson'));
    const streamed = await fetch(`${stack.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }),
    });
    await streamed.arrayBuffer();
    stack.fake.next(fixtureBehavior('chat-nostream.json'));
    const plain = await fetch(`${stack.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: 'hi' }] }),
    });
    await plain.arrayBuffer();
    return await metricsText(stack.url);
  } finally {
    await stack.close();
  }
}

const families = (text: string) => new Set([...text.matchAll(/^# TYPE (gen_ai_\S+)/gm)].map((m) => m[1]));

describe('GenAI convention names', () => {
  it("keep today's names by default", async () => {
    const text = await traffic({});
    const names = families(text);
    for (const n of ['gen_ai_client_operation_duration_seconds', 'gen_ai_client_token_usage', 'gen_ai_server_time_to_first_token_seconds']) {
      assert.ok(names.has(n), `${n} is exported`);
    }
    assert.ok(![...names].some((n) => n.startsWith('gen_ai_client_inference_') && !n.includes('cache_read')), [...names].join(', '));
  });

  it('follow the newest conventions with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental', async () => {
    const text = await traffic({ OTEL_SEMCONV_STABILITY_OPT_IN: 'http, gen_ai_latest_experimental' });
    const names = families(text);
    for (const n of ['gen_ai_client_token_usage', 'gen_ai_server_time_to_first_token_seconds', 'gen_ai_server_time_per_output_token_seconds']) {
      assert.ok(!names.has(n), `${n} is not exported under the newest names`);
    }
    const count = (name: string) => {
      let total = 0;
      for (const line of text.split('\n'))
        if (line.startsWith(`${name}{`) && line.includes('gen_ai_provider_name="ollama"')) total += Number(line.split(' ').at(-1));
      return total;
    };
    assert.equal(count('gen_ai_client_inference_duration_seconds_count'), 2);
    assert.equal(count('gen_ai_client_inference_time_to_first_chunk_seconds_count'), 1, 'streams only');
    assert.ok(count('gen_ai_client_inference_time_per_output_chunk_seconds_count') > 0);
    assert.equal(count('gen_ai_client_inference_operation_input_tokens_count'), 2);
    assert.equal(count('gen_ai_client_inference_operation_output_tokens_count'), 2);
    const usageIn = count('gen_ai_client_inference_usage_input_tokens_total');
    assert.equal(usageIn, count('gen_ai_client_inference_operation_input_tokens_sum'), 'the usage counter adds what the histogram saw');
    assert.ok(usageIn > 0);
    assert.match(text, /gen_ai_client_inference_usage_output_tokens_total\{[^}]*gen_ai_token_modality="unknown"/);
    assert.doesNotMatch(text, /^gen_ai_client_operation_duration_seconds_count\{[^}]*gen_ai_operation_name="chat"/m, 'chat moved to the inference duration');
  });
});
