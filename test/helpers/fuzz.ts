/**
 * The hostile-input fuzzer: thousands of random and mutated requests, written byte by byte over raw
 * sockets to the real gateway process (`node dist/src/main.js`) in front of a FakeOllama, and then
 * the books that must balance whatever was sent (see /tmp/spec9.md, issue 9):
 *
 *  - the process is alive, `/healthz` answers 200, a valid call still works, `/metrics` passes
 *    `promtool check metrics` and stays under 1 MB;
 *  - (a) `ollama_requests_in_flight` is 0 for every series; (b) `ollama_gateway_buffered_body_bytes`
 *    is 0; (c) per LLM endpoint, the LLM calls Ollama received ≤ `ollama_requests_total`; (d) the sum
 *    of `ollama_requests_total` equals the LLM-call log lines; (e) the fake has nothing in flight;
 *  - what reached Ollama: exactly the normalised path, never the gateway's own paths, never a target
 *    in neither origin- nor absolute-form, never a request without a valid API key, never the key;
 *  - model labels stay bounded and clean; stdout is all JSON; no stack traces on stderr.
 *
 * Every request is generated from (seed, index) alone, so `--seed` reproduces the same traffic and
 * `describeRequest(seed, i)` shows request i. Used by test/integration/fuzz.test.ts (short) and
 * bench/fuzz.ts (long). Loopback only; every socket has an idle timeout and a hard cap.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { LLM_ROUTES } from '../../src/routes';
import { FakeOllama, type Behavior, type ReceivedRequest } from './fake-ollama';
import { fixture } from './fixtures';
import { freePort, runGateway, type GatewayProcess } from './process';

// ---------------------------------------------------------------------------------------------
// Seeded PRNG (sfc32, seeded through splitmix32): one independent stream per request index.

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, stream = 0) {
    let s = (seed ^ Math.imul(stream + 0x632be5ab, 0x9e3779b9)) >>> 0;
    const mix = () => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = mix();
    this.b = mix();
    this.c = mix();
    this.d = mix();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t0 = (this.a + this.b) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.d = (this.d + 1) | 0;
    const t = (t0 + this.d) | 0;
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** [0, 1) */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** Picks by weight: `[[weight, value], …]`. */
  weighted<T>(items: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of items) total += w;
    let x = this.next() * total;
    for (const [w, v] of items) if ((x -= w) < 0) return v;
    return items[items.length - 1][1];
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.u32();
      for (let k = 0; k < 4 && i + k < n; k++) b[i + k] = (v >>> (k * 8)) & 0xff;
    }
    return b;
  }

  hex(n: number): string {
    let s = '';
    while (s.length < n) s += this.u32().toString(16).padStart(8, '0');
    return s.slice(0, n);
  }
}

// ---------------------------------------------------------------------------------------------
// Request targets as the spec normalises them (written independently of src/, to check it).

const UNRESERVED_CHAR = /^[A-Za-z0-9\-._~]$/;

/** The spec's normalisation of an origin-form path (no query): decode safe escapes, collapse `/`, resolve dots. */
export function normalisePath(path: string): string {
  const decoded = path.replace(/%([0-9A-Fa-f]{2})/g, (esc, h: string) => {
    const c = String.fromCharCode(parseInt(h, 16));
    return c === '/' || UNRESERVED_CHAR.test(c) ? c : esc;
  });
  const collapsed = decoded.replace(/\/{2,}/g, '/');
  const segs = collapsed.split('/');
  const out: string[] = [];
  for (let i = 1; i < segs.length; i++) {
    const seg = segs[i];
    const last = i === segs.length - 1;
    if (seg === '.' || seg === '..') {
      if (seg === '..') out.pop();
      if (last) out.push('');
      continue;
    }
    out.push(seg);
  }
  return '/' + out.join('/');
}

/**
 * What the gateway must forward for `target`: the normalised path plus the query as sent; null when
 * the target is neither origin-form nor an absolute http(s) URL (400, not forwarded).
 */
