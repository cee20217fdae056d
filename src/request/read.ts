/**
 * What the gateway reads from an LLM request body, decoded as Ollama decodes it: the struct shapes
 * below mirror Ollama's request structs (`api/types.go`, `openai/openai.go`, `openai/responses.go`,
 * `anthropic/anthropic.go`), reduced to the fields the gateway reads, with Ollama's json names, Go
 * types and custom decoders. `test/go-reader/main.go` holds the same shapes in Go, and a
 * differential test checks that both read every generated body alike.
 */
import type { LlmRoute } from '../routes';
import { GO, goDecode, goZero, LazyString, type GoAny, type GoDecoder, type GoSlice, type GoType, type Span } from './go-json';

/** A piece of a conversation the affinity key hashes: text as Go decoded it, or a value's bytes as sent. */
export type TextOrBytes = string | Span;

/** A body as Ollama reads it. Meaningful only when `ok`. */
export interface RequestReading {
  /** Whether Go's decoder accepts the body (for the fields read here); if not, Ollama answers 400. */
  ok: boolean;
  /** The first JSON value's end: bytes after it are never read by Ollama. */
  end: number;
  /** `""` when absent. */
  model: string;
  /** The stream field as decoded: `null` for an absent (nil) `*bool`. */
  stream: boolean | null;
  /** OpenAI `stream_options.include_usage`; `null` when `stream_options` is nil. */
  includeUsage: boolean | null;
  /** Native `keep_alive`: `null` when nil, else whether it is zero (unload now). */
  keepAliveZero: boolean | null;
  /** Native `think`: `null` when nil. */
  think: boolean | string | null;
  /** Native `/api/chat` `len(messages) == 0`, `/api/generate` `prompt == ""`; `null` elsewhere. */
  empty: boolean | null;
  /** Native `options` (a `map[string]any`, keys exact). */
  options: Map<string, GoAny> | null;
  temperature: number | null;
  topP: number | null;
  topK: number | null;
  maxTokens: number | null;
  seed: number | null;
  stop: string[] | null;
  /** The system prompt and the first user turn, for the affinity key. */
  system: TextOrBytes | null;
  firstUser: TextOrBytes | null;
}

type Fields = readonly (readonly [string, GoType])[];

/** `api.Duration`'s `UnmarshalJSON`: a number of seconds or a Go duration string; zero or not. */
const DURATION: GoType = {
  k: 'custom',
  zero: () => false,
  decode: (d, span) => {
    const v = d.sub(span, GO.any) as GoAny;
    if (typeof v === 'number') return v >= 0 && v * 1e9 < 1;
    if (typeof v === 'string') {
      const zero = goDurationIsZero(v);
      if (zero === undefined) d.failed = true;
      return zero ?? false;
    }
    d.failed = true;
    return false;
  },
};

/** `api.ThinkValue`'s `UnmarshalJSON`: a bool, or one of Ollama's effort names. */
const THINK: GoType = {
  k: 'custom',
  zero: () => null,
  decode: (d, span, old) => {
    const first = d.first(span);
    if (first === 0x74 || first === 0x66) return first === 0x74;
    if (first === 0x22) {
      const s = d.sub(span, GO.string) as string;
      if (s === 'high' || s === 'medium' || s === 'low' || s === 'max') return s;
    }
    d.failed = true;
    return old;
  },
};

interface Turn {
  role: string;
  content: TextOrBytes | LazyString | null;
}

/** Go's `strings.ToLower` for the role names compared here (no other rune lowers to their letters). */
const lowerRole = (s: string): string => s.replace(/[A-Z]+/g, (m) => m.toLowerCase()).replace(/\u212a/g, 'k');

const ROLE_AND_TEXT = GO.struct([
  ['role', GO.string],
  ['content', GO.lazyString],
]);
const ROLE_AND_RAW = GO.struct([
  ['role', GO.string],
  ['content', GO.raw],
]);
const ROLE_AND_ANY = GO.struct([
  ['role', GO.string],
  ['content', GO.lazyAny],
]);
const RAW_ITEMS = GO.slice(GO.raw);
const ANY_ITEMS = GO.slice(GO.any);

/** `api.Message`'s `UnmarshalJSON`: a fresh decode (nothing merges into the old element), role lowered. */
const NATIVE_MESSAGE: GoType = {
  k: 'custom',
  zero: (): Turn => ({ role: '', content: '' }),
  decode: (d, span) => {
    const m = d.sub(span, ROLE_AND_TEXT) as { role: string; content: string | LazyString };
    return { role: lowerRole(m.role), content: m.content };
  },
};

/** The `any` content of a message: a string, or a value's bytes. */
function asTextOrBytes(v: GoAny | LazyString): TextOrBytes | LazyString | null {
  return typeof v === 'string' || (v !== null && typeof v === 'object') ? v : null;
}

