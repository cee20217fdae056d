/**
 * A real PostgreSQL server for a test: Debian's `postgresql` binaries (initdb, pg_ctl; on PATH or
 * in /usr/lib/postgresql/<version>/bin), a cluster in a temporary folder, listening on 127.0.0.1
 * on a free port, stopped and deleted afterwards. Installed by .ci/run; outside CI a test skips
 * without it. PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { childPids, freePort } from './procs';

function binDir(): string | undefined {
  if (spawnSync('sh', ['-c', 'command -v initdb && command -v pg_ctl']).status === 0) return '';
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  for (const v of readdirSync(root).sort().reverse()) {
    const dir = path.join(root, v, 'bin');
    if (existsSync(path.join(dir, 'initdb')) && existsSync(path.join(dir, 'pg_ctl'))) return dir;
  }
  return undefined;
}

/** A skip reason when PostgreSQL or the `pg` package is missing outside CI; fails in CI. */
export function requirePostgres(): string | false {
  let missing: string | undefined;
  if (binDir() === undefined) missing = 'PostgreSQL (initdb, pg_ctl) is not installed (apt-get install postgresql)';
  else {
    try {
      require.resolve('pg');
    } catch {
      missing = 'the pg package is not installed (npm ci)';
    }
  }
  if (missing === undefined) return false;
  if (process.env.CI) assert.fail(missing);
  return missing;
}

export interface Postgres {
  url: string;
  /** Stops the server for good and deletes its cluster. */
  stop(): void;
  /** Shuts the server down (its clients' connections are closed; new ones refused), keeping its data. */
  down(): void;
  /** Starts it again after `down`, on the same port. */
  up(): void;
  /** Stops every process of the server (SIGSTOP): connections stay open, nothing is answered. */
  freeze(): void;
  /** Lets a frozen server go on (SIGCONT). */
  thaw(): void;
}

export async function startPostgres(): Promise<Postgres> {
  const bin = binDir()!;
  const tool = (name: string) => (bin === '' ? name : path.join(bin, name));
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pg-'));
  const root = process.getuid?.() === 0;
  const user = root ? (spawnSync('id', ['-u', 'postgres']).status === 0 ? 'postgres' : 'nobody') : undefined;
  if (root) chownSync(dir, Number(execFileSync('id', ['-u', user!]).toString()), Number(execFileSync('id', ['-g', user!]).toString()));
  const as = (cmd: string, args: string[]) =>
    root ? execFileSync('runuser', ['-u', user!, '--', cmd, ...args], { stdio: 'pipe' }) : execFileSync(cmd, args, { stdio: 'pipe' });
  const data = path.join(dir, 'data');
  as(tool('initdb'), ['-D', data, '-A', 'trust', '-U', 'gateway', '-E', 'UTF8', '--locale=C', '--no-sync']);
  const port = await freePort();
  const start = () =>
    as(tool('pg_ctl'), [
      '-D',
      data,
      '-l',
      path.join(dir, 'log'),
      '-w',
      '-t',
      '30',
      '-o',
      `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off`,
      'start',
    ]);
  start();
  // The postmaster (first line of postmaster.pid) and the processes it forked.
  const pids = (): number[] => {
    const main = Number(readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return [main, ...childPids(main)];
  };
  const signal = (sig: NodeJS.Signals, order: number[]) => {
    for (const pid of order) {
      try {
        process.kill(pid, sig);
      } catch {
        // It exited meanwhile.
      }
    }
  };
  return {
    url: `postgres://gateway@127.0.0.1:${port}/postgres`,
    down: () => {
      as(tool('pg_ctl'), ['-D', data, '-m', 'fast', '-w', 'stop']);
    },
    up: start,
    // The postmaster first, so it forks nothing new while its children are stopped; thawed last.
    freeze: () => signal('SIGSTOP', pids()),
    thaw: () => signal('SIGCONT', pids().reverse()),
    stop: () => {
      try {
        // A test that failed half-way may leave it frozen (a stopped process takes no signal to quit) or down.
        if (existsSync(path.join(data, 'postmaster.pid'))) {
          signal('SIGCONT', pids().reverse());
          as(tool('pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
