/**
 * A JSON reader that decodes a request body exactly as Go's `encoding/json` decodes it into a typed
 * struct, which is how Ollama reads every request (gin's `ShouldBindJSON` is
 * `json.NewDecoder(body).Decode(&req)`). The gateway must meter the call Ollama runs, so it cannot
 * read the body any other way: JSON.parse differs from Go on every point below, and each difference
 * lets a client run one thing and be billed for another.
 *
 * Go's rules, as implemented here (Go's `encoding/json` `decode.go`, `scanner.go`, `fold.go`):
 * - The decoder reads the first JSON value and ignores whatever follows it. That value is checked
 *   whole first (syntax, and at most 10,000 nested arrays and objects); a syntax error fails it.
 * - An object key matches a struct field by exact name first, then case-insensitively with Go's
 *   folding: ASCII letters in either case, and `ſ` (U+017F) for `s`, the Kelvin sign (U+212A) for `k`.
 *   Map keys (`options`) match exactly.
 * - Keys apply in document order: a later duplicate overwrites an earlier one; an object decoded into
 *   a struct, a pointer to a struct or a map that already holds one merges into it; an array decoded
 *   into a slice reuses the slice's elements (up to its capacity) before it allocates new ones.
 * - `null` sets a pointer, slice, map or interface to nil and leaves a string, number, bool or struct
 *   as it was; a type that has its own `UnmarshalJSON` is handed the `null` (and every other value).
 * - A value of the wrong type is a type error: the field is left as it was, decoding continues, and
 *   the whole decode fails at the end (Ollama then answers 400).
 * - Strings: invalid UTF-8 becomes U+FFFD byte by byte; a `\u` escape of a lone surrogate becomes
 *   U+FFFD; control characters are a syntax error.
 * - Numbers: a number decoded as an int must be an integer literal in range; as a float (or into an
 *   interface) it must be finite once rounded.
 *
 * Nothing here recurses on the input: the syntax check keeps a stack of bits, skipping is a depth
 * counter, and decoding recurses only along the struct shapes, which are fixed.
 */

/** The most nested arrays and objects Go's scanner accepts (`maxNestingDepth`). */
export const GO_MAX_DEPTH = 10_000;

/** A range of the body's bytes: a value as sent. */
export interface Span {
  start: number;
  end: number;
}

/** A Go `any` as the gateway keeps it: scalars decoded, arrays and objects as their bytes. */
export type GoAny = null | boolean | number | string | Span;

/**
 * A string not decoded yet (`lazyString`, `lazyAny`): where its opening quote is. Conversations are
 * long and only their first turns are read, so their text is decoded only when asked for.
 */
export class LazyString {
  constructor(readonly at: number) {}
}

/** A Go slice: its elements up to its capacity (`backing.length`), of which `len` are in it. */
export interface GoSlice<T = unknown> {
  backing: T[];
  len: number;
}

/** A Go type the body is decoded into. */
export type GoType =
  | { readonly k: 'string' | 'bool' | 'float64' | 'float32' | 'int' | 'any' | 'raw' | 'map' }
  /** A Go string, or a Go `any`, whose strings are kept as `LazyString`s. */
  | { readonly k: 'lazyString' | 'lazyAny' }
  | { readonly k: 'ptr'; readonly elem: GoType }
  | { readonly k: 'slice'; readonly elem: GoType }
  | { readonly k: 'struct'; readonly fields: readonly (readonly [string, GoType])[] }
  /** A type with its own `UnmarshalJSON`: handed the value's bytes (`null` included). */
  | { readonly k: 'custom'; readonly zero: () => unknown; readonly decode: (d: GoDecoder, span: Span, old: unknown) => unknown };

export const GO = {
  string: { k: 'string' },
  bool: { k: 'bool' },
  float64: { k: 'float64' },
  float32: { k: 'float32' },
  int: { k: 'int' },
  any: { k: 'any' },
  lazyString: { k: 'lazyString' },
  lazyAny: { k: 'lazyAny' },
  raw: { k: 'raw' },
  map: { k: 'map' },
  ptr: (elem: GoType): GoType => ({ k: 'ptr', elem }),
  slice: (elem: GoType): GoType => ({ k: 'slice', elem }),
  struct: (fields: readonly (readonly [string, GoType])[]): GoType => ({ k: 'struct', fields }),
} as const satisfies Record<string, GoType | ((t: GoType) => GoType) | ((f: readonly (readonly [string, GoType])[]) => GoType)>;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;