export function expectedForward(target: string): string | null {
  let rest: string;
  const abs = /^https?:\/\/[^/?#]*/.exec(target);
  if (abs) {
    rest = target.slice(abs[0].length);
    if (!rest.startsWith('/')) rest = '/' + rest;
  } else if (target.startsWith('/')) {
    rest = target;
  } else {
    return null;
  }
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : rest.slice(q);
  return normalisePath(path) + query;
}

/** Random spellings of `path` that the spec says normalise back to it. */
export function spellPath(r: Rng, path: string): string {
  let p = path;
  const steps = r.range(1, 3);
  for (let s = 0; s < steps; s++) {
    const segs = p.split('/').slice(1);
    // Before an existing segment: at the end, `.` or an empty segment would add a trailing slash.
    const at = r.int(segs.length);
    switch (r.int(9)) {
      case 0: // leading slashes
        p = '/'.repeat(r.range(1, 3)) + p;
        break;
      case 1: // a run of slashes inside
        segs.splice(at, 0, ...Array.from({ length: r.range(1, 2) }, () => ''));
        p = '/' + segs.join('/');
        break;
      case 2: // `.` segments
        segs.splice(at, 0, r.pick(['.', '%2e', '%2E']));
        p = '/' + segs.join('/');
        break;
      case 3: // `x/..`
        segs.splice(at, 0, r.pick(['x', 'v1', 'api', '%7e', 'a.b']), r.pick(['..', '%2e%2e', '.%2E', '%2E.']));
        p = '/' + segs.join('/');
        break;
      case 4: // `..` above the root
        p = '/..'.repeat(r.range(1, 3)) + p;
        break;
      case 5: // escape unreserved characters (any hex case), never inside an escape already there
        p = p.replace(/%[0-9A-Fa-f]{2}|[A-Za-z0-9\-._~]/g, (c) =>
          c.length === 1 && r.chance(0.3) ? '%' + c.charCodeAt(0).toString(16).padStart(2, '0')[r.chance(0.5) ? 'toUpperCase' : 'toLowerCase']() : c,
        );
        break;
      case 6: // escape an inner slash
        p = p.replace(/(?!^)\//, r.pick(['%2F', '%2f']));
        break;
      case 7: // absolute form
        return (
          r.pick(['http://evil.example', 'http://127.0.0.1:1', 'https://ollama.internal:11434', 'http://[::1]:8000', 'http://a.b.c.d']) +
          (p.startsWith('/') ? p : '/' + p)
        );
      default: // nothing, but a query as sent
        return p + r.pick(['?', '?a=1', '?x=%2F..%2F', '?stream=true&model=x']);
    }
  }
  return p;
}

/** Targets the spec does not normalise to an LLM route, or refuses (400); `check` tells whether the spec is explicit. */
function oddTarget(r: Rng, path: string): { target: string; check: boolean } {
  return r.weighted<{ target: string; check: boolean }>([
    [3, { target: path.slice(1), check: true }], // no leading slash: 400
    [1, { target: '*', check: true }],
    [1, { target: `ftp://evil.example${path}`, check: true }],
    [1, { target: `:///${path}`, check: true }],
    [2, { target: `${path}/`, check: true }], // not an LLM route by the spec
    [2, { target: path.toUpperCase(), check: true }],
    [2, { target: path.replace(/c/, '%2563'), check: true }], // double-encoded: left as sent
    [1, { target: `${path}%00`, check: true }],
    [1, { target: `${path}%zz`, check: true }],
    [1, { target: `${path}#frag`, check: false }],
    [1, { target: `HTTP://evil.example${path}`, check: false }],
    [1, { target: `http://user:pw@evil.example${path}`, check: false }],
    [1, { target: path.replace(/\//g, '\\'), check: false }],
  ]);
}

// ---------------------------------------------------------------------------------------------
// What was sent, by id (an `x-fuzz-id` header on every generated request).

type Auth = 'valid' | 'invalid' | 'ambiguous';

export interface SentRecord {
  /** What the gateway must forward: a path+query; null: must not be forwarded; undefined: unspecified. */
  expect: string | null | undefined;
  /** To one of the gateway's own paths: must never reach Ollama. */
  own: boolean;
  auth: Auth;
  target: string;
  method: string;
}

const ID_HEADER = 'x-fuzz-id';
const OWN_PATHS = new Set(['/healthz', '/readyz', '/metrics']);
const LLM_PATHS = new Set(LLM_ROUTES.map((r) => r.path));

/** Whether `target` is one of the gateway's own paths once normalised. */
function isOwn(target: string): boolean {
  const e = expectedForward(target);
  return e !== null && OWN_PATHS.has(e.split('?')[0]);
}

function makeId(i: number, k: number): string {
  const base = `${i}.${k}`;
  return `${base}-${createHash('sha1').update(base).digest('hex').slice(0, 6)}`;
}

function checkedId(raw: string | string[] | undefined): string | undefined {
  const v = Array.isArray(raw) ? raw[0] : raw;
  if (!v) return undefined;
  const m = /^(\d+\.\d+)-([0-9a-f]{6})$/.exec(v);
  if (!m) return undefined;
  return createHash('sha1').update(m[1]).digest('hex').slice(0, 6) === m[2] ? v : undefined;
}

// ---------------------------------------------------------------------------------------------
// Generation.

export const API_KEY = 'fuzz-key-1';
const KNOWN_MODELS = ['llama3.2', 'llama3.2:latest', 'all-minilm', 'qwen3:8b'];
/** A small pool of odd but legal names, so the label set stays bounded by MAX_MODEL_LABELS. */
const ODD_NAMES = [
  '',
  ' ',
  'llama3.2 ',
  ' llama3.2',
  'LLAMA3.2',
  'llama3.2:',
  ':latest',
  ':',
  'x:y:z',
  'a/b/c',
  'hf.co/org/repo',
  'llama3.2@sha256:abc',
  'model"quote',
  'back\\slash',
  '{{.Model}}',
  '%s%n%x',
  '🦙',
  '\u202eevil',
  'zero\u200bwidth',
  'other',
  'unknown',
  'invalid',
  '../../etc/passwd',
  '<script>',
  'a'.repeat(256),
  'ü'.repeat(200),
  '\ud800lone',
  'null',
];
const CONTROL_NAMES = ['\u0000', 'a\nb', 'tab\there', '\u007f', '\u001b[31mred', 'cr\r', 'llama3.2\u0000', '\u0001\u0002\u0003'];

export interface Ctx {
  seed: number;
  port: number;
  /** Every n-th request carries a model name of 1–5.5 MB (0: never). */
  hugeEvery: number;
  /** Every n-th request carries a 1–7 MB prompt (0: never). */
  bigBodyEvery: number;
}

interface Req {
  method: string;
  target: string;
  version: string;
  headers: [string, string][];
  body: Buffer;
  framing: 'length' | 'chunked' | 'none';
  /** Replaces the chunked encoding of the body. */
  rawChunked?: Buffer;
  /** Line ending of the head (`\r\n`, or bare `\n` sometimes). */
  eol: string;
  rec: SentRecord;
  id: string;
  /** No mutation that makes the spec's answer unclear (framing, version, method, odd headers). */
  clean: boolean;
}

type Part =
  | { t: 'write'; data: Buffer }
  | { t: 'wait'; ms: number }
  | { t: 'end' }
  | { t: 'reset' }
  | { t: 'await-response'; n: number }
  | { t: 'await-bytes' }
  | { t: 'pause-read'; ms: number };

export interface Plan {
  index: number;
  kind: string;
  parts: Part[];
  /** Responses after which the client may hang up. */
  expect: number;
  /** Methods of the requests in order (HEAD responses have no body). */
  methods: string[];
  records: Map<string, SentRecord>;
  notes: string[];
  /** The spec's exact answer to the first request, where the request leaves no doubt. */
  oracle?: Oracle;
  /** Keep the (de-chunked) response bodies in the result. */
  keepBodies?: boolean;
}

export interface Oracle {
  status: number;
  /** Response headers (lower-case names) that must match. */
  headers?: Record<string, RegExp>;
  what: string;
}

const enc = (s: string) => Buffer.from(s, 'utf8');
const latin1 = (s: string) => Buffer.from(s, 'latin1');

function strangeModel(r: Rng): unknown {
  return r.weighted<() => unknown>([
    [6, () => r.pick(ODD_NAMES)],
    [3, () => r.pick(CONTROL_NAMES)],
    [2, () => 'm'.repeat(r.range(257, 4000))],
    [1, () => 'x'.repeat(r.range(60_000, 70_000))],
    [1, () => `fuzz-${r.hex(4)}`], // a few new names per run: the label cap
    [2, () => r.pick<unknown>([123, null, true, {}, [], ['llama3.2'], { name: 'llama3.2' }, 1e308, -0])],
  ])();
}

function pickModel(r: Rng, route: (typeof LLM_ROUTES)[number]): { model: unknown; present: boolean } {
  const k = r.weighted<string>([
    [62, 'known'],
    [12, 'fault'],
    [22, 'strange'],
    [4, 'absent'],
  ]);
  if (k === 'absent') return { model: undefined, present: false };
  if (k === 'strange') return { model: strangeModel(r), present: true };
  if (k === 'fault') {
    // Hangs cost UPSTREAM_IDLE_TIMEOUT_SECONDS each: rarer. Big streams only where they stream.
    const f = r.weighted<string>([
      [4, 'fuzz-reset'],
      [4, 'fuzz-reset-mid'],
      [4, 'fuzz-garbage'],
      [3, 'fuzz-stall'],
      [2, 'fuzz-big'],
      [1, 'fuzz-hang'],
    ]);
    return { model: f, present: true };
  }
  return { model: route.operation === 'embeddings' ? r.pick(['all-minilm', 'all-minilm:latest', 'llama3.2']) : r.pick(KNOWN_MODELS), present: true };
}

function streamValue(r: Rng): { set: boolean; value?: unknown } {
  return r.weighted<{ set: boolean; value?: unknown }>([
    [30, { set: false }],
    [30, { set: true, value: true }],
    [30, { set: true, value: false }],
    [2, { set: true, value: 'true' }],
    [2, { set: true, value: 1 }],
    [2, { set: true, value: null }],
    [2, { set: true, value: [] }],
  ]);
}

/** A JSON body for `route`, model first (the fake picks faults from the first 512 bytes). */
function llmBody(r: Rng, route: (typeof LLM_ROUTES)[number], model: { model: unknown; present: boolean }): Record<string, unknown> {
  const b: Record<string, unknown> = {};
  if (model.present) b.model = model.model;
  const text = r.pick(['hi', 'Why is the sky blue?', 'Write a haiku.', '', 'ünïcödé 🦙', '\u0000', 'a'.repeat(r.range(1, 3000))]);
  switch (route.path) {
    case '/api/chat':
    case '/v1/chat/completions':
      b.messages = r.chance(0.95)
        ? [{ role: r.pick(['user', 'system', 'assistant', 'tool', 'x']), content: text }]
        : r.pick<unknown>([[], null, 'hi', [1, 2], [{ content: { a: 1 } }]]);
      break;
    case '/api/generate':
    case '/v1/completions':
      if (r.chance(0.95)) b.prompt = text;
      break;
    case '/api/embed':
    case '/v1/embeddings':
      b.input = r.chance(0.8) ? [text, 'b'] : text;
      break;
    case '/api/embeddings':
      b.prompt = text;
      break;
  }
  if (route.canStream) {
    const s = streamValue(r);
    if (s.set) b.stream = s.value;
    if (route.api === 'openai' && r.chance(0.3))
      b.stream_options = r.pick<unknown>([{ include_usage: true }, { include_usage: false }, {}, null, 'yes', [], { include_usage: 'yes' }]);
  }
  if (r.chance(0.15)) {
    if (route.api === 'ollama')
      b.options = r.pick<unknown>([{ temperature: 0.2, num_predict: 5 }, { temperature: 'hot' }, { stop: [1, 2] }, null, [], { seed: Number.MAX_VALUE }]);
    else
      Object.assign(
        b,
        r.pick<Record<string, unknown>>([{ temperature: 2, max_tokens: 5 }, { top_p: 'x' }, { stop: 'x' }, { seed: -1 }, { max_completion_tokens: null }]),
      );
  }
  return b;
}

/** Body mutations: garbage, truncation, odd JSON. */
function mutateBody(r: Rng, body: Buffer, model: unknown): { body: Buffer; note: string } {
  const m = JSON.stringify(typeof model === 'string' ? model : 'llama3.2');
  return r.weighted<() => { body: Buffer; note: string }>([
    [3, () => ({ body: r.bytes(r.range(1, 2000)), note: 'random body' })],
    [3, () => ({ body: body.subarray(0, r.int(body.length)), note: 'truncated JSON' })],
    [2, () => ({ body: enc(`{"model": ${m}, oops`), note: 'malformed JSON' })],
    [2, () => ({ body: Buffer.alloc(0), note: 'empty body' })],
    [2, () => ({ body: enc(r.pick(['null', '[]', '"x"', '123', 'true', '{}', '[{"model":"llama3.2"}]'])), note: 'non-object JSON' })],
    [1, () => ({ body: enc(`{"model":${m},"messages":${'['.repeat(50_000)}${']'.repeat(50_000)}}`), note: 'deep nesting' })],
    [1, () => ({ body: enc(`{"model":${m},"x":${'{"a":'.repeat(20_000)}1${'}'.repeat(20_000)}}`), note: 'deep objects' })],
    [2, () => ({ body: enc(`{"model":${m},"model":"fuzz-reset","model":123}`), note: 'duplicate keys' })],
    [1, () => ({ body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), body]), note: 'BOM' })],
    [1, () => ({ body: Buffer.from(body.toString('utf8'), 'utf16le'), note: 'UTF-16' })],
    [1, () => ({ body: Buffer.concat([enc('{"model":"'), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82]), enc('","prompt":"x"}')]), note: 'invalid UTF-8' })],
    [1, () => ({ body: enc(`{"model":${m},"prompt":"x",}`), note: 'trailing comma' })],
    [1, () => ({ body: enc(`{"model":${m},"n":NaN,"i":Infinity}`), note: 'NaN literal' })],
    [1, () => ({ body: enc(`{"model":${m},"n":${'9'.repeat(400)}}`), note: 'huge number' })],
    [1, () => ({ body: Buffer.concat([body, enc('\n{"model":"llama3.2"}')]), note: 'two documents' })],
    [1, () => ({ body: Buffer.concat([body, enc(' '.repeat(r.range(1, 5000)))]), note: 'trailing whitespace' })],
  ])();
}

