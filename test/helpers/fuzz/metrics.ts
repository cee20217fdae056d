/** Reading /metrics without trusting it: samples of named families, model labels, a size cap and a timeout. */
import { createHash } from 'node:crypto';
import http from 'node:http';

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
