/**
 * Asks Ollama for an OpenAI stream's usage on the client's behalf by splicing
 * `stream_options.include_usage: true` into the request body as sent. The body is never
 * re-serialised: a scanner that is exact about JSON strings, escapes, nesting and whitespace finds
 * the top-level `stream_options` member in the raw bytes, and one insertion or one replacement of a
 * value's bytes is made there. Every other byte reaches Ollama as the client sent it, so
 * `"seed": 9007199254740993` stays that integer, `1.0` stays `1.0`, and key order and spacing stay.
 */
import type { LlmRequestInfo } from './extract';
import { BACKSLASH, CLOSE_BRACE, CLOSE_BRACKET, COLON, COMMA, isBlank, OPEN_BRACE, OPEN_BRACKET, QUOTE } from '../protocol/bytes';

/** One change to the body: `raw[start, end)` is replaced by `text` (an insertion when start === end). */
export interface Splice {
  start: number;
  end: number;
  text: string;
}

const INCLUDE_USAGE = '"include_usage":true';
const STREAM_OPTIONS = '"stream_options":{"include_usage":true}';
const STREAM_OPTIONS_KEY = Buffer.from('stream_options');
const INCLUDE_USAGE_KEY = Buffer.from('include_usage');

/** The body is not the JSON the scanner expects; withIncludeUsage then sends it unchanged. */
class ScanError extends Error {}

/** A member of an object: the key's bytes between its quotes (`[keyStart, keyEnd)`), and the value's bytes. */
interface Member {
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  valueEnd: number;
}

/** A JSON object's members, and where the bytes after its `{` and before its `}` are. */
interface ObjectScan {
  members: Member[];
  /** Just after the `{`. */
  inner: number;
  /** Index of the `}`. */
  close: number;
}

class Scanner {
  constructor(private readonly buf: Buffer) {}

  skipBlank(at: number): number {
    while (isBlank(this.buf[at])) at++;
    return at;
  }

  /** `at` is on a `"`; returns the index just after the closing quote. */
  skipString(at: number): number {
    const buf = this.buf;
    for (let i = at + 1; i < buf.length; i++) {
      const c = buf[i];
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) return i + 1;
    }
    throw new ScanError('unterminated string');
  }

  /**
   * Skips any value starting at `at` (no blank before it); returns the index just after it.
   * Arrays and objects are skipped by depth, without recursion: a body JSON.parse accepted is
   * well formed, and a deeply nested one must not overflow the stack.
   */
  skipValue(at: number): number {
    const buf = this.buf;
    const first = buf[at];
    if (first === undefined) throw new ScanError('value expected');
    if (first === QUOTE) return this.skipString(at);
    if (first !== OPEN_BRACE && first !== OPEN_BRACKET) {
      // A number or a literal: it runs to the next delimiter.
      let i = at;
      while (i < buf.length) {
        const c = buf[i];
        if (c === COMMA || c === CLOSE_BRACE || c === CLOSE_BRACKET || isBlank(c)) break;
        if (c === QUOTE || c === OPEN_BRACE || c === OPEN_BRACKET || c === COLON) throw new ScanError('unexpected byte');
        i++;
      }
      if (i === at) throw new ScanError('value expected');
      return i;
    }
    let depth = 0;
    for (let i = at; i < buf.length; i++) {
      const c = buf[i];
      if (c === QUOTE) i = this.skipString(i) - 1;
      else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++;
      else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        depth--;
        if (depth === 0) return i + 1;
      }
    }
    throw new ScanError('unterminated value');
  }

  /** The object whose `{` is at `open`. */
  object(open: number): ObjectScan {
    const buf = this.buf;
    if (buf[open] !== OPEN_BRACE) throw new ScanError('object expected');
    const members: Member[] = [];
    let at = this.skipBlank(open + 1);
    if (buf[at] === CLOSE_BRACE) return { members, inner: open + 1, close: at };
    for (;;) {
      if (buf[at] !== QUOTE) throw new ScanError('key expected');
      const keyStart = at + 1;
      const keyEnd = this.skipString(at) - 1;
      at = this.skipBlank(keyEnd + 1);
      if (buf[at] !== COLON) throw new ScanError('colon expected');
      const valueStart = this.skipBlank(at + 1);
      const valueEnd = this.skipValue(valueStart);
      members.push({ keyStart, keyEnd, valueStart, valueEnd });
      at = this.skipBlank(valueEnd);
      if (buf[at] === COMMA) {
        at = this.skipBlank(at + 1);
        continue;
      }
      if (buf[at] === CLOSE_BRACE) return { members, inner: open + 1, close: at };
      throw new ScanError('comma or } expected');
    }
  }

  /** Whether the key of `m` decodes to `name` (as JSON.parse reads it: an escape such as `\u005f` counts). */
  keyIs(m: Member, name: Buffer): boolean {
    const buf = this.buf;
    const escaped = buf.subarray(m.keyStart, m.keyEnd).includes(BACKSLASH);
    if (!escaped) return m.keyEnd - m.keyStart === name.length && buf.compare(name, 0, name.length, m.keyStart, m.keyEnd) === 0;
    try {
      return JSON.parse(buf.toString('utf8', m.keyStart - 1, m.keyEnd + 1)) === name.toString('latin1');
    } catch {
      throw new ScanError('bad key');
    }
  }
}

