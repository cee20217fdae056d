/**
 * The stream tap: relays Ollama's response to the client chunk by chunk, unchanged and at once,
 * and only then shows each chunk to the protocol parser (instrumented calls; pass-through has
 * none). Backpressure from a slow client pauses Ollama's side rather than buffering; while paused,
 * Ollama's idle timer is suspended (its silence is the client's doing) and the client's own write
 * timeout runs instead. The one rewrite is the optional usage stripper (OpenAI streams whose usage
 * the gateway asked for on the client's behalf).
 *
 * `onDone` is called exactly once: when the response ended, when Ollama's side broke off, when the
 * client went away or stalled too long, or when relaying failed. A client that goes away once the
 * stream's final event has passed to it (`"done":true`, `[DONE]`, `response.completed`,
 * `message_stop`, or a final error) leaves a complete call: real clients close as soon as they see
 * that event, and Go writes the chunked terminator only after its handler returns, a moment later.
 * Then the call ends `complete` at once, and the rest of Ollama's body (its terminator) is read and
 * dropped, so the connection to Ollama is not torn down and can be used again. Nothing in here throws to the
 * caller: whatever Ollama sent, an error ends this one response.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { emptySummary, type CallSummary, type ResponseParser } from '../protocol';
import type { SseUsageStripper } from '../protocol/sse-usage';
import { contentEncoding, decodedPastBound, decoderFor, MAX_DECODE_RATIO, type Decoder } from './decode';
import { cutClient, watchClientGone } from './client-gone';
import { cutForSilence, idleTimeoutOf, resumeIdleTimer, suspendIdleTimer } from './upstream';

/**
 * The most bytes read and dropped after a client left at the final event. Only the chunked
 * terminator (5 bytes) is expected; an upstream that goes on past this is cut.
 */
export const MAX_DRAIN_BYTES = 64 * 1024;

/**
 * The longest the gateway reads after a client left at the final event. Ollama writes its
 * terminator at once; an upstream that trickles past this is cut, so no connection to Ollama is
 * held open by a drain (those connections are outside MAX_CONNECTIONS).
 */
export const MAX_DRAIN_MS = 2000;

/**
 * Response headers that describe one hop only; Node sets its own framing and connection headers
 * (so a client's `Connection: close` is honoured). `Trailer` goes too: trailers are not relayed,
 * and announcing them on a response Node does not chunk is an error.
 */
const HOP_BY_HOP_RESPONSE = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'trailer', 'upgrade']);

/** The size of the pieces a compressed response is given to its decoder in. */
const DECODER_PIECE_BYTES = 1024;

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
  /** Headers the gateway adds to Ollama's (name, value, …), after them. */
  extraHeaders?: readonly string[];
  /**
   * Called for each chunk that carries content, after the first, with the gap (ms) since the
   * previous one: the inter-token latency a streaming client sees, measured as chunks pass.
   */
  onContentGap?: (ms: number) => void;
  /** How long the client may leave writes blocked before it is cut, in ms; 0 waits for ever. */
  clientWriteTimeoutMs: number;
  onDone: (end: TapEnd, summary: CallSummary, endedAt: number, error?: Error) => void;
}

/**
 * Response headers to forward, from the raw list so names keep Ollama's spelling and order. A body
 * the gateway rewrites loses its length; one it relays decoded loses its encoding too.
 */
function forwardedHeaders(raw: string[], dropContentLength: boolean, dropEncoding: boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP_RESPONSE.has(lower)) continue;
    if (dropContentLength && lower === 'content-length') continue;
    if (dropEncoding && lower === 'content-encoding') continue;
    out.push(name, raw[i + 1]!);
  }
  return out;
}

/** Relays `proxyRes` to `res` and measures it; see the module comment. */
export function tapResponse(proxyRes: IncomingMessage, res: ServerResponse, opts: TapOptions): void {
  new Tap(proxyRes, res, opts).start();
}

