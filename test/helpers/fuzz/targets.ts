/**
 * Request targets as the spec normalises them (written independently of src/, to check it): the
 * normalised form, what must be forwarded, and random spellings that must normalise back.
 */
import type { Rng } from './rng';

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
export function oddTarget(r: Rng, path: string): { target: string; check: boolean } {
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

export const OWN_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

/** Whether `target` is one of the gateway's own paths once normalised. */
export function isOwn(target: string): boolean {
  const e = expectedForward(target);
  return e !== null && OWN_PATHS.has(e.split('?')[0]);
}
