/**
 * The three books the audit reads from the gateway (`/metrics`, the console API, the access log),
 * what each should say given the ground truth, and the side-by-side table.
 *
 * What "equal" means, call by call (`expect`):
 * - An attempt whose final event the upstream wrote (`"done":true`, `[DONE]`, `message_stop`,
 *   `response.completed`, or a whole non-streamed body) is a success with the tokens that event
 *   reported, whatever the client did next: read to the end, closed right at the final event before
 *   the chunked terminator, or (a race the script avoids) left just after it.
 * - An attempt the client left mid-stream, before the final event was written, is
 *   `client_cancelled` with the status already sent (200) and no tokens: the stats never came.
 * - A stream cut by the upstream (an error line, a clean end without its final event, a reset after
 *   the headers, a backend dying mid-stream) is `stream_error`, status 200, no tokens.
 * - An error answer from the upstream is `upstream_5xx` / `upstream_4xx` with its status, no tokens.
 * - An attempt no upstream answered (its backend refused and no other took it) is `502
 *   upstream_unreachable`. One a dead backend refused and the next backend served is one call, the
 *   served one: failover is not a second call.
 * - A retry is a second call: both attempts are counted, each as what it was.
 * - A call in flight on a worker killed with SIGKILL is in no book: the process that would have
 *   counted, recorded and logged it is gone, and its client saw the connection break. The books can
 *   know everything that worker counted up to the last gather before its death (the audit quiesces,
 *   scrapes and reads the console just before the kill, as Prometheus and an open console page would
 *   have); what it would have counted after is lost. Such calls are listed apart and must appear nowhere.
 * - An upstream stream abandoned by the gateway while its client stayed is expected nowhere
 *   (status 0, reason `dropped`): no book can match it, so it shows as a difference.
 *
 * Cached tokens are compared only where the truth reported them; a book that does not export them
 * at all shows `absent`, a difference when the truth has any. Ollama's durations (`load_duration`,
 * `prompt_eval_duration`, `eval_duration` of the native final stats) are held to the microsecond:
 * per model, the count and sum of `/metrics`' duration histograms, and per call the console's
 * phases. The access log at INFO carries no durations, and the console's model totals none.
 */
import type { TruthRecord } from './upstream';
import type { Seen } from './clients';
import type { PlannedCall } from './plan';
import type { Sample } from '../fuzz/metrics';

/** One call as the books should hold it. */
export interface Expected {
  id: string;
  endpoint: string;
  model: string;
  status: number;
  reason?: string;
  tokensIn: number;
  cached: number;
  tokensOut: number;
  /** Durations the answer reported (native final stats), ns. */
  loadNs?: number;
  promptNs?: number;
  evalNs?: number;
  /** Lost with a killed worker: in no book. */
  lost?: boolean;
  /** How it came about, for the listing of differences. */
  how: string;
  /** The client's behaviour and the upstream's ending, for the differences by kind. */
  kind: string;
}

