/** The gateway under soak: a separate process (bench/gateway-probe.js, as users run it) that reports its heap, handles and sockets over IPC. */
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort, startNode, waitForPort } from '../../test/helpers/procs';

export interface Stats {
  /** Event-loop delay since the stats before, 99th percentile and largest, ms. */
  eldP99Ms: number;
  eldMaxMs: number;
  heapUsedMb: number;
  rssMb: number;
  handles: number;
  sockets: number;
}

export interface SoakGateway {
  child: ChildProcess;
  port: number;
  url: string;
  /** Why the process is gone (`exit code …`), once it is. */
  exited(): string | undefined;
  /** Its event-loop delay since the last call, heap, RSS, handles and sockets; after a GC unless `gc` is false. */
  stats(gc?: boolean): Promise<Stats>;
}

export async function startGateway(ollama: string): Promise<SoakGateway> {
  const dist = path.resolve(__dirname, '..', '..');
  const port = await freePort();
  const child = startNode(
    path.join(dist, 'bench', 'gateway-probe.js'),
    [],
    {
      OLLAMA_HOST: ollama,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: 'ERROR',
      UPSTREAM_IDLE_TIMEOUT_SECONDS: '1',
      MAX_REQUEST_BODY_MB: '1',
      // Three held bodies of 0.9 MB leave room for everything else; a fourth does not fit.
      MAX_BUFFERED_BODY_MB: '3',
      // Every soak client is 127.0.0.1: the whole budget is this one client's share.
      MAX_BUFFERED_BODY_MB_PER_CLIENT: '3',
      REQUEST_BODY_TIMEOUT_SECONDS: '1',
      // Longer than the idle timeout: a reader that pauses 1.6 s must get its whole stream.
      CLIENT_WRITE_TIMEOUT_SECONDS: '3',
      OLLAMA_POLL_INTERVAL_SECONDS: '0',
      NODE_OPTIONS: '--expose-gc',
    },
    true,
  );
  // A gateway that dies mid-run ends the soak at once, saying so (its stderr is inherited).
  let exited: string | undefined;
  child.once('exit', (code, signal) => (exited = `exit code ${code ?? signal}`));
  child.on('error', () => {});
  const stats = (gc = true): Promise<Stats> =>
    new Promise((resolve, reject) => {
      if (exited !== undefined || !child.connected) return reject(new Error(`the gateway process is gone (${exited ?? 'IPC closed'}); its stderr is above`));
      const onExit = () => reject(new Error(`the gateway process exited (${exited ?? '?'}) while asked for its stats; its stderr is above`));
      child.once('exit', onExit);
      child.once('message', (m) => {
        child.off('exit', onExit);
        resolve(m as Stats);
      });
      child.send({ type: 'stats', gc });
    });
  await waitForPort(port);
  return { child, port, url: `http://127.0.0.1:${port}`, exited: () => exited, stats };
}
