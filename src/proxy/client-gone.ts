/**
 * When a client is gone. The response's `close` says it for the response being written; a
 * pipelined request waiting behind another has no socket of its own yet, so its response never
 * hears the connection close: the request's socket does. Both are watched, once per exchange, and
 * the listeners are removed when the exchange ends (a kept-alive connection carries many).
 *
 * And how a client is cut off, so that it sees its answer break rather than wait for it.
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

/**
 * Cuts the client's connection so it sees its answer break off. A pipelined response waiting behind
 * another has no socket yet: `destroy` then only marks it destroyed, and when its turn comes Node
 * writes what it had buffered and waits for an end that never comes, so the client would wait for
 * ever. Its connection is cut when that turn comes instead; the answers before it go out whole.
 */
export function cutClient(res: ServerResponse): void {
  if (!res.socket && !res.writableFinished) res.once('socket', (socket) => socket.destroy());
  res.destroy();
}