class Tap {
  private finished = false;
  private stallTimer: NodeJS.Timeout | undefined;
  /** Set for a compressed response: the parser reads through it. */
  private readonly decoder: Decoder | undefined;
  /** Whether the client gets the decoded stream (compressed, and rewritten by the stripper). */
  private readonly relayDecoded: boolean;
  private decodedBytes = 0;
  private encodedBytes = 0;
  /** The decoder's input is full: Ollama's side waits for it to drain. */
  private decoderFull = false;
  /** Decoding stopped at its bound: nothing more is decoded, and its end is not waited for. */
  private decodeStopped = false;
  /** Set once the client's response was ended (the measurement may still be finishing). */
  private relayEnded = false;
  private unwatch: (() => void) | undefined;
  /**
   * Ollama's silence on a response with neither a length nor chunks (read until the connection
   * closes), which the socket's idle timer does not cover once the head has arrived.
   */
  private readonly unframedIdle: NodeJS.Timeout | undefined;
  private paused = false;
  private headTimer: NodeJS.Immediate | undefined;
  /** Whether a body chunk was written to the client (the headers went with the first). */
  private wrote = false;
  /** The client left at the final event: the rest of Ollama's body is read and dropped. */
  private draining = false;
  private drainedBytes = 0;

  constructor(
    private readonly proxyRes: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly opts: TapOptions,
  ) {
    // A compressed response (only a proxy in front of Ollama sends one) is measured decoded. When
    // the stream must also be rewritten (the usage stripper), the decoded stream is what is relayed.
    const encoding = opts.parser ? contentEncoding(proxyRes.headers['content-encoding']) : '';
    this.decoder = encoding !== '' ? decoderFor(encoding) : undefined;
    // An encoding Node cannot read is counted, not silently missed.
    if (opts.parser && encoding !== '' && !this.decoder) opts.parser.summary.malformed++;
    this.relayDecoded = this.decoder !== undefined && opts.stripper !== undefined;
    const idleMs = idleTimeoutOf(proxyRes);
    const unframed = proxyRes.headers['content-length'] === undefined && proxyRes.headers['transfer-encoding'] === undefined;
    if (unframed && idleMs > 0) {
      this.unframedIdle = setTimeout(() => {
        // While the client holds the stream back, the silence is the client's.
        if (this.paused) this.unframedIdle?.refresh();
        else cutForSilence(proxyRes);
      }, idleMs);
      this.unframedIdle.unref();
    }
  }

