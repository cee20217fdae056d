/** Small utilities of the hostile-input figures: units, progress, errors, stack-trace lines, the probes' shape. */
import { readFileSync } from 'node:fs';
import type { FakeOllama } from '../../test/helpers/fake-ollama';

export { sleep } from '../../test/helpers/wait';
export const MiB = 1024 * 1024;
export const mb = (bytes: number) => `${(bytes / MiB).toFixed(1)} MB`;
export const secs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(0)} ms`);
export const progress = (msg: string) => process.stderr.write(`[hostile-figures] ${msg}\n`);

export function errText(e: unknown): string {
  const err = e as NodeJS.ErrnoException | undefined;
  return err?.code ?? err?.message ?? String(e);
}

/** Peak resident memory (VmHWM) of `pid`, in bytes. */
export function peakRssBytes(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** A stderr line that is part of a stack trace: a frame, or an error header. */
export function isStackLine(line: string): boolean {
  return /^\s+at\s+\S/.test(line) || /^(\w*Error|Uncaught\b|node:internal\/)/.test(line.trim()) || /^\S+\.js:\d+$/.test(line.trim());
}

/** One line of the table: what was measured, and its value. */
export interface Row {
  figure: string;
  value: string;
}

export type Probe = (fake: FakeOllama) => Promise<Row[]>;

export const CHAT = (model = 'llama3.2', extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model, messages: [{ role: 'user', content: 'Why is the sky blue?' }], ...extra });
