/**
 * Probes of what every client shares: the request-body memory (slow uploads from one address), the
 * log (a stdout nobody reads) and the connections (idle sockets up to the open-files limit). Each
 * starts its own gateway, since two of them need the process set up differently (its stdout never
 * read, a low `ulimit -n`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import type { FakeOllama } from '../../test/helpers/fake-ollama';
import { freePort, waitForPort } from '../../test/helpers/procs';
import { RawConnection, rawRequest } from '../../test/helpers/raw-client';
import { httpReq } from './clients';
import { MiB, sleep, type Row } from './common';
import { BASE_ENV, gatewayMainPath, startGw, stopGw } from './gateway';

const CHAT = '{"model":"llama3.2","stream":false}';

/**
 * 5 chunked uploads from 127.0.0.2 that fill the 16 MiB budget to within 20 bytes, then send a
 * byte every 4 s (REQUEST_BODY_TIMEOUT_SECONDS is 5); 50 calls from 127.0.0.1 beside them.
 */
export async function probeSlowUploaders(fake: FakeOllama): Promise<Row[]> {
  const gw = await startGw(fake.origin, { MAX_BUFFERED_BODY_MB: '16', MAX_REQUEST_BODY_MB: '4' });
  const uploads: RawConnection[] = [];
  let trickling = true;
  try {
    const start = Buffer.from('{"model":"llama3.2","prompt":"');
    const piece = Buffer.concat([start, Buffer.alloc(Math.floor((16 * MiB) / 5) - 4 - start.length, 'x')]);
    for (let i = 0; i < 5; i++) {
      const c = await RawConnection.open(gw.port, 2000, '127.0.0.2');
      uploads.push(c);
      const head = rawRequest('POST', '/api/generate', { headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } });
      await c.send(Buffer.concat([head, Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]));
    }
    void (async () => {
      while (trickling) {
        await sleep(4000);
        for (const c of uploads) if (trickling && !c.closed) await c.send('1\r\nx\r\n');
      }
    })();
    await sleep(500);
    let refused = 0;
    for (let i = 0; i < 50; i++) {
      const r = await httpReq(gw.port, { method: 'POST', path: '/api/chat', body: CHAT, timeoutMs: 5000 });
      if (r.status !== 200) refused++;
      await sleep(100);
    }
    const uploadsRefused = uploads.filter((c) => c.responses()[0]?.status === 503).length;
    return [
      { figure: 'calls from another address refused while the uploads hold (50 over 5 s)', value: `${refused} of 50` },
      { figure: "the uploads' own refusals", value: `${uploadsRefused} of 5` },
    ];
  } finally {
    trickling = false;
    for (const c of uploads) c.destroy();
    await stopGw(gw);
  }
}

/** A gateway child under a lower `ulimit -n` (not `startGw`'s). */
function spawnLimited(upstream: string, port: number, fdLimit: number): ChildProcess {
  const env = { PATH: process.env.PATH ?? '', ...BASE_ENV, OLLAMA_HOST: upstream, PORT: String(port) };
  return spawn('/bin/sh', ['-c', `ulimit -n ${fdLimit} && exec "$0" "$1"`, process.execPath, gatewayMainPath()], {
    env,
    stdio: ['ignore', 'ignore', 'ignore'],
  });
}

interface ProbeStats {
  heapUsedMb: number;
  rssMb: number;
}

/** The heap (after a GC) and RSS of a gateway run under bench/gateway-probe.js. */
function statsOf(child: ChildProcess): Promise<ProbeStats> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as ProbeStats));
    child.send({ type: 'stats', gc: true });
  });
}

/**
 * 40,000 calls (20 at a time) to a gateway whose stdout pipe nobody reads: its heap after a GC and
 * RSS after a warm-up and after the calls. Run under the build's bench/gateway-probe.js (the
 * gateway as `npm start` runs it, answering for its heap over IPC).
 */
export async function probeStuckStdout(fake: FakeOllama): Promise<Row[]> {
  const port = await freePort();
  const probe = path.resolve(path.dirname(gatewayMainPath()), '..', 'bench', 'gateway-probe.js');
  const env = { PATH: process.env.PATH ?? '', ...BASE_ENV, OLLAMA_HOST: fake.origin, PORT: String(port), NODE_OPTIONS: '--expose-gc' };
  // stdout is a pipe this process never reads.
  const child = spawn(process.execPath, [probe], { env, stdio: ['ignore', 'pipe', 'ignore', 'ipc'] });
  try {
    await waitForPort(port, 15_000);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 20 });
    const calls = async (n: number) => {
      let failed = 0;
      for (let i = 0; i < n; i += 20) {
        const rs = await Promise.all(
          Array.from({ length: 20 }, () => httpReq(port, { method: 'POST', path: '/api/chat', body: CHAT, timeoutMs: 10_000, agent })),
        );
        failed += rs.filter((r) => r.status !== 200).length;
      }
      return failed;
    };
    await calls(2000);
    const before = await statsOf(child);
    const failed = await calls(40_000);
    const after = await statsOf(child);
    const m = await httpReq(port, { path: '/metrics', timeoutMs: 10_000, keepBody: true });
    const dropped = /^ollama_gateway_log_lines_dropped_total (\S+)/m.exec(m.body.toString())?.[1] ?? 'not exported';
    agent.destroy();
    const mbOf = (x: number) => `${x.toFixed(1)} MB`;
    return [
      { figure: 'heap after GC, after 2,000 calls → after 40,000 more', value: `${mbOf(before.heapUsedMb)} → ${mbOf(after.heapUsedMb)}` },
      { figure: 'RSS, the same', value: `${mbOf(before.rssMb)} → ${mbOf(after.rssMb)}` },
      { figure: 'calls failed', value: String(failed) },
      { figure: 'log lines dropped (counter)', value: dropped },
    ];
  } finally {
    child.kill('SIGKILL');
  }
}

/** `ulimit -n 512`; 700 idle connections from seven addresses; then /healthz and a call from 127.0.0.1. */
export async function probeConnectionExhaustion(fake: FakeOllama): Promise<Row[]> {
  const port = await freePort();
  const child = spawnLimited(fake.origin, port, 512);
  const idle: RawConnection[] = [];
  try {
    await waitForPort(port, 15_000);
    let opened = 0;
    for (let a = 2; a <= 8; a++) {
      for (let i = 0; i < 100; i++) {
        const c = await RawConnection.open(port, 1000, `127.0.0.${a}`).catch(() => undefined);
        if (c) {
          idle.push(c);
          opened++;
        }
      }
    }
    await sleep(500);
    let healthy = 0;
    for (let i = 0; i < 10; i++) {
      const r = await httpReq(port, { path: '/healthz', timeoutMs: 2000 });
      if (r.status === 200) healthy++;
    }
    const call = await httpReq(port, { method: 'POST', path: '/api/chat', body: CHAT, timeoutMs: 2000 });
    const stillOpen = idle.filter((c) => !c.closed).length;
    return [
      { figure: 'idle connections opened (of 700) / still open at the end', value: `${opened} / ${stillOpen}` },
      { figure: '/healthz answered 200 (of 10, 2 s each)', value: String(healthy) },
      { figure: 'an LLM call meanwhile', value: call.status === undefined ? (call.error ?? 'no answer') : String(call.status) },
    ];
  } finally {
    for (const c of idle) c.destroy();
    child.kill('SIGKILL');
  }
}
