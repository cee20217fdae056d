/**
 * http-proxy 1.18, the proxy of the project's stack, copies its options with `util._extend`, which
 * Node.js 22 deprecated (DEP0060): every gateway process would print a deprecation warning on its
 * first request. http-proxy keeps a reference to the function when it loads, so the same
 * operation (copy the source's own enumerable keys onto the target) is put in its place first,
 * and only then is http-proxy loaded. Its maintained rewrite, http-proxy-3, was tried as the
 * drop-in twin: it reports upstream failures and path prefixes differently enough that the
 * failure suites fail, so the original stays.
 */
import util from 'node:util';
import type HttpProxy from 'http-proxy';

Object.defineProperty(util, '_extend', {
  value: (target: object, source: object | null | undefined) => Object.assign(target, source ?? {}),
  writable: true,
  configurable: true,
  enumerable: false,
});

// Loaded only now, after the replacement above.
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const httpProxy = require('http-proxy') as typeof HttpProxy;
