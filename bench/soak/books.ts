/** The soak's books: what the gateway must have counted (kept as the kinds run), and what it did count, what reached Ollama, and what was left behind. */
import type { FakeOllama } from '../../test/helpers/fake-ollama';
import { samples, type Book, type Sample } from '../../test/helpers/fuzz';
import type { Stats } from './gateway';
import { L, REASON_BOOKS, STATUS_BOOKS, type Count } from './types';
import { mSlowReader, type UpstreamBooks } from './fake';

/** What the gateway must count: per model, endpoint, and (where known) status and error reason. */
export class Expected {
  readonly model = new Map<string, number>();
  readonly endpoint = new Map<string, number>();
  readonly status = new Map<number, number>();
  readonly reason = new Map<string, number>();

  account(counts: Count[] = []): void {
    const inc = <K>(m: Map<K, number>, k: K) => m.set(k, (m.get(k) ?? 0) + 1);
    for (const x of counts) {
      inc(this.model, x.model);
      inc(this.endpoint, x.endpoint);
      if (x.status !== undefined) inc(this.status, x.status);
      if (x.reason !== undefined) inc(this.reason, x.reason);
    }
  }
}

/** Per kind of traffic: runs sent, runs whose client did not get what it should, and why. */
export type Tally = Map<string, { sent: number; failed: number; why: Map<string, number> }>;

/** What the run left behind, read once the traffic stopped. */
export interface Aftermath {
  metrics: string;
  expected: Expected;
  upstream: UpstreamBooks;
  tally: Tally;
  fake: FakeOllama;
  before: Stats;
  after: Stats;
  peakRss: number;
  peakHeap: number;
}

export function readBooks(a: Aftermath): Book[] {
  const m = samples(
    a.metrics,
    new Set(['ollama_requests_total', 'ollama_request_errors_total', 'ollama_requests_in_flight', 'ollama_gateway_buffered_body_bytes']),
  );
  return [...countBooks(m, a.expected), ...leftBooks(m, a), ...resourceBooks(a)];
}

/** Every request counted once: per model, endpoint, status and error reason. */
function countBooks(m: Sample[], expected: Expected): Book[] {
  const total = (f: (x: Sample) => boolean, name = 'ollama_requests_total') => m.filter((x) => x.name === name && f(x)).reduce((n, x) => n + x.value, 0);
  const counted = new Map<string, number>();
  for (const x of m) if (x.name === 'ollama_requests_total') counted.set(x.labels.model, (counted.get(x.labels.model) ?? 0) + x.value);
  const books: Book[] = [];
  const book = (b: string, want: number, got: number) => books.push({ book: b, expected: String(want), actual: String(got), ok: got === want });
  for (const [label, want] of expected.model) if (label !== 'random') book(`requests counted, model ${label}`, want, counted.get(label) ?? 0);
  const knownLabels = new Set([...expected.model.keys()].filter((l) => l !== 'random'));
  const randomCounted = [...counted].filter(([l]) => !knownLabels.has(l)).reduce((n, [, v]) => n + v, 0);
  book('requests counted, random model names', expected.model.get('random') ?? 0, randomCounted);
  for (const [endpoint, want] of expected.endpoint)
    book(
      `requests counted, endpoint ${endpoint}`,
      want,
      total((x) => x.labels.endpoint === endpoint),
    );
  for (const status of STATUS_BOOKS)
    book(
      `requests counted, status ${status}`,
      expected.status.get(status) ?? 0,
      total((x) => x.labels.status === String(status)),
    );
  for (const reason of REASON_BOOKS)
    book(
      `errors counted, reason ${reason}`,
      expected.reason.get(reason) ?? 0,
      total((x) => x.labels.reason === reason, 'ollama_request_errors_total'),
    );
  book(
    `errors counted, model ${L(mSlowReader)} (paused, resumed)`,
    0,
    total((x) => x.labels.model === L(mSlowReader), 'ollama_request_errors_total'),
  );
  const inFlight = m.filter((x) => x.name === 'ollama_requests_in_flight' && x.value !== 0).length;
  book('ollama_requests_in_flight series not 0', 0, inFlight);
  return books;
}