  start(): void {
    const { proxyRes, res, opts, decoder } = this;
    try {
      const headers = forwardedHeaders(proxyRes.rawHeaders, !!opts.stripper, this.relayDecoded);
      if (opts.extraHeaders) headers.push(...opts.extraHeaders);
      res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, headers);
      // A stream's headers go out at once: its first body byte may be minutes away. "At once" is
      // the end of this turn of the event loop: a first chunk that came with the head (as it
      // usually does) takes the headers with it in one write, rather than one write each.
      if (opts.flushHeaders) this.headTimer = setImmediate(this.flushHead);
    } catch (err) {
      this.fail(err);
      return;
    }
    if (decoder) {
      decoder.on('data', (d: Buffer) => this.decoded(d));
      decoder.on('error', (err) => this.stopDecoding(err));
      // Ollama's side waits while the decoder's input is full, as it waits for a slow client: the
      // decoded bytes are made only as fast as they are taken.
      decoder.on('drain', this.onDecoderDrain);
      proxyRes.on('data', (chunk: Buffer) => {
        if (this.draining) {
          this.drained(chunk);
          return;
        }
        this.encodedBytes += chunk.length;
        if (!this.relayDecoded && !this.relay(chunk)) return;
        if (this.decodeStopped) return;
        // zlib decodes a written piece whole whether or not its output is taken; in small pieces
        // the output waiting on a client that does not read is bounded too (one piece of a bomb
        // decodes to at most ~1,000 times its size).
        let room = true;
        for (let at = 0; at < chunk.length; at += DECODER_PIECE_BYTES) room = decoder.write(chunk.subarray(at, at + DECODER_PIECE_BYTES));
        if (!room) {
          this.decoderFull = true;
          proxyRes.pause();
        }
      });
      proxyRes.on('end', () => {
        if (this.draining) return;
        // The client has all it was sent; the measurement completes once the decoder has given
        // out everything (or failed), which may be after the client has gone.
        if (!this.relayDecoded) this.endRelay();
        if (this.decodeStopped) this.complete();
        else decoder.once('close', () => this.complete()).end();
      });
    } else {
      proxyRes.on('data', (chunk: Buffer) => {
        if (this.draining) this.drained(chunk);
        else if (this.relay(chunk)) this.measure(chunk);
      });
      proxyRes.on('end', () => this.complete());
    }
    proxyRes.on('close', () => {
      // (A response read until the connection closes is `complete` when cut, but never ended.)
      if (this.finished || (proxyRes.complete && proxyRes.readableEnded)) return;
      // Ollama's side broke off after its final event had passed to the client (only its framing's
      // end was missing): the call is complete. The client has every byte of the answer, but its
      // response cannot be ended as Ollama framed it, so its connection is cut rather than reused.
      if (this.finalEventPassed) {
        decoder?.destroy();
        cutClient(res);
        this.done('complete');
        return;
      }
      // Ollama's side broke off mid-body. Cut the client's connection too, so it sees a truncated
      // response instead of one that looks complete.
      decoder?.destroy();
      cutClient(res);
      this.done('upstream_broken');
    });
    // The client may have left while Ollama was preparing its answer (then this fires at once).
    this.unwatch = watchClientGone(res.req, res, this.onClientGone);
    this.unframedIdle?.refresh();
  }

  private readonly flushHead = (): void => {
    this.headTimer = undefined;
    // (`headersSent` is true from writeHead on, written or not: the tap knows whether it wrote.)
    if (this.finished || this.wrote || this.relayEnded || this.res.destroyed) return;
    try {
      this.res.flushHeaders();
    } catch (err) {
      this.fail(err);
    }
  };

  /** Writes a chunk (through the stripper, if any) to the client; false when that failed. */
  private relay(chunk: Buffer): boolean {
    this.unframedIdle?.refresh();
    try {
      const out = this.opts.stripper ? this.opts.stripper.push(chunk) : chunk;
      if (out.length > 0) {
        this.wrote = true;
        if (!this.res.write(out)) this.holdBack();
      }
      return true;
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  private decoded(d: Buffer): void {
    if (this.decodeStopped) return;
    this.decodedBytes += d.length;
    if (decodedPastBound(this.decodedBytes, this.encodedBytes)) {
      // A compression bomb, or a stream past the total: decoding stops here. A client given the
      // encoded bytes still gets them all (the call is recorded as a stream error, its figures
      // unread); one given the decoded stream cannot get the rest, so its stream is cut.
      this.stopDecoding(new Error(`the decoded response grew past ${MAX_DECODE_RATIO} times its encoded size, or past its cap; cut`));
      return;
    }
    if (!this.relayDecoded || this.relay(d)) this.measure(d);
  }

  /** Nothing more is decoded (past the bound, or the encoded bytes are broken). */
  private stopDecoding(err: Error): void {
    if (this.decodeStopped) return;
    this.decodeStopped = true;
    this.malformed();
    this.decoder?.destroy();
    if (this.relayDecoded) this.fail(err);
    else this.onDecoderDrain();
  }

  private readonly onDecoderDrain = (): void => {
    if (!this.decoderFull) return;
    this.decoderFull = false;
    if (!this.paused && !this.finished) this.proxyRes.resume();
  };

  /** Shows a chunk to the parser, and reports the gap since the previous content chunk. */
  private measure(chunk: Buffer): void {
    const { parser, onContentGap } = this.opts;
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
  }

  private malformed(): void {
    if (this.opts.parser) this.opts.parser.summary.malformed++;
  }

  /** Whether the parser has seen the stream's last word: its final event, or a final error. */
  private get finalEventPassed(): boolean {
    const s = this.opts.parser?.summary;
    return s !== undefined && (s.complete || s.errorMessage !== undefined);
  }

  /** The client's writes are blocked: pause Ollama's side, and time the client instead of Ollama. */
  private holdBack(): void {
    if (this.paused) return;
    this.paused = true;
    this.proxyRes.pause();
    // What the decoder still holds waits too: its output goes nowhere until the client drains.
    if (this.relayDecoded) this.decoder?.pause();
    suspendIdleTimer(this.proxyRes);
    this.res.once('drain', this.onDrain);
    if (this.opts.clientWriteTimeoutMs > 0) this.stallTimer = setTimeout(this.onStalled, this.opts.clientWriteTimeoutMs);
  }

  private readonly onDrain = (): void => {
    this.paused = false;
    this.unframedIdle?.refresh();
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    resumeIdleTimer(this.proxyRes);
    if (this.relayDecoded) this.decoder?.resume();
    if (!this.decoderFull) this.proxyRes.resume();
  };

  private readonly onStalled = (): void => {
    this.res.off('drain', this.onDrain);
    this.decoder?.destroy();
    this.proxyRes.destroy();
    cutClient(this.res);
    this.done('client_stalled');
  };

  private readonly onClientGone = (): void => {
    if (this.finished || this.res.writableFinished || this.relayEnded) return;
    if (this.finalEventPassed) {
      this.drainAfterFinal();
      return;
    }
    this.decoder?.destroy();
    this.proxyRes.destroy();
    this.done('client_gone');
  };

  /**
   * The client left after the final event: the call is complete. What is left of Ollama's body is
   * read and dropped (bounded), so the connection to Ollama ends whole; an unframed body ends only
   * with its connection, which is closed instead.
   */
  private drainAfterFinal(): void {
    const { proxyRes } = this;
    this.relayEnded = true;
    this.draining = true;
    this.decoder?.destroy();
    this.res.off('drain', this.onDrain);
    if (this.unframedIdle) proxyRes.destroy();
    else {
      const deadline = setTimeout(() => proxyRes.destroy(), MAX_DRAIN_MS);
      deadline.unref();
      proxyRes.once('close', () => clearTimeout(deadline));
      if (this.paused) {
        this.paused = false;
        resumeIdleTimer(proxyRes);
        proxyRes.resume();
      }
    }
    this.done('complete');
  }

  /** Drops a chunk read after the client left at the final event; cuts Ollama's side past the bound. */
  private drained(chunk: Buffer): void {
    this.drainedBytes += chunk.length;
    if (this.drainedBytes > MAX_DRAIN_BYTES) this.proxyRes.destroy();
  }

  /** Ends the client's response (what the stripper still holds first); false when that failed. */
  private endRelay(): boolean {
    if (this.relayEnded) return true;
    this.relayEnded = true;
    try {
      const rest = this.opts.stripper?.end();
      if (rest && rest.length > 0) this.res.write(rest);
      this.res.end();
      return true;
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  private complete(): void {
    if (this.endRelay()) this.done('complete');
  }

  private fail(err: unknown): void {
    this.decoder?.destroy();
    this.proxyRes.destroy();
    cutClient(this.res);
    this.done('relay_failed', err instanceof Error ? err : new Error(String(err)));
  }

  private done(end: TapEnd, error?: Error): void {
    if (this.finished) return;
    this.finished = true;
    this.unwatch?.();
    if (this.headTimer) clearImmediate(this.headTimer);
    if (this.stallTimer) clearTimeout(this.stallTimer);
    if (this.unframedIdle) clearTimeout(this.unframedIdle);
    const now = performance.now();
    const parser = this.opts.parser;
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
    this.opts.onDone(end, summary, now, error);
  }
}
