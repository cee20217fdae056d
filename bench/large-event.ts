/**
 * What hostile framing costs the stream parsers, and what a normal stream costs them per chunk.
 *
 *   node dist/bench/large-event.js [--old <dir>] [--replays 10000] [--rounds 7]   (after a build into dist/)
 *
 * 1. The fixtures `chat-stream.ndjson` and `openai-chat-stream.sse`, cut as Ollama flushes them
 *    (`flush_groups` in the manifest) and into 100-byte pieces, replayed `--replays` times through
 *    fresh parsers: ns per chunk, the best of `--rounds` rounds (the least disturbed by whatever
 *    else the machine runs). The hot path.
 * 2. A 64 KB chunk of tiny SSE events, the worst case for searches that run to the end of the chunk.
 * 3. One 30 MB SSE event and one 30 MB NDJSON line, each followed by the end of the stream, pushed
 *    in 64 KB chunks: total time, the longest single push (how long the event loop is blocked) and
 *    the most bytes held at once.
 *
 * `--old <dir>` also measures another build of `src/protocol` (a directory holding its compiled
 * `sse.js` and `ndjson.js`, e.g. built from `git show HEAD:src/protocol/…`), interleaved with this
 * one. Held bytes are read from a `heldBytes` getter where the build has one; the stripper's are
 * measured from its output (bytes pushed minus bytes forwarded), so they need no getter.
 */
import fs, { readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ndjson from '../src/protocol/ndjson';
import * as sse from '../src/protocol/sse';
import * as sseUsage from '../src/protocol/sse-usage';
import { bigJson, CHUNK, chunksOf } from '../test/helpers/stream-costs';

interface Parser {
  push(chunk: Buffer, now: number): void;
  end(now: number): unknown;
  readonly heldBytes?: number;
}
interface Stripper {
  push(chunk: Buffer): Buffer;
  end(): Buffer;
}
interface Build {
  name: string;
  ndjson: () => Parser;
  sse: () => Parser;
  stripper: () => Stripper;
}

const MiB = 1024 * 1024;
const FIXTURES = path.resolve(__dirname, '..', '..', 'test', 'fixtures');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1];
}

function builds(): Build[] {
  const out: Build[] = [
    { name: 'current', ndjson: () => new ndjson.NdjsonParser(), sse: () => new sse.SseParser(), stripper: () => new sseUsage.SseUsageStripper() },
  ];
  const old = arg('--old', '');
  if (old) {
    const dir = path.resolve(old);
    // An old build, chosen at run time, is loaded by path.
    /* eslint-disable @typescript-eslint/no-require-imports */
    const n = require(path.join(dir, 'ndjson.js')) as typeof ndjson;
    const s = require(path.join(dir, 'sse.js')) as typeof sse;
    // Before the stripper had a file of its own, it lived in sse.js.
    const u = (fs.existsSync(path.join(dir, 'sse-usage.js')) ? require(path.join(dir, 'sse-usage.js')) : s) as typeof sseUsage;
    /* eslint-enable @typescript-eslint/no-require-imports */
    out.unshift({ name: 'old', ndjson: () => new n.NdjsonParser(), sse: () => new s.SseParser(), stripper: () => new u.SseUsageStripper() });
  }
  return out;
}

const mb = (bytes: number) => (bytes / MiB).toFixed(1);

interface LargeResult {
  totalMs: number;
  longestPushMs: number;
  heldBytes: number | undefined;
}

function largeParser(make: () => Parser, chunks: Buffer[]): LargeResult {
  const p = make();
  let held: number | undefined;
  let longest = 0;
  const t0 = performance.now();
  for (const c of chunks) {
    const t = performance.now();
    p.push(c, t);
    longest = Math.max(longest, performance.now() - t);
    if (typeof p.heldBytes === 'number') held = Math.max(held ?? 0, p.heldBytes);
  }
  p.end(performance.now());
  return { totalMs: performance.now() - t0, longestPushMs: longest, heldBytes: held };
}

function largeStripper(make: () => Stripper, chunks: Buffer[]): LargeResult {
  const st = make();
  let held = 0;
  let pushed = 0;
  let forwarded = 0;
  let longest = 0;
  const t0 = performance.now();
  for (const c of chunks) {
    const t = performance.now();
    forwarded += st.push(c).length;
    longest = Math.max(longest, performance.now() - t);
    pushed += c.length;
    held = Math.max(held, pushed - forwarded);
  }
  st.end();
  return { totalMs: performance.now() - t0, longestPushMs: longest, heldBytes: held };
}

function printLarge(what: string, build: string, r: LargeResult): void {
  const held = r.heldBytes === undefined ? 'n/a' : `${mb(r.heldBytes)} MB`;
  console.log(`| ${what} | ${build} | ${r.totalMs.toFixed(0)} | ${r.longestPushMs.toFixed(1)} | ${held} |`);
}