/** What the books should hold for one attempt (see the rules at the top). */
export function expect(call: PlannedCall, id: string, rec: TruthRecord | undefined, seen: Seen | undefined, killed: boolean): Expected {
  const kind = `${call.streamed ? 'stream' : 'whole'}, client ${call.behaviour}, upstream ${rec?.did ?? 'none'}`;
  const base = { id, endpoint: call.family.endpoint, model: call.model, tokensIn: 0, cached: 0, tokensOut: 0, kind };
  const how = (what: string) => `${id} ${call.family.endpoint} ${call.streamed ? 'stream' : 'whole'} ${call.behaviour}: ${what}`;
  if (killed && call.behaviour === 'held' && seen?.broken !== undefined && rec?.did !== 'complete')
    return { ...base, status: 0, lost: true, how: how('lost with the killed worker') };
  if (!rec) return { ...base, status: 502, reason: 'upstream_unreachable', how: how('no upstream answered') };
  switch (rec.did) {
    case 'complete':
      return {
        ...base,
        status: rec.status,
        tokensIn: rec.tokensIn,
        cached: rec.cached,
        tokensOut: rec.tokensOut,
        loadNs: rec.loadNs,
        promptNs: rec.promptNs,
        evalNs: rec.evalNs,
        how: how(`complete (${rec.backend})`),
      };
    case 'abandoned':
      return seen?.closedEarly
        ? { ...base, status: rec.status, reason: 'client_cancelled', how: how('client left mid-stream') }
        : { ...base, status: 0, reason: 'dropped', how: how('upstream connection dropped by the gateway, client still there') };
    case 'reset':
      // A backend that died under a stream its client had already left: the client left first.
      if (rec.diedAt !== undefined && seen?.leftAt !== undefined && seen.leftAt < rec.diedAt)
        return { ...base, status: rec.status, reason: 'client_cancelled', how: how('client left mid-stream, then its backend died') };
      return { ...base, status: rec.status, reason: 'stream_error', how: how(`reset (${rec.backend})`) };
    case 'error-line':
    case 'truncated':
      return { ...base, status: rec.status, reason: 'stream_error', how: how(`${rec.did} (${rec.backend})`) };
    case 'status-500':
      return { ...base, status: 500, reason: 'upstream_5xx', how: how('upstream 500') };
    case 'status-404':
      return { ...base, status: 404, reason: 'upstream_4xx', how: how('upstream 404') };
  }
}

/** One call as a book holds it (cached undefined: the book does not say). */
export interface BookCall {
  endpoint: string;
  model: string;
  status: number;
  reason?: string;
  tokensIn: number;
  cached?: number;
  tokensOut: number;
  /** Ollama's load, prompt and generation times, µs (`load/prompt/generation`), where the book has them. */
  phases?: string;
}

export interface Books {
  metrics: Sample[];
  /** Whether /metrics has a cached-token family at all. */
  metricsCached: boolean;
  /** `/console/api/v1/models` totals per model. */
  consoleModels: Map<string, { requests: number; errors: Record<string, number>; inputTokens: number; outputTokens: number; cachedTokens?: number }>;
  consoleCalls: BookCall[];
  /** The console's ring of recent calls holds every call of the run. */
  consoleComplete: boolean;
  log: BookCall[];
  /** Whether the log must carry cached tokens (false: its cached column is not compared). */
  logMustCarryCached: boolean;
}

const CACHED_METRIC = 'ollama_tokens_cached_total';
/** Ollama's reported durations: the metric, and the field of the truth it must sum. */
const DURATIONS = [
  ['ollama_load_duration_seconds', 'loadNs', 'load_duration'],
  ['ollama_prompt_eval_duration_seconds', 'promptNs', 'prompt_eval_duration'],
  ['ollama_eval_duration_seconds', 'evalNs', 'eval_duration'],
] as const;

export const METRIC_NAMES = new Set([
  ...DURATIONS.flatMap(([m]) => [`${m}_sum`, `${m}_count`]),
  'ollama_requests_total',
  'ollama_request_errors_total',
  'ollama_tokens_processed_total',
  'ollama_tokens_generated_total',
  CACHED_METRIC,
]);

const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
const optNum = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** A console call entry as a BookCall. */
export function consoleCall(c: Record<string, unknown>): BookCall {
  return {
    endpoint: String(c.endpoint),
    model: String(c.model),
    status: num(c.status),
    reason: typeof c.reason === 'string' ? c.reason : undefined,
    tokensIn: num(c.inputTokens),
    cached: optNum(c.cachedTokens),
    tokensOut: num(c.outputTokens),
    phases: phasesOf(c.phases),
  };
}

const us = (ms: number) => Math.round(ms * 1000);

function phasesOf(p: unknown): string | undefined {
  if (!p || typeof p !== 'object') return undefined;
  const o = p as Record<string, unknown>;
  return `${us(num(o.loadMs))}/${us(num(o.promptMs))}/${us(num(o.generationMs))}`;
}

/** The phases an expected call's book entry should show: Ollama's durations, when it reported any. */
function expectedPhases(e: Expected): string | undefined {
  if (e.loadNs === undefined && e.promptNs === undefined && e.evalNs === undefined) return undefined;
  return `${us((e.loadNs ?? 0) / 1e6)}/${us((e.promptNs ?? 0) / 1e6)}/${us((e.evalNs ?? 0) / 1e6)}`;
}

