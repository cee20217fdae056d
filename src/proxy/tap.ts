/**
 * The stream tap: forwards Ollama's response to the client chunk by chunk, unchanged and at once,
 * and only then shows each chunk to the protocol parser. Backpressure from a slow client pauses
 * Ollama's side rather than buffering. The one rewrite is the optional usage stripper (OpenAI
 * streams whose usage the gateway asked for on the client's behalf).
 *
 * `onDone` is called exactly once: when the response ended, when Ollama's side broke off, or when
 * the client went away.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { CallSummary, ResponseParser } from '../protocol';
import type { SseUsageStripper } from '../protocol/sse';

/** Response headers that describe one hop only; Node sets its own framing and connection headers. */
const HOP_BY_HOP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'trailer', 'upgrade']);

export type TapEnd =
  /** Ollama's response ended and was fully forwarded. */
  | 'complete'
  /** Ollama's side broke off (reset, or the gateway's idle timer cut it). */
  | 'upstream_broken'
  /** The client closed its connection before the response ended. */
  | 'client_gone';

export interface TapOptions {
  parser: ResponseParser;
  stripper?: SseUsageStripper;
  /** Send the headers at once rather than with the first body chunk (streams). */
  flushHeaders: boolean;
  onDone: (end: TapEnd, summary: CallSummary, endedAt: number) => void;
}

/** Response headers to forward, from the raw list so names keep Ollama's spelling and order. */
function forwardedHeaders(raw: string[], dropContentLength: boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (HOP_BY_HOP_RESPONSE.has(name)) continue;
    if (dropContentLength && name === 'content-length') continue;
    out.push(raw[i], raw[i + 1]);
  }
  return out;
}

export function tapResponse(proxyRes: IncomingMessage, res: ServerResponse, opts: TapOptions): void {
  const { parser, stripper } = opts;
  let finished = false;
  const done = (end: TapEnd) => {
    if (finished) return;
    finished = true;
    const now = performance.now();
    let summary: CallSummary;
    try {
      summary = parser.end(now);
    } catch {
      summary = parser.summary;
      summary.malformed++;
    }
    opts.onDone(end, summary, now);
  };

  res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, forwardedHeaders(proxyRes.rawHeaders, !!stripper));
  // A stream's headers go out now: its first body byte may be minutes away.
  if (opts.flushHeaders) res.flushHeaders();

  const resume = () => proxyRes.resume();
  proxyRes.on('data', (chunk: Buffer) => {
    const out = stripper ? stripper.push(chunk) : chunk;
    if (out.length > 0 && !res.write(out)) {
      proxyRes.pause();
      res.once('drain', resume);
    }
    try {
      parser.push(chunk, performance.now());
    } catch {
      parser.summary.malformed++;
    }
  });
  proxyRes.on('end', () => {
    if (stripper) {
      const rest = stripper.end();
      if (rest.length > 0) res.write(rest);
    }
    res.end();
    done('complete');
  });
  proxyRes.on('error', () => {});
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
