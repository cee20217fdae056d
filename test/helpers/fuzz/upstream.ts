/** The fake Ollama's side of the fuzz: the faults it plays by model name, and the books of what it received. */
import { LLM_ROUTES } from '../../../src/routes';
import { type Behavior, type FakeOllama, type ReceivedRequest } from '../fake-ollama';
import { fixture } from '../fixtures';
import { checkedId, ID_HEADER, type SentRecord } from './records';
import { OWN_PATHS } from './targets';

const CHAT_STREAM = () => fixture('chat-stream.ndjson');

function bigStream(bytes: number): Buffer {
  const s = CHAT_STREAM().toString('utf8').split('\n').filter(Boolean);
  const content = s[1];
  const last = s[s.length - 1];
  const out: string[] = [s[0]];
  let n = s[0].length;
  while (n < bytes) {
    out.push(content);
    n += content.length + 1;
  }
  out.push(last);
  return Buffer.from(out.join('\n') + '\n');
}

export function installFaults(fake: FakeOllama): void {
  const chat = CHAT_STREAM();
  const nl = chat.indexOf('\n') + 1;
  const garbage = Buffer.concat([chat.subarray(0, nl), Buffer.from('<html>oops</html>\n'), chat.subarray(nl)]);
  const big = bigStream(3 * 1024 * 1024);
  const nd = (body: Buffer, extra: Partial<Extract<Behavior, { kind: 'body' }>> = {}): Behavior => ({
    kind: 'body',
    status: 200,
    contentType: 'application/x-ndjson',
    body,
    ...extra,
  });
  fake.byModel.set('fuzz-reset', () => ({ kind: 'reset' }));
  fake.byModel.set('fuzz-reset-mid', () => ({ kind: 'reset-after', status: 200, contentType: 'application/x-ndjson', body: chat, bytes: 600 }));
  fake.byModel.set('fuzz-garbage', () => nd(garbage));
  fake.byModel.set('fuzz-stall', () => ({ kind: 'stall', status: 200, contentType: 'application/x-ndjson', body: chat, bytes: 500, resumeAfterMs: 300 }));
  fake.byModel.set('fuzz-big', () => nd(big, { chunking: { kind: 'every', size: 64 * 1024 } }));
  fake.byModel.set('fuzz-hang', () => ({ kind: 'hang' }));
}

export interface Violation {
  count: number;
  examples: string[];
}

export class UpstreamBooks {
  /** POSTs received whose normalised path is an LLM endpoint, by endpoint. */
  readonly llmByEndpoint = new Map<string, number>();
  received = 0;
  correlated = 0;
  readonly notNormalised: Violation = { count: 0, examples: [] };
  readonly badFormForwarded: Violation = { count: 0, examples: [] };
  readonly ownForwarded: Violation = { count: 0, examples: [] };
  readonly unauthenticated: Violation = { count: 0, examples: [] };
  readonly keyForwarded: Violation = { count: 0, examples: [] };
  private readonly endpoints = new Set(LLM_ROUTES.map((r) => r.path));

  constructor(private readonly sent: Map<string, SentRecord>) {}

  private note(v: Violation, example: string): void {
    v.count++;
    if (v.examples.length < 3) v.examples.push(example.length > 300 ? example.slice(0, 300) + '…' : example);
  }

  take(fake: FakeOllama): void {
    const got = fake.requests.splice(0);
    for (const q of got) this.add(q);
  }

  private add(q: ReceivedRequest): void {
    this.received++;
    // As received: the gateway forwards the normalised target, so this is the endpoint Ollama serves.
    // (Normalising again here would be a second pass: `/%%32E/readyz` → `/%2E/readyz` is right.)
    const path = q.url.split('?')[0];
    if (q.method === 'POST' && this.endpoints.has(path)) this.llmByEndpoint.set(path, (this.llmByEndpoint.get(path) ?? 0) + 1);
    if (q.headers.authorization !== undefined) this.note(this.keyForwarded, `${q.method} ${q.url}`);
    const id = checkedId(q.headers[ID_HEADER]);
    const rec = id ? this.sent.get(id) : undefined;
    if (rec) this.correlated++;
    const what = rec
      ? `${rec.method} ${JSON.stringify(rec.target.slice(0, 200))} → ${q.method} ${JSON.stringify(q.url.slice(0, 200))}`
      : `${q.method} ${JSON.stringify(q.url.slice(0, 200))}`;
    if (rec?.own || OWN_PATHS.has(path)) this.note(this.ownForwarded, what);
    if (!rec) return;
    if (rec.expect === null) this.note(this.badFormForwarded, what);
    else if (rec.expect !== undefined && rec.expect !== q.url) this.note(this.notNormalised, `${what} (expected ${JSON.stringify(rec.expect.slice(0, 200))})`);
    if (rec.auth === 'invalid') this.note(this.unauthenticated, what);
  }
}
