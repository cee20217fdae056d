/**
 * When a client is gone. The response's `close` says it for the response being written; a
 * pipelined request waiting behind another has no socket of its own yet, so its response never
 * hears the connection close: the request's socket does. Both are watched, once per exchange, and
 * the listeners are removed when the exchange ends (a kept-alive connection carries many).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Calls `gone` once when the client's connection closes before `res` finished; returns the unsubscribe. */
export function watchClientGone(req: IncomingMessage, res: ServerResponse, gone: () => void): () => void {
  const socket = req.socket;
  let done = false;
  const onClose = () => {
    if (done || res.writableFinished) return;
    done = true;
    unwatch();
    gone();
  };
  const unwatch = () => {
    res.off('close', onClose);
    socket?.off('close', onClose);
  };
  res.once('close', onClose);
  socket?.once('close', onClose);
  if (res.destroyed || socket?.destroyed) queueMicrotask(onClose);
  return () => {
    done = true;
    unwatch();
  };
}
