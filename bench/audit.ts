/**
 * `npm run audit`: holds the gateway's three books — `/metrics`, the console API and the access log
 * — to the ground truth of a scripted upstream, call for call and token for token.
 *
 * Two scripted backends (`OLLAMA_HOST` a list of two; the second dies partway, cutting its streams
 * and refusing connections after) answer a seeded mix of every metered API family (native chat,
 * generate, embed; OpenAI chat, completions, embeddings, Responses; Anthropic messages), streamed
 * and not, with tokens in, cached and out, durations, and endings (complete, error line, a stream
 * stopped short, a reset, 4xx/5xx) that the script decides and the upstream writes down as it
 * serves. Clients read to the end, close right at the final event (before the chunked terminator,
 * which the upstream writes a moment later), abort mid-stream, pipeline two calls on one
 * connection, retry after a failure. With `--workers N` (N > 1) one worker is killed with SIGKILL
 * mid-run while slow streams are in flight.
 *
 * What "equal" means for each behaviour is written at the top of test/helpers/audit/books.ts: in
 * short, a call whose final event was written is a success with the tokens it reported whatever the
 * client did next; a client that left mid-stream is `client_cancelled` with no tokens; a stream the
 * upstream cut is `stream_error`; a failover is one call, a retry two; a call in flight on a killed
 * worker is in no book.
 *
 * Prints the books side by side (truth | metrics | console | log | difference) and the calls that
 * do not match; exits 1 when any book differs from the truth.
 *
 *   node .build/bench/audit.js [--calls 400] [--seed 1] [--workers 1]
 */
import { liveChildren } from '../test/helpers/procs';
import { runAudit } from '../test/helpers/audit/run';
import { numberFlag, parseFlags, stopChildrenOnInterrupt } from './cli';

const flags = parseFlags('audit', "hold the gateway's /metrics, console and access log to a scripted upstream's ground truth", [
  { name: 'calls', value: 'N', help: 'calls in the mix (default 400)' },
  { name: 'seed', value: 'S', help: 'the seed of the mix (default 1)' },
  { name: 'workers', value: 'N', help: 'GATEWAY_WORKERS; above 1, one worker is killed mid-run (default 1)' },
  { name: 'lanes', value: 'N', help: 'calls at once (default 6)' },
]);
stopChildrenOnInterrupt(liveChildren);

async function main(): Promise<void> {
  const num = (name: string, def: number) => numberFlag(flags, 'audit', name, def);
  const r = await runAudit({ calls: num('calls', 400), seed: num('seed', 1), workers: num('workers', 1), lanes: num('lanes', 6) });
  process.stdout.write(r.text);
  process.stdout.write(r.ok ? '\nThe books balance.\n' : '\nThe books do NOT balance.\n');
  process.exit(r.ok ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`audit failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
