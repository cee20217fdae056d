/**
 * `npm run soak`: drives the gateway (a separate process, as users run it) for a bounded time with
 * a mix of traffic against a fake Ollama that misbehaves on a schedule, then checks the books:
 *
 * - every instrumented request is counted exactly once in ollama_requests_total: per model, per
 *   endpoint (a spelled path such as `//api/chat` under its normalised endpoint), and per status and
 *   error reason where the answer is known (408 body_timeout, 503 body_buffer_full, 413,
 *   client_timeout);
 * - every client got its full response or a clean error of the expected kind (405 with `Allow` on
 *   the gateway's own paths, 408 for a stalled body, 503 when the body budget is full);
 * - nothing reached Ollama on the gateway's own paths, and spelled paths reached it normalised;
 * - no upstream request keeps running after its client left;
 * - the gateway's open sockets and active handles return to their baseline;
 * - its memory after the run stays within a margin of before (RSS and heap: before, peak, after).
 *
 * Loopback only. Prints one summary table; exits 1 when a book does not balance.
 *
 *   node dist/bench/soak.js [--seconds 180] [--concurrency 48] [--slow-streams 200]
 */
import { liveChildren } from '../test/helpers/procs';
import { numberFlag, parseFlags, stopChildrenOnInterrupt } from './cli';
import { soak } from './soak/runner';

// The soak itself is in bench/soak/: the kinds of traffic, the clients, the fake's faults, the books, the runner.

const flags = parseFlags('soak', 'drive the gateway with faults and floods for a while, then check the books', [
  { name: 'seconds', value: 'N', help: 'how long to drive it (default 180)' },
  { name: 'concurrency', value: 'N', help: 'clients at once (default 48)' },
  { name: 'slow-streams', value: 'N', help: 'slow streams per wave (default 200)' },
]);
stopChildrenOnInterrupt(liveChildren);

async function main(): Promise<void> {
  const num = (name: string, def: number) => numberFlag(flags, 'soak', name, def);
  const r = await soak({ seconds: num('seconds', 180), concurrency: num('concurrency', 48), slowStreams: num('slow-streams', 200) });
  process.stdout.write(r.text);
  process.exit(r.ok ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`soak failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
