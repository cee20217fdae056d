/** Generated requests: an LLM call (then maybe mutated), a request to one of the gateway's own paths, a pass-through request; and their bytes. */
import { LLM_ROUTES } from '../../../src/routes';
import { llmBody, pickModel } from './bodies';
import { rawJson, structure } from './shapes';
import { chunkedEncoding, mutateBody, mutateHeaders } from './mutations';
import { enc, ID_HEADER, makeId, type Auth, type Ctx, type Req } from './records';
import type { Rng } from './rng';
import { expectedForward, isOwn, oddTarget, spellPath } from './targets';

export const API_KEY = 'fuzz-key-1';

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

type Special = 'huge-model' | 'big-body' | 'slow-reader';

/** Of the LLM calls, the share whose bodies get structured hostile values. */
const STRUCTURED_SHARE = 0.2;

/** A valid LLM call on a random route, then (maybe) mutated. */
export function llmRequest(r: Rng, ctx: Ctx, i: number, k: number, notes: string[], special?: Special): Req {
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
  // A share of the calls carry structured hostile values (depth, key counts, sizes, edge numbers).
  if (!special && r.chance(STRUCTURED_SHARE)) notes.push(...structure(r, route, json));
  const body: Buffer = enc(rawJson(json));
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
  mutateLlmRequest(r, req, body, model.model, notes, special);
  return req;
}

/** The LLM call's method, body, framing, headers and version, each maybe mutated (never for a special request). */
function mutateLlmRequest(r: Rng, req: Req, json: Buffer, model: unknown, notes: string[], special: Special | undefined): void {
  let body = json;
  if (!special && r.chance(0.07)) {
    req.method = r.pick(METHODS);
    req.rec.method = req.method;
    req.clean = false;
    notes.push(`method ${req.method}`);
  }
  if (!special && r.chance(0.15)) {
    const m = mutateBody(r, body, model);
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
}

export function serialize(req: Req): Buffer {
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

export function ownRequest(r: Rng, ctx: Ctx, i: number, k: number, notes: string[]): Req {
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

export function passRequest(r: Rng, ctx: Ctx, i: number, k: number, notes: string[]): Req {
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
