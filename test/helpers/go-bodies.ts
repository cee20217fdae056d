/**
 * Seeded request bodies that probe every rule of Go's decoding: key spellings (case, `ſ`, the Kelvin
 * sign, escapes, look-alikes Go does not fold), duplicates and twins, nesting, trailing data, invalid
 * UTF-8, surrogate escapes, numbers at their edges, values of the wrong type, and blanks.
 */

/** A small seeded generator (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Piece = string | Buffer;

export class BodyGen {
  constructor(private readonly r: () => number) {}

  int(n: number): number {
    return Math.floor(this.r() * n);
  }
  chance(p: number): boolean {
    return this.r() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  blank(): string {
    if (this.chance(0.7)) return '';
    let s = '';
    for (let i = this.int(3) + 1; i > 0; i--) s += this.pick([' ', '\t', '\n', '\r']);
    return s;
  }

  /** A spelling of the key `name` that Go may or may not match to it. */
  keySpelling(name: string): Piece {
    const roll = this.r();
    if (roll < 0.4) return JSON.stringify(name);
    let out = '';
    for (const ch of name) {
      const lower = ch.toLowerCase();
      const k = this.r();
      if (lower === 's' && k < 0.25) out += 'ſ';
      else if (lower === 'k' && k < 0.35) out += '\u212a';
      else if (lower === 'i' && k < 0.1) out += this.pick(['\u0130', '\u0131']);
      else if (k < 0.35) out += ch.toUpperCase();
      else if (k < 0.4 && /[a-z]/.test(ch))
        out += String.fromCharCode(ch.charCodeAt(0) + 0xfee0); // fullwidth
      else out += ch;
    }
    if (roll < 0.5) return '"' + [...out].map((c) => (this.chance(0.3) ? '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0') : c)).join('') + '"';
    if (roll < 0.53) out += this.pick([' ', '\u0000', '_']);
    if (roll > 0.97) return Buffer.concat([Buffer.from('"' + out), Buffer.from([this.pick([0xff, 0xc5, 0x80])]), Buffer.from('"')]);
    return JSON.stringify(out);
  }

  /** A string value: plain, escaped, with invalid UTF-8 or lone surrogates. */
  str(choices: readonly string[] = ['llama3.2', 'a', 'b', 'qwen3:8b', '', 'user', 'x y']): Piece {
    const base = this.pick(choices);
    const roll = this.r();
    if (roll < 0.55) return JSON.stringify(base);
    if (roll < 0.65) return '"' + [...base].map((c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')).join('') + '"';
    if (roll < 0.75)
      return (
        JSON.stringify(base).slice(0, -1) +
        this.pick(['\\ud83d\\ude00', '\\ud800', '\\udc00x', '\\ud800\\u0041', '\\ud83d\\ud83d', '\\n\\t\\"\\\\\\/', 'é', '日本', '🎉']) +
        '"'
      );
    const bad = this.pick([[0xff], [0xc3], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xc0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82, 0xac], [0xf0, 0x9f, 0x98]]);
    return Buffer.concat([Buffer.from('"' + base), Buffer.from(bad), Buffer.from(this.pick(['', 'a', 'é']) + '"')]);
  }

  num(): string {
    return this.pick([
      '0',
      '-0',
      '1',
      '2048',
      '4096',
      '-1',
      '1.0',
      '0.5',
      '1e2',
      '1E+2',
      '2.5e-3',
      '1e400',
      '-1e400',
      '1e-400',
      '9223372036854775807',
      '9223372036854775808',
      '-9223372036854775809',
      '9007199254740993',
      '0.0000000001',
      '3.4e39',
      '123456789012345678901234567890',
      '0.1',
    ]);
  }

  durationString(): string {
    return JSON.stringify(
      this.pick([
        '0',
        '0s',
        '-0s',
        '+0',
        '0.0h',
        '0m0s',
        '5m',
        '-1s',
        '1.5h',
        '.5ms',
        '0.0000000001s',
        '1µs',
        '1μs',
        '0us',
        '1',
        '',
        's',
        '1x',
        '9223372036854775807ns',
        '9223372036854775808ns',
        '-9223372036854775808ns',
        '9999999999h',
        '0.00000000000000000001h',
        '1h2m3s',
        '.s',
        '0.',
        '.0s',
        '9223372036854775808ns9223372036854775808ns',
      ]),
    );
  }

  /** Any JSON value, nested at most `depth` more levels. */
  anyValue(depth: number): Piece[] {
    const roll = this.r();
    if (depth <= 0 || roll < 0.5) {
      const k = this.int(5);
      if (k === 0) return ['null'];
      if (k === 1) return [this.pick(['true', 'false'])];
      if (k === 2) return [this.num()];
      return [this.str()];
    }
    if (roll < 0.75) return this.array(() => this.anyValue(depth - 1));
    return this.object(['model', 'stream', 'include_usage', 'role', 'content', 'x'], depth - 1);
  }

  array(item: () => Piece[]): Piece[] {
    const out: Piece[] = ['[', this.blank()];
    const n = this.int(4);
    for (let i = 0; i < n; i++) {
      if (i > 0) out.push(this.blank(), ',', this.blank());
      out.push(...item());
    }
    out.push(this.blank(), ']');
    return out;
  }

  /** An object whose members are drawn from `names` (spelled every way), with duplicates. */
  object(names: readonly string[], depth: number, first: readonly string[] = []): Piece[] {
    const out: Piece[] = ['{', this.blank()];
    const n = first.length + this.int(7);
    for (let i = 0; i < n; i++) {
      if (i > 0) out.push(this.blank(), ',', this.blank());
      const name = i < first.length ? first[i]! : this.chance(0.9) ? this.pick(names) : this.pick(['x', 'messages2', 'Model ', 'modeL']);
      out.push(this.keySpelling(name), this.blank(), ':', this.blank(), ...this.fieldValue(name, depth));
    }
    out.push(this.blank(), '}');
    return out;
  }

  /** A value for the field `name`: mostly of its type, sometimes of another. */
  fieldValue(name: string, depth: number): Piece[] {
    if (this.chance(0.12)) return this.anyValue(Math.min(depth, 2));
    switch (name) {
      case 'model':
        return [this.str()];
      case 'role':
        return [this.str(['user', 'USER', 'system', 'System', 'developer', 'assistant', 'uſer', 'ſystem', 'tool'])];
      case 'stream':
      case 'include_usage':
        return [this.pick(['true', 'false', 'null', 'true', 'false'])];
      case 'stream_options':
        return this.chance(0.15) ? ['null'] : this.object(['include_usage', 'x'], depth - 1);
      case 'keep_alive':
        return [this.chance(0.5) ? this.durationString() : this.num()];
      case 'think':
        return [this.pick(['true', 'false', '"high"', '"HIGH"', '"max"', '"low"', '"x"', '1', 'null'])];
      case 'options':
        return this.object(['num_ctx', 'num_keep', 'temperature', 'top_p', 'top_k', 'num_predict', 'seed', 'stop', 'NUM_CTX'], depth - 1);
      case 'messages':
      case 'input':
        if (this.chance(0.2)) return [this.str()];
        return this.array(() => (this.chance(0.1) ? ['null'] : this.object(['role', 'content', 'type'], depth - 1)));
      case 'content':
      case 'system':
      case 'prompt':
      case 'instructions':
        if (this.chance(0.7)) return [this.str(['hello', '', 'You are terse.', 'hi'])];
        return this.array(() => this.object(['type', 'text'], depth - 2));
      case 'stop':
      case 'stop_sequences':
        return this.chance(0.5) ? [this.str(['\n', 'END'])] : this.array(() => (this.chance(0.8) ? [this.str(['\n', 'END'])] : [this.num()]));
      default:
        return this.chance(0.8) ? [this.num()] : this.anyValue(Math.min(depth, 2));
    }
  }

  /** A whole body for an endpoint whose fields are `names`. */
  body(names: readonly string[]): Buffer {
    const roll = this.r();
    const pieces: Piece[] = [this.blank()];
    if (roll < 0.03) pieces.push(this.pick(['', 'null', '[1]', '"x"', '42', 'nul', '{', '{"model":"a",}', '\ufeff{}', '{"model":"a"']));
    else if (roll < 0.05) {
      // Deep nesting, around Go's limit of 10,000 levels.
      const d = this.pick([9_999, 10_000, 10_001, 7_000]);
      pieces.push('{"model":"a","x":', '['.repeat(d - 1), ']'.repeat(d - 1), '}');
    } else
      pieces.push(
        ...this.object(
          names,
          3,
          ['model', 'stream'].filter(() => this.chance(0.6)),
        ),
      );
    if (this.chance(0.15)) pieces.push(this.pick([' x', '{"model":"z"}', ' {"model":"z","stream":true}', '}', '\n\n', 'garbage', ' [', '\u0000']));
    else pieces.push(this.blank());
    return Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
  }
}
