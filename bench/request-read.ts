/**
 * What reading a request body costs per call: `extractRequest` (and, with affinity, the key) on
 * representative bodies, in µs of CPU per body, the best of `--rounds` rounds.
 *
 *   node .build/bench/request-read.js [--old <dir>] [--rounds 7]   (after a build into .build/)
 *
 * `--old <dir>` also measures another build (a directory holding its compiled `src/`, e.g. a build
 * of `main`), interleaved with this one, so the two see the same machine.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { LLM_ROUTES, type LlmRoute } from '../src/routes';

interface Build {
  name: string;
  extract: (route: LlmRoute, raw: Buffer) => unknown;
  key: (route: LlmRoute, raw: Buffer) => unknown;
}

function load(name: string, root: string): Build {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const ex = require(path.join(root, 'src', 'request', 'extract.js')) as { extractRequest: (r: LlmRoute, b: Buffer) => { model?: string; reading?: unknown } };
  const af = require(path.join(root, 'src', 'fleet', 'affinity.js')) as { affinityKey: (...a: unknown[]) => unknown };
  /* eslint-enable @typescript-eslint/no-require-imports */
  return {
    name,
    extract: (route, raw) => ex.extractRequest(route, raw),
    key: (route, raw) => {
      const info = ex.extractRequest(route, raw);
      return af.affinityKey(info.model, raw, info.reading);
    },
  };
}

const route = (p: string) => LLM_ROUTES.find((r) => r.path === p)!;
const words = (n: number) => Array.from({ length: n }, (_, i) => `word${i % 97}`).join(' ');
const conversation = (turns: number, size: number) =>
  Array.from({ length: turns }, (_, i) => ({ role: i === 0 ? 'system' : i % 2 ? 'user' : 'assistant', content: words(size) }));

const BODIES: [string, LlmRoute, Buffer][] = [
  [
    '/api/chat, one short turn (0.1 KB)',
    route('/api/chat'),
    Buffer.from(JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: 'Why is the sky blue?' }] })),
  ],
  [
    '/v1/chat/completions, 20 turns (15 KB)',
    route('/v1/chat/completions'),
    Buffer.from(JSON.stringify({ model: 'llama3.2', stream: true, temperature: 0.2, messages: conversation(20, 100) })),
  ],
  [
    '/api/chat, 200 turns and options (0.7 MB)',
    route('/api/chat'),
    Buffer.from(JSON.stringify({ model: 'llama3.2', options: { num_ctx: 32768, temperature: 0.7 }, messages: conversation(200, 500) })),
  ],
  [
    '/api/embed, 1,000 inputs (0.3 MB)',
    route('/api/embed'),
    Buffer.from(JSON.stringify({ model: 'all-minilm', input: Array.from({ length: 1000 }, () => words(40)) })),
  ],
];

function perCall(fn: () => unknown, budgetMs: number): number {
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < budgetMs) {
    for (let i = 0; i < 10; i++) fn();
    n += 10;
    now = performance.now();
  }
  return ((now - start) * 1000) / n;
}

function main(): void {
  const args = process.argv.slice(2);
  const at = (flag: string) => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
  const rounds = Number(at('--rounds') ?? 7);
  const builds = [load('this build', path.resolve(__dirname, '..'))];
  const old = at('--old');
  if (old !== undefined) builds.unshift(load('old', path.resolve(old)));
  console.log(`| body | ${builds.map((b) => `${b.name}: read µs | ${b.name}: read + affinity key µs`).join(' | ')} |`);
  console.log(`|---|${builds.map(() => '---|---').join('|')}|`);
  for (const [name, r, raw] of BODIES) {
    const best = builds.map(() => [Infinity, Infinity]);
    for (let round = 0; round < rounds; round++) {
      builds.forEach((b, i) => {
        best[i]![0] = Math.min(
          best[i]![0]!,
          perCall(() => b.extract(r, raw), 150),
        );
        best[i]![1] = Math.min(
          best[i]![1]!,
          perCall(() => b.key(r, raw), 150),
        );
      });
    }
    console.log(`| ${name} | ${best.map(([a, k]) => `${a!.toFixed(1)} | ${k!.toFixed(1)}`).join(' | ')} |`);
  }
}

main();