function authHeaders(r: Rng): { headers: [string, string][]; auth: Auth } {
  return r.weighted<() => { headers: [string, string][]; auth: Auth }>([
    [88, () => ({ headers: [['Authorization', `Bearer ${API_KEY}`]], auth: 'valid' })],
    [3, () => ({ headers: [], auth: 'invalid' })],
    [3, () => ({ headers: [['Authorization', 'Bearer nope']], auth: 'invalid' })],
    [1, () => ({ headers: [['Authorization', 'Basic Zm9vOmJhcg==']], auth: 'invalid' })],
    [1, () => ({ headers: [['Authorization', 'Bearer ']], auth: 'invalid' })],
    [1, () => ({ headers: [['Authorization', 'Bearer ' + 'k'.repeat(8000)]], auth: 'invalid' })],
    [1, () => ({ headers: [['Authorization', `bearer ${API_KEY}`]], auth: 'ambiguous' })],
    [
      1,
      () => ({
        headers: [
          ['Authorization', `Bearer ${API_KEY}`],
          ['Authorization', 'Bearer nope'],
        ],
        auth: 'ambiguous',
      }),
    ],
    [1, () => ({ headers: [['Authorization', `Bearer  ${API_KEY}  `]], auth: 'ambiguous' })],
  ])();
}

const METHODS = [
  'GET',
  'HEAD',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'TRACE',
  'PROPFIND',
  'FOO',
  'M-SEARCH',
  'post',
  'Post',
  'POSTX',
  'CONNECT',
  'PURGE',
  'QUERY',
];

function newReq(r: Rng, method: string, target: string, id: string, auth: { headers: [string, string][]; auth: Auth }, ctx: Ctx): Req {
  const headers: [string, string][] = [
    ['Host', r.chance(0.9) ? `127.0.0.1:${ctx.port}` : r.pick(['localhost', 'evil.example', '[::1]:1', 'x'.repeat(300)])],
    ['User-Agent', r.pick(['fuzz/1.0', 'ollama-js/0.6.4', 'OpenAI/JS 6.30.1', ''])],
    ...auth.headers,
    [ID_HEADER, id],
  ];
  if (r.chance(0.3)) headers.push(['Connection', r.pick(['keep-alive', 'close', 'Keep-Alive, TE', 'upgrade'])]);
  return {
    method,
    target,
    version: 'HTTP/1.1',
    headers,
    body: Buffer.alloc(0),
    framing: 'none',
    eol: '\r\n',
    rec: { expect: expectedForward(target), own: isOwn(target), auth: auth.auth, target, method },
    id,
    clean: !headers.some(([h, v]) => h === 'Connection' && /upgrade/i.test(v)),
  };
}

/** A valid LLM call on a random route, then (maybe) mutated. */
function llmRequest(r: Rng, ctx: Ctx, i: number, k: number, notes: string[], special?: 'huge-model' | 'big-body' | 'slow-reader'): Req {
  const route = special === 'slow-reader' ? LLM_ROUTES[r.int(2)] : r.pick(LLM_ROUTES);
  let model = pickModel(r, route);
  if (special === 'huge-model') {
    const n = r.range(1_000_000, 5_500_000);
    // Mostly printable; sometimes with control characters inside.
    const name = 'H'.repeat(n - 8) + (r.chance(0.3) ? '\u0001\n\u007f\u0000' : 'abcd') + 'tail';
    model = { model: name, present: true };
    notes.push(`model name of ${n} chars`);
  }
  if (special === 'slow-reader') model = { model: 'fuzz-big', present: true };
  const json = llmBody(r, route, model);
  if (special === 'big-body') {
    const n = r.range(1_000_000, 7_000_000);
    json.prompt = 'p'.repeat(n);
    notes.push(`prompt of ${n} bytes`);
  }
  if (special === 'slow-reader') delete json.stream;
  let body: Buffer = enc(JSON.stringify(json));
  notes.push(
    `${route.path} model=${typeof model.model === 'string' ? JSON.stringify(model.model.slice(0, 40)) : String(model.model)}${model.model && typeof model.model === 'string' && model.model.length > 40 ? `…(${model.model.length})` : ''}`,
  );

  let target = route.path;
  let check = true;
  if (!special && r.chance(0.3)) {
    target = spellPath(r, route.path);
    notes.push(`target ${target}`);
  } else if (!special && r.chance(0.05)) {
    const odd = oddTarget(r, route.path);
    target = odd.target;
    check = odd.check;
    notes.push(`odd target ${target}`);
  }
  const req = newReq(r, 'POST', target, makeId(i, k), authHeaders(r), ctx);
  if (!check) req.rec.expect = undefined;
  req.headers.push(['Content-Type', r.pick(['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', ''])]);
  if (!special && r.chance(0.07)) {
    req.method = r.pick(METHODS);
    req.rec.method = req.method;
    req.clean = false;
    notes.push(`method ${req.method}`);
  }
  if (!special && r.chance(0.15)) {
    const m = mutateBody(r, body, model.model);
    body = m.body;
    notes.push(m.note);
  }
  req.body = body;
  req.framing = r.chance(0.2) ? 'chunked' : 'length';
  if (req.framing === 'chunked') {
    const bad = !special && r.chance(0.25);
    req.rawChunked = chunkedEncoding(r, body, bad, notes);
    if (bad) req.clean = false;
  }
  if (!special && r.chance(0.18)) {
    mutateHeaders(r, req, notes);
    req.clean = false;
  }
  if (!special && r.chance(0.03)) {
    req.clean = false;
    req.version = r.pick(['HTTP/1.0', 'HTTP/2.0', 'HTTP/1.2', 'HTTP/0.9', 'http/1.1', 'HTTP/1.1 ', '']);
    notes.push(`version ${JSON.stringify(req.version)}`);
  }
  return req;
}

/** A chunked encoding of `body`; with `bad`, one framing error. */
function chunkedEncoding(r: Rng, body: Buffer, bad: boolean, notes: string[]): Buffer {
  const pieces: Buffer[] = [];
  let at = 0;
  while (at < body.length) {
    const n = Math.min(body.length - at, r.chance(0.5) ? r.range(1, 64) : r.range(64, 70_000));
    let size = n.toString(16);
    if (r.chance(0.2)) size = size.toUpperCase();
    if (r.chance(0.05)) size = '000' + size;
    const ext = r.chance(0.05) ? ';name=value' : '';
    pieces.push(latin1(`${size}${ext}\r\n`), body.subarray(at, at + n), latin1('\r\n'));
    at += n;
  }
  const trailer = r.chance(0.05) ? 'X-Trailer: 1\r\n' : '';
  pieces.push(latin1(`0\r\n${trailer}\r\n`));
  if (!bad) return Buffer.concat(pieces);
  const kind = r.int(10);
  const last = pieces.length - 1;
  switch (kind) {
    case 0:
      pieces.splice(0, 1, latin1('zz\r\n'));
      notes.push('chunked: non-hex size');
      break;
    case 1:
      pieces.splice(0, 1, latin1(`${(body.length + 100).toString(16)}\r\n`));
      notes.push('chunked: size larger than data');
      break;
    case 2:
      pieces.splice(0, 1, latin1('1\r\n'));
      notes.push('chunked: size smaller than data');
      break;
    case 3:
      if (pieces.length > 1) pieces.splice(2, 1);
      notes.push('chunked: CRLF missing after data');
      break;
    case 4:
      pieces.splice(last, 1);
      notes.push('chunked: no last chunk');
      break;
    case 5:
      pieces.splice(0, 1, latin1('ffffffffffffffffffff\r\n'));
      notes.push('chunked: size overflow');
      break;
    case 6:
      pieces.splice(0, 1, latin1('-1\r\n'));
      notes.push('chunked: negative size');
      break;
    case 7:
      pieces.splice(last, 1, latin1(`0;${'e'.repeat(20_000)}\r\n\r\n`));
      notes.push('chunked: huge extension');
      break;
    case 8:
      pieces.splice(last, 1, latin1('0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n'));
      notes.push('chunked: framing headers in trailer');
      break;
    default:
      for (let p = 0; p < pieces.length; p++) pieces[p] = latin1(pieces[p].toString('latin1').replace(/\r\n/g, '\n'));
      notes.push('chunked: bare LF');
  }
  return Buffer.concat(pieces);
}