/** Go's `isSpace`: the four JSON blanks. */
const isSpace = (c: number | undefined): boolean => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;

/** The body is not JSON Go's scanner accepts (or is empty). */
class SyntaxFailure extends Error {}

/**
 * Checks the first JSON value of `buf` from `at` as Go's scanner does; returns its end, or throws.
 * Numbers that Go could not store in a float64 are noted in `hugeNumbers` (they fail only where the
 * value lands in an interface or a float).
 */
function scanValue(buf: Buffer, at: number, hugeNumbers: number[]): number {
  const strings = new StringScanner(buf);
  // One bit per open container: 1 for an object, 0 for an array.
  const stack: number[] = [];
  let depth = 0;
  let i = at;
  const n = buf.length;
  const fail = (): never => {
    throw new SyntaxFailure('syntax');
  };
  const skipSpace = () => {
    while (i < n && isSpace(buf[i])) i++;
  };
  for (;;) {
    // A value starts at i (no blank before it).
    skipSpace();
    const c = buf[i];
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      depth++;
      if (depth > GO_MAX_DEPTH) fail();
      stack[(depth - 1) >> 5] = ((stack[(depth - 1) >> 5] ?? 0) & ~(1 << ((depth - 1) & 31))) | ((c === OPEN_BRACE ? 1 : 0) << ((depth - 1) & 31));
      i++;
      skipSpace();
      const close = c === OPEN_BRACE ? CLOSE_BRACE : CLOSE_BRACKET;
      if (buf[i] === close) {
        i++;
        depth--;
      } else {
        if (c === OPEN_BRACE) {
          if (buf[i] !== QUOTE) fail();
          i = strings.scan(i);
          skipSpace();
          if (buf[i] !== COLON) fail();
          i++;
        }
        continue;
      }
    } else if (c === QUOTE) i = strings.scan(i);
    else if (c === MINUS || isDigit(c)) i = scanNumber(buf, i, hugeNumbers);
    else if (c === 0x74) i = literal(buf, i, 'true');
    else if (c === 0x66) i = literal(buf, i, 'false');
    else if (c === 0x6e) i = literal(buf, i, 'null');
    else fail();
    // After a value: close containers, or go on to the next member or element.
    for (;;) {
      if (depth === 0) return i;
      skipSpace();
      const isObject = ((stack[(depth - 1) >> 5]! >>> ((depth - 1) & 31)) & 1) === 1;
      const d = buf[i];
      if (d === COMMA) {
        i++;
        if (isObject) {
          skipSpace();
          if (buf[i] !== QUOTE) fail();
          i = strings.scan(i);
          skipSpace();
          if (buf[i] !== COLON) fail();
          i++;
        }
        break;
      }
      if (d === (isObject ? CLOSE_BRACE : CLOSE_BRACKET)) {
        i++;
        depth--;
        continue;
      }
      fail();
    }
  }
}

function literal(buf: Buffer, at: number, word: string): number {
  for (let j = 0; j < word.length; j++) if (buf[at + j] !== word.charCodeAt(j)) throw new SyntaxFailure('literal');
  return at + word.length;
}

// eslint-disable-next-line no-control-regex -- control characters are exactly what Go refuses in a string
const CONTROL = /[\x00-\x1f]/g;

/**
 * Checks strings, fast: the next quote, backslash and control character are each found by a native
 * search and remembered until passed, so a string without escapes costs three comparisons, and the
 * whole body is searched about once for each.
 */
class StringScanner {
  private text: string | undefined;
  private backslashAt = -1;
  private controlAt = -1;

  constructor(private readonly buf: Buffer) {}

  private nextBackslash(from: number): number {
    if (this.backslashAt < from && this.backslashAt !== Infinity) {
      const i = this.buf.indexOf(BACKSLASH, from);
      this.backslashAt = i < 0 ? Infinity : i;
    }
    return this.backslashAt;
  }

  private nextControl(from: number): number {
    if (this.controlAt < from && this.controlAt !== Infinity) {
      this.text ??= this.buf.toString('latin1');
      CONTROL.lastIndex = from;
      const m = CONTROL.exec(this.text);
      this.controlAt = m === null ? Infinity : m.index;
    }
    return this.controlAt;
  }

