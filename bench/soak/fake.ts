/**
 * The soak's fake Ollama: the faults it plays by model name, the streams it answers with, and the
 * books of what reached it (drained every 250 ms; the bodies are small).
 */
import { createHash } from 'node:crypto';
import { type Behavior, type FakeOllama } from '../../test/helpers/fake-ollama';
import { fixture } from '../../test/helpers/fixtures';

export const chatStream = fixture('chat-stream.ndjson');
const nl = chatStream.indexOf('\n') + 1;
export const garbage = Buffer.concat([chatStream.subarray(0, nl), Buffer.from('<html>oops</html>\n'), chatStream.subarray(nl)]);
export const truncated = chatStream.subarray(0, chatStream.lastIndexOf('\n', chatStream.length - 2) + 1);
// Streams far larger than the socket buffers, so a client that stops reading blocks the gateway.
const lines = chatStream.toString('utf8').split('\n').filter(Boolean);
export const big = Buffer.from(
  [lines[0], ...Array.from({ length: Math.ceil((8 * 1024 * 1024) / lines[1].length) }, () => lines[1]), lines[lines.length - 1]].join('\n') + '\n',
);
export const bigDigest = createHash('sha256').update(big).digest('hex');

/** The model names that make the fake misbehave (or answer with a particular stream). */
export const mReset = 'fault-reset';
export const mResetMid = 'fault-reset-mid';
export const mHang = 'fault-hang';
export const mStall = 'fault-stall';
export const mGarbage = 'fault-garbage';
export const mErrorLine = 'fault-error-line';
export const mTruncated = 'fault-truncated';
export const mSlow = 'slow-stream';
export const mSpelled = 'spelled-path';
export const mSlowReader = 'slow-reader';
export const mStuckReader = 'stuck-reader';

const ndjson = (body: Buffer, extra: Partial<Extract<Behavior, { kind: 'body' }>> = {}): Behavior => ({
  kind: 'body',
  status: 200,
  contentType: 'application/x-ndjson',
  body,
  ...extra,
});

export function installFaults(fake: FakeOllama): void {
  const fault = (model: string, make: () => Behavior) => fake.byModel.set(model, make);
  fault(mReset, () => ({ kind: 'reset' }));
  fault(mResetMid, () => ({
    kind: 'reset-after',
    status: 200,
    contentType: 'application/x-ndjson',
    body: chatStream,
    bytes: 600,
  }));
  fault(mHang, () => ({ kind: 'hang' }));
  fault(mStall, () => ({
    kind: 'stall',
    status: 200,
    contentType: 'application/x-ndjson',
    body: chatStream,
    bytes: 500,
    resumeAfterMs: 300,
  }));
  fault(mGarbage, () => ndjson(garbage));
  fault(mErrorLine, () => ndjson(fixture('error-midstream.ndjson')));
  fault(mTruncated, () => ndjson(truncated));
  fault(mSlow, () => ndjson(chatStream, { gapMs: 40 }));
  fault(mSpelled, () => ndjson(chatStream));
  fault(mSlowReader, () => ndjson(big, { chunking: { kind: 'every', size: 64 * 1024 } }));
  fault(mStuckReader, () => ndjson(big, { chunking: { kind: 'every', size: 64 * 1024 } }));
}

const OWN_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/** What reached the fake that must not have: requests on the gateway's own paths, spelled paths not normalised. */
export class UpstreamBooks {
  own = 0;
  ownExample = '';
  spelled = 0;
  spelledWrong = 0;
  spelledExample = '';

  /** Takes the requests the fake recorded since the last call. */
  drain(fake: FakeOllama): void {
    for (const q of fake.requests.splice(0)) {
      const p = q.url.split('?')[0];
      if (OWN_PATHS.has(p) || /^\/*(healthz|readyz|metrics)\b/.test(p)) {
        this.own++;
        this.ownExample ||= `${q.method} ${q.url}`;
      }
      if (q.body.subarray(0, 64).includes('"model":"spelled-path"')) {
        this.spelled++;
        if (p !== '/api/chat') {
          this.spelledWrong++;
          this.spelledExample ||= q.url;
        }
      }
    }
  }
}