/** An access-log line of an LLM call as a BookCall (the cached count under whatever key names it). */
export function logCall(l: Record<string, unknown>): BookCall {
  const cachedKey = Object.keys(l).find((k) => /cache/i.test(k));
  return {
    endpoint: String(l.path).split('?')[0],
    model: String(l.model),
    status: num(l.status),
    reason: typeof l.error === 'string' ? l.error : undefined,
    tokensIn: num(l.input_tokens),
    cached: cachedKey ? optNum(l[cachedKey]) : undefined,
    tokensOut: num(l.output_tokens),
  };
}

/** Whether a log line is the line of an LLM call (the one `model`-carrying line per call; not its DEBUG detail). */
export function isCallLine(l: Record<string, unknown>): boolean {
  return typeof l.model === 'string' && typeof l.path === 'string' && l.status !== undefined && l.msg !== 'call detail';
}

export interface Row {
  book: string;
  truth: string;
  metrics: string;
  console: string;
  log: string;
  diff: string;
}

const NA = '·';

/** The side-by-side rows and the listing of calls that do not match; `ok` when no row differs. */
export function compare(expected: Expected[], books: Books): { rows: Row[]; unmatched: string[]; kinds: string[]; ok: boolean } {
  const live = expected.filter((e) => !e.lost);
  const rows: Row[] = [];
  const add = (book: string, truth: number, m: number | string, c: number | string, l: number | string) => {
    const diffs: string[] = [];
    for (const [name, v] of [
      ['metrics', m],
      ['console', c],
      ['log', l],
    ] as const) {
      if (v === NA) continue;
      if (v === 'absent') {
        if (truth !== 0) diffs.push(`${name} absent`);
        continue;
      }
      const d = Number(v) - truth;
      if (d !== 0) diffs.push(`${name} ${d > 0 ? '+' : ''}${d}`);
    }
    rows.push({ book, truth: String(truth), metrics: String(m), console: String(c), log: String(l), diff: diffs.join(', ') });
  };
  const sumM = (name: string, f: (l: Record<string, string>) => boolean) =>
    books.metrics.filter((s) => s.name === name && f(s.labels)).reduce((n, s) => n + s.value, 0);
  const count = <T>(xs: T[], f: (x: T) => boolean) => xs.filter(f).length;
  const sum = <T>(xs: T[], f: (x: T) => number) => xs.reduce((n, x) => n + f(x), 0);
  const cc = books.consoleComplete ? books.consoleCalls : undefined;

  const pairs = new Set<string>();
  for (const x of [...live, ...books.log, ...(cc ?? [])]) pairs.add(`${x.model} ${x.endpoint}`);
  for (const s of books.metrics) if (s.name === 'ollama_requests_total') pairs.add(`${s.labels.model} ${s.labels.endpoint}`);
  for (const pair of [...pairs].sort()) {
    const [model, endpoint] = pair.split(' ');
    const is = (x: { model: string; endpoint: string }) => x.model === model && x.endpoint === endpoint;
    const isL = (l: Record<string, string>) => l.model === model && l.endpoint === endpoint;
    add(`${pair}: calls`, count(live, is), sumM('ollama_requests_total', isL), cc ? count(cc, is) : NA, count(books.log, is));
    const statuses = new Set<number>();
    for (const x of [...live, ...books.log, ...(cc ?? [])]) if (is(x)) statuses.add(x.status);
    for (const s of books.metrics) if (s.name === 'ollama_requests_total' && isL(s.labels)) statuses.add(Number(s.labels.status));
    for (const st of [...statuses].sort()) {
      const isS = (x: { model: string; endpoint: string; status: number }) => is(x) && x.status === st;
      add(
        `${pair}: status ${st}`,
        count(live, isS),
        sumM('ollama_requests_total', (l) => isL(l) && l.status === String(st)),
        cc ? count(cc, isS) : NA,
        count(books.log, isS),
      );
    }
    const reasons = new Set<string>();
    for (const x of [...live, ...books.log, ...(cc ?? [])]) if (is(x) && x.reason) reasons.add(x.reason);
    for (const s of books.metrics) if (s.name === 'ollama_request_errors_total' && isL(s.labels) && s.value > 0) reasons.add(s.labels.reason);
    for (const r of [...reasons].sort()) {
      const isR = (x: { model: string; endpoint: string; reason?: string }) => is(x) && x.reason === r;
      add(
        `${pair}: ${r}`,
        count(live, isR),
        sumM('ollama_request_errors_total', (l) => isL(l) && l.reason === r),
        cc ? count(cc, isR) : NA,
        count(books.log, isR),
      );
    }
  }

  const models = new Set([...live.map((e) => e.model), ...books.consoleModels.keys()]);
  for (const model of [...models].sort()) {
    const of = (x: { model: string }) => x.model === model;
    const cm = books.consoleModels.get(model);
    const isM = (l: Record<string, string>) => l.model === model;
    add(`${model}: calls, all endpoints`, count(live, of), sumM('ollama_requests_total', isM), cm?.requests ?? 0, count(books.log, of));
    const failed = live.filter((e) => of(e) && e.reason);
    add(
      `${model}: failed calls`,
      failed.length,
      sumM('ollama_request_errors_total', isM),
      cm ? Object.values(cm.errors).reduce((n, v) => n + v, 0) : 0,
      count(books.log, (x) => of(x) && x.reason !== undefined),
    );
    add(
      `${model}: tokens in`,
      sum(live.filter(of), (e) => e.tokensIn),
      sumM('ollama_tokens_processed_total', isM),
      cm?.inputTokens ?? 0,
      sum(books.log.filter(of), (x) => x.tokensIn),
    );
    const logCached = books.log.some((x) => x.cached !== undefined);
    add(
      `${model}: tokens cached`,
      sum(live.filter(of), (e) => e.cached),
      books.metricsCached ? sumM(CACHED_METRIC, isM) : 'absent',
      cm?.cachedTokens ?? 'absent',
      logCached ? sum(books.log.filter(of), (x) => x.cached ?? 0) : books.logMustCarryCached ? 'absent' : NA,
    );
    for (const [metric, field, name] of DURATIONS) {
      const reported = live.filter((e) => of(e) && e[field] !== undefined);
      add(`${model}: calls reporting ${name}`, reported.length, sumM(`${metric}_count`, isM), NA, NA);
      // Seconds to the microsecond: the sums are of floats, added in another order.
      const us = (x: number) => Math.round(x * 1e6) / 1e6;
      add(`${model}: ${name} total (s)`, us(sum(reported, (e) => e[field]! / 1e9)), us(sumM(`${metric}_sum`, isM)), NA, NA);
    }
    add(
      `${model}: tokens out`,
      sum(live.filter(of), (e) => e.tokensOut),
      sumM('ollama_tokens_generated_total', isM),
      cm?.outputTokens ?? 0,
      sum(books.log.filter(of), (x) => x.tokensOut),
    );
  }

  // Call for call: every expected call found once in the console's ring and in the log, nothing else.
  const unmatched: string[] = [];
  const LISTED = 12;
  const kinds: string[] = [];
  const match = (name: string, got: BookCall[], whole: boolean): number | string => {
    const listed = unmatched.length;
    const list = (line: string) => {
      if (unmatched.length - listed < LISTED) unmatched.push(line);
    };
    const withCached = got.some((g) => g.cached !== undefined);
    const withPhases = got.some((g) => g.phases !== undefined);
    const key = (x: BookCall | Expected) =>
      `${x.endpoint} ${x.model} ${x.status} ${x.reason ?? 'ok'} in=${x.tokensIn}${withCached ? ` cached=${x.cached ?? 0}` : ''} out=${x.tokensOut}` +
      (withPhases ? ` µs=${('how' in x ? expectedPhases(x) : x.phases) ?? '-'}` : '');
    const left = new Map<string, BookCall[]>();
    for (const g of got) left.set(key(g), [...(left.get(key(g)) ?? []), g]);
    const missing: Expected[] = [];
    for (const e of live) {
      const k = key(e);
      const same = left.get(k);
      if (same?.length) same.pop();
      else if (whole) {
        missing.push(e);
        list(`${name}: missing ${k} — ${e.how}`);
      }
    }
    const extra = [...left].flatMap(([k, v]) => v.map((g) => (list(`${name}: not in the truth: ${k}`), g)));
    // Each missing call paired with the book's entry that is most likely it, and what differs.
    const byKind = new Map<string, number>();
    const inc = (k: string) => byKind.set(k, (byKind.get(k) ?? 0) + 1);
    for (const e of missing) {
      const near = (g: BookCall) => g.endpoint === e.endpoint && g.model === e.model;
      // The same call has the same output tokens, or input tokens (whole, or without the cached part);
      // a call without tokens is paired only with one without tokens.
      const same = (g: BookCall) =>
        (e.tokensOut > 0 && g.tokensOut === e.tokensOut) ||
        (e.tokensIn > 0 && (g.tokensIn === e.tokensIn || g.tokensIn === e.tokensIn - e.cached)) ||
        (e.tokensIn === 0 && e.tokensOut === 0 && g.tokensIn === 0 && g.tokensOut === 0);
      const j = extra.findIndex((g) => near(g) && same(g));
      inc(`${e.kind}: ${j === -1 ? 'absent' : whatDiffers(e, extra.splice(j, 1)[0], withCached)}`);
    }
    for (const g of extra) inc(`not in the truth: ${g.status} ${g.reason ?? 'ok'}`);
    for (const [k, n] of [...byKind].sort((x, y) => y[1] - x[1])) kinds.push(`${name}: ${n} × ${k}`);
    return missing.length + extra.length;
  };
  const consoleOff = match('console', books.consoleCalls, books.consoleComplete);
  const logOff = match('log', books.log, true);
  rows.push({
    book: 'calls not matched call for call (endpoint, model, status, reason, tokens; console: durations)',
    truth: '0',
    metrics: NA,
    console: `${consoleOff}${books.consoleComplete ? '' : ' (ring ⊆ truth)'}`,
    log: String(logOff),
    diff: [consoleOff ? `console ${consoleOff}` : '', logOff ? `log ${logOff}` : ''].filter(Boolean).join(', '),
  });
  const lost = expected.filter((e) => e.lost).length;
  if (lost) rows.push({ book: 'calls lost with the killed worker (expected in no book)', truth: String(lost), metrics: NA, console: NA, log: NA, diff: '' });
  return { rows, unmatched, kinds, ok: rows.every((r) => r.diff === '') };
}

