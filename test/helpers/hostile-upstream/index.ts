/**
 * A misbehaving Ollama: a raw TCP server on 127.0.0.1 port 0 that reads each HTTP request properly
 * (head, then the body by Content-Length or chunked) and answers with a script of raw bytes, delays,
 * resets and hang-ups — the answers an HTTP library would never let a well-behaved server send.
 *
 *   const up = await new HostileUpstream().start();
 *   up.next(switchingProtocols(), { path: '/api/chat' });
 *   up.next([...streamHead('application/x-ndjson'), write(chunk('{"a":1}\n')), reset()]);
 *
 * Scripts are taken from a queue (the first entry whose `path`/`method` match), then from the
 * per-path defaults (`on`), then from `otherwise`. A script that finishes without closing the
 * connection leaves it open, and the next request on it is read and answered the same way
 * (keep-alive), as the gateway's connection pool expects.
 */
export * from './script';
export * from './server';
