/**
 * The plan for request `index`: a pure function of (seed, index), so `--seed` reproduces the same
 * traffic. A plan is one kind of traffic (an LLM call, a pipelined pair, a keep-alive sequence, …),
 * delivered one way (whole, dripped, truncated, reset, …), with the spec's exact answer where the
 * request leaves no doubt.
 */
import http from 'node:http';
import { LLM_ROUTES } from '../../../src/routes';
import { damage, randomGarbage } from './mutations';
import type { Ctx, Oracle, Part, Plan, Req, SentRecord } from './records';
import { llmRequest, ownRequest, passRequest, serialize } from './requests';
import { Rng } from './rng';

const LLM_PATHS = new Set(LLM_ROUTES.map((r) => r.path));

/** Splits `data` into writes with small gaps; `stallMs` puts one long gap somewhere (`stallAfter`: bytes sent before it). */
function drip(r: Rng, data: Buffer, stallMs = 0): Part[] & { stallAfter?: number } {
  const n = Math.min(data.length, r.range(2, 10));
  const cuts = new Set<number>();
  while (cuts.size < n - 1) cuts.add(1 + r.int(Math.max(1, data.length - 1)));
  const offsets = [0, ...[...cuts].sort((a, b) => a - b), data.length];
  const parts: Part[] & { stallAfter?: number } = [];
  // The long gap goes between two writes (there is none after the last).
  const stallAt = stallMs && offsets.length > 2 ? r.int(offsets.length - 2) : -1;
  for (let k = 0; k + 1 < offsets.length; k++) {
    parts.push({ t: 'write', data: data.subarray(offsets[k], offsets[k + 1]) });
    if (k + 2 < offsets.length) parts.push({ t: 'wait', ms: k === stallAt ? stallMs : r.range(1, 40) });
  }
  if (stallAt >= 0) parts.stallAfter = offsets[stallAt + 1];
  return parts;
}

/** The state one plan is built in: its random stream, its notes, and the requests added so far. */
interface Builder {
  r: Rng;
  ctx: Ctx;
  index: number;
  notes: string[];
  records: Map<string, SentRecord>;
  /** Records `req` (its id and method) and returns its bytes. */
  add(req: Req): Buffer;
  plan(kind: string, parts: Part[], expect: number): Plan;
}

function builder(ctx: Ctx, index: number): Builder {
  const r = new Rng(ctx.seed, index);
  const notes: string[] = [];
  const records = new Map<string, SentRecord>();
  const methods: string[] = [];
  const add = (req: Req): Buffer => {
    records.set(req.id, req.rec);
    methods.push(req.method);
    return serialize(req);
  };
  const plan = (kind: string, parts: Part[], expect: number): Plan => ({ index, kind, parts, expect, methods, records, notes });
  return { r, ctx, index, notes, records, add, plan };
}

/** The plan for request `index`: a pure function of (seed, index). */
export function makePlan(ctx: Ctx, index: number): Plan {
  const b = builder(ctx, index);
  const { r, notes } = b;
  if (ctx.hugeEvery > 0 && index % ctx.hugeEvery === ctx.hugeEvery >> 1)
    return b.plan('huge model name', [{ t: 'write', data: b.add(llmRequest(r, ctx, index, 0, notes, 'huge-model')) }], 1);
  if (ctx.bigBodyEvery > 0 && index % ctx.bigBodyEvery === ctx.bigBodyEvery >> 2)
    return b.plan('big body', [{ t: 'write', data: b.add(llmRequest(r, ctx, index, 0, notes, 'big-body')) }], 1);

  const kind = r.weighted<string>([
    [55, 'llm'],
    [5, 'pipelined pair'],
    [4, 'keep-alive sequence'],
    [8, 'own path'],
    [5, 'pass-through'],
    [5, 'random bytes'],
    [2, 'slow reader'],
  ]);
  if (kind === 'random bytes') return b.plan(kind, [{ t: 'write', data: randomGarbage(r, notes) }], 1);
  if (kind === 'slow reader') {
    const data = b.add(llmRequest(r, ctx, index, 0, notes, 'slow-reader'));
    const ms = r.range(300, 1500);
    notes.push(`pauses reading ${ms} ms`);
    return b.plan(kind, [{ t: 'write', data }, { t: 'await-bytes' }, { t: 'pause-read', ms }], 1);
  }
  if (kind === 'pipelined pair') {
    const first = b.add(r.chance(0.8) ? llmRequest(r, ctx, index, 0, notes) : ownRequest(r, ctx, index, 0, notes));
    const second = b.add(r.chance(0.8) ? llmRequest(r, ctx, index, 1, notes) : passRequest(r, ctx, index, 1, notes));
    const data = Buffer.concat([first, second]);
    return b.plan(kind, r.chance(0.3) ? drip(r, data) : [{ t: 'write', data }], 2);
  }
  if (kind === 'keep-alive sequence') return keepAlivePlan(b, kind);
  return singlePlan(b, kind);
}