/** What a book holds differently from the truth for one call. */
function whatDiffers(e: Expected, g: BookCall, withCached: boolean): string {
  const out: string[] = [];
  if (g.status !== e.status) out.push(`status ${e.status} → ${g.status}`);
  if (g.reason !== e.reason) out.push(`${e.reason ?? 'success'} → ${g.reason ?? 'success'}`);
  if (g.tokensIn !== e.tokensIn)
    out.push(e.cached > 0 && g.tokensIn === e.tokensIn - e.cached ? 'input counted without its cached part' : `input tokens ${e.tokensIn} → ${g.tokensIn}`);
  if (withCached && (g.cached ?? 0) !== e.cached) out.push(`cached tokens ${e.cached} → ${g.cached ?? 0}`);
  if (g.tokensOut !== e.tokensOut) out.push(`output tokens ${e.tokensOut} → ${g.tokensOut}`);
  if (g.phases !== undefined && g.phases !== expectedPhases(e)) out.push(`load/prompt/generation µs ${expectedPhases(e) ?? '-'} → ${g.phases}`);
  return out.join(', ') || 'same';
}

/** The rows as a markdown table. */
export function table(rows: Row[]): string {
  const out = ['| book | truth | metrics | console | log | difference |', '|---|---:|---:|---:|---:|---|'];
  for (const r of rows) out.push(`| ${r.book} | ${r.truth} | ${r.metrics} | ${r.console} | ${r.log} | ${r.diff || '='} |`);
  return out.join('\n');
}