/** Header mutations: framing headers, odd names and values, sizes. */
function mutateHeaders(r: Rng, req: Req, notes: string[]): void {
  const n = r.range(1, 2);
  for (let k = 0; k < n; k++) {
    const len = req.framing === 'chunked' ? (req.rawChunked?.length ?? 0) : req.body.length;
    const m = r.int(24);
    switch (m) {
      case 0:
        req.headers.push(['Content-Length', String(len)], ['Content-Length', String(len)]);
        req.framing = 'none';
        notes.push('duplicate equal Content-Length');
        break;
      case 1:
        req.headers.push(['Content-Length', String(len)], ['Content-Length', String(len + 1)]);
        req.framing = 'none';
        notes.push('conflicting Content-Length');
        break;
      case 2:
        req.headers.push(['Content-Length', r.pick(['-1', '+5', '0x10', ' 12 ', '1e3', 'abc', '99999999999999999999', '', `${len}, ${len}`])]);
        req.framing = 'none';
        notes.push('odd Content-Length');
        break;
      case 3:
        req.headers.push(['Content-Length', String(len + r.range(1, 500))]);
        req.framing = 'none';
        notes.push('Content-Length over the body (body never completes)');
        break;
      case 4:
        if (len > 1) {
          req.headers.push(['Content-Length', String(r.int(len))]);
          req.framing = 'none';
          notes.push('Content-Length under the body (rest is a next "request")');
        }
        break;
      case 5:
        req.headers.push(['Transfer-Encoding', 'chunked'], ['Content-Length', String(len)]);
        if (req.framing === 'length') req.rawChunked = chunkedEncoding(r, req.body, false, notes);
        req.framing = 'none';
        notes.push('Transfer-Encoding and Content-Length');
        break;
      case 6:
        req.headers.push([
          'Transfer-Encoding',
          r.pick(['gzip', 'gzip, chunked', 'chunked, gzip', 'identity', 'Chunked', 'chunked ', 'chunked;q=1', 'x-custom']),
        ]);
        if (req.framing === 'length') req.rawChunked = chunkedEncoding(r, req.body, false, notes);
        req.framing = 'none';
        notes.push('odd Transfer-Encoding');
        break;
      case 7:
        req.headers.push(['Transfer-Encoding', 'chunked'], ['Transfer-Encoding', 'chunked']);
        if (req.framing === 'length') req.rawChunked = chunkedEncoding(r, req.body, false, notes);
        req.framing = 'none';
        notes.push('duplicate Transfer-Encoding');
        break;
      case 8:
        req.headers.push(['Transfer-Encoding ', 'chunked']);
        notes.push('space before colon');
        break;
      case 9:
        req.headers.push(['X-Nul', 'a\u0000b']);
        notes.push('NUL in header value');
        break;
      case 10:
        req.headers.push(['X-Folded', 'a\r\n continued']);
        notes.push('obs-fold');
        break;
      case 11:
        req.headers.push(['Bad(Name)', 'x']);
        notes.push('non-token header name');
        break;
      case 12:
        req.headers.push(['X-Utf8', 'ünïcödé 🦙']);
        notes.push('UTF-8 header value');
        break;
      case 13:
        req.headers.push(['X-Bare-CR', 'a\rb']);
        notes.push('bare CR in value');
        break;
      case 14:
        req.eol = '\n';
        notes.push('bare LF line endings');
        break;
      case 15:
        for (let h = 0; h < r.range(100, 600); h++) req.headers.push([`X-H${h}`, 'v']);
        notes.push('hundreds of headers');
        break;
      case 16:
        req.headers.push(['X-Big', 'b'.repeat(r.pick([8_000, 15_000, 20_000, 70_000]))]);
        notes.push('big header value');
        break;
      case 17: {
        const host = req.headers.findIndex(([h]) => h === 'Host');
        if (r.chance(0.5)) req.headers.splice(host, 1);
        else req.headers.push(['Host', 'second.example']);
        notes.push('missing or duplicate Host');
        break;
      }
      case 18:
        req.headers.push(['Expect', r.pick(['100-continue', '100-Continue', 'garbage'])]);
        notes.push('Expect');
        break;
      case 19:
        req.headers.push(['Connection', 'Upgrade'], ['Upgrade', r.pick(['websocket', 'h2c', 'garbage'])]);
        notes.push('Upgrade');
        break;
      case 20:
        req.headers.push(['Content-Type', 'application/json'], ['Content-Encoding', r.pick(['gzip', 'br', 'deflate'])]);
        notes.push('Content-Encoding (body not encoded)');
        break;
      case 21:
        req.headers.push(
          ['traceparent', r.pick(['00-zz-yy-01', '00-' + '0'.repeat(32) + '-' + '0'.repeat(16) + '-01', 'x'.repeat(1000)])],
          ['tracestate', ',,,='],
        );
        notes.push('odd traceparent');
        break;
      case 22:
        req.headers.push(['Connection', 'close, x-fuzz-id, authorization']);
        notes.push('Connection names end-to-end headers');
        // The gateway may drop the id now; nothing to correlate then.
        break;
      default:
        req.headers.push(['Proxy-Connection', 'keep-alive'], ['Keep-Alive', 'timeout=1'], ['TE', 'trailers'], ['Trailer', 'X-T']);
        notes.push('hop-by-hop headers');
    }
  }
}

function serialize(req: Req): Buffer {
  const eol = req.eol;
  let head = `${req.method} ${req.target}${req.version ? ' ' + req.version : ''}${eol}`;
  for (const [h, v] of req.headers) head += `${h}: ${v}${eol}`;
  let body = req.body;
  if (req.framing === 'length') head += `Content-Length: ${req.body.length}${eol}`;
  else if (req.framing === 'chunked') head += `Transfer-Encoding: chunked${eol}`;
  if (req.rawChunked && req.framing !== 'length') body = req.rawChunked;
  head += eol;
  return Buffer.concat([enc(head), body]);
}

function ownRequest(r: Rng, ctx: Ctx, i: number, k: number, notes: string[]): Req {
  const path = r.pick(['/healthz', '/readyz', '/metrics', '/healthz', '/metrics']);
  const target = r.chance(0.5) ? spellPath(r, path) : path + (r.chance(0.1) ? '?x=1' : '');
  const method = r.weighted<string>([
    [5, 'GET'],
    [2, 'HEAD'],
    [4, 'POST'],
    [1, 'PUT'],
    [1, 'DELETE'],
    [1, 'PATCH'],
    [1, 'OPTIONS'],
    [1, 'TRACE'],
    [1, 'PROPFIND'],
    [1, 'FOO'],
  ]);
  const req = newReq(r, method, target, makeId(i, k), authHeaders(r), ctx);
  notes.push(`${method} ${target}`);
  if (method !== 'GET' && method !== 'HEAD' && r.chance(0.6)) {
    req.body = enc(r.chance(0.5) ? '{"model":"llama3.2","messages":[{"role":"user","content":"hi"}]}' : 'x'.repeat(r.range(0, 5000)));
    req.framing = r.chance(0.8) ? 'length' : 'chunked';
    if (req.framing === 'chunked') req.rawChunked = chunkedEncoding(r, req.body, false, notes);
  }
  return req;
}

function passRequest(r: Rng, ctx: Ctx, i: number, k: number, notes: string[]): Req {
  const [method, path, body] = r.pick<[string, string, string | undefined]>([
    ['GET', '/api/tags', undefined],
    ['GET', '/api/version', undefined],
    ['GET', '/api/ps', undefined],
    ['GET', '/', undefined],
    ['HEAD', '/', undefined],
    ['GET', '/v1/models', undefined],
    ['POST', '/api/show', '{"model":"llama3.2"}'],
    ['POST', '/api/pull', '{"model":"llama3.2"}'],
    ['DELETE', '/api/delete', '{"model":"nope"}'],
    ['GET', '/does/not/exist', undefined],
    ['POST', '/api/blobs/sha256:' + '0'.repeat(64), 'blob'],
  ]);
  const target = r.chance(0.4) ? spellPath(r, path) : path;
  const req = newReq(r, method, target, makeId(i, k), authHeaders(r), ctx);
  notes.push(`${method} ${target}`);
  if (body !== undefined) {
    req.body = enc(body);
    req.framing = 'length';
  }
  return req;
}

function randomGarbage(r: Rng, notes: string[]): Buffer {
  notes.push('random bytes');
  return randomGarbageBytes(r);
}

function randomGarbageBytes(r: Rng): Buffer {
  return r.weighted<() => Buffer>([
    [4, () => r.bytes(r.range(1, 2048))],
    [
      2,
      () =>
        Buffer.concat([
          latin1(r.pick(['POST /api/chat HTTP/1.1\r\n', 'GET / HTTP/1.1\r\nHost: x\r\n', 'POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 5\r\n\r\n'])),
          r.bytes(r.range(1, 1024)),
        ]),
    ],
    [1, () => latin1(Array.from({ length: r.range(1, 600) }, () => String.fromCharCode(r.range(32, 126))).join(''))],
    [1, () => latin1('\r\n\r\n'.repeat(r.range(1, 50)))],
    [1, () => latin1('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n')],
    [1, () => latin1('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')],
    [1, () => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), r.bytes(200)])],
    [1, () => latin1('GET /' + 'a'.repeat(r.range(10_000, 100_000)) + ' HTTP/1.1\r\nHost: x\r\n\r\n')],
  ])();
}

/** Byte-level damage to a serialised request; what was sent is then no longer known exactly. */
function damage(r: Rng, bytes: Buffer, notes: string[]): Buffer {
  if (r.chance(0.5)) {
    const at = r.int(bytes.length + 1);
    notes.push(`random bytes inserted at ${at}`);
    return Buffer.concat([bytes.subarray(0, at), r.bytes(r.range(1, 64)), bytes.subarray(at)]);
  }
  const out = Buffer.from(bytes);
  const n = r.range(1, 8);
  for (let k = 0; k < n; k++) out[r.int(out.length)] = r.int(256);
  notes.push(`${n} bytes flipped`);
  return out;
}

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

