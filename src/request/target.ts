/**
 * The one place a request target is turned into the path the gateway routes on and forwards.
 *
 * Ollama's HTTP stack serves more spellings of a path than the literal route: Go's server takes the
 * path of an absolute-form target (`POST http://host/api/chat`) and percent-decodes it before the
 * router sees it, and the proxy in front of it collapses runs of slashes. If the gateway routed on
 * the raw target, `//api/chat` or `/api/%63hat` would be answered by Ollama as an LLM call while
 * skipping the gateway's metering and limits. So the target is normalised once, here, and the
 * normalised form is both what the gateway routes on and what it forwards: whatever Ollama does with
 * that path, the gateway classified the same bytes.
 *
 * Normalisation (RFC 3986 §6.2.2, plus what Go decodes): escapes of unreserved characters and of
 * `/` are decoded (any hex case) until none is left, runs of `/` collapse, `.` and `..` segments
 * are resolved without climbing above the root. Other escapes are kept as sent. The query is kept
 * as sent.
 */

export interface Target {
  /** The normalised path, always starting with `/`. */
  path: string;
  /** `?…` as sent, or the empty string. */
  query: string;
}

const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/** Most rounds of decoding before a target is refused: each round undoes one layer of encoding. */
const MAX_DECODE_ROUNDS = 4;

/**
 * Decodes escapes of unreserved characters and `/` until none is left, so that what is forwarded
 * cannot decode, at Ollama, into a path other than the one routed on (`%%36%33` → `%63` → `c`).
 * Undefined when the layers do not run out.
 */
function decodeSafe(path: string): string | undefined {
  let current = path;
  for (let round = 0; round < MAX_DECODE_ROUNDS; round++) {
    if (current.indexOf('%') === -1) return current;
    const next = current.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
      const ch = String.fromCharCode(parseInt(hex, 16));
      return ch === '/' || UNRESERVED.test(ch) ? ch : escape;
    });
    if (next === current) return current;
    current = next;
  }
  return undefined;
}

/** Resolves `.`/`..` segments and empty segments (runs of `/`), keeping a trailing slash. */
function resolveSegments(path: string): string {
  const segments = path.split('/');
  const out: string[] = [];
  for (const seg of segments.slice(1)) {
    if (seg === '..') out.pop();
    else if (seg !== '.' && seg !== '') out.push(seg);
  }
  const last = segments[segments.length - 1];
  const trailing = segments.length > 2 && (last === '' || last === '.' || last === '..');
  return '/' + out.join('/') + (trailing && out.length > 0 ? '/' : '');
}

/** A path that needs no work: no escapes, no empty or dot segments. */
const PLAIN = /^(?:\/[A-Za-z0-9\-_~:@!$&'()*+,;=][A-Za-z0-9\-._~:@!$&'()*+,;=]*)*\/?$/;

/**
 * Parses and normalises a request target (`req.url`). Undefined when it is neither origin-form
 * (`/path?query`) nor absolute-form (`http(s)://authority/path?query`).
 */
export function normalizeTarget(url: string): Target | undefined {
  let rest = url;
  if (rest.charCodeAt(0) !== 0x2f /* / */) {
    const m = /^https?:\/\/[^/?#]*/i.exec(rest);
    if (!m) return undefined;
    rest = rest.slice(m[0].length);
    if (rest === '' || rest[0] === '?') rest = '/' + rest;
    if (rest[0] !== '/') return undefined;
  }
  const q = rest.indexOf('?');
  // A `\` is a `/` to WHATWG URL parsers and to url.parse; routed on as what it would become.
  const rawPath = (q === -1 ? rest : rest.slice(0, q)).replace(/\\/g, '/');
  const query = q === -1 ? '' : rest.slice(q);
  if (rawPath.indexOf('#') !== -1) return undefined;
  if (PLAIN.test(rawPath)) return { path: rawPath, query };
  const decoded = decodeSafe(rawPath);
  return decoded === undefined ? undefined : { path: resolveSegments(decoded), query };
}
