/**
 * `npm run fuzz`: the long-running variant of test/integration/fuzz.test.ts. Sends random and
 * mutated requests over raw sockets to the gateway process in front of a fake Ollama, then prints
 * the books (see test/helpers/fuzz/index.ts) and exits 1 when one does not balance.
 *
 *   npm run fuzz -- --requests 50000 --seed 12345
 *   node dist/bench/fuzz.js --show 17 --seed 12345     # what request 17 of that seed is
 *   npm run fuzz -- --backends 3 --requests 5000        # the hostile-backend fuzz
 */
import { randomInt } from 'node:crypto';
import { describeRequest, formatReport, runFuzz } from '../test/helpers/fuzz';
import { formatBackendReport, runBackendFuzz } from '../test/helpers/fuzz/backends';

const HELP = `usage: npm run fuzz -- [flags]

  --requests N       requests to send (default 20000)
  --seed N           PRNG seed, 0..4294967295 (default: random, printed)
  --concurrency N    sockets at once (default 32)
  --seconds N        stop sending after N seconds; the books are still checked (default: none)
  --huge-every N     every N-th request has a 1-5.5 MB model name; 0 turns them off (default 250)
  --big-body-every N every N-th request has a 1-7 MB prompt; 0 turns them off (default 97)
  --backends N       the hostile-backend fuzz instead: N scripted backends (2-16) answer polls,
                     listings and calls with hostile JSON and broken framing, ROUTING_AFFINITY=prefix
                     (--requests, --seed, --concurrency, --seconds apply)
  --show I           print request I of the seed (bytes and notes) and exit; repeatable
  --verbose          print the client-side outcome of every kind of traffic
  --help             this text

Exits 0 when every book balances, 1 when one does not, 2 on bad flags.`;

interface Flags {
  requests: number;
  seed: number;
  concurrency: number;
  seconds?: number;
  hugeEvery: number;
  bigBodyEvery: number;
  show: number[];
  verbose: boolean;
  backends?: number;
}

function fail(msg: string): never {
  process.stderr.write(`fuzz: ${msg}\n(see --help)\n`);
  process.exit(2);
}

function parseFlags(argv: string[]): Flags {
  const f: Flags = { requests: 20_000, seed: randomInt(0, 2 ** 32 - 1), concurrency: 32, hugeEvery: 250, bigBodyEvery: 97, show: [], verbose: false };
  const int = (name: string, v: string | undefined, min: number, max: number): number => {
    if (v === undefined || !/^\d+$/.test(v)) fail(`${name} needs a whole number, got ${v === undefined ? 'nothing' : JSON.stringify(v)}`);
    const n = Number(v);
    if (n < min || n > max) fail(`${name} must be between ${min} and ${max}, got ${n}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [name, inline] = a.startsWith('--') && a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const value = () => inline ?? argv[++i];
    switch (name) {
      case '--help':
      case '-h':
        process.stdout.write(HELP + '\n');
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      case '--requests':
        f.requests = int(name, value(), 1, 10_000_000);
        break;
      case '--seed':
        f.seed = int(name, value(), 0, 2 ** 32 - 1);
        break;
      case '--concurrency':
        f.concurrency = int(name, value(), 1, 1024);
        break;
      case '--seconds':
        f.seconds = int(name, value(), 1, 7 * 24 * 3600);
        break;
      case '--huge-every':
        f.hugeEvery = int(name, value(), 0, 10_000_000);
        break;
      case '--big-body-every':
        f.bigBodyEvery = int(name, value(), 0, 10_000_000);
        break;
      case '--show':
        f.show.push(int(name, value(), 0, 10_000_000));
        break;
      case '--verbose':
        f.verbose = true;
        break;
      case '--backends':
        f.backends = int(name, value(), 2, 16);
        break;
      default:
        fail(`unknown flag ${JSON.stringify(a)}`);
    }
  }
  return f;
}

async function main(): Promise<void> {
  const f = parseFlags(process.argv.slice(2));
  if (f.show.length) {
    for (const i of f.show) process.stdout.write(describeRequest({ seed: f.seed, port: 8000, hugeEvery: f.hugeEvery, bigBodyEvery: f.bigBodyEvery }, i) + '\n');
    return;
  }
  if (f.backends !== undefined) {
    process.stdout.write(
      `hostile-backend fuzz: seed ${f.seed}, ${f.requests} requests, ${f.backends} backends (reproduce: npm run fuzz -- --backends ${f.backends} --seed ${f.seed})\n`,
    );
    const r = await runBackendFuzz({
      seed: f.seed,
      requests: f.requests,
      backends: f.backends,
      concurrency: Math.min(f.concurrency, 64),
      maxSeconds: f.seconds,
      progress: (line) => process.stdout.write(`  ${line}\n`),
    });
    process.stdout.write(formatBackendReport(r) + '\n');
    process.exit(r.books.every((b) => b.ok) ? 0 : 1);
  }
  process.stdout.write(
    `fuzz: seed ${f.seed}, ${f.requests} requests, ${f.concurrency} sockets (reproduce: npm run fuzz -- --seed ${f.seed} --requests ${f.requests})\n`,
  );
  const r = await runFuzz({
    requests: f.requests,
    seed: f.seed,
    concurrency: f.concurrency,
    maxSeconds: f.seconds,
    hugeEvery: f.hugeEvery,
    bigBodyEvery: f.bigBodyEvery,
    progress: (line) => process.stdout.write(`  ${line}\n`),
  });
  process.stdout.write(formatReport(r, f.verbose) + '\n');
  process.exit(r.books.every((b) => b.ok) ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`fuzz failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