/** The plan for request `index`: a pure function of (seed, index). */
export function makePlan(ctx: Ctx, index: number): Plan {
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

  if (ctx.hugeEvery > 0 && index % ctx.hugeEvery === ctx.hugeEvery >> 1)
    return plan('huge model name', [{ t: 'write', data: add(llmRequest(r, ctx, index, 0, notes, 'huge-model')) }], 1);
  if (ctx.bigBodyEvery > 0 && index % ctx.bigBodyEvery === ctx.bigBodyEvery >> 2)
    return plan('big body', [{ t: 'write', data: add(llmRequest(r, ctx, index, 0, notes, 'big-body')) }], 1);

  const kind = r.weighted<string>([
    [55, 'llm'],
    [5, 'pipelined pair'],
    [4, 'keep-alive sequence'],
    [8, 'own path'],
    [5, 'pass-through'],
    [5, 'random bytes'],
    [2, 'slow reader'],
  ]);
  if (kind === 'random bytes') return plan(kind, [{ t: 'write', data: randomGarbage(r, notes) }], 1);
  if (kind === 'slow reader') {
    const data = add(llmRequest(r, ctx, index, 0, notes, 'slow-reader'));
    const ms = r.range(300, 1500);
    notes.push(`pauses reading ${ms} ms`);
    return plan(kind, [{ t: 'write', data }, { t: 'await-bytes' }, { t: 'pause-read', ms }], 1);
  }
  if (kind === 'pipelined pair') {
    const a = add(r.chance(0.8) ? llmRequest(r, ctx, index, 0, notes) : ownRequest(r, ctx, index, 0, notes));
    const b = add(r.chance(0.8) ? llmRequest(r, ctx, index, 1, notes) : passRequest(r, ctx, index, 1, notes));
    const data = Buffer.concat([a, b]);
    return plan(kind, r.chance(0.3) ? drip(r, data) : [{ t: 'write', data }], 2);
  }
  if (kind === 'keep-alive sequence') {
    const n = r.range(2, 3);
    const parts: Part[] = [];
    for (let k = 0; k < n; k++) {
      const req = r.chance(0.7)
        ? llmRequest(r, ctx, index, k, notes)
        : r.chance(0.5)
          ? ownRequest(r, ctx, index, k, notes)
          : passRequest(r, ctx, index, k, notes);
      parts.push({ t: 'write', data: add(req) }, { t: 'await-response', n: k + 1 });
    }
    return plan(kind, parts, n);
  }
  const req =
    kind === 'own path'
      ? ownRequest(r, ctx, index, 0, notes)
      : kind === 'pass-through'
        ? passRequest(r, ctx, index, 0, notes)
        : llmRequest(r, ctx, index, 0, notes);
  let data = add(req);
  let label = kind;
  let damaged = false;
  if (r.chance(0.04)) {
    damaged = true;
    data = damage(r, data, notes);
    // Anything may have been hit: the request line, the id, the key.
    for (const rec of records.values()) {
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
  // Where the spec leaves no doubt about the answer, say what it must be.
  const headLength = data.indexOf('\r\n\r\n') + 4;
  const sure = !damaged && req.clean && req.rec.auth === 'valid' && req.version === 'HTTP/1.1';
  const llmTarget = req.method === 'POST' && req.rec.expect != null && LLM_PATHS.has(req.rec.expect.split('?')[0]);
  const bodyStalled = (after: number | undefined) =>
    sure && llmTarget && after !== undefined && after >= headLength && after < data.length
      ? { status: 408, headers: { connection: /close/i }, what: 'LLM body stalled > REQUEST_BODY_TIMEOUT_SECONDS' }
      : undefined;
  let oracle: Oracle | undefined;
  if (sure && req.rec.own && !['GET', 'HEAD', 'CONNECT'].includes(req.method) && http.METHODS.includes(req.method)) {
    oracle = { status: 405, headers: { allow: /^GET,\s*HEAD$/i }, what: `${req.method} on an own path` };
  } else if (sure && req.method === 'POST' && req.rec.expect === null && req.target !== '*' && /^[\x21-\x7e]+$/.test(req.target)) {
    oracle = { status: 400, what: 'target in neither origin- nor absolute-form' };
  }
  const withOracle = (p: Plan, o: Oracle | undefined) => {
    if (o) p.oracle = o;
    return p;
  };
  switch (delivery) {
    case 'whole':
      return withOracle(plan(label, [{ t: 'write', data }], 1), oracle);
    case 'drip':
      return withOracle(plan(`${label}, dripped`, drip(r, data), 1), oracle);
    case 'stalled body': {
      // One gap longer than REQUEST_BODY_TIMEOUT_SECONDS (1 s in the fuzz).
      const parts = drip(r, data, r.range(1100, 1400));
      notes.push(`one gap of >1 s after ${parts.stallAfter ?? '-'} of ${data.length} B (head ${headLength} B)`);
      return withOracle(plan(`${label}, stalled`, parts, 1), bodyStalled(parts.stallAfter));
    }
    case 'truncated': {
      const cut = r.int(data.length);
      const how = r.pick(['end', 'reset', 'leave open']);
      notes.push(`truncated at ${cut}/${data.length} (head ${headLength} B), then ${how}`);
      const parts: Part[] = [{ t: 'write', data: data.subarray(0, cut) }];
      if (how === 'end') parts.push({ t: 'end' });
      else if (how === 'reset') parts.push({ t: 'wait', ms: r.range(0, 100) }, { t: 'reset' });
      return withOracle(plan(`${label}, truncated`, parts, how === 'leave open' ? 1 : 0), how === 'leave open' ? bodyStalled(cut) : undefined);
    }
    case 'early reset': {
      const cut = r.chance(0.5) ? data.length : r.int(data.length);
      return plan(`${label}, early reset`, [{ t: 'write', data: data.subarray(0, cut) }, { t: 'wait', ms: r.range(0, 50) }, { t: 'reset' }], 0);
    }
    case 'reset mid-response':
      return plan(`${label}, reset mid-response`, [{ t: 'write', data }, { t: 'await-bytes' }, { t: 'reset' }], 0);
    default:
      return plan(`${label}, half-close`, [{ t: 'write', data }, { t: 'end' }], 1);
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

// ---------------------------------------------------------------------------------------------
// The client side: runs a plan on one socket and reads the responses (just enough HTTP/1.1 to know
// when a response ends).

class ResponseReader {
  statuses: number[] = [];
  /** Headers of the first response (lower-case names). */
  first: Map<string, string> | undefined;
  complete = 0;
  bytes = 0;
  broken = false;
  /** Bodies of the complete responses, when kept. */
  readonly bodies: Buffer[] = [];
  private state: 'head' | 'body' | 'size' | 'data' | 'crlf' | 'trailers' | 'close' | 'dead' = 'head';
  private pending: Buffer = Buffer.alloc(0);
  private remaining = 0;
  private current: Buffer[] = [];

  constructor(
    private readonly methods: string[],
    private readonly keepBodies = false,
  ) {}

  feed(chunk: Buffer): void {
    this.bytes += chunk.length;
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    let i = 0;
    const keep = () => {
      this.pending = buf.subarray(i);
      if (this.pending.length > 1 << 20) {
        this.state = 'dead';
        this.broken = true;
        this.pending = Buffer.alloc(0);
      }
    };
    while (i < buf.length) {
      switch (this.state) {
        case 'dead':
          return;
        case 'close':
          if (this.keepBodies) this.current.push(Buffer.from(buf.subarray(i)));
          return;
        case 'head': {
          const end = buf.indexOf('\r\n\r\n', i);
          if (end === -1) return keep();
          const head = buf.toString('latin1', i, end);
          i = end + 4;
          this.onHead(head);
          break;
        }
        case 'body':
        case 'data':
        case 'crlf': {
          const n = Math.min(this.remaining, buf.length - i);
          if (this.keepBodies && this.state !== 'crlf') this.current.push(Buffer.from(buf.subarray(i, i + n)));
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            if (this.state === 'body') this.done();
            else if (this.state === 'data') {
              this.state = 'crlf';
              this.remaining = 2;
            } else this.state = 'size';
          }
          break;
        }
        case 'size': {
          const nl = buf.indexOf('\r\n', i);
          if (nl === -1) return keep();
          const size = parseInt(buf.toString('latin1', i, nl).split(';')[0].trim(), 16);
          i = nl + 2;
          if (!Number.isFinite(size) || size < 0) {
            this.state = 'dead';
            this.broken = true;
          } else if (size === 0) this.state = 'trailers';
          else {
            this.state = 'data';
            this.remaining = size;
          }
          break;
        }
        case 'trailers': {
          const nl = buf.indexOf('\r\n', i);
          if (nl === -1) return keep();
          const empty = nl === i;
          i = nl + 2;
          if (empty) this.done();
          break;
        }
      }
    }
    buf = Buffer.alloc(0);
  }

  onClose(): void {
    if (this.state === 'close') this.done();
  }

  private onHead(head: string): void {
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
    if (!m) {
      this.state = 'dead';
      this.broken = true;
      return;
    }
    const status = Number(m[1]);
    if (status >= 100 && status < 200 && status !== 101) return; // interim (100 Continue)
    this.statuses.push(status);
    if (status === 101) {
      this.state = 'dead';
      return;
    }
    const headers = new Map<string, string>();
    for (const line of head.split('\r\n').slice(1)) {
      const c = line.indexOf(':');
      if (c > 0) headers.set(line.slice(0, c).trim().toLowerCase(), line.slice(c + 1).trim());
    }
    this.first ??= headers;
    const method = this.methods[this.statuses.length - 1] ?? 'GET';
    if (method === 'HEAD' || status === 204 || status === 304) return this.done();
    if (/chunked/i.test(headers.get('transfer-encoding') ?? '')) {
      this.state = 'size';
      return;
    }
    const cl = headers.get('content-length');
    if (cl !== undefined) {
      this.remaining = Number(cl);
      if (!Number.isFinite(this.remaining) || this.remaining < 0) {
        this.state = 'dead';
        this.broken = true;
      } else if (this.remaining === 0) this.done();
      else this.state = 'body';
      return;
    }
    this.state = 'close';
  }

  private done(): void {
    this.complete++;
    this.state = 'head';
    if (this.keepBodies) this.bodies.push(Buffer.concat(this.current));
    this.current = [];
  }
}

export type ClientEnd = 'answered' | 'server closed' | 'client reset' | 'idle timeout' | 'hard timeout' | 'connect failed' | `error ${string}`;

export interface ClientResult {
  end: ClientEnd;
  statuses: number[];
  broken: boolean;
  /** Headers of the first response. */
  first?: Map<string, string>;
  /** Bodies of the complete responses (with `keepBodies`). */
  bodies: Buffer[];
}

/** Longer than REQUEST_BODY_TIMEOUT_SECONDS (1) and UPSTREAM_IDLE_TIMEOUT_SECONDS (2) in FUZZ_ENV. */
const IDLE_MS = 2500;
const HARD_MS = 12_000;

export function runPlan(port: number, plan: Plan): Promise<ClientResult> {
  return new Promise((resolve) => {
    const reader = new ResponseReader(plan.methods, plan.keepBodies);
    const socket = net.connect({ port, host: '127.0.0.1' });
    let settled = false;
    let connected = false;
    let step = 0;
    let waiting: (() => void) | undefined;
    const timers = new Set<NodeJS.Timeout>();
    const later = (ms: number, fn: () => void) => {
      const t = setTimeout(() => {
        timers.delete(t);
        fn();
      }, ms);
      timers.add(t);
    };
    const finish = (end: ClientEnd) => {
      if (settled) return;
      settled = true;
      for (const t of timers) clearTimeout(t);
      if (end === 'client reset') socket.resetAndDestroy();
      else socket.destroy();
      resolve({ end, statuses: reader.statuses, broken: reader.broken, first: reader.first, bodies: reader.bodies });
    };
    const check = () => {
      if (settled) return;
      const w = waiting;
      if (w) w();
      if (step >= plan.parts.length && reader.complete >= plan.expect && plan.expect > 0) finish('answered');
    };
    socket.setTimeout(IDLE_MS, () => finish('idle timeout'));
    later(HARD_MS, () => finish('hard timeout'));
    socket.on('error', (err: NodeJS.ErrnoException) => finish(connected ? `error ${err.code ?? err.message}` : 'connect failed'));
    socket.on('close', () => {
      reader.onClose();
      finish(reader.complete >= plan.expect && plan.expect > 0 ? 'answered' : 'server closed');
    });
    socket.on('end', () => {
      // The server half-closed; give it a moment to close, then stop.
      later(200, () => finish(reader.complete >= plan.expect && plan.expect > 0 ? 'answered' : 'server closed'));
    });
    socket.on('data', (c: Buffer) => {
      reader.feed(c);
      check();
    });
    const run = (): void => {
      if (settled) return;
      if (step >= plan.parts.length) {
        if (plan.expect === 0) later(100, () => finish('answered'));
        check();
        return;
      }
      const part = plan.parts[step++];
      switch (part.t) {
        case 'write':
          if (!socket.destroyed && socket.writable) socket.write(part.data);
          return run();
        case 'wait':
          return later(part.ms, run);
        case 'end':
          socket.end();
          return run();
        case 'reset':
          return finish('client reset');
        case 'await-response': {
          const n = part.n;
          waiting = () => {
            if (reader.complete >= n) {
              waiting = undefined;
              run();
            }
          };
          return waiting();
        }
        case 'await-bytes':
          waiting = () => {
            if (reader.bytes > 0) {
              waiting = undefined;
              run();
            }
          };
          return waiting();
        case 'pause-read':
          socket.pause();
          // Our own idle timer must not fire while we are the ones not reading.
          socket.setTimeout(0);
          return later(part.ms, () => {
            socket.setTimeout(IDLE_MS, () => finish('idle timeout'));
            socket.resume();
            run();
          });
      }
    };
    socket.once('connect', () => {
      connected = true;
      run();
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The fake Ollama's faults, and what it received.

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

interface Violation {
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

// ---------------------------------------------------------------------------------------------
// The gateway's stdout: the LLM-call lines, and anything that is not JSON.

export class LogBooks {
  lines = 0;
  llmCalls = 0;
  nonJson = 0;
  nonJsonExamples: string[] = [];
  errorLines = new Map<string, number>();
  private partial: Buffer[] = [];

  attach(p: GatewayProcess): void {
    // runGateway's own reader JSON.parses every line and throws on the first that is not JSON (in
    // this process); this one counts them instead and keeps no huge lines (5 MB model names).
    p.child.stdout!.removeAllListeners('data');
    p.child.stdout!.on('data', (c: Buffer) => {
      let start = 0;
      let nl = c.indexOf(10, start);
      while (nl !== -1) {
        this.partial.push(c.subarray(start, nl));
        const line = this.partial.length === 1 ? this.partial[0] : Buffer.concat(this.partial);
        this.partial = [];
        this.onLine(line, p);
        start = nl + 1;
        nl = c.indexOf(10, start);
      }
      if (start < c.length) this.partial.push(Buffer.from(c.subarray(start)));
    });
  }

  private onLine(raw: Buffer, p: GatewayProcess): void {
    this.lines++;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
      if (o === null || typeof o !== 'object') throw new Error('not an object');
    } catch {
      this.nonJson++;
      if (this.nonJsonExamples.length < 3) this.nonJsonExamples.push(raw.toString('utf8').slice(0, 200));
      return;
    }
    // What the LLM-call logger (src/llm-call.ts logCall) writes: one line per call carrying `model`
    // (at INFO, WARN or ERROR by outcome); its DEBUG "call detail" line also carries it.
    if (Object.prototype.hasOwnProperty.call(o, 'model') && o.msg !== 'call detail') this.llmCalls++;
    if (o.level === 'error' || o.level === 'fatal') {
      const key = String(o.msg ?? '?').slice(0, 120);
      this.errorLines.set(key, (this.errorLines.get(key) ?? 0) + 1);
    }
    p.lines.push({ msg: o.msg, level: o.level });
  }
}

// ---------------------------------------------------------------------------------------------
// /metrics.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function unescapeLabel(v: string): string {
  return v.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Samples of the metrics named in `names` (exact family names, suffixes included). */
export function samples(text: string, names: Set<string>): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (!m || !names.has(m[1])) continue;
    const labels: Record<string, string> = {};
    let rest = line.slice(m[1].length);
    if (rest.startsWith('{')) {
      const re = /([a-zA-Z_][a-zA-Z0-9_.]*)="((?:[^"\\]|\\.)*)",?/y;
      re.lastIndex = 1;
      let lm;
      while ((lm = re.exec(rest))) labels[lm[1]] = unescapeLabel(lm[2]);
      rest = rest.slice(rest.lastIndexOf('}') + 1);
    }
    out.push({ name: m[1], labels, value: Number(rest.trim().split(' ')[0]) });
  }
  return out;
}

/** Whether `v` has a control character (U+0000–U+001F, U+007F): the spec's `invalid` names. */
function hasControl(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const code = v.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

export interface MetricsRead {
  status: number;
  bytes: number;
  error?: string;
  /** The whole exposition, when it is at most `textCap` bytes (for promtool). */
  text?: string;
  /** Samples of the families asked for (label values cut to 300 characters). */
  samples: Sample[];
  /** Distinct model label values (`model`, `gen_ai_request_model`), by sha1: length and a preview. */
  models: Map<string, { length: number; preview: string; bad: boolean }>;
}

/**
 * Reads /metrics line by line without holding it (it may be hundreds of MB when a gateway puts
 * 5 MB model names into labels): keeps the samples of `names`, the model labels, and the text when
 * small. Stops after `cap` bytes or `ms`; never throws.
 */
export function readMetrics(port: number, names: Set<string>, opts: { cap: number; textCap: number; ms: number }): Promise<MetricsRead> {
  return new Promise((resolve) => {
    const out: MetricsRead = { status: 0, bytes: 0, samples: [], models: new Map() };
    const text: Buffer[] = [];
    let partial: Buffer[] = [];
    let done = false;
    const onLine = (raw: Buffer) => {
      if (raw.length === 0 || raw[0] === 0x23 /* # */) return;
      const line = raw.toString('utf8');
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
      if (!m) return;
      for (const lm of line.matchAll(/[{,](?:model|gen_ai_request_model)="((?:[^"\\]|\\.)*)"/g)) {
        const v = unescapeLabel(lm[1]);
        const key = v.length > 64 ? createHash('sha1').update(v).digest('hex') : v;
        if (!out.models.has(key)) out.models.set(key, { length: v.length, preview: v.slice(0, 40), bad: v.length > 256 || hasControl(v) });
      }
      if (names.has(m[1])) {
        const [sample] = samples(line, names);
        if (sample) {
          for (const k of Object.keys(sample.labels)) sample.labels[k] = sample.labels[k].slice(0, 300);
          out.samples.push(sample);
        }
      }
    };
    const finish = (error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      if (partial.length) onLine(Buffer.concat(partial));
      out.error = error;
      if (!error && out.bytes <= opts.textCap) out.text = Buffer.concat(text).toString('utf8');
      resolve(out);
    };
    const req = http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      out.status = res.statusCode ?? 0;
      res.on('data', (c: Buffer) => {
        out.bytes += c.length;
        if (out.bytes <= opts.textCap) text.push(c);
        else text.length = 0;
        let start = 0;
        let nl = c.indexOf(10);
        while (nl !== -1) {
          partial.push(c.subarray(start, nl));
          onLine(partial.length === 1 ? partial[0] : Buffer.concat(partial));
          partial = [];
          start = nl + 1;
          nl = c.indexOf(10, start);
        }
        if (start < c.length) partial.push(c.subarray(start));
        if (out.bytes > opts.cap) finish(`more than ${opts.cap} bytes; read stopped`);
      });
      res.on('end', () => finish(out.status === 200 ? undefined : `status ${out.status}`));
      res.on('error', (e) => finish(e.message));
    });
    req.on('error', (e) => finish(e.message));
    const timer = setTimeout(() => finish(`no complete answer in ${opts.ms} ms`), opts.ms);
  });
}

/** GETs `path` with a size cap and a timeout; never throws. */
export function getCapped(port: number, path: string, cap: number, ms: number): Promise<{ status: number; body: string; bytes: number; error?: string }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let done = false;
    const finish = (status: number, error?: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ status, body: Buffer.concat(chunks).toString('utf8'), bytes, error });
    };
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes > cap) return finish(res.statusCode ?? 0, `over ${cap} bytes`);
        chunks.push(c);
      });
      res.on('end', () => finish(res.statusCode ?? 0));
      res.on('error', (e) => finish(res.statusCode ?? 0, e.message));
    });
    req.on('error', (e) => finish(0, e.message));
    const timer = setTimeout(() => finish(0, `no answer in ${ms} ms`), ms);
  });
}