/** The last member of `obj` named `name`: the one JSON.parse keeps, and the one Go's decoder applies last. */
function lastMember(scan: Scanner, obj: ObjectScan, name: Buffer): Member | undefined {
  for (let i = obj.members.length - 1; i >= 0; i--) {
    const m = obj.members[i]!;
    if (scan.keyIs(m, name)) return m;
  }
  return undefined;
}

/**
 * The one change that makes `raw` (a JSON object) ask for usage. Throws a ScanError when `raw` is
 * not a JSON object the scanner can read.
 */
export function includeUsageSplice(raw: Buffer): Splice {
  const scan = new Scanner(raw);
  const open = scan.skipBlank(0);
  const top = scan.object(open);
  if (scan.skipBlank(top.close + 1) !== raw.length) throw new ScanError('bytes after the object');
  const so = lastMember(scan, top, STREAM_OPTIONS_KEY);
  if (!so) {
    // No stream_options: the member goes right after the opening brace.
    return { start: top.inner, end: top.inner, text: top.members.length === 0 ? STREAM_OPTIONS : STREAM_OPTIONS + ',' };
  }
  if (raw[so.valueStart] !== OPEN_BRACE) {
    // null, false, a number, a string, an array: Ollama would not ask for usage; the value becomes the object.
    return { start: so.valueStart, end: so.valueEnd, text: '{' + INCLUDE_USAGE + '}' };
  }
  const inner = scan.object(so.valueStart);
  const iu = lastMember(scan, inner, INCLUDE_USAGE_KEY);
  if (iu) return { start: iu.valueStart, end: iu.valueEnd, text: 'true' };
  return { start: inner.inner, end: inner.inner, text: inner.members.length === 0 ? INCLUDE_USAGE : INCLUDE_USAGE + ',' };
}

/**
 * Returns the body of an OpenAI streaming request with `stream_options.include_usage` set, so
 * Ollama reports the stream's token counts: `raw` with one splice (see `includeUsageSplice`), every
 * other byte as sent. A body that already asks for usage is returned as it is.
 */
export function withIncludeUsage(raw: Buffer, info: LlmRequestInfo): Buffer {
  if (info.includeUsage) return raw;
  let splice: Splice;
  try {
    splice = includeUsageSplice(raw);
  } catch {
    // Not reached for a body JSON.parse accepted (the only bodies that stream). Should it happen,
    // the body goes to Ollama unchanged rather than re-serialised: the cost is that the stream then
    // carries no usage, and the call is recorded with unknown token counts (no ollama_tokens_*).
    return raw;
  }
  return Buffer.concat([raw.subarray(0, splice.start), Buffer.from(splice.text), raw.subarray(splice.end)]);
}
