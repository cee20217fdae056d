/** The markdown report of a fuzz run: the traffic (with `verbose`), the statuses seen, and the books. */
import type { FuzzResult } from './config';
import { IDLE_MS } from './delivery';

export function formatReport(r: FuzzResult, verbose = false): string {
  const out: string[] = [];
  out.push(`## Fuzz: seed ${r.seed}, ${r.sent} of ${r.planned} requests sent, ${r.seconds.toFixed(1)} s`, '');
  if (verbose) {
    out.push('| traffic | sent | client-side outcomes |', '|---|---|---|');
    for (const [kind, m] of [...r.kinds].sort()) {
      const n = [...m.values()].reduce((a, b) => a + b, 0);
      const top = [...m]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8)
        .map(([o, c]) => `${o} ×${c}`)
        .join(', ');
      out.push(`| ${kind} | ${n} | ${top} |`);
    }
    out.push(
      '',
      `statuses seen: ${[...r.statuses]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s}×${n}`)
        .join(' ')}`,
      '',
    );
  } else {
    const idle = [...r.kinds.values()].reduce((n, m) => n + (m.get('idle timeout') ?? 0), 0);
    out.push(
      `statuses seen: ${[...r.statuses]
        .sort((a, b) => a[0] - b[0])
        .map(([s, n]) => `${s}×${n}`)
        .join(' ')}; client idle timeouts (gateway silent ${IDLE_MS / 1000} s): ${idle}`,
      '',
    );
  }
  out.push('| book | expected | actual | |', '|---|---|---|---|');
  for (const b of r.books) out.push(`| ${b.book} | ${b.expected} | ${b.actual.replace(/\|/g, '\\|')} | ${b.ok ? 'balanced' : 'NOT BALANCED'} |`);
  const off = r.books.filter((b) => !b.ok);
  if (off.length) out.push('', `${off.length} book(s) NOT BALANCED; reproduce with --seed ${r.seed}`);
  if (r.stderrTail.trim()) out.push('', 'gateway stderr (tail):', r.stderrTail.trim());
  return out.join('\n');
}
