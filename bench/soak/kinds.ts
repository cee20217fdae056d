/** The soak's ordinary traffic: well-formed calls of every API, and calls Ollama answers badly (the fake's faults). */
import { createHash, randomBytes } from 'node:crypto';
import { withoutUsageEvent } from '../../test/helpers/fake-ollama';
import { fixture } from '../../test/helpers/fixtures';
import { expectFull, expectStatus, request } from './clients';
import { chatStream, garbage, mErrorLine, mGarbage, mHang, mReset, mResetMid, mSlow, mStall, mTruncated, truncated } from './fake';
import { c, L, type Kind } from './types';

export const CHAT = JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue?' }] });
export const chatFor = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] });

const upload = randomBytes(4 * 1024 * 1024);
const uploadDigest = createHash('sha256').update(upload).digest('hex');

export const TRAFFIC: Kind[] = [
  {
    name: 'native chat stream',
    weight: 10,
    counts: [c('llama3.2:latest', '/api/chat')],
    run: async (c) => expectFull(await request(c, 'POST', '/api/chat', CHAT), chatStream),
  },
  {
    name: 'native chat json',
    weight: 6,
    counts: [c('llama3.2:latest', '/api/chat')],
    run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor('llama3.2').replace('{', '{"stream":false,')), fixture('chat-nostream.json')),
  },
  {
    name: 'native generate stream',
    weight: 6,
    counts: [c('llama3.2:latest', '/api/generate')],
    run: async (c) =>
      expectFull(
        await request(c, 'POST', '/api/generate', '{"model":"llama3.2","prompt":"Write a haiku about autumn leaves."}'),
        fixture('generate-stream.ndjson'),
      ),
  },
  {
    name: 'openai chat stream',
    weight: 6,
    counts: [c('llama3.2:latest', '/v1/chat/completions')],
    run: async (c) =>
      expectFull(
        await request(c, 'POST', '/v1/chat/completions', '{"model":"llama3.2","stream":true,"messages":[{"role":"user","content":"hi"}]}'),
        withoutUsageEvent(fixture('openai-chat-stream.sse')),
      ),
  },
  {
    name: 'openai chat json',
    weight: 4,
    counts: [c('llama3.2:latest', '/v1/chat/completions')],
    run: async (c) =>
      expectFull(
        await request(c, 'POST', '/v1/chat/completions', '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}'),
        fixture('openai-chat-nostream.json'),
      ),
  },
  {
    name: 'embed',
    weight: 4,
    counts: [c('all-minilm:latest', '/api/embed')],
    run: async (c) => expectFull(await request(c, 'POST', '/api/embed', '{"model":"all-minilm","input":["a","b"]}'), fixture('embed.json')),
  },
  { name: 'pass-through tags', weight: 4, run: async (c) => expectFull(await request(c, 'GET', '/api/tags', undefined), fixture('tags.json')) },
  { name: 'upload 4 MB blob', weight: 1, run: async (c) => expectStatus(await request(c, 'POST', `/api/blobs/sha256:${uploadDigest}`, upload), 201) },
  {
    name: 'upstream refuses',
    weight: 2,
    counts: [c(L(mReset), '/api/chat')],
    run: async (c) => expectStatus(await request(c, 'POST', '/api/chat', chatFor(mReset)), 502),
  },
  {
    name: 'upstream resets mid-stream',
    weight: 2,
    counts: [c(L(mResetMid), '/api/chat')],
    run: async (c) => {
      const r = await request(c, 'POST', '/api/chat', chatFor(mResetMid));
      return r.outcome === 'broken' ? { ok: true } : { ok: false, why: r.outcome };
    },
  },
  {
    name: 'upstream hangs',
    weight: 1,
    counts: [c(L(mHang), '/api/chat')],
    run: async (c) => expectStatus(await request(c, 'POST', '/api/chat', chatFor(mHang)), 504),
  },
  {
    name: 'upstream stalls, resumes',
    weight: 2,
    counts: [c(L(mStall), '/api/chat')],
    run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor(mStall)), chatStream),
  },
  {
    name: 'non-JSON line',
    weight: 2,
    counts: [c(L(mGarbage), '/api/chat')],
    run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor(mGarbage)), garbage),
  },
  {
    name: 'error line',
    weight: 2,
    counts: [c(L(mErrorLine), '/api/generate')],
    run: async (c) => expectFull(await request(c, 'POST', '/api/generate', chatFor(mErrorLine)), fixture('error-midstream.ndjson')),
  },
  {
    name: 'truncated stream',
    weight: 2,
    counts: [c(L(mTruncated), '/api/chat')],
    run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor(mTruncated)), truncated),
  },
  {
    name: 'client leaves before response',
    weight: 2,
    counts: [c(L(mHang), '/api/chat')],
    run: async (c) => {
      const r = await request(c, 'POST', '/api/chat', chatFor(mHang), 'before');
      return { ok: r.outcome === 'cancelled', why: r.outcome };
    },
  },
  {
    name: 'client leaves mid-stream',
    weight: 2,
    counts: [c(L(mSlow), '/api/chat')],
    run: async (c) => {
      const r = await request(c, 'POST', '/api/chat', chatFor(mSlow), 'mid');
      return { ok: r.outcome === 'cancelled', why: r.outcome };
    },
  },
  {
    name: 'client leaves at the end',
    weight: 2,
    counts: [c('llama3.2:latest', '/api/chat')],
    run: async (c) => {
      const r = await request(c, 'POST', '/api/chat', CHAT, 'end');
      return { ok: r.outcome === 'cancelled' || r.outcome === 'full', why: r.outcome };
    },
  },
  {
    name: 'body over the limit',
    weight: 1,
    counts: [c('unknown', '/api/generate', 413)],
    run: async (c) => expectStatus(await request(c, 'POST', '/api/generate', JSON.stringify({ model: 'llama3.2', prompt: 'x'.repeat(1_200_000) })), 413),
  },
  {
    name: 'malformed JSON',
    weight: 2,
    counts: [c('unknown', '/api/chat')],
    run: async (c) => expectStatus(await request(c, 'POST', '/api/chat', '{"model": "llama3.2", oops'), 400),
  },
  {
    name: 'random model name',
    weight: 3,
    counts: [c('random', '/api/chat')],
    run: async (c) => expectStatus(await request(c, 'POST', '/api/chat', chatFor(`random-${randomBytes(6).toString('hex')}`)), 404),
  },
];

/** Hundreds of concurrent slow streams, in waves, beside the mixed traffic. */
export const SLOW_WAVE: Kind = {
  name: 'slow stream (concurrent wave)',
  weight: 0,
  counts: [c(L(mSlow), '/api/chat')],
  run: async (c) => expectFull(await request(c, 'POST', '/api/chat', chatFor(mSlow)), chatStream),
};