const OPENAI_MESSAGE = ROLE_AND_ANY;

/**
 * `anthropic.MessageParam`'s `UnmarshalJSON`: role and raw content; content a string, else it must
 * decode as an array of content blocks (or be `null`); a missing content is an error.
 */
const ANTHROPIC_MESSAGE: GoType = {
  k: 'custom',
  zero: (): Turn => ({ role: '', content: null }),
  decode: (d, span) => {
    const raw = d.sub(span, ROLE_AND_RAW) as { role: string; content: Span | null };
    const c = raw.content;
    if (c === null) {
      d.failed = true;
      return { role: raw.role, content: null };
    }
    const first = d.first(c);
    if (first === 0x22) return { role: raw.role, content: new LazyString(c.start) };
    if (first === 0x6e) return { role: raw.role, content: '' };
    if (first !== 0x5b) d.failed = true;
    return { role: raw.role, content: c };
  },
};

/**
 * `openai.ResponsesInput`'s `UnmarshalJSON`: a string sets the text; otherwise an array of items
 * replaces the items (the text stays). Each item is decoded on its own for its role and content.
 */
interface ResponsesInput {
  text: string;
  items: Turn[] | null;
}
const RESPONSES_INPUT: GoType = {
  k: 'custom',
  zero: (): ResponsesInput => ({ text: '', items: null }),
  decode: (d, span, old) => {
    const prev = old as ResponsesInput;
    const first = d.first(span);
    if (first === 0x22) return { text: d.sub(span, GO.string) as string, items: prev.items };
    if (first === 0x6e) return { text: '', items: prev.items };
    if (first !== 0x5b) {
      d.failed = true;
      return prev;
    }
    const raws = d.sub(span, RAW_ITEMS) as GoSlice<Span> | null;
    const items: Turn[] = [];
    for (let i = 0; i < (raws?.len ?? 0); i++) {
      const item = d.sub(raws!.backing[i]!, ROLE_AND_ANY) as { role: string; content: GoAny | LazyString };
      items.push({ role: item.role, content: asTextOrBytes(item.content) });
    }
    return { text: prev.text, items };
  },
};

const STREAM_OPTIONS = GO.ptr(GO.struct([['include_usage', GO.bool]]));

/** The struct shape Ollama decodes each endpoint's body into (only the fields read here). */
export const REQUEST_SHAPES: Readonly<Record<string, Fields>> = {
  '/api/chat': [
    ['model', GO.string],
    ['messages', GO.slice(NATIVE_MESSAGE)],
    ['stream', GO.ptr(GO.bool)],
    ['keep_alive', GO.ptr(DURATION)],
    ['options', GO.map],
    ['think', GO.ptr(THINK)],
  ],
  '/api/generate': [
    ['model', GO.string],
    ['prompt', GO.string],
    ['system', GO.string],
    ['stream', GO.ptr(GO.bool)],
    ['keep_alive', GO.ptr(DURATION)],
    ['options', GO.map],
    ['think', GO.ptr(THINK)],
  ],
  '/api/embed': [
    ['model', GO.string],
    ['input', GO.any],
    ['keep_alive', GO.ptr(DURATION)],
    ['options', GO.map],
  ],
  '/api/embeddings': [
    ['model', GO.string],
    ['prompt', GO.string],
    ['keep_alive', GO.ptr(DURATION)],
    ['options', GO.map],
  ],
  '/v1/chat/completions': [
    ['model', GO.string],
    ['messages', GO.slice(OPENAI_MESSAGE)],
    ['stream', GO.bool],
    ['stream_options', STREAM_OPTIONS],
    ['max_tokens', GO.ptr(GO.int)],
    ['seed', GO.ptr(GO.int)],
    ['stop', GO.any],
    ['temperature', GO.ptr(GO.float64)],
    ['top_p', GO.ptr(GO.float64)],
  ],
  '/v1/completions': [
    ['model', GO.string],
    ['prompt', GO.string],
    ['max_tokens', GO.ptr(GO.int)],
    ['seed', GO.ptr(GO.int)],
    ['stop', GO.any],
    ['stream', GO.bool],
    ['stream_options', STREAM_OPTIONS],
    ['temperature', GO.ptr(GO.float32)],
    ['top_p', GO.float32],
  ],
  '/v1/embeddings': [
    ['input', GO.any],
    ['model', GO.string],
  ],
  '/v1/messages': [
    ['model', GO.string],
    ['max_tokens', GO.int],
    ['messages', GO.slice(ANTHROPIC_MESSAGE)],
    ['system', GO.any],
    ['stream', GO.bool],
    ['temperature', GO.ptr(GO.float64)],
    ['top_p', GO.ptr(GO.float64)],
    ['top_k', GO.ptr(GO.int)],
    ['stop_sequences', GO.slice(GO.string)],
  ],
  '/v1/responses': [
    ['model', GO.string],
    ['input', RESPONSES_INPUT],
    ['instructions', GO.string],
    ['max_output_tokens', GO.ptr(GO.int)],
    ['temperature', GO.ptr(GO.float64)],
    ['top_p', GO.ptr(GO.float64)],
    ['stream', GO.ptr(GO.bool)],
  ],
};

