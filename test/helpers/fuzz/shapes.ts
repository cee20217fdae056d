/**
 * Structured hostile JSON: not random bytes but valid JSON whose shape costs — nesting depth, key
 * counts, string sizes, numeric edge cases (some only writable as raw JSON text: 1e400, integers
 * past 2^53, `-0`) — put into the fields a client controls in each API's request body.
 */
import type { LLM_ROUTES } from '../../../src/routes';
import type { Rng } from './rng';

/** A marker JSON.stringify keeps as a string, replaced by raw JSON text in `rawJson`. */
const RAW = '\u0000raw:';

/** Numbers at the edges: what JSON.parse, Number checks and integer code paths each get wrong. */
const EDGE_NUMBERS = [
  '0',
  '-0',
  '-1',
  '1',
  '0.5',
  '1e-7',
  '5e-324',
  '2.2250738585072014e-308',
  '1.7976931348623157e308',
  '-1.7976931348623157e308',
  '1e400',
  '-1e400',
  '9007199254740991',
  '9007199254740993',
  '-9007199254740993',
  '18446744073709551616',
  '123456789012345678901234567890123456789',
  '4294967295',
  '4294967296',
  '2147483648',
  '-2147483649',
  '1E2',
  '1.0',
  '0e0',
];

/** Sizes around the bounds the gateway documents (256-character names, 1,024-character fields, 8 MiB inspection). */
const STRING_SIZES = [0, 1, 255, 256, 257, 1023, 1024, 1025, 4096, 65_536, 262_144];

const ODD_TEXT = ['\u0000', '\ud800', '\udfff', '\u202e', '\u2028\u2029', '🦙'.repeat(3), '"\\', '\r\n', '%s%n', '{{.Prompt}}'];

/** A raw JSON number (may be unrepresentable as a JS number). */
export function rawNumber(r: Rng): string {
  return `${RAW}${r.pick(EDGE_NUMBERS)}`;
}

function sizedString(r: Rng): string {
  const n = r.pick(STRING_SIZES);
  const fill = r.pick(['a', 'ü', '🦙', ' ', '\\', '"', '\n']);
  const s = fill.repeat(Math.ceil(n / fill.length)).slice(0, n);
  return r.chance(0.3) ? s + r.pick(ODD_TEXT) : s;
}

/** An array or object nested `depth` deep around `inner` (written as raw text: no recursion here or in JSON.stringify). */
function nested(r: Rng, depth: number, inner: string): string {
  const arrays = r.chance(0.6);
  const open = arrays ? '[' : '{"a":';
  const close = arrays ? ']' : '}';
  return `${RAW}${open.repeat(depth)}${inner}${close.repeat(depth)}`;
}

function manyKeys(r: Rng): Record<string, unknown> {
  const n = r.pick([100, 1000, 5000]);
  const o: Record<string, unknown> = {};
  // Same-prefix keys, and now and then one key many times over (only the raw form can repeat one).
  for (let i = 0; i < n; i++) o[`k${i}`] = r.chance(0.5) ? i : '';
  if (r.chance(0.3)) Object.defineProperty(o, '__proto__', { value: { polluted: true }, enumerable: true });
  return o;
}

function repeatedKey(r: Rng, key: string): string {
  const n = r.pick([2, 100, 5000]);
  const pairs = Array.from({ length: n }, (_, i) => `"${key}":${i % 2 ? '"x"' : i}`);
  return `${RAW}{${pairs.join(',')}}`;
}

function wideArray(r: Rng): unknown[] {
  const n = r.pick([1000, 5000, 20_000]);
  return Array.from({ length: n }, (_, i) => (r.chance(0.01) ? rawNumber(r) : i % 3 === 0 ? {} : i % 3 === 1 ? [] : 0));
}

