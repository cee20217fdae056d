/**
 * Runs the gateway as users do — `node dist/src/main.js`, what `npm start` runs — and reads its
 * JSON log lines.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

import { freePort, tracked } from './procs';

export { freePort } from './procs';

export const MAIN = path.resolve(__dirname, '..', '..', 'src', 'main.js');

export interface GatewayProcess {
  child: ChildProcess;
  lines: Record<string, unknown>[];
  stderr: string;
  exit: Promise<number | null>;
  /** Resolves with the first log line whose `msg` is `msg`. */
  waitFor(msg: string, ms?: number): Promise<Record<string, unknown>>;
}

export function runGateway(env: Record<string, string>): GatewayProcess {
  const child = tracked(spawn(process.execPath, [MAIN], { env: { PATH: process.env.PATH, LEDGER_URL: 'off', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
  const p: GatewayProcess = {
    child,
    lines: [],
    stderr: '',
    exit: new Promise((r) => child.once('exit', (code) => r(code))),
    waitFor: async (msg, ms = 5000) => {
      const until = Date.now() + ms;
      for (;;) {
        const line = p.lines.find((l) => l.msg === msg);
        if (line) return line;
        if (Date.now() > until) assert.fail(`no log line "${msg}"; got ${JSON.stringify(p.lines)} ${p.stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) !== -1) {
      p.lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
      buf = buf.slice(nl + 1);
    }
  });
  child.stderr!.on('data', (c: Buffer) => (p.stderr += c.toString()));
  return p;
}

export interface WorkersProcess {
  gw: GatewayProcess;
  port: number;
  url: string;
  /** SIGTERM, and the exit. */
  stop(): Promise<void>;
}

/**
 * The gateway process with GATEWAY_WORKERS=`workers` in front of the Ollama at `ollamaHost`, on
 * 127.0.0.1, resolved once every worker listens (the primary's one `gateway listening` line).
 */
export async function runWorkers(ollamaHost: string, workers: number, env: Record<string, string> = {}): Promise<WorkersProcess> {
  const port = await freePort();
  const gw = runGateway({ OLLAMA_HOST: ollamaHost, HOST: '127.0.0.1', PORT: String(port), GATEWAY_WORKERS: String(workers), LOG_LEVEL: 'info', ...env });
  await gw.waitFor('gateway listening', 15_000);
  return {
    gw,
    port,
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      gw.child.kill('SIGTERM');
      await gw.exit;
    },
  };
}
