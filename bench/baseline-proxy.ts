/**
 * A reference point for the benchmark: the least a Node.js proxy on the same stack can cost —
 * http-proxy with a keep-alive agent, nothing measured, nothing logged.
 *
 * Usage: node dist/bench/baseline-proxy.js <port> <upstream-port>
 */
import http from 'node:http';
import { httpProxy } from '../src/proxy/http-proxy';
import { installEldProbe } from './eld-probe';

installEldProbe();
// Exits on SIGTERM (rather than dying of it) so that a `--cpu-prof` profile is written.
process.once('SIGTERM', () => process.exit(0));
const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256, scheduling: 'lifo' });
const proxy = httpProxy.createProxyServer({ target: `http://127.0.0.1:${process.argv[3]}`, agent, changeOrigin: true });
proxy.on('error', (_err, _req, res) => {
  if ('destroy' in res) res.destroy();
});
// The load generator closes its connections mid-response when a run ends: not an error here.
const ignore = (): void => {};
http
  .createServer((req, res) => {
    req.on('error', ignore);
    res.on('error', ignore);
    proxy.web(req, res);
  })
  .listen(Number(process.argv[2]), '127.0.0.1');