/** One structured hostile value. */
export function hostileValue(r: Rng): { value: unknown; what: string } {
  return r.weighted<() => { value: unknown; what: string }>([
    [
      4,
      () => {
        const depth = r.pick([64, 500, 2000, 5000, 10_000]);
        return { value: nested(r, depth, r.pick(['1', '"x"', 'null', '{}', '[]'])), what: `nested ${depth} deep` };
      },
    ],
    [3, () => ({ value: manyKeys(r), what: 'an object of many keys' })],
    [1, () => ({ value: repeatedKey(r, r.pick(['model', 'content', 'role', 'stream', 'a'])), what: 'one key repeated' })],
    [2, () => ({ value: wideArray(r), what: 'a wide array' })],
    [4, () => ({ value: sizedString(r), what: 'a sized string' })],
    [4, () => ({ value: rawNumber(r), what: 'an edge number' })],
    [2, () => ({ value: r.pick<unknown>([null, true, false, [], {}, '', [null], [[]], { '': '' }]), what: 'an empty or odd value' })],
  ])();
}

/** The fields each API family's LLM bodies have, beyond `model`: where a client's values land. */
const FIELDS: Record<string, string[]> = {
  ollama: [
    'messages',
    'prompt',
    'system',
    'suffix',
    'template',
    'context',
    'images',
    'format',
    'options',
    'stream',
    'keep_alive',
    'think',
    'raw',
    'tools',
    'input',
    'truncate',
    'dimensions',
  ],
  openai: [
    'messages',
    'prompt',
    'input',
    'stream',
    'stream_options',
    'max_tokens',
    'max_completion_tokens',
    'temperature',
    'top_p',
    'n',
    'stop',
    'seed',
    'tools',
    'tool_choice',
    'response_format',
    'encoding_format',
    'dimensions',
    'instructions',
    'max_output_tokens',
    'reasoning',
  ],
  anthropic: ['messages', 'system', 'max_tokens', 'stream', 'tools', 'tool_choice', 'thinking', 'stop_sequences', 'metadata', 'temperature'],
};

/** Fields inside the first message, and inside `options`, where the values the gateway reads live. */
const MESSAGE_FIELDS = ['role', 'content', 'images', 'tool_calls', 'thinking', 'name'];
const OPTION_FIELDS = ['num_ctx', 'num_predict', 'temperature', 'seed', 'stop', 'top_k', 'num_keep'];

/**
 * Puts one to three structured hostile values into `body` (an LLM call's JSON for `route`): top-level
 * fields, the first message's fields, `options`, or (rarely) `model`. Returns what it did.
 */
export function structure(r: Rng, route: (typeof LLM_ROUTES)[number], body: Record<string, unknown>): string[] {
  const done: string[] = [];
  const n = r.range(1, 3);
  for (let i = 0; i < n; i++) {
    const { value, what } = hostileValue(r);
    const where = r.weighted<string>([
      [6, 'field'],
      [3, 'message'],
      [2, 'option'],
      [1, 'model'],
    ]);
    if (where === 'model') {
      body.model = value;
      done.push(`model: ${what}`);
    } else if (where === 'message') {
      const field = r.pick(MESSAGE_FIELDS);
      const first = Array.isArray(body.messages) && typeof body.messages[0] === 'object' && body.messages[0] !== null ? body.messages[0] : { role: 'user' };
      body.messages = [{ ...(first as Record<string, unknown>), [field]: value }];
      done.push(`messages[0].${field}: ${what}`);
    } else if (where === 'option') {
      const field = r.pick(OPTION_FIELDS);
      const options = typeof body.options === 'object' && body.options !== null && !Array.isArray(body.options) ? body.options : {};
      body.options = { ...(options as Record<string, unknown>), [field]: value };
      done.push(`options.${field}: ${what}`);
    } else {
      const field = r.pick(FIELDS[route.api] ?? FIELDS.openai);
      body[field] = value;
      done.push(`${field}: ${what}`);
    }
  }
  return done;
}

/** JSON text of `value`, with the raw-text markers `structure` put in replaced by their text. */
export function rawJson(value: unknown): string {
  const text = JSON.stringify(value);
  return text.includes('\\u0000raw:') ? text.replace(/"\\u0000raw:((?:[^"\\]|\\.)*)"/g, (_m, raw: string) => JSON.parse(`"${raw}"`) as string) : text;
}
