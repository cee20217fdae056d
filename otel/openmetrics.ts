/**
 * The OpenMetrics text format (https://prometheus.io/docs/specs/om/open_metrics_spec/), written
 * from the classic exposition and the exemplars kept for it. Only OpenMetrics carries exemplars;
 * a scraper asks for it with `Accept: application/openmetrics-text`.
 *
 * What changes from the classic text: a counter's family is named without `_total` (its samples
 * keep it); `untyped` is `unknown`; HELP escapes `"` too; no blank lines; `# EOF` ends it; a
 * histogram's `_bucket` line and a counter's `_total` line may end with
 * `# {trace_id="…",span_id="…"} value timestamp`.
 */
import type { Exemplar, ExemplarKey } from './exemplars';

export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

/**
 * Whether an Accept header asks for OpenMetrics: it names `application/openmetrics-text` with a
 * weight above 0 and at least that of any other type it names.
 */
export function wantsOpenMetrics(accept: string | undefined): boolean {
  if (accept === undefined || !accept.includes('application/openmetrics-text')) return false;
  let om = -1;
  let other = -1;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.split(';').map((s) => s.trim());
    let q = 1;
    for (const p of params) {
      const m = /^q=([0-9.]+)$/i.exec(p);
      if (m) q = Number(m[1]);
    }
    if (type === 'application/openmetrics-text') om = Math.max(om, q);
    else if (type !== undefined && type !== '') other = Math.max(other, q);
  }
  return om > 0 && om >= other;
}

/** The series' key as the exemplar store writes it: name, then labels sorted; `le` apart. */
function keyOf(name: string, labelText: string | undefined): { series: string; le: string } {
  if (labelText === undefined || labelText === '') return { series: name, le: '' };
  const labels: string[] = [];
  let le = '';
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(labelText)) !== null) {
    if (m[1] === 'le') le = m[2]!;
    else labels.push(`${m[1]}="${m[2]}"`);
  }
  labels.sort();
  return { series: labels.length === 0 ? name : `${name}{${labels.join(',')}}`, le };
}

function formatExemplar(e: Exemplar): string {
  return ` # {trace_id="${e.traceId}",span_id="${e.spanId}"} ${e.value} ${(e.at / 1000).toFixed(3)}`;
}

/** `classic` (a Prometheus 0.0.4 text exposition) as OpenMetrics, with `exemplars` on their samples. */
export function toOpenMetrics(classic: string, exemplars: ReadonlyMap<ExemplarKey, Exemplar>): string {
  const lines = classic.split('\n');
  const types = new Map<string, string>();
  for (const line of lines) {
    if (!line.startsWith('# TYPE ')) continue;
    const [, , name, type] = line.split(' ');
    if (name !== undefined && type !== undefined) types.set(name, type);
  }
  const familyName = (name: string) => (types.get(name) === 'counter' && name.endsWith('_total') ? name.slice(0, -'_total'.length) : name);
  const out: string[] = [];
  for (const line of lines) {
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) continue; // other comments (the exemplars' carrier line) are not part of the format
      const name = familyName(m[2]!);
      if (m[1] === 'HELP') out.push(`# HELP ${name} ${m[3]!.replace(/"/g, '\\"')}`);
      else out.push(`# TYPE ${name} ${m[3] === 'untyped' ? 'unknown' : m[3]}`);
      continue;
    }
    if (exemplars.size === 0) {
      out.push(line);
      continue;
    }
    const brace = line.indexOf('{');
    const space = line.lastIndexOf(' ');
    const name = brace >= 0 && brace < space ? line.slice(0, brace) : line.slice(0, space);
    if (!name.endsWith('_bucket') && !name.endsWith('_total')) {
      out.push(line);
      continue;
    }
    const close = brace >= 0 ? line.lastIndexOf('}', space) : -1;
    const { series, le } = keyOf(name, brace >= 0 && close > brace ? line.slice(brace + 1, close) : undefined);
    const e = exemplars.get(`${series}\u0000${le}`);
    out.push(e === undefined ? line : line + formatExemplar(e));
  }
  out.push('# EOF', '');
  return out.join('\n');
}