/** The fixture cut as Ollama flushed it: `flush_groups[i]` lines or events per chunk. */
function asFlushed(file: string): Buffer[] {
  const body = readFileSync(path.join(FIXTURES, file));
  const manifest = JSON.parse(readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8')) as { fixtures: { file: string; flush_groups?: number[] }[] };
  const groups = manifest.fixtures.find((f) => f.file === file)?.flush_groups ?? [];
  const sep = file.endsWith('.sse') ? '\n\n' : '\n';
  const out: Buffer[] = [];
  let at = 0;
  for (const n of groups) {
    let end = at;
    for (let i = 0; i < n; i++) end = body.indexOf(sep, end) + sep.length;
    out.push(body.subarray(at, end));
    at = end;
  }
  if (at < body.length) out.push(body.subarray(at));
  return out;
}

/** ns per chunk for replaying `chunks` `replays` times through fresh parsers. */
function perChunk(run: (chunks: Buffer[]) => void, chunks: Buffer[], replays: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < replays; i++) run(chunks);
  return Number(process.hrtime.bigint() - t0) / (replays * chunks.length);
}

/** Section 1 (run first, before the large buffers below disturb the heap). */
function normalStreams(all: Build[], replays: number, rounds: number): void {
  console.log(`## Normal streams, ${replays} replays, best of ${rounds} rounds\n`);
  console.log('| stream | chunks | reader | build | ns per chunk |');
  console.log('|---|---|---|---|---:|');
  const streams = [
    { file: 'chat-stream.ndjson', cut: 'as flushed', chunks: asFlushed('chat-stream.ndjson') },
    { file: 'chat-stream.ndjson', cut: '100 B', chunks: chunksOf(readFileSync(path.join(FIXTURES, 'chat-stream.ndjson')), 100) },
    { file: 'openai-chat-stream.sse', cut: 'as flushed', chunks: asFlushed('openai-chat-stream.sse') },
    { file: 'openai-chat-stream.sse', cut: '100 B', chunks: chunksOf(readFileSync(path.join(FIXTURES, 'openai-chat-stream.sse')), 100) },
  ];
  for (const s of streams) {
    const readers: { name: string; run: (b: Build) => (chunks: Buffer[]) => void }[] = s.file.endsWith('.sse')
      ? [
          { name: 'SSE parser', run: (b) => (chunks) => feed(b.sse(), chunks) },
          { name: 'SSE usage stripper', run: (b) => (chunks) => strip(b.stripper(), chunks) },
        ]
      : [{ name: 'NDJSON parser', run: (b) => (chunks) => feed(b.ndjson(), chunks) }];
    for (const r of readers) {
      const results = new Map<string, number[]>(all.map((b) => [b.name, []]));
      for (const b of all) perChunk(r.run(b), s.chunks, Math.ceil(replays / 10)); // warm-up
      for (let round = 0; round < rounds; round++) {
        // Alternate the order, so neither build always runs on a heap the other just filled.
        for (const b of round % 2 === 0 ? all : [...all].reverse()) results.get(b.name)!.push(perChunk(r.run(b), s.chunks, replays));
      }
      for (const b of all)
        console.log(`| ${s.file} | ${s.chunks.length} × ${s.cut} | ${r.name} | ${b.name} | ${Math.min(...results.get(b.name)!).toFixed(0)} |`);
    }
  }
}

/** Section 2. */
function tinyEvents(all: Build[]): void {
  console.log('\n## A 64 KB chunk of tiny SSE events\n');
  console.log('| reader | build | ms per chunk |');
  console.log('|---|---|---:|');
  const tiny = Buffer.from('data: {"a":1}\n\n'.repeat(Math.floor(CHUNK / 15)));
  const time = (run: () => void) => {
    for (let i = 0; i < 3; i++) run();
    const t = performance.now();
    for (let i = 0; i < 20; i++) run();
    return ((performance.now() - t) / 20).toFixed(2);
  };
  for (const b of all) {
    console.log(`| SSE parser | ${b.name} | ${time(() => b.sse().push(tiny, 0))} |`);
    console.log(`| SSE usage stripper | ${b.name} | ${time(() => b.stripper().push(tiny))} |`);
  }
}

/** Section 3. */
function largeEvents(all: Build[]): void {
  console.log('\n## One 30 MB event or line in 64 KB chunks\n');
  console.log('| stream | build | total ms | longest push ms | most held |');
  console.log('|---|---|---:|---:|---:|');
  const sseBody = chunksOf(Buffer.from('data: ' + bigJson(30 * MiB) + '\n\ndata: [DONE]\n\n'), CHUNK);
  const ndBody = chunksOf(Buffer.from(bigJson(30 * MiB) + '\n{"done":true}\n'), CHUNK);
  for (const b of all) {
    printLarge('SSE parser', b.name, largeParser(b.sse, sseBody));
    printLarge('SSE usage stripper', b.name, largeStripper(b.stripper, sseBody));
    printLarge('NDJSON parser', b.name, largeParser(b.ndjson, ndBody));
  }
}

function main(): void {
  const all = builds();
  normalStreams(all, Number(arg('--replays', '10000')), Number(arg('--rounds', '7')));
  tinyEvents(all);
  largeEvents(all);
}

function feed(p: Parser, chunks: Buffer[]): void {
  for (let i = 0; i < chunks.length; i++) p.push(chunks[i], i);
  p.end(chunks.length);
}

function strip(st: Stripper, chunks: Buffer[]): void {
  for (const c of chunks) st.push(c);
  st.end();
}

main();