/** Two or three requests on one connection, each written once the answer to the one before arrived. */
function keepAlivePlan(b: Builder, kind: string): Plan {
  const { r, ctx, index, notes } = b;
  const n = r.range(2, 3);
  const parts: Part[] = [];
  for (let k = 0; k < n; k++) {
    const req = r.chance(0.7)
      ? llmRequest(r, ctx, index, k, notes)
      : r.chance(0.5)
        ? ownRequest(r, ctx, index, k, notes)
        : passRequest(r, ctx, index, k, notes);
    parts.push({ t: 'write', data: b.add(req) }, { t: 'await-response', n: k + 1 });
  }
  return b.plan(kind, parts, n);
}

/** The spec's answers for `req`: the exact one where it leaves no doubt, and the 408 of a body that stalls after `after` bytes. */
interface Answers {
  oracle: Oracle | undefined;
  bodyStalled(after: number | undefined): Oracle | undefined;
}

/** One request (maybe damaged), delivered in one of several ways. */
function singlePlan(b: Builder, kind: string): Plan {
  const { r, ctx, index, notes } = b;
  const req =
    kind === 'own path'
      ? ownRequest(r, ctx, index, 0, notes)
      : kind === 'pass-through'
        ? passRequest(r, ctx, index, 0, notes)
        : llmRequest(r, ctx, index, 0, notes);
  let data = b.add(req);
  let label = kind;
  let damaged = false;
  if (r.chance(0.04)) {
    damaged = true;
    data = damage(r, data, notes);
    // Anything may have been hit: the request line, the id, the key.
    for (const rec of b.records.values()) {
      rec.expect = undefined;
      rec.own = false;
      rec.auth = 'ambiguous';
    }
    label = `${kind}, damaged`;
  }
  const delivery = r.weighted<string>([
    [70, 'whole'],
    [10, 'drip'],
    [5, 'truncated'],
    [4, 'early reset'],
    [3, 'reset mid-response'],
    [5, 'half-close'],
    [3, 'stalled body'],
  ]);
  const headLength = data.indexOf('\r\n\r\n') + 4;
  return deliver(b, label, data, delivery, headLength, answers(req, data, headLength, damaged));
}

