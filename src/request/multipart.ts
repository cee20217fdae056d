/**
 * The model of a `multipart/form-data` request (`POST /v1/audio/transcriptions`), read as Ollama
 * reads it: `TranscriptionMiddleware` (`middleware/openai.go`) calls Go's
 * `Request.ParseMultipartForm` and then `FormValue("model")`, which is the first `model` of the
 * URL's query if it has one, else the first `model` form field that is not a file (a part whose
 * Content-Disposition has no non-empty `filename`). Field names match exactly.
 *
 * Only the part headers and the `model` value are looked at; the audio is skipped with one search
 * for the next delimiter, so the cost is linear in the body (already held, and capped by
 * MAX_REQUEST_BODY_MB). Whatever Go would read differently or not at all is refused rather than
 * guessed at: line ends other than CRLF, folded or malformed part headers, encoded parameter names
 * (`name*=`), a quoted-printable `model` part, a body that does not end with the closing
 * delimiter, more parts than Go takes (1000), a query Go cannot parse. Refusals carry Ollama's own
 * messages ("model is required", "failed to parse multipart form: …").
 */

/** What Go's `mime/multipart` takes at most (`multipartmaxparts`). */
export const MAX_FORM_PARTS = 1000;
/** The most bytes of one part's headers read; Ollama's clients send a few dozen. */
export const MAX_PART_HEADER_BYTES = 16 * 1024;
/** The longest `model` value taken (far past any model name). */
export const MAX_MODEL_BYTES = 4096;
/** RFC 2046 §5.1.1: a boundary is 1 to 70 characters. */
const MAX_BOUNDARY_CHARS = 70;

export type FormModel = { ok: true; model: string } | { ok: false; message: string };

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const HEADERS_END = Buffer.from('\r\n\r\n');

const refuse = (why: string): FormModel => ({ ok: false, message: `failed to parse multipart form: ${why}` });

/**
 * `value` split as `type; k=v; k="v"` (Go's `mime.ParseMediaType`, without RFC 2231): the type in
 * lower case and the parameters by lower-case name; undefined when Go would read it otherwise or
 * fail (duplicate or encoded names, bad quoting).
 */
