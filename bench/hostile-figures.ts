/**
 * Before/after figures for the "hostile input" issue: runs one gateway build as a child process
 * against hostile clients and upstreams and prints a markdown table of what it measured.
 *
 *   node dist/bench/hostile-figures.js --gateway <some dist>/src/main.js [--only 1,3,8]
 *
 * The fake Ollama is this build's `test/helpers/fake-ollama`, run in this process; probes that need
 * an upstream the fake cannot imitate (a `Trailer:` header, a `101`, one 30 MB SSE event written
 * in 64 KB pieces) use test/helpers' scripted raw-TCP upstream instead. Each probe starts a fresh gateway (so its
 * counters start at zero and one probe's crash cannot spoil the next), is bounded in time, and
 * reports a crash as `crashed` rather than failing. Settings the older build does not know
 * (REQUEST_BODY_TIMEOUT_SECONDS, …) are ignored by it. Everything listens on 127.0.0.1.
 *
 * Progress goes to stderr; the table to stdout.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { FakeOllama } from '../test/helpers/fake-ollama';
import { progress, secs, type Probe, type Row } from './hostile-figures/common';
import { setGatewayMain } from './hostile-figures/gateway';
import { probeModelName, probePaths, probePostHealthz, probeStalledBodies } from './hostile-figures/probes-clients';
import { probeConnectionExhaustion, probeSlowUploaders, probeStuckStdout } from './hostile-figures/probes-exhaustion';
import { probeConnectionClose, probeSlowReader, probeStackTraces } from './hostile-figures/probes-streams';
import { probe101, probeHugeEvent, probeResetAfterHeaders, probeTrailer } from './hostile-figures/probes-upstream';

const PROBES: { n: number; title: string; run: Probe }[] = [
  { n: 1, title: '5 MB `model` string', run: probeModelName },
  { n: 2, title: '12 × 55 MB of a 60 MB body, then stall', run: probeStalledBodies },
  { n: 3, title: 'path spellings of /api/chat', run: probePaths },
  { n: 4, title: 'upstream `Trailer:` header (pass-through)', run: probeTrailer },
  { n: 5, title: 'upstream reset after the headers of a 200 NDJSON stream', run: probeResetAfterHeaders },
  { n: 6, title: 'upstream answers 101 to POST /api/chat', run: probe101 },
  { n: 7, title: 'POST /healthz', run: probePostHealthz },
  { n: 8, title: 'one 30 MB SSE event in 64 KB writes', run: probeHugeEvent },
  { n: 9, title: 'pass-through GET /api/tags, `Connection: close`', run: probeConnectionClose },
  { n: 10, title: 'slow reader (3 s pause, idle timeout 1 s)', run: probeSlowReader },
  { n: 11, title: 'stack traces on stderr', run: probeStackTraces },
  { n: 12, title: '5 chunked uploads from one address fill MAX_BUFFERED_BODY_MB=16, then a byte a second', run: probeSlowUploaders },
  { n: 13, title: 'stdout never read (a stuck log shipper), 40,000 calls', run: probeStuckStdout },
  { n: 14, title: 'idle connections past `ulimit -n 512`', run: probeConnectionExhaustion },
];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const gi = args.indexOf('--gateway');
  if (gi === -1 || !args[gi + 1]) {
    process.stderr.write('usage: node dist/bench/hostile-figures.js --gateway <dist>/src/main.js [--only 1,3]\n');
    process.exit(2);
  }
  const gatewayMain = path.resolve(args[gi + 1]);
  setGatewayMain(gatewayMain);
  const oi = args.indexOf('--only');
  const only = oi !== -1 ? new Set(args[oi + 1].split(',').map(Number)) : undefined;

  const fake = await new FakeOllama().start();
  const table: string[] = ['| # | Probe | Figure | Value |', '|---|---|---|---|'];
  const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  try {
    for (const p of PROBES) {
      if (only && !only.has(p.n)) continue;
      progress(`probe ${p.n}: ${p.title}`);
      const t0 = performance.now();
      let rows: Row[];
      try {
        rows = await p.run(fake);
      } catch (e) {
        rows = [{ figure: 'not measured', value: `probe failed: ${(e as Error).message ?? String(e)}` }];
      }
      progress(`probe ${p.n} done in ${secs(performance.now() - t0)}`);
      rows.forEach((r, i) => table.push(`| ${i === 0 ? p.n : ''} | ${i === 0 ? cell(p.title) : ''} | ${cell(r.figure)} | ${cell(r.value)} |`));
    }
  } finally {
    await fake.close();
  }
  const out = [
    `## Hostile-input figures: \`${gatewayMain}\``,
    '',
    `Node ${process.version}, ${new Date().toISOString()}. Each probe runs a fresh gateway (LOG_LEVEL=INFO, OLLAMA_POLL_INTERVAL_SECONDS=0, REQUEST_BODY_TIMEOUT_SECONDS=5, HEADERS_TIMEOUT_SECONDS=10, CLIENT_WRITE_TIMEOUT_SECONDS=30; settings a build does not know are ignored by it).`,
    '',
    ...table,
    '',
  ].join('\n');
  process.stdout.write(out);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`hostile-figures failed: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
