/** The gateway's /metrics as samples, and how a counter grew between two scrapes. */
import { httpReq } from './clients';
import { MiB } from './common';
import type { Gw } from './gateway';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export async function scrape(gw: Gw): Promise<Sample[] | undefined> {
  const r = await httpReq(gw.port, { path: '/metrics', timeoutMs: 20_000 });
  if (r.status !== 200 || r.bytes > 4 * MiB) return undefined;
  const out: Sample[] = [];
  for (const line of r.body.toString('utf8').split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

export function sum(samples: Sample[] | undefined, name: string, where: Record<string, string> = {}): number {
  if (!samples) return NaN;
  return samples.filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

/** Per value of `label`, how much `name` grew between two scrapes (e.g. `200×1`). */
export function grew(before: Sample[] | undefined, after: Sample[] | undefined, name: string, label: string, where: Record<string, string> = {}): string {
  if (!after) return 'metrics unavailable';
  const values = new Set(after.filter((s) => s.name === name).map((s) => s.labels[label]));
  const parts: string[] = [];
  for (const v of values) {
    const d = sum(after, name, { ...where, [label]: v }) - (before ? sum(before, name, { ...where, [label]: v }) : 0);
    if (d > 0) parts.push(`${label}=${v} ×${d}`);
  }
  return parts.length ? parts.join(', ') : 'nothing';
}
