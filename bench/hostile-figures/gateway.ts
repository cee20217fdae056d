/** The gateway under test, as a child process: one build's `src/main.js`, started fresh for each probe, and what became of it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { rssBytes, freePort, waitForPort } from '../../test/helpers/procs';
import { httpReq } from './clients';
import { MiB, mb, sleep } from './common';

export interface Gw {
  child: ChildProcess;
  port: number;
  /** stdout lines kept (each cut to 2,000 characters). */
  lines: string[];
  /** stdout lines that are not JSON. */
  nonJson: number;
  /** stderr, its first 2 MB. */
  stderr: string;
  exited: boolean;
  exitInfo: string;
  exit: Promise<void>;
}

let gatewayMain = '';

/** The build to run: its `src/main.js`. */
export function setGatewayMain(main: string): void {
  gatewayMain = main;
}

/** The build being run. */
export function gatewayMainPath(): string {
  return gatewayMain;
}

export const BASE_ENV: Record<string, string> = {
  HOST: '127.0.0.1',
  LOG_LEVEL: 'INFO',
  OLLAMA_POLL_INTERVAL_SECONDS: '0',
  // The new build's settings (the old one ignores them).
  REQUEST_BODY_TIMEOUT_SECONDS: '5',
  HEADERS_TIMEOUT_SECONDS: '10',
  CLIENT_WRITE_TIMEOUT_SECONDS: '30',
  SHUTDOWN_GRACE_SECONDS: '1',
};

export async function startGw(upstream: string, extra: Record<string, string> = {}): Promise<Gw> {
  const port = await freePort();
  const child = spawn(process.execPath, [gatewayMain], {
    env: { PATH: process.env.PATH ?? '', ...BASE_ENV, OLLAMA_HOST: upstream, PORT: String(port), ...extra },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let resolveExit!: () => void;
  const gw: Gw = { child, port, lines: [], nonJson: 0, stderr: '', exited: false, exitInfo: '', exit: new Promise((r) => (resolveExit = r)) };
  child.once('exit', (code, signal) => {
    gw.exited = true;
    gw.exitInfo = signal ? `signal ${signal}` : `exit code ${code}`;
    resolveExit();
  });
  // stdout: split on newlines without rescanning what was already searched (lines can be MBs long).
  let pending: Buffer[] = [];
  const takeLine = (line: Buffer) => {
    const text = line.toString('utf8');
    if (text === '') return;
    try {
      JSON.parse(text);
    } catch {
      gw.nonJson++;
    }
    if (gw.lines.length < 20_000) gw.lines.push(text.length > 2000 ? text.slice(0, 2000) : text);
  };
  child.stdout!.on('data', (c: Buffer) => {
    let start = 0;
    let nl = c.indexOf(10, start);
    while (nl !== -1) {
      pending.push(c.subarray(start, nl));
      takeLine(Buffer.concat(pending));
      pending = [];
      start = nl + 1;
      nl = c.indexOf(10, start);
    }
    if (start < c.length) pending.push(c.subarray(start));
  });
  child.stderr!.on('data', (c: Buffer) => {
    if (gw.stderr.length < 2 * MiB) gw.stderr += c.toString('utf8');
  });
  const failed = gw.exit.then(() => {
    throw new Error(`gateway exited at start (${gw.exitInfo}): ${gw.stderr.slice(0, 500)}`);
  });
  await Promise.race([waitForPort(port, 15_000), failed]);
  failed.catch(() => undefined);
  return gw;
}

export async function stopGw(gw: Gw): Promise<void> {
  if (gw.exited) return;
  gw.child.kill('SIGKILL');
  await Promise.race([gw.exit, sleep(5000)]);
}

export function rssOf(gw: Gw): string {
  if (gw.exited) return 'crashed';
  try {
    return mb(rssBytes(gw.child.pid!));
  } catch {
    return 'crashed';
  }
}

export function crashText(gw: Gw): string {
  const lines = gw.stderr.split('\n').map((l) => l.trim());
  // The error's own line (`RangeError: …`, `Error [ERR_…]: …`) rather than the source line quoted above it.
  const first = lines.find((l) => /^\w*Error\b/.test(l)) ?? lines.find((l) => /Error|ERR_/.test(l));
  return `crashed (${gw.exitInfo}${first ? `: ${first.slice(0, 120)}` : ''})`;
}

export function statusOf(gw: Gw): string {
  return gw.exited ? crashText(gw) : 'alive';
}

export async function alive(gw: Gw): Promise<boolean> {
  if (gw.exited) return false;
  const r = await httpReq(gw.port, { path: '/healthz', timeoutMs: 3000 });
  return r.status === 200 && !gw.exited;
}