// ---------------------------------------------------------------------------------------------
// The run.

export interface FuzzOptions {
  requests: number;
  seed: number;
  concurrency?: number;
  /** Stop sending after this long (the run is still judged on what was sent). */
  maxSeconds?: number;
  hugeEvery?: number;
  bigBodyEvery?: number;
  /** Progress lines (the CLI prints them). */
  progress?: (line: string) => void;
}

export interface Book {
  book: string;
  expected: string;
  actual: string;
  ok: boolean;
}

export interface FuzzResult {
  seed: number;
  planned: number;
  sent: number;
  seconds: number;
  books: Book[];
  /** kind → outcomes → count */
  kinds: Map<string, Map<string, number>>;
  statuses: Map<number, number>;
  env: Record<string, string>;
  stderrTail: string;
}

export const FUZZ_ENV = {
  LOG_LEVEL: 'INFO',
  OLLAMA_POLL_INTERVAL_SECONDS: '0',
  GATEWAY_API_KEYS: `${API_KEY},fuzz-key-2`,
  MAX_REQUEST_BODY_MB: '6',
  MAX_BUFFERED_BODY_MB: '8',
  REQUEST_BODY_TIMEOUT_SECONDS: '1',
  UPSTREAM_IDLE_TIMEOUT_SECONDS: '2',
  CLIENT_WRITE_TIMEOUT_SECONDS: '3',
  HEADERS_TIMEOUT_SECONDS: '2',
  MAX_MODEL_LABELS: '10',
  SHUTDOWN_GRACE_SECONDS: '1',
};