  /** `at` is on a `"`; the index after the closing quote. Control characters and bad escapes are errors. */
  scan(at: number): number {
    const buf = this.buf;
    const q = buf.indexOf(QUOTE, at + 1);
    if (q < 0) throw new SyntaxFailure('unterminated string');
    if (this.nextBackslash(at + 1) > q && this.nextControl(at + 1) > q) return q + 1;
    const n = buf.length;
    for (let i = at + 1; i < n; i++) {
      const c = buf[i]!;
      if (c === QUOTE) return i + 1;
      if (c < 0x20) throw new SyntaxFailure('control character');
      if (c === BACKSLASH) {
        const e = buf[++i];
        if (e === 0x75) {
          for (let j = 1; j <= 4; j++) if (hexValue(buf[i + j]) < 0) throw new SyntaxFailure('escape');
          i += 4;
        } else if (e !== QUOTE && e !== BACKSLASH && e !== 0x2f && e !== 0x62 && e !== 0x66 && e !== 0x6e && e !== 0x72 && e !== 0x74)
          throw new SyntaxFailure('escape');
      }
    }
    throw new SyntaxFailure('unterminated string');
  }
}

/** JSON's number grammar, exactly; notes numbers a float64 cannot hold. */
function scanNumber(buf: Buffer, at: number, hugeNumbers: number[]): number {
  let i = at;
  if (buf[i] === MINUS) i++;
  if (buf[i] === 0x30) i++;
  else if (isDigit(buf[i])) while (isDigit(buf[i])) i++;
  else throw new SyntaxFailure('number');
  let exp = false;
  if (buf[i] === 0x2e) {
    i++;
    if (!isDigit(buf[i])) throw new SyntaxFailure('number');
    while (isDigit(buf[i])) i++;
  }
  if (buf[i] === 0x65 || buf[i] === 0x45) {
    exp = true;
    i++;
    if (buf[i] === 0x2b || buf[i] === MINUS) i++;
    if (!isDigit(buf[i])) throw new SyntaxFailure('number');
    while (isDigit(buf[i])) i++;
  }
  // Only a long mantissa or an exponent can overflow a float64.
  if ((exp || i - at > 300) && !Number.isFinite(Number(buf.toString('latin1', at, i)))) hugeNumbers.push(at);
  return i;
}

