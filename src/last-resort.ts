/**
 * The process-wide last resort: an error no handler caught (an `unhandledRejection`, an
 * `uncaughtException`) is logged as one structured line and ends the one request it happened in,
 * never the process. Node's default would end the process, and with it every other user's calls.
 *
 * Each request is dispatched inside an AsyncLocalStorage scope, so the error's own async context
 * names its request (both events are emitted in the context of the code that failed). That
 * request's state is unknown after the error, so it is ended outright: a 500 in its API's shape if
 * nothing was sent yet, else its connection is cut, so the client never takes a half answer for a
 * whole one. An error outside any request (a poll, an export) is logged and the process goes on:
 * those loops run on timers and start afresh at their next tick, and ending the process would turn
 * one peer's bad answer into an outage for everyone.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { loggedPath, type Logger } from './logger';
import { apiOf, sendJsonError } from './proxy/errors';

interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
}

const exchanges = new AsyncLocalStorage<Exchange>();

/** Runs `dispatch` so that an error nothing caught inside it ends this request. */
export function withinRequest(req: IncomingMessage, res: ServerResponse, dispatch: () => void): void {
  exchanges.run({ req, res }, dispatch);
}

/** Ends the request the current async context belongs to, if any; returns it. */
function endCurrentRequest(): Exchange | undefined {
  const ex = exchanges.getStore();
  if (!ex) return undefined;
  const { req, res } = ex;
  // A request already answered in full is not this error's to end (its connection may carry the next).
  if (res.writableFinished) return ex;
  try {
    if (!res.headersSent && !res.destroyed) sendJsonError(res, apiOf(req.url ?? '/'), 500, 'internal error in the gateway', { connection: 'close' });
    else res.destroy();
  } catch {
    res.destroy();
  }
  return ex;
}

/** Installs the last-resort handlers; once per process. */
export function installLastResort(log: Logger): void {
  const handle = (kind: 'unhandled_rejection' | 'uncaught_exception', reason: unknown): void => {
    try {
      const ex = endCurrentRequest();
      const err = reason instanceof Error ? reason : undefined;
      log.error(
        {
          kind,
          error: err?.message ?? String(reason).slice(0, 1024),
          stack: err?.stack,
          method: ex?.req.method,
          path: ex ? loggedPath(ex.req) : undefined,
        },
        ex ? 'an error nothing caught ended its request; the gateway goes on' : 'an error nothing caught; the gateway goes on',
      );
    } catch {
      // The last resort must not throw itself: that would end the process.
    }
  };
  process.on('unhandledRejection', (reason) => handle('unhandled_rejection', reason));
  process.on('uncaughtException', (err) => handle('uncaught_exception', err));
}