const STRUCTS = new Map(Object.entries(REQUEST_SHAPES).map(([path, fields]) => [path, GO.struct(fields)]));
const MODEL_ONLY = GO.struct([['model', GO.string]]);

const num = (v: unknown): number | null => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : null);
const optionNumber = (o: Map<string, GoAny> | null, k: string): number | null => num(o?.get(k));
const turns = (s: unknown): Turn[] => {
  const slice = s as GoSlice<Turn> | null;
  return slice === null ? [] : slice.backing.slice(0, slice.len);
};
const isRole = (t: Turn, ...roles: string[]) => roles.includes(t.role);

/** A `stop` that is a string or an array of strings, as read from `any` bytes. */
function stopList(d: GoDecoder, v: GoAny): string[] | null {
  if (typeof v === 'string') return [v];
  if (v === null || typeof v !== 'object' || d.first(v) !== 0x5b) return null;
  const failed = d.failed;
  const list = d.sub(v, ANY_ITEMS) as GoSlice<GoAny> | null;
  d.failed = failed;
  const out: string[] = [];
  for (let i = 0; i < (list?.len ?? 0); i++) {
    const s = list!.backing[i];
    if (typeof s !== 'string') return null;
    out.push(s);
  }
  return out;
}

/** Reads `raw` as Ollama reads the body of `route`. Never throws; no recursion on the input. */
/** A reading that knows only the model (and where the body ends): every other field absent. */
export function modelOnlyReading(model: string, end: number): RequestReading {
  return {
    ok: true,
    end,
    model,
    stream: null,
    includeUsage: null,
    keepAliveZero: null,
    think: null,
    empty: null,
    options: null,
    temperature: null,
    topP: null,
    topK: null,
    maxTokens: null,
    seed: null,
    stop: null,
    system: null,
    firstUser: null,
  };
}

export function readRequest(route: LlmRoute, raw: Buffer): RequestReading {
  const decoded = goDecode<Record<string, unknown>>(raw, STRUCTS.get(route.path) ?? MODEL_ONLY);
  const v = decoded.value;
  const d = decoded.decoder;
  const r: RequestReading = {
    ...modelOnlyReading(v.model as string, decoded.end),
    ok: decoded.ok,
    stream: (v.stream as boolean | null | undefined) ?? null,
    keepAliveZero: (v.keep_alive as boolean | null | undefined) ?? null,
    think: (v.think as boolean | string | null | undefined) ?? null,
    options: (v.options as Map<string, GoAny> | null | undefined) ?? null,
  };
  if ('stream_options' in v) {
    const so = v.stream_options as { include_usage: boolean } | null;
    r.includeUsage = so === null ? null : so.include_usage;
  }
  const o = r.options;
  switch (route.api) {
    case 'ollama':
      r.temperature = optionNumber(o, 'temperature');
      r.topP = optionNumber(o, 'top_p');
      r.topK = optionNumber(o, 'top_k');
      r.maxTokens = optionNumber(o, 'num_predict');
      r.seed = optionNumber(o, 'seed');
      r.stop = d && o?.has('stop') ? stopList(d, o.get('stop')!) : null;
      break;
    case 'anthropic':
      r.temperature = num(v.temperature);
      r.topP = num(v.top_p);
      r.topK = num(v.top_k);
      r.maxTokens = v.max_tokens === 0n ? null : num(v.max_tokens);
      r.stop = v.stop_sequences === null ? null : (v.stop_sequences as GoSlice<string>).backing.slice(0, (v.stop_sequences as GoSlice<string>).len);
      break;
    default:
      r.temperature = num(v.temperature);
      r.topP = num(v.top_p);
      r.maxTokens = num(v.max_tokens ?? v.max_output_tokens ?? null);
      r.seed = num(v.seed);
      r.stop = d && v.stop !== undefined ? stopList(d, v.stop as GoAny) : null;
  }
  if (route.path === '/v1/completions' && r.topP === 0) r.topP = null;
  const text = (p: TextOrBytes | LazyString | null): TextOrBytes | null => (p instanceof LazyString ? d!.decode(p) : p);
  switch (route.path) {
    case '/api/chat': {
      const ms = turns(v.messages);
      r.empty = ms.length === 0;
      r.system = text(ms.find((m) => isRole(m, 'system'))?.content ?? null);
      r.firstUser = text(ms.find((m) => isRole(m, 'user'))?.content ?? null);
      break;
    }
    case '/api/generate':
      r.empty = v.prompt === '';
      r.system = text(v.system === '' ? null : (v.system as string));
      r.firstUser = text(v.prompt === '' ? null : (v.prompt as string));
      break;
    case '/v1/chat/completions': {
      const ms = turns(v.messages).map((m) => ({ role: m.role, content: asTextOrBytes(m.content as GoAny) }));
      r.system = text(ms.find((m) => isRole(m, 'system', 'developer'))?.content ?? null);
      r.firstUser = text(ms.find((m) => isRole(m, 'user'))?.content ?? null);
      break;
    }
    case '/v1/messages': {
      r.system = text(asTextOrBytes(v.system as GoAny));
      r.firstUser = text(turns(v.messages).find((m) => isRole(m, 'user'))?.content ?? null);
      break;
    }
    case '/v1/responses': {
      const input = v.input as ResponsesInput;
      const items = input.items ?? [];
      r.system = text(v.instructions !== '' ? (v.instructions as string) : (items.find((m) => isRole(m, 'system', 'developer'))?.content ?? null));
      r.firstUser = text(items.find((m) => isRole(m, 'user'))?.content ?? (input.text !== '' ? input.text : null));
      break;
    }
    case '/v1/completions':
    case '/api/embeddings':
      r.firstUser = text(v.prompt === '' ? null : (v.prompt as string));
      break;
    default:
      r.firstUser = text(asTextOrBytes((v.input as GoAny | undefined) ?? null));
  }
  return r;
}

