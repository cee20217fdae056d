/**
 * Go's own reading of request bodies: `test/go-reader/main.go` (Ollama's request struct shapes,
 * decoded with Go's encoding/json), built once per test run into a temporary directory, and the same
 * view of the gateway's reading, for a line-by-line comparison.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { GoAny } from '../../src/request/go-json';
import type { RequestReading, TextOrBytes } from '../../src/request/read';
import { REPO } from './tools';

/** Builds the Go reader; returns its path and a cleanup. Throws with Go's output on failure. */
export function buildGoReader(): { bin: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'go-reader-'));
  const bin = path.join(dir, 'go-reader');
  const env = { ...process.env, GOCACHE: process.env.GOCACHE ?? path.join(os.tmpdir(), 'gateway-go-cache') };
  const built = spawnSync('go', ['build', '-o', bin, path.join(REPO, 'test', 'go-reader', 'main.go')], { env, encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`go build failed: ${built.stderr}`);
  return { bin, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Go's view of each body (one process run for all of them). */
export function goRead(bin: string, bodies: readonly { path: string; body: Buffer }[]): Record<string, unknown>[] {
  const input = bodies.map((b) => `${b.path} ${b.body.toString('base64')}\n`).join('');
  const run = spawnSync(bin, [], { input, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (run.status !== 0) throw new Error(`go-reader failed: ${run.stderr}`);
  const lines = run.stdout.split('\n').filter((l) => l !== '');
  if (lines.length !== bodies.length) throw new Error(`go-reader answered ${lines.length} lines for ${bodies.length} bodies`);
  return lines.map((l) => JSON.parse(l) as Record<string, unknown>);
}

const bits = (f: number): string => {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, f);
  return 'n:' + view.getBigUint64(0).toString(16);
};
const n = (v: number | null): string | null => (v === null ? null : bits(v));

function part(body: Buffer, p: TextOrBytes | null): string | null {
  if (p === null) return null;
  if (typeof p === 'string') return 's:' + p;
  return 'r:' + body.subarray(p.start, p.end).toString('base64');
}

function optionValue(v: GoAny): unknown {
  if (v === null || typeof v === 'boolean') return v;
  if (typeof v === 'number') return bits(v);
  if (typeof v === 'string') return 's:' + v;
  return 'c';
}

const OPTION_KEYS = ['num_ctx', 'num_keep', 'temperature', 'top_p', 'top_k', 'num_predict', 'seed', 'stop'];

/** The gateway's reading in the Go reader's output shape (the same keys per endpoint). */
export function gatewayView(p: string, body: Buffer, r: RequestReading): Record<string, unknown> {
  if (!r.ok) return { ok: false };
  const out: Record<string, unknown> = { ok: true, model: r.model, system: part(body, r.system), first_user: part(body, r.firstUser) };
  const params = (...keys: string[]) => {
    const all: Record<string, unknown> = {
      temperature: n(r.temperature),
      top_p: n(r.topP),
      top_k: n(r.topK),
      max_tokens: n(r.maxTokens),
      seed: n(r.seed),
      stop: r.stop,
    };
    for (const k of keys) out[k] = all[k];
  };
  if (p.startsWith('/api/')) {
    out.keep_alive_zero = r.keepAliveZero;
    const options: Record<string, unknown> = {};
    for (const k of OPTION_KEYS) if (r.options?.has(k)) options[k] = optionValue(r.options.get(k)!);
    out.options = options;
    out.options_nil = r.options === null;
    params('temperature', 'top_p', 'top_k', 'max_tokens', 'seed', 'stop');
  }
  if (p === '/api/chat' || p === '/api/generate') {
    out.stream = r.stream;
    out.think = r.think;
    out.empty = r.empty;
  }
  if (p === '/v1/chat/completions' || p === '/v1/completions') {
    out.stream = r.stream;
    out.include_usage = r.includeUsage;
    params('temperature', 'top_p', 'max_tokens', 'seed', 'stop');
  }
  if (p === '/v1/messages') {
    out.stream = r.stream;
    params('temperature', 'top_p', 'top_k', 'max_tokens', 'stop');
  }
  if (p === '/v1/responses') {
    out.stream = r.stream;
    params('temperature', 'top_p', 'max_tokens');
  }
  return out;
}