function hexValue(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/** The four hex digits of a `\u` escape whose `u` is at `at`, or -1 when there is none there. */
function u4(buf: Buffer, at: number): number {
  if (buf[at - 1] !== BACKSLASH || buf[at] !== 0x75) return -1;
  let v = 0;
  for (let j = 1; j <= 4; j++) {
    const h = hexValue(buf[at + j]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

/**
 * The length of the valid UTF-8 sequence at `at` (Go's `utf8.DecodeRune`: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0 when the byte there starts none.
 */
function utf8Length(buf: Buffer, at: number, end: number): number {
  const c = buf[at]!;
  const cont = (j: number, lo = 0x80, hi = 0xbf) => at + j < end && buf[at + j]! >= lo && buf[at + j]! <= hi;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((c >= 0xe1 && c <= 0xec) || c === 0xee || c === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (c === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (c === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (c >= 0xf1 && c <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (c === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** The string whose opening quote is at `at` (already checked by the scanner), as Go unquotes it, and its end. */
export function goString(buf: Buffer, at: number): { value: string; end: number } {
  let i = at + 1;
  // Fast path: printable ASCII without escapes.
  while (buf[i]! >= 0x20 && buf[i]! < 0x80 && buf[i] !== QUOTE && buf[i] !== BACKSLASH) i++;
  if (buf[i] === QUOTE) return { value: buf.toString('latin1', at + 1, i), end: i + 1 };
  let out = buf.toString('latin1', at + 1, i);
  let runStart = i;
  const flush = (to: number) => {
    if (to > runStart) out += buf.toString('utf8', runStart, to);
  };
  for (;;) {
    const c = buf[i]!;
    if (c === QUOTE) {
      flush(i);
      return { value: out, end: i + 1 };
    }
    if (c === BACKSLASH) {
      flush(i);
      const e = buf[i + 1]!;
      if (e === 0x75) {
        let r = u4(buf, i + 1);
        i += 6;
        if (r >= 0xd800 && r <= 0xdfff) {
          const r2 = u4(buf, i + 1);
          if (r <= 0xdbff && r2 >= 0xdc00 && r2 <= 0xdfff) {
            out += String.fromCharCode(r, r2);
            i += 6;
            runStart = i;
            continue;
          }
          r = 0xfffd;
        }
        out += String.fromCharCode(r);
      } else {
        out += e === 0x62 ? '\b' : e === 0x66 ? '\f' : e === 0x6e ? '\n' : e === 0x72 ? '\r' : e === 0x74 ? '\t' : String.fromCharCode(e);
        i += 2;
      }
      runStart = i;
      continue;
    }
    if (c < 0x80) {
      i++;
      continue;
    }
    const len = utf8Length(buf, i, buf.length);
    if (len === 0) {
      flush(i);
      out += '\ufffd';
      i++;
      runStart = i;
    } else i += len;
  }
}

/**
 * Whether the object key `key` names the struct field `name` (ASCII, as Ollama's json tags are) by
 * Go's case folding: each letter in either case, `ſ` for `s`, `K` (Kelvin) for `k`; other bytes exactly.
 */
export function goFoldEquals(name: string, key: string): boolean {
  if (key.length !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    const n = name.charCodeAt(i);
    const c = key.charCodeAt(i);
    if (c === n) continue;
    const lower = n | 0x20;
    if (lower < 0x61 || lower > 0x7a) return false;
    if (c === (n ^ 0x20)) continue;
    if ((lower === 0x73 && c === 0x17f) || (lower === 0x6b && c === 0x212a)) continue;
    return false;
  }
  return true;
}

/** The field of `fields` that key `key` sets, as Go's decoder picks it: exact name first, then folded. */
export function goFieldFor<T extends readonly (readonly [string, ...unknown[]])[]>(fields: T, key: string): T[number] | undefined {
  for (const f of fields) if (f[0] === key) return f;
  for (const f of fields) if (goFoldEquals(f[0], key)) return f;
  return undefined;
}

/** The zero value of a Go type, as the gateway holds it. */
export function goZero(t: GoType): unknown {
  switch (t.k) {
    case 'string':
      return '';
    case 'bool':
      return false;
    case 'float64':
    case 'float32':
      return 0;
    case 'int':
      return 0n;
    case 'lazyString':
      return '';
    case 'struct': {
      const o: Record<string, unknown> = {};
      for (const [name, ft] of t.fields) o[name] = goZero(ft);
      return o;
    }
    case 'custom':
      return t.zero();
    default:
      return null;
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** Decodes one body's first value into Go types; `failed` says whether Go's decoder returns an error. */
export class GoDecoder {
  /** A type error, or a custom decoder's error: Go's Decode returns an error, and Ollama answers 400. */
  failed = false;
  private i = 0;

  constructor(
    readonly buf: Buffer,
    private readonly hugeNumbers: readonly number[],
  ) {}

  private skipSpace(): void {
    const buf = this.buf;
    while (isSpace(buf[this.i])) this.i++;
  }

  /** Skips the (valid) value at the cursor; returns its span. Iterative whatever the nesting. */
  skip(): Span {
    this.skipSpace();
    const buf = this.buf;
    const start = this.i;
    const c = buf[start];
    if (c === QUOTE) {
      this.i = skipString(buf, start);
      return { start, end: this.i };
    }
    if (c !== OPEN_BRACE && c !== OPEN_BRACKET) {
      let i = start + 1;
      while (i < buf.length) {
        const d = buf[i]!;
        if (d === COMMA || d === CLOSE_BRACE || d === CLOSE_BRACKET || d === COLON || isSpace(d)) break;
        i++;
      }
      this.i = i;
      return { start, end: i };
    }
    let depth = 0;
    for (let i = start; ; i++) {
      const d = buf[i];
      if (d === QUOTE) i = skipString(buf, i) - 1;
      else if (d === OPEN_BRACE || d === OPEN_BRACKET) depth++;
      else if (d === CLOSE_BRACE || d === CLOSE_BRACKET) {
        depth--;
        if (depth === 0) {
          this.i = i + 1;
          return { start, end: this.i };
        }
      }
    }
  }

  /** Whether a number Go cannot hold in a float64 lies in `span`. */
  private hasHugeNumber(span: Span): boolean {
    // Noted in document order: the first at or after the span's start decides.
    const h = this.hugeNumbers;
    let lo = 0;
    let hi = h.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (h[mid]! < span.start) lo = mid + 1;
      else hi = mid;
    }
    return lo < h.length && h[lo]! < span.end;
  }

  /** Decodes the value at the cursor into `old` (a value of type `t`); returns the value after it. */
  value(t: GoType, old: unknown): unknown {
    this.skipSpace();
    const buf = this.buf;
    const c = buf[this.i];
    if (c === 0x6e) {
      // null
      const span = this.skip();
      switch (t.k) {
        case 'custom':
          return t.decode(this, span, old);
        case 'raw':
          return span;
        case 'any':
        case 'lazyAny':
        case 'map':
        case 'ptr':
        case 'slice':
          return null;
        default:
          return old;
      }
    }
    switch (t.k) {
      case 'custom':
        return t.decode(this, this.skip(), old);
      case 'raw':
        return this.skip();
      case 'ptr':
        return this.value(t.elem, old === null ? goZero(t.elem) : old);
      case 'any':
        return this.any();
      case 'lazyAny':
        if (c === QUOTE) return this.lazy();
        return this.any();
      case 'lazyString':
        if (c === QUOTE) return this.lazy();
        return this.mismatch(old);
      case 'string':
        if (c === QUOTE) {
          const s = goString(buf, this.i);
          this.i = s.end;
          return s.value;
        }
        return this.mismatch(old);
      case 'bool':
        if (c === 0x74 || c === 0x66) {
          this.skip();
          return c === 0x74;
        }
        return this.mismatch(old);
      case 'float64':
      case 'float32':
      case 'int':
        if (c === MINUS || isDigit(c)) return this.number(t.k, old);
        return this.mismatch(old);
      case 'map':
        if (c === OPEN_BRACE) return this.map(old as Map<string, GoAny> | null);
        return this.mismatch(old);
      case 'struct':
        if (c === OPEN_BRACE) return this.struct(t.fields, old as Record<string, unknown>);
        return this.mismatch(old);
      case 'slice':
        if (c === OPEN_BRACKET) return this.slice(t.elem, old as GoSlice | null);
        return this.mismatch(old);
    }
  }

  private lazy(): LazyString {
    const at = this.i;
    this.i = skipString(this.buf, at);
    return new LazyString(at);
  }

  /** The text of a string kept for later, as Go unquotes it. */
  decode(s: LazyString): string {
    return goString(this.buf, s.at).value;
  }

  private mismatch(old: unknown): unknown {
    this.skip();
    this.failed = true;
    return old;
  }

  private number(k: 'float64' | 'float32' | 'int', old: unknown): unknown {
    const span = this.skip();
    const text = this.buf.toString('latin1', span.start, span.end);
    if (k === 'int') {
      if (!/^-?\d+$/.test(text)) return this.failAt(old);
      const v = BigInt(text);
      return v < INT64_MIN || v > INT64_MAX ? this.failAt(old) : v;
    }
    const v = k === 'float32' ? Math.fround(Number(text)) : Number(text);
    return Number.isFinite(v) ? v : this.failAt(old);
  }

  private failAt(old: unknown): unknown {
    this.failed = true;
    return old;
  }

  /** A value decoded into `any`: scalars as Go holds them, arrays and objects as their bytes. */
  private any(): GoAny {
    const buf = this.buf;
    const c = buf[this.i];
    if (c === QUOTE) {
      const s = goString(buf, this.i);
      this.i = s.end;
      return s.value;
    }
    const span = this.skip();
    if (c === 0x6e) return null;
    if (c === 0x74 || c === 0x66) return c === 0x74;
    if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      if (this.hasHugeNumber(span)) this.failed = true;
      return span;
    }
    const v = Number(buf.toString('latin1', span.start, span.end));
    if (!Number.isFinite(v)) {
      this.failed = true;
      return null;
    }
    return v;
  }

  /** The key at the cursor and the cursor after its colon. */
  private key(): string {
    this.skipSpace();
    const s = goString(this.buf, this.i);
    this.i = s.end;
    this.skipSpace();
    this.i++; // the colon
    return s.value;
  }

  /** Calls `member` for each member of the object at the cursor, in order. */
  private members(member: (key: string) => void): void {
    this.i++; // {
    this.skipSpace();
    if (this.buf[this.i] === CLOSE_BRACE) {
      this.i++;
      return;
    }
    for (;;) {
      member(this.key());
      this.skipSpace();
      if (this.buf[this.i++] === CLOSE_BRACE) return;
    }
  }

  private struct(fields: readonly (readonly [string, GoType])[], old: Record<string, unknown>): Record<string, unknown> {
    const out = old;
    this.members((key) => {
      const f = goFieldFor(fields, key);
      if (f === undefined) this.skip();
      else out[f[0]] = this.value(f[1], out[f[0]]);
    });
    return out;
  }

  private map(old: Map<string, GoAny> | null): Map<string, GoAny> {
    const out = old ?? new Map<string, GoAny>();
    this.members((key) => {
      this.skipSpace();
      out.set(key, this.any());
    });
    return out;
  }

  /** Go's array decoding into a slice: elements are reused up to the capacity, then it grows by half. */
  private slice(elem: GoType, old: GoSlice | null): GoSlice {
    let s: GoSlice = old ?? { backing: [], len: 0 };
    this.i++; // [
    this.skipSpace();
    let i = 0;
    if (this.buf[this.i] !== CLOSE_BRACKET) {
      for (;;) {
        if (i >= s.backing.length) {
          const cap = Math.max(4, s.backing.length + (s.backing.length >> 1));
          const backing = s.backing.slice(0, s.len);
          while (backing.length < cap) backing.push(goZero(elem));
          s = { backing, len: s.len };
        }
        if (i >= s.len) s.len = i + 1;
        s.backing[i] = this.value(elem, s.backing[i]);
        i++;
        this.skipSpace();
        if (this.buf[this.i++] === CLOSE_BRACKET) break;
      }
    } else this.i++;
    if (i === 0) return { backing: [], len: 0 };
    s.len = i;
    return s;
  }

  /** Decodes `span` on its own into a fresh value of `t` (a custom decoder's `json.Unmarshal`). */
  sub(span: Span, t: GoType): unknown {
    const saved = this.i;
    this.i = span.start;
    const v = this.value(t, goZero(t));
    this.i = saved;
    return v;
  }

  /** The bytes of `span` as text. */
  text(span: Span): string {
    return this.buf.toString('latin1', span.start, span.end);
  }

  /** The first byte of `span`. */
  first(span: Span): number {
    return this.buf[span.start]!;
  }
}

/** `at` is on the `"` of a string already checked; the index after its closing quote. */
function skipString(buf: Buffer, at: number): number {
  for (let i = at + 1; ;) {
    const q = buf.indexOf(QUOTE, i);
    // The quote closes the string unless an odd run of backslashes escapes it.
    let j = q - 1;
    while (buf[j] === BACKSLASH) j--;
    if ((q - 1 - j) % 2 === 0) return q + 1;
    i = q + 1;
  }
}

/** What Go's `Decoder.Decode` makes of a body. */
export interface GoDecoded<T> {
  /** False when Decode returns an error (empty body, syntax, type mismatch): Ollama answers 400. */
  ok: boolean;
  value: T;
  /** Where the first JSON value ends; bytes after it are never read. */
  end: number;
  /** The decoder, for reading `any` bytes further; undefined when the body is not JSON. */
  decoder: GoDecoder | undefined;
}

/** Decodes the first JSON value of `buf` into a fresh value of `t`, as `json.NewDecoder(body).Decode(&v)`. */
export function goDecode<T>(buf: Buffer, t: GoType): GoDecoded<T> {
  const zero = goZero(t) as T;
  let at = 0;
  while (isSpace(buf[at])) at++;
  if (at === buf.length) return { ok: false, value: zero, end: at, decoder: undefined };
  const hugeNumbers: number[] = [];
  let end: number;
  try {
    end = scanValue(buf, at, hugeNumbers);
  } catch (err) {
    if (err instanceof SyntaxFailure) return { ok: false, value: zero, end: buf.length, decoder: undefined };
    throw err;
  }
  const d = new GoDecoder(end === buf.length ? buf : buf.subarray(0, end), hugeNumbers);
  const value = d.value(t, zero) as T;
  return { ok: !d.failed, value, end, decoder: d };
}