/** Where the spec leaves no doubt about the answer, what it must be. */
function answers(req: Req, data: Buffer, headLength: number, damaged: boolean): Answers {
  const sure = !damaged && req.clean && req.rec.auth === 'valid' && req.version === 'HTTP/1.1';
  const llmTarget = req.method === 'POST' && req.rec.expect != null && LLM_PATHS.has(req.rec.expect.split('?')[0]);
  const bodyStalled = (after: number | undefined): Oracle | undefined =>
    sure && llmTarget && after !== undefined && after >= headLength && after < data.length
      ? { status: 408, headers: { connection: /close/i }, what: 'LLM body stalled > REQUEST_BODY_TIMEOUT_SECONDS' }
      : undefined;
  let oracle: Oracle | undefined;
  if (sure && req.rec.own && !['GET', 'HEAD', 'CONNECT'].includes(req.method) && http.METHODS.includes(req.method)) {
    oracle = { status: 405, headers: { allow: /^GET,\s*HEAD$/i }, what: `${req.method} on an own path` };
  } else if (sure && req.method === 'POST' && req.rec.expect === null && req.target !== '*' && /^[\x21-\x7e]+$/.test(req.target)) {
    oracle = { status: 400, what: 'target in neither origin- nor absolute-form' };
  }
  return { oracle, bodyStalled };
}

/** The parts that deliver `data` as `delivery` says, with the answer the spec requires, if any. */
function deliver(b: Builder, label: string, data: Buffer, delivery: string, headLength: number, a: Answers): Plan {
  const { r, notes } = b;
  const withOracle = (p: Plan, o: Oracle | undefined) => {
    if (o) p.oracle = o;
    return p;
  };
  switch (delivery) {
    case 'whole':
      return withOracle(b.plan(label, [{ t: 'write', data }], 1), a.oracle);
    case 'drip':
      return withOracle(b.plan(`${label}, dripped`, drip(r, data), 1), a.oracle);
    case 'stalled body': {
      // One gap longer than REQUEST_BODY_TIMEOUT_SECONDS (1 s in the fuzz), by enough that a
      // gateway busy with the other lanes' bodies, reading this one's bytes late, still sees it.
      const parts = drip(r, data, r.range(2000, 2500));
      notes.push(`one gap of >1 s after ${parts.stallAfter ?? '-'} of ${data.length} B (head ${headLength} B)`);
      return withOracle(b.plan(`${label}, stalled`, parts, 1), a.bodyStalled(parts.stallAfter));
    }
    case 'truncated': {
      const cut = r.int(data.length);
      const how = r.pick(['end', 'reset', 'leave open']);
      notes.push(`truncated at ${cut}/${data.length} (head ${headLength} B), then ${how}`);
      const parts: Part[] = [{ t: 'write', data: data.subarray(0, cut) }];
      if (how === 'end') parts.push({ t: 'end' });
      else if (how === 'reset') parts.push({ t: 'wait', ms: r.range(0, 100) }, { t: 'reset' });
      return withOracle(b.plan(`${label}, truncated`, parts, how === 'leave open' ? 1 : 0), how === 'leave open' ? a.bodyStalled(cut) : undefined);
    }
    case 'early reset': {
      const cut = r.chance(0.5) ? data.length : r.int(data.length);
      return b.plan(`${label}, early reset`, [{ t: 'write', data: data.subarray(0, cut) }, { t: 'wait', ms: r.range(0, 50) }, { t: 'reset' }], 0);
    }
    case 'reset mid-response':
      return b.plan(`${label}, reset mid-response`, [{ t: 'write', data }, { t: 'await-bytes' }, { t: 'reset' }], 0);
    default:
      return b.plan(`${label}, half-close`, [{ t: 'write', data }, { t: 'end' }], 1);
  }
}

/** A readable account of request `index` (what `--show` prints). */
export function describeRequest(ctx: Ctx, index: number): string {
  const p = makePlan(ctx, index);
  const lines = [`#${index} ${p.kind}: ${p.notes.join('; ')}${p.oracle ? ` [must answer ${p.oracle.status}: ${p.oracle.what}]` : ''}`];
  for (const part of p.parts) {
    if (part.t === 'write') {
      const s = part.data.toString('latin1');
      const shown = s.length > 2000 ? `${s.slice(0, 1500)}…(${s.length} bytes)…${s.slice(-200)}` : s;
      lines.push(`  write ${part.data.length} B: ${JSON.stringify(shown)}`);
    } else lines.push(`  ${JSON.stringify(part)}`);
  }
  return lines.join('\n');
}
