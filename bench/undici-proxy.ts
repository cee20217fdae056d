/**
 * A second reference point for the benchmark: the least a Node.js proxy costs with undici's
 * connection pool as the upstream client instead of `http.request` (what http-proxy uses), nothing
 * measured, nothing logged. It answers "what would changing the upstream client save?".
 *
 * Usage: node dist/bench/undici-proxy.js <port> <upstream-port>
 */
import http from 'node:http';
import { Pool } from 'undici';
import { installEldProbe } from './eld-probe';

installEldProbe();
process.once('SIGTERM', () => process.exit(0));
const pool = new Pool(`http://127.0.0.1:${process.argv[3]}`, { connections: 2048, pipelining: 1 });
/** Response headers that are one hop's: Node sets its own. */
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding']);
const ignore = (): void => {};
http
  .createServer((req, res) => {
    req.on('error', ignore);
    res.on('error', ignore);
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP.has(k) && k !== 'host') headers[k] = v;
    pool
      .request({ path: req.url ?? '/', method: (req.method ?? 'GET') as 'GET', headers, body: req.method === 'GET' || req.method === 'HEAD' ? null : req })
      .then(
        ({ statusCode, headers: h, body }) => {
          const out: Record<string, string | string[]> = {};
          for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP.has(k)) out[k] = v;
          res.writeHead(statusCode, out);
          body.on('error', () => res.destroy());
          body.pipe(res);
        },
        () => {
          if (!res.headersSent) res.writeHead(502).end();
          else res.destroy();
        },
      );
  })
  .listen(Number(process.argv[2]), '127.0.0.1');
