/**
 * The stream tap: relays Ollama's response to the client chunk by chunk, unchanged and at once,
 * and only then shows each chunk to the protocol parser (instrumented calls; pass-through has
 * none). Backpressure from a slow client pauses Ollama's side rather than buffering; while paused,
 * Ollama's idle timer is suspended (its silence is the client's doing) and the client's own write
 * timeout runs instead. The one rewrite is the optional usage stripper (OpenAI streams whose usage
 * the gateway asked for on the client's behalf).
 *
 * `onDone` is called exactly once: when the response ended, when Ollama's side broke off, when the
 * client went away or stalled too long, or when relaying failed. Nothing in here throws to the
 * caller: whatever Ollama sent, an error ends this one response.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { emptySummary, type CallSummary, type ResponseParser } from '../protocol';
import type { SseUsageStripper } from '../protocol/sse-usage';
import { resumeIdleTimer, suspendIdleTimer } from './upstream';

/**
 * Response headers that describe one hop only; Node sets its own framing and connection headers
 * (so a client's `Connection: close` is honoured). `Trailer` goes too: trailers are not relayed,
 * and announcing them on a response Node does not chunk is an error.
 */
const HOP_BY_HOP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'trailer', 'upgrade']);

export type TapEnd =
  /** Ollama's response ended and was fully forwarded. */
  | 'complete'
  /** Ollama's side broke off (reset, or the gateway's idle timer cut it). */
  | 'upstream_broken'
  /** The client closed its connection before the response ended. */
  | 'client_gone'
  /** The client stopped reading for longer than its write timeout and was cut. */
  | 'client_stalled'
  /** The response could not be relayed (an exception while writing it). */
  | 'relay_failed';

export interface TapOptions {
  /** Reads the stream for measurement; absent on pass-through. */
  parser?: ResponseParser;
  stripper?: SseUsageStripper;
  /** Send the headers at once rather than with the first body chunk (streams). */
  flushHeaders: boolean;
  /**
   * Called for each chunk that carries content, after the first, with the gap (ms) since the
   * previous one: the inter-token latency a streaming client sees, measured as chunks pass.
   */
  onContentGap?: (ms: number) => void;
  /** How long the client may leave writes blocked before it is cut, in ms; 0 waits for ever. */
  clientWriteTimeoutMs: number;
  onDone: (end: TapEnd, summary: CallSummary, endedAt: number, error?: Error) => void;
}

/** Response headers to forward, from the raw list so names keep Ollama's spelling and order. */
function forwardedHeaders(raw: string[], dropContentLength: boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP_RESPONSE.has(lower)) continue;
    if (dropContentLength && lower === 'content-length') continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

export function tapResponse(proxyRes: IncomingMessage, res: ServerResponse, opts: TapOptions): void {
  const { parser, stripper, onContentGap } = opts;
  let finished = false;
  let stallTimer: NodeJS.Timeout | undefined;
  const done = (end: TapEnd, error?: Error) => {
    if (finished) return;
    finished = true;
    if (stallTimer) clearTimeout(stallTimer);
    const now = performance.now();
    let summary: CallSummary;
    if (!parser) summary = { ...emptySummary(), inspected: false };
    else {
      try {
        summary = parser.end(now);
      } catch {
        summary = parser.summary;
        summary.malformed++;
      }
    }
    opts.onDone(end, summary, now, error);
  };
  const fail = (err: unknown) => {
    proxyRes.destroy();
    if (!res.destroyed) res.destroy();
    done('relay_failed', err instanceof Error ? err : new Error(String(err)));
  };

  try {
    res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, forwardedHeaders(proxyRes.rawHeaders, !!stripper));
    // A stream's headers go out now: its first body byte may be minutes away.
    if (opts.flushHeaders) res.flushHeaders();
  } catch (err) {
    fail(err);
    return;
  }

  const onDrain = () => {
    if (stallTimer) clearTimeout(stallTimer);
    stallTimer = undefined;
    resumeIdleTimer(proxyRes);
    proxyRes.resume();
  };
  const onStalled = () => {
    res.off('drain', onDrain);
    proxyRes.destroy();
    res.destroy();
    done('client_stalled');
  };
  const holdBack = () => {
    proxyRes.pause();
    suspendIdleTimer(proxyRes);
    res.once('drain', onDrain);
    if (opts.clientWriteTimeoutMs > 0) stallTimer = setTimeout(onStalled, opts.clientWriteTimeoutMs);
  };

  proxyRes.on('data', (chunk: Buffer) => {
    try {
      const out = stripper ? stripper.push(chunk) : chunk;
      if (out.length > 0 && !res.write(out)) holdBack();
    } catch (err) {
      fail(err);
      return;
    }
    if (!parser) return;
    const s = parser.summary;
    const contentBefore = s.contentEvents;
    const previousContentAt = s.lastContentAt;
    const now = performance.now();
    try {
      parser.push(chunk, now);
    } catch {
      s.malformed++;
    }
    if (onContentGap !== undefined && s.contentEvents > contentBefore && previousContentAt !== undefined) onContentGap(now - previousContentAt);
  });
  proxyRes.on('end', () => {
    try {
      if (stripper) {
        const rest = stripper.end();
        if (rest.length > 0) res.write(rest);
      }
      res.end();
    } catch (err) {
      fail(err);
      return;
    }
    done('complete');
  });
  proxyRes.on('close', () => {
    if (finished || proxyRes.complete) return;
    // Ollama's side broke off mid-body. Cut the client's connection too, so it sees a truncated
    // response instead of one that looks complete.
    if (!res.destroyed) res.destroy();
    done('upstream_broken');
  });
  const onClientGone = () => {
    if (finished || res.writableFinished) return;
    proxyRes.destroy();
    done('client_gone');
  };
  res.on('close', onClientGone);
  // The client may have left while Ollama was preparing its answer.
  if (res.destroyed) onClientGone();
}
