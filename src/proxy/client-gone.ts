/**
 * When a client is gone. The response's `close` says it for the response being written; a
 * pipelined request waiting behind another has no socket of its own yet, so its response never
 * hears the connection close: the request's socket does. Both are watched, once per exchange, and
 * the watch is removed when the exchange ends (a kept-alive connection carries many).
 *
 * The socket gets one `close` listener however many exchanges watch it: a connection may have
 * up to 16 pipelined requests waiting, each watched by the call and by its upstream request, and a
 * listener each would pile up past Node's MaxListeners (a warning on stderr) for no purpose.
 *
 * And how a client is cut off, so that it sees its answer break rather than wait for it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

const WATCHERS = Symbol('ollama-gateway.client-gone');

type Watched = Socket & { [WATCHERS]?: Set<() => void> };

/** Adds `fn` to the one set the socket's single `close` listener calls; returns its removal. */
function onSocketClose(socket: Watched, fn: () => void): () => void {
  let set = socket[WATCHERS];
  if (!set) {
    const watchers = new Set<() => void>();
    set = socket[WATCHERS] = watchers;
    socket.once('close', () => {
      for (const w of [...watchers]) w();
      watchers.clear();
    });
  }
  set.add(fn);
  return () => set.delete(fn);
}

/** Calls `gone` once when the client's connection closes before `res` finished; returns the unsubscribe. */
export function watchClientGone(req: IncomingMessage, res: ServerResponse, gone: () => void): () => void {
  const socket = req.socket as Watched | null;
  let done = false;
  let offSocket: (() => void) | undefined;
  const onClose = () => {
    if (done || res.writableFinished) return;
    done = true;
    unwatch();
    gone();
  };
  const unwatch = () => {
    res.off('close', onClose);
    offSocket?.();
  };
  res.once('close', onClose);
  if (socket && !socket.destroyed) offSocket = onSocketClose(socket, onClose);
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