/** Nothing held, nothing forwarded that must not be, every client answered, nothing left running upstream. */
function leftBooks(m: Sample[], { upstream, tally, fake }: Aftermath): Book[] {
  const books: Book[] = [];
  const buffered = m.find((x) => x.name === 'ollama_gateway_buffered_body_bytes');
  books.push({ book: 'ollama_gateway_buffered_body_bytes', expected: '0', actual: buffered ? String(buffered.value) : 'absent', ok: buffered?.value === 0 });
  books.push({
    book: "requests that reached Ollama on the gateway's own paths",
    expected: '0',
    actual: `${upstream.own}${upstream.ownExample ? ` (${upstream.ownExample})` : ''}`,
    ok: upstream.own === 0,
  });
  books.push({
    book: 'spelled paths that reached Ollama as another path than /api/chat (query kept)',
    expected: '0',
    actual: `${upstream.spelledWrong} of ${upstream.spelled}${upstream.spelledExample ? ` (${upstream.spelledExample})` : ''}`,
    ok: upstream.spelledWrong === 0,
  });
  const failures = [...tally].reduce((n, [, t]) => n + t.failed, 0);
  books.push({ book: 'clients that got neither their response nor the expected error', expected: '0', actual: String(failures), ok: failures === 0 });
  books.push({ book: 'upstream requests still running', expected: '0', actual: String(fake.active), ok: fake.active === 0 });
  const cancelled = (tally.get('client leaves mid-stream')?.sent ?? 0) + (tally.get('client leaves before response')?.sent ?? 0);
  books.push({
    book: 'upstream requests abandoned ≥ clients that left',
    expected: `≥ ${cancelled}`,
    actual: String(fake.abandoned),
    ok: fake.abandoned >= cancelled,
  });
  return books;
}

/** Handles, sockets and memory back to their baseline. */
function resourceBooks({ before, after, peakRss, peakHeap }: Aftermath): Book[] {
  const heapMargin = 24;
  return [
    {
      book: 'active handles (before → after)',
      expected: `≤ ${before.handles + 2}`,
      actual: `${before.handles} → ${after.handles}`,
      ok: after.handles <= before.handles + 2,
    },
    {
      book: 'open sockets (before → after)',
      expected: `≤ ${before.sockets + 2}`,
      actual: `${before.sockets} → ${after.sockets}`,
      ok: after.sockets <= before.sockets + 2,
    },
    {
      book: 'heap used MB (before / peak / after GC)',
      expected: `after ≤ before + ${heapMargin}`,
      actual: `${before.heapUsedMb.toFixed(1)} / ${peakHeap.toFixed(1)} / ${after.heapUsedMb.toFixed(1)}`,
      ok: after.heapUsedMb <= before.heapUsedMb + heapMargin,
    },
    {
      book: 'RSS MB (before / peak / after)',
      expected: 'reported',
      actual: `${before.rssMb.toFixed(0)} / ${peakRss.toFixed(0)} / ${after.rssMb.toFixed(0)}`,
      ok: true,
    },
  ];
}

/** The summary: the traffic table and the books table. */
export function report(seconds: number, concurrency: number, slowStreams: number, tally: Tally, books: Book[]): string {
  const out: string[] = [];
  out.push(`## Soak: ${seconds} s, ${concurrency} mixed clients, waves of ${slowStreams} slow streams`, '');
  out.push('| traffic | sent | failed | why |', '|---|---|---|---|');
  for (const [name, t] of tally) out.push(`| ${name} | ${t.sent} | ${t.failed} | ${[...t.why].map(([w, n]) => `${w} ×${n}`).join(', ')} |`);
  out.push('', '| book | expected | actual | |', '|---|---|---|---|');
  for (const b of books) out.push(`| ${b.book} | ${b.expected} | ${b.actual} | ${b.ok ? 'balanced' : 'NOT BALANCED'} |`);
  return out.join('\n') + '\n';
}