/** Reading /metrics stops here (a gateway that labels series with 5 MB names makes it huge). */
const METRICS_CAP = 512 * 1024 * 1024;
/** Larger expositions are not kept for promtool. */
const METRICS_TEXT_CAP = 16 * 1024 * 1024;
const CHECK_BODY = '{"model":"llama3.2","stream":true}';
const METRICS_LIMIT = 1024 * 1024;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runFuzz(opts: FuzzOptions): Promise<FuzzResult> {
  const concurrency = opts.concurrency ?? 32;
  const t0 = performance.now();
  const progress = opts.progress ?? (() => {});
  const fake = await new FakeOllama().start();
  installFaults(fake);
  const port = await freePort();
  const env: Record<string, string> = { ...FUZZ_ENV, OLLAMA_HOST: fake.origin, HOST: '127.0.0.1', PORT: String(port) };
  const gw = runGateway(env);
  const logs = new LogBooks();
  logs.attach(gw);
  let exitCode: number | null | undefined;
  void gw.exit.then((c) => (exitCode = c));
  const ctx: Ctx = { seed: opts.seed, port, hugeEvery: opts.hugeEvery ?? 250, bigBodyEvery: opts.bigBodyEvery ?? 97 };
  const sent = new Map<string, SentRecord>();
  const upstream = new UpstreamBooks(sent);
  const kinds = new Map<string, Map<string, number>>();
  const statuses = new Map<number, number>();
  const drain = setInterval(() => upstream.take(fake), 200);
  let next = 0;
  let done = 0;
  const oracles = { checked: 0, wrong: { count: 0, examples: [] } as Violation };
  const judgeOracle = (plan: Plan, o: Oracle, res: ClientResult) => {
    oracles.checked++;
    const status = res.statuses[0];
    const badHeader = Object.entries(o.headers ?? {}).find(([h, re]) => !re.test(res.first?.get(h) ?? ''));
    if (status === o.status && !badHeader) return;
    oracles.wrong.count++;
    if (oracles.wrong.examples.length < 3) {
      const got =
        status === undefined ? res.end : badHeader ? `${status} with ${badHeader[0]}: ${JSON.stringify(res.first?.get(badHeader[0]) ?? null)}` : String(status);
      oracles.wrong.examples.push(`#${plan.index} ${o.what}: want ${o.status}, got ${got}`);
    }
  };
  try {
    await gw.waitFor('gateway listening', 15_000);
    const until = performance.now() + (opts.maxSeconds ?? 1e9) * 1000;
    const lane = async () => {
      while (next < opts.requests && performance.now() < until && exitCode === undefined) {
        const plan = makePlan(ctx, next++);
        for (const [id, rec] of plan.records) sent.set(id, rec);
        const res = await runPlan(port, plan);
        done++;
        const k = kinds.get(plan.kind) ?? new Map<string, number>();
        kinds.set(plan.kind, k);
        const outcome = res.end === 'answered' || res.end === 'server closed' ? `${res.end} ${res.statuses.join('+') || '-'}` : res.end;
        k.set(outcome, (k.get(outcome) ?? 0) + 1);
        for (const s of res.statuses) statuses.set(s, (statuses.get(s) ?? 0) + 1);
        if (plan.oracle) judgeOracle(plan, plan.oracle, res);
        if (done % 1000 === 0) progress(`${done} requests, ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
    return await judge();
  } finally {
    clearInterval(drain);
    if (gw.child.exitCode === null && gw.child.signalCode === null) {
      gw.child.kill('SIGTERM');
      const killer = setTimeout(() => gw.child.kill('SIGKILL'), 5000);
      await gw.exit;
      clearTimeout(killer);
    }
    await fake.close();
  }

  async function judge(): Promise<FuzzResult> {
    const books: Book[] = [];
    const book = (b: string, expected: string, actual: string, ok: boolean) => books.push({ book: b, expected, actual, ok });
    const alive = () => exitCode === undefined && gw.child.exitCode === null && gw.child.signalCode === null;
    const wanted = new Set(['ollama_requests_in_flight', 'ollama_requests_total', 'ollama_gateway_buffered_body_bytes']);
    const scrape = () => readMetrics(port, wanted, { cap: METRICS_CAP, textCap: METRICS_TEXT_CAP, ms: 20_000 });
    const sum = (m: MetricsRead, name: string) => m.samples.filter((x) => x.name === name).reduce((n, x) => n + x.value, 0);

    // Settle: in-flight back to 0, the fake idle, every log line written (pino flushes every 500 ms).
    const settleUntil = performance.now() + 10_000;
    let metrics = await scrape();
    while (alive() && !metrics.error && performance.now() < settleUntil) {
      upstream.take(fake);
      if (sum(metrics, 'ollama_requests_in_flight') === 0 && fake.active === 0 && sum(metrics, 'ollama_requests_total') === logs.llmCalls) break;
      await sleep(400);
      metrics = await scrape();
    }

    const health = await getCapped(port, '/healthz', 1 << 16, 5000);
    // A valid call still works (and is counted like any other).
    const chat = await runPlan(port, {
      index: -1,
      kind: 'check',
      parts: [
        {
          t: 'write',
          data: Buffer.from(
            `POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Length: ${CHECK_BODY.length}\r\nConnection: close\r\n\r\n${CHECK_BODY}`,
          ),
        },
      ],
      expect: 1,
      methods: ['POST'],
      records: new Map(),
      notes: [],
    });
    await sleep(1200); // one more pino flush
    metrics = await scrape();
    upstream.take(fake);
    const up = alive();
    book('gateway process alive', 'running', up ? 'running' : `exited ${gw.child.exitCode ?? gw.child.signalCode}`, up);
    book('/healthz answers 200', '200', String(health.status || health.error), health.status === 200);
    book(
      'a valid /api/chat stream after the fuzz',
      '200, whole response',
      `${chat.end} ${chat.statuses.join('+') || '-'}`,
      chat.statuses[0] === 200 && chat.end === 'answered',
    );

    const read = !metrics.error && metrics.status === 200;
    book('/metrics answers 200', '200', metrics.error ? `${metrics.status} ${metrics.error}` : String(metrics.status), read);
    book('/metrics size', `< ${METRICS_LIMIT} B`, `${metrics.bytes} B${metrics.error ? ' or more' : ''}`, read && metrics.bytes < METRICS_LIMIT);
    if (metrics.text === undefined) {
      book('promtool check metrics', 'exit 0', read ? `not run: /metrics is ${metrics.bytes} B` : 'no /metrics to check', false);
    } else if (spawnSync('sh', ['-c', 'command -v promtool']).status === 0) {
      const r = spawnSync('promtool', ['check', 'metrics'], { input: metrics.text, encoding: 'utf8', timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });
      const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n').slice(0, 3).join(' | ').slice(0, 300);
      book('promtool check metrics', 'exit 0', `exit ${r.status}${out ? ': ' + out : ''}`, r.status === 0);
    } else {
      const ci = !!process.env.CI;
      book('promtool check metrics', 'exit 0', ci ? 'promtool not installed' : 'skipped: promtool not installed', !ci);
    }

    // The books below are read from whatever /metrics gave, even when it was too big.
    const partial = metrics.error ? ' (from a partial /metrics)' : '';
    const nonZero = metrics.samples.filter((x) => x.name === 'ollama_requests_in_flight' && x.value !== 0);
    book(
      '(a) ollama_requests_in_flight, every series',
      '0',
      nonZero.length
        ? `${nonZero.length} series: ` +
            nonZero
              .slice(0, 3)
              .map((x) => `${x.value} {model=${JSON.stringify(x.labels.model?.slice(0, 40))},endpoint=${x.labels.endpoint}}`)
              .join(', ') +
            partial
        : `0${partial}`,
      read && nonZero.length === 0,
    );
    const buffered = metrics.samples.find((x) => x.name === 'ollama_gateway_buffered_body_bytes');
    book('(b) ollama_gateway_buffered_body_bytes', '0', buffered ? String(buffered.value) : 'absent', buffered?.value === 0);
    const totals = metrics.samples.filter((x) => x.name === 'ollama_requests_total');
    for (const route of LLM_ROUTES) {
      const counted = totals.filter((x) => x.labels.endpoint === route.path).reduce((n, x) => n + x.value, 0);
      const reached = upstream.llmByEndpoint.get(route.path) ?? 0;
      book(
        `(c) ${route.path}: calls Ollama received ≤ ollama_requests_total`,
        `≤ ${counted}${partial}`,
        `${reached}${reached > counted ? ` (${reached - counted} reached Ollama uncounted)` : ''}`,
        read && reached <= counted,
      );
    }
    const total = totals.reduce((n, x) => n + x.value, 0);
    book(
      '(d) sum of ollama_requests_total = LLM-call log lines',
      `${logs.llmCalls} log lines`,
      `${total}${total !== logs.llmCalls ? ` (off by ${total - logs.llmCalls})` : ''}${partial}`,
      read && total === logs.llmCalls,
    );
    book('(e) fake Ollama responses in flight', '0', String(fake.active), fake.active === 0);

    const v = (name: string, x: Violation, note = '') => book(name, '0', x.count ? `${x.count}: ${x.examples.join(' ; ')}` : `0${note}`, x.count === 0);
    v(
      "answers other than the spec's (405 + Allow, 408 + Connection: close, 400)",
      oracles.wrong,
      ` (of ${oracles.checked} requests with one exact answer; --show <#> prints one)`,
    );
    v('forwarded path ≠ normalised target', upstream.notNormalised, ` (of ${upstream.correlated} correlated by ${ID_HEADER})`);
    v('target in neither origin- nor absolute-form forwarded', upstream.badFormForwarded);
    v('own path (/healthz /readyz /metrics) forwarded to Ollama', upstream.ownForwarded);
    v('request without a valid API key forwarded', upstream.unauthenticated);
    v('Authorization header forwarded to Ollama', upstream.keyForwarded);

    const bad = [...metrics.models.values()].filter((m) => m.bad);
    book(
      'model labels longer than 256 chars or with control characters',
      '0',
      bad.length
        ? `${bad.length}: ${bad
            .slice(0, 3)
            .map((m) => `${JSON.stringify(m.preview.slice(0, 30))}…(${m.length})`)
            .join(', ')}${partial}`
        : `0${partial}`,
      read && bad.length === 0,
    );
    const maxLabels = Number(FUZZ_ENV.MAX_MODEL_LABELS) + 3;
    book(
      'distinct model labels',
      `≤ ${maxLabels} (MAX_MODEL_LABELS + unknown, other, invalid)`,
      `${metrics.models.size}${partial}`,
      read && metrics.models.size <= maxLabels,
    );
    book(
      'stdout lines that are not JSON',
      '0',
      logs.nonJson ? `${logs.nonJson}: ${logs.nonJsonExamples.map((l) => JSON.stringify(l)).join(' ; ')}` : '0',
      logs.nonJson === 0,
    );
    const stack = gw.stderr.split('\n').filter((l) => /^\s+at /.test(l));
    const firstErr = gw.stderr.split('\n').find((l) => l.trim()) ?? '';
    book(
      'stack-trace lines on stderr',
      '0',
      stack.length ? `${stack.length}, first stderr line: ${JSON.stringify(firstErr.trim().slice(0, 200))}` : '0',
      stack.length === 0,
    );
    const errors = [...logs.errorLines].filter(([m]) => m !== 'request failed upstream');
    book(
      'ERROR log lines other than upstream failures (reported)',
      'reported',
      errors.length ? errors.map(([m, n]) => `${JSON.stringify(m)} ×${n}`).join(', ') : 'none',
      true,
    );
    book('requests correlated at Ollama / received (reported)', 'reported', `${upstream.correlated} / ${upstream.received}`, true);

    return {
      seed: opts.seed,
      planned: opts.requests,
      sent: done,
      seconds: (performance.now() - t0) / 1000,
      books,
      kinds,
      statuses,
      env,
      stderrTail: gw.stderr.slice(-1500),
    };
  }
}

export function formatReport(r: FuzzResult, verbose = false): string {
  const out: string[] = [];
  out.push(`## Fuzz: seed ${r.seed}, ${r.sent} of ${r.planned} requests sent, ${r.seconds.toFixed(1)} s`, '');
  if (verbose) {
    out.push('| traffic | sent | client-side outcomes |', '|---|---|---|');
    for (const [kind, m] of [...r.kinds].sort()) {
      const n = [...m.values()].reduce((a, b) => a + b, 0);
      const top = [...m]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8)
        .map(([o, c]) => `${o} ×${c}`)
        .join(', ');
      out.push(`| ${kind} | ${n} | ${top} |`);
    }
    out.push(
      '',
      `statuses seen: ${[...r.statuses]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s}×${n}`)
        .join(' ')}`,
      '',
    );
  } else {
    const idle = [...r.kinds.values()].reduce((n, m) => n + (m.get('idle timeout') ?? 0), 0);
    out.push(
      `statuses seen: ${[...r.statuses]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s}×${n}`)
        .join(' ')}; client idle timeouts (gateway silent ${IDLE_MS / 1000} s): ${idle}`,
      '',
    );
  }
  out.push('| book | expected | actual | |', '|---|---|---|---|');
  for (const b of r.books) out.push(`| ${b.book} | ${b.expected} | ${b.actual.replace(/\|/g, '\\|')} | ${b.ok ? 'balanced' : 'NOT BALANCED'} |`);
  const off = r.books.filter((b) => !b.ok);
  if (off.length) out.push('', `${off.length} book(s) NOT BALANCED; reproduce with --seed ${r.seed}`);
  if (r.stderrTail.trim()) out.push('', 'gateway stderr (tail):', r.stderrTail.trim());
  return out.join('\n');
}