/** The zero reading of a route (what Go holds before decoding), for tests. */
export const zeroOf = (route: LlmRoute): unknown => goZero(GO.struct(REQUEST_SHAPES[route.path] ?? []));

const DURATION_UNITS_NS: Readonly<Record<string, bigint>> = {
  ns: 1n,
  us: 1_000n,
  '\u00b5s': 1_000n,
  '\u03bcs': 1_000n,
  ms: 1_000_000n,
  s: 1_000_000_000n,
  m: 60_000_000_000n,
  h: 3_600_000_000_000n,
};
const MAX = 1n << 63n;

/**
 * Go's `time.ParseDuration`, reduced to what Ollama's `keep_alive` needs: whether the duration is
 * zero, or undefined when Go refuses it (bad syntax, unknown unit, overflow).
 */
export function goDurationIsZero(orig: string): boolean | undefined {
  let s = orig;
  let neg = false;
  if (s !== '' && (s[0] === '-' || s[0] === '+')) {
    neg = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return true;
  if (s === '') return undefined;
  let total = 0n;
  while (s !== '') {
    if (!(s[0] === '.' || (s[0]! >= '0' && s[0]! <= '9'))) return undefined;
    // leadingInt: digits, overflow past 1<<63 is an error.
    let i = 0;
    let v = 0n;
    while (i < s.length && s[i]! >= '0' && s[i]! <= '9') {
      if (v > (MAX - 1n) / 10n) return undefined;
      v = v * 10n + BigInt(s.charCodeAt(i) - 48);
      if (v > MAX) return undefined;
      i++;
    }
    const pre = i > 0;
    s = s.slice(i);
    // leadingFraction: digits after the dot; once they would overflow, the rest is ignored.
    let f = 0n;
    let scale = 1;
    let post = false;
    if (s[0] === '.') {
      s = s.slice(1);
      let j = 0;
      let overflow = false;
      while (j < s.length && s[j]! >= '0' && s[j]! <= '9') {
        if (!overflow) {
          if (f > (MAX - 1n) / 10n) overflow = true;
          else {
            const y = f * 10n + BigInt(s.charCodeAt(j) - 48);
            if (y > MAX) overflow = true;
            else {
              f = y;
              scale *= 10;
            }
          }
        }
        j++;
      }
      post = j > 0;
      s = s.slice(j);
    }
    if (!pre && !post) return undefined;
    let u = 0;
    while (u < s.length && s[u] !== '.' && !(s[u]! >= '0' && s[u]! <= '9')) u++;
    if (u === 0) return undefined;
    const unit = DURATION_UNITS_NS[s.slice(0, u)];
    s = s.slice(u);
    if (unit === undefined) return undefined;
    if (v > MAX / unit) return undefined;
    v *= unit;
    if (f > 0n) {
      v += BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
      if (v > MAX) return undefined;
    }
    // Go's uint64 sum wraps at 2^64 (2^63 + 2^63 is 0), and only then checks the bound.
    total = (total + v) & ((1n << 64n) - 1n);
    if (total > MAX) return undefined;
  }
  if (!neg && total > MAX - 1n) return undefined;
  return total === 0n;
}
