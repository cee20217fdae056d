/**
 * `Server-Timing` on answers of LLM routes: the queue, the time to Ollama's response head and the
 * backend; only a header (the body is relayed byte for byte); SERVER_TIMING=false leaves it out.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fixtureBehavior, type Behavior } from '../helpers/fake-ollama';
import { fixture } from '../helpers/fixtures';
import { startStack, type TestStack } from '../helpers/gateway';
import { freePort } from '../helpers/process';

interface Metric {
  name: string;
  dur: number;
  desc?: string;
}

/** The header's metrics, parsed as a browser would (name, then `;dur=` and `;desc=` params). */
function parse(header: string | null): Metric[] {
  assert.ok(header, 'a Server-Timing header');
  return header.split(',').map((part) => {
    const [name, ...params] = part.split(';').map((s) => s.trim());
    const m: Metric = { name: name!, dur: NaN };
    for (const p of params) {
      const [k, v] = p.split('=');
      if (k === 'dur') m.dur = Number(v);
      if (k === 'desc') m.desc = v!.startsWith('"') ? JSON.parse(v!) : v;
    }
    return m;
  });
}

async function streamedChat(url: string): Promise<Response> {
  return fetch(`${url}/api/chat`, { method: 'POST', body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }] }) });
}

describe('Server-Timing', () => {
  let stack: TestStack;
  before(async () => {
    stack = await startStack({ MAX_CONCURRENT_REQUESTS: '1' });
  });
  after(() => stack.close());

  it('tells a streamed answer its queue, the time to Ollama’s head and the backend, and relays the body unchanged', async () => {
    stack.fake.next(fixtureBehavior('chat-stream.ndjson'));
    const res = await streamedChat(stack.url);
    const body = Buffer.from(await res.arrayBuffer());
    assert.deepEqual(body, fixture('chat-stream.ndjson'));
    const metrics = parse(res.headers.get('server-timing'));
    assert.deepEqual(
      metrics.map((m) => m.name),
      ['queue', 'upstream'],
    );
    for (const m of metrics) assert.ok(Number.isFinite(m.dur) && m.dur >= 0, `${m.name} has a duration`);
    assert.equal(metrics[1]!.desc, new URL(stack.fake.origin).host, 'the backend is named');
  });

  it('counts the wait for a MAX_CONCURRENT_REQUESTS slot as queue time', async () => {
    stack.fake.next({ ...(fixtureBehavior('chat-nostream.json') as Extract<Behavior, { kind: 'body' }>), delayMs: 400 });
    stack.fake.next(fixtureBehavior('chat-nostream.json'));
    const first = streamedChat(stack.url);
    await new Promise((r) => setTimeout(r, 100));
    const second = await streamedChat(stack.url);
    await second.arrayBuffer();
    const firstRes = await first;
    await firstRes.arrayBuffer();
    const waited = parse(second.headers.get('server-timing')).find((m) => m.name === 'queue')!;
    const held = parse(firstRes.headers.get('server-timing')).find((m) => m.name === 'upstream')!;
    // The second call waited while the first held the one slot (Ollama delayed its head).
    assert.ok(waited.dur > 0 && held.dur > 0);
    assert.ok(waited.dur >= held.dur / 2, `queue ${waited.dur} ms while the first call's head took ${held.dur} ms`);
  });
});

describe('Server-Timing on answers the gateway makes, and turned off', () => {
  it('gives a 502 for an unreachable Ollama the queue only', async () => {
    const port = await freePort();
    const dead = await startStack({ OLLAMA_HOST: `http://127.0.0.1:${port}` });
    try {
      const res = await streamedChat(dead.url);
      await res.arrayBuffer();
      assert.equal(res.status, 502);
      assert.deepEqual(
        parse(res.headers.get('server-timing')).map((m) => m.name),
        ['queue'],
      );
    } finally {
      await dead.close();
    }
  });

  it('SERVER_TIMING=false leaves the header out', async () => {
    const stack = await startStack({ SERVER_TIMING: 'false' });
    try {
      stack.fake.next(fixtureBehavior('chat-stream.ndjson'));
      const res = await streamedChat(stack.url);
      await res.arrayBuffer();
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('server-timing'), null);
    } finally {
      await stack.close();
    }
  });
});