function mediaType(value: string): { type: string; params: Map<string, string> } | undefined {
  const semi = value.indexOf(';');
  const type = (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
  if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+(\/[!#$%&'*+\-.^_`|~0-9a-z]+)?$/.test(type)) return undefined;
  const params = new Map<string, string>();
  let rest = semi === -1 ? '' : value.slice(semi + 1);
  const param = /^\s*([!#$%&'+\-.^_`|~0-9A-Za-z]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([!#$%&'*+\-.^_`|~0-9A-Za-z]+))\s*(?:;|$)/;
  while (rest.trim() !== '') {
    const m = param.exec(rest);
    if (!m) return undefined;
    const name = m[1]!.toLowerCase();
    if (params.has(name)) return undefined;
    params.set(name, m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!);
    rest = rest.slice(m[0].length);
  }
  return { type, params };
}

/** The first `model` of a query string as Go's `url.ParseQuery` reads it; `false` when Go fails on it. */
function queryModel(query: string): string | undefined | false {
  if (query === '') return undefined;
  if (query.includes(';')) return false;
  let found: string | undefined;
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = unescape(eq === -1 ? pair : pair.slice(0, eq));
    const value = unescape(eq === -1 ? '' : pair.slice(eq + 1));
    if (key === false || value === false) return false;
    if (key === 'model' && found === undefined) found = value;
  }
  return found;
}

/** Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; false on a bad escape or bytes that are not UTF-8. */
function unescape(s: string): string | false {
  if (!/^(?:[^%]|%[0-9A-Fa-f]{2})*$/.test(s)) return false;
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return false;
  }
}

/**
 * The model Ollama reads from a multipart request with `contentType` and the query `query`
 * (without `?`), or why it is refused.
 */
export function formModel(contentType: string | undefined, query: string, body: Buffer): FormModel {
  const ct = contentType === undefined ? undefined : mediaType(contentType);
  if (!ct || ct.type !== 'multipart/form-data') return refuse("request Content-Type isn't multipart/form-data");
  const boundary = ct.params.get('boundary');
  if (boundary === undefined || boundary === '') return refuse('no multipart boundary param in Content-Type');
  if (boundary.length > MAX_BOUNDARY_CHARS || /[^\x20-\x7e]/.test(boundary) || / $/.test(boundary)) return refuse('invalid boundary');
  const fromQuery = queryModel(query);
  if (fromQuery === false) return refuse('invalid query');

  const dash = Buffer.from(`--${boundary}`, 'latin1');
  const delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
  // The first delimiter opens the body or follows a preamble line.
  let at = body.subarray(0, dash.length).equals(dash) ? 0 : body.indexOf(delimiter);
  if (at === -1) return refuse('NextPart: EOF');
  if (at > 0) at += 2;
  let model: string | undefined;
  for (let parts = 0; ; parts++) {
    // `at` is on `--boundary`: then `--` (the end), or optional white space and CRLF.
    let p = at + dash.length;
    if (body[p] === 0x2d && body[p + 1] === 0x2d) break;
    while (body[p] === 0x20 || body[p] === 0x09) p++;
    if (body[p] !== 0x0d || body[p + 1] !== 0x0a) return refuse('NextPart: bad delimiter line');
    if (parts === MAX_FORM_PARTS) return refuse('multipart: too many parts');
    const headersStart = p + 2;
    let headersEnd: number;
    let next: number;
    if (body[headersStart] === 0x0d && body[headersStart + 1] === 0x0a) {
      headersEnd = headersStart;
      next = headersStart + 2;
    } else {
      const end = body.subarray(headersStart, headersStart + MAX_PART_HEADER_BYTES + 4).indexOf(HEADERS_END);
      if (end === -1) return refuse('part headers too large or unterminated');
      headersEnd = headersStart + end;
      next = headersEnd + 4;
    }
    const close = body.indexOf(delimiter, next - 2);
    if (close === -1) return refuse('NextPart: EOF');
    const valueStart = next;
    const valueEnd = Math.max(valueStart, close);
    if (model === undefined) {
      const part = partOf(body.toString('latin1', headersStart, headersEnd));
      if (part === undefined) return refuse('malformed MIME header');
      if (part.name === 'model' && !part.file) {
        if (part.quotedPrintable) return refuse('quoted-printable model field');
        if (valueEnd - valueStart > MAX_MODEL_BYTES) return refuse('model field too large');
        try {
          model = UTF8.decode(body.subarray(valueStart, valueEnd));
        } catch {
          return refuse('model field is not UTF-8');
        }
      }
    }
    at = close + 2;
  }
  const chosen = fromQuery ?? model;
  if (chosen === undefined || chosen === '') return { ok: false, message: 'model is required' };
  return { ok: true, model: chosen };
}

/** A part's form name, whether it is a file, and whether Go would decode it as quoted-printable. */
function partOf(headers: string): { name: string | undefined; file: boolean; quotedPrintable: boolean } | undefined {
  let disposition: string | undefined;
  let quotedPrintable = false;
  if (headers !== '') {
    for (const line of headers.split('\r\n')) {
      // A folded line, a name with white space, a line without a colon: Go reads these otherwise or fails.
      const m = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/.exec(line);
      if (!m) return undefined;
      const name = m[1]!.toLowerCase();
      if (name === 'content-disposition') {
        if (disposition !== undefined) return undefined;
        disposition = m[2]!;
      } else if (name === 'content-transfer-encoding' && m[2]!.toLowerCase() === 'quoted-printable') quotedPrintable = true;
    }
  }
  if (disposition === undefined) return { name: undefined, file: false, quotedPrintable };
  const d = mediaType(disposition);
  // Go reads a disposition it cannot parse as having no name; where its parser and this one might
  // differ, the body is refused rather than a `model` part skipped that Go would have read.
  if (!d) return undefined;
  if (d.type !== 'form-data') return { name: undefined, file: false, quotedPrintable };
  const filename = d.params.get('filename');
  return { name: d.params.get('name'), file: filename !== undefined && filename !== '', quotedPrintable };
}
