/**
 * One Prometheus exposition from several: the scrapes of the gateway's worker processes, summed
 * series by series, so `/metrics` answers as one gateway whatever process took the scrape.
 *
 * - Counters, histograms (every `_bucket`, `_sum`, `_count`) and gauges add: each worker counts
 *   its own calls, and in-flight or held-memory gauges of the whole gateway are the sums. Ollama's
 *   state gauges come from one worker only (the one that polls), so adding changes nothing there.
 * - `target_info` describes a process, not a count: the first exposition's is kept.
 * - A series is the same in two expositions when its name and label set are, whatever the order
 *   of the labels; it is written as first seen. Families keep the order of first appearance.
 * - `countersOnly` pieces (what a worker that has exited had counted) contribute their counters
 *   and histograms but no gauges: its in-flight calls are over.
 * - With `floors` (kept by the caller from one merge to the next), no counter or histogram series
 *   is ever written below what it was last written as. The sums are exact for counts; a `_sum`
 *   added up in another order can differ in its last digit, which Prometheus would read as a reset.
 */

export interface ExpositionPiece {
  text: string;
  countersOnly?: boolean;
}

interface Family {
  name: string;
  help: string | undefined;
  type: string | undefined;
  /** Series key → [the sample's name and labels as first written, summed value]. */
  series: Map<string, [string, number]>;
}

/** Families whose one sample describes a process and is not summed. */
const FIRST_ONLY = new Set(['target_info']);
/**
 * Families each worker reports whole for the same thing (a tenant's budget, read from the shared
 * ledger): the least is kept, the one that has seen the most use.
 */
const LEAST = new Set(['ollama_gateway_budget_remaining', 'ollama_gateway_budget_limit']);

/** The series' identity: its name, and its labels sorted by name. */
function seriesKey(head: string): string {
  const brace = head.indexOf('{');
  if (brace < 0) return head;
  const name = head.slice(0, brace);
  const labels: string[] = [];
  // label="value" pairs; values escape \\, \" and \n.
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(head)) !== null) labels.push(`${m[1]}="${m[2]}"`);
  labels.sort();
  return `${name}{${labels.join(',')}}`;
}

function parseValue(raw: string): number {
  if (raw === '+Inf') return Infinity;
  if (raw === '-Inf') return -Infinity;
  return Number(raw);
}

function formatValue(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** The family a sample belongs to: its name, less a histogram's or summary's suffix when that family is declared. */
function familyOf(sampleName: string, families: Map<string, Family>): string {
  if (families.has(sampleName)) return sampleName;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (sampleName.endsWith(suffix)) {
      const base = sampleName.slice(0, -suffix.length);
      if (families.has(base)) return base;
    }
  }
  return sampleName;
}

/** Sums `pieces` into one exposition; see the module comment. */
export function mergeExpositions(pieces: readonly ExpositionPiece[], floors?: Map<string, number>): string {
  const families = new Map<string, Family>();
  const family = (name: string): Family => {
    let f = families.get(name);
    if (!f) {
      f = { name, help: undefined, type: undefined, series: new Map() };
      families.set(name, f);
    }
    return f;
  };
  pieces.forEach((piece, index) => {
    // Types declared in this piece, to know its gauges.
    const types = new Map<string, string>();
    for (const line of piece.text.split('\n')) {
      if (line === '') continue;
      if (line.startsWith('#')) {
        const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
        if (!m) continue;
        const f = family(m[2]!);
        if (m[1] === 'HELP') f.help ??= m[3];
        else {
          f.type ??= m[3];
          types.set(m[2]!, m[3]!);
        }
        continue;
      }
      const space = line.lastIndexOf(' ');
      if (space <= 0) continue;
      const head = line.slice(0, space);
      const value = parseValue(line.slice(space + 1));
      const brace = head.indexOf('{');
      const name = familyOf(brace < 0 ? head : head.slice(0, brace), families);
      if (piece.countersOnly && types.get(name) === 'gauge') continue;
      if (FIRST_ONLY.has(name) && index > 0) continue;
      const f = family(name);
      const key = seriesKey(head);
      const seen = f.series.get(key);
      if (seen) seen[1] = LEAST.has(name) ? Math.min(seen[1], value) : seen[1] + value;
      else f.series.set(key, [head, value]);
    }
  });
  const out: string[] = [];
  for (const f of families.values()) {
    if (f.series.size === 0) continue;
    if (f.help !== undefined) out.push(`# HELP ${f.name} ${f.help}`);
    if (f.type !== undefined) out.push(`# TYPE ${f.name} ${f.type}`);
    const floored = floors !== undefined && f.type !== 'gauge' && f.type !== undefined;
    for (const [key, [head, sum]] of f.series) {
      let value = sum;
      if (floored) {
        value = Math.max(value, floors.get(key) ?? value);
        floors.set(key, value);
      }
      out.push(`${head} ${formatValue(value)}`);
    }
    out.push('');
  }
  return out.join('\n');
}
