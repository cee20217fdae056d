/**
 * Reads an LLM request body into memory, bounded: the body's own size (MAX_REQUEST_BODY_MB), the
 * memory all bodies being held may take together (MAX_BUFFERED_BODY_MB) and the share of it the
 * bodies of one client address may take (MAX_BUFFERED_BODY_MB_PER_CLIENT), the silence the gateway
 * waits through while a body arrives (REQUEST_BODY_TIMEOUT_SECONDS), and the time the whole body
 * may take (REQUEST_BODY_DEADLINE_SECONDS). Silence alone is not enough: a body that sends a byte
 * every few seconds is never silent, and could hold its memory for as long as its sender likes.
 * Used only on the instrumented LLM endpoints, whose bodies are JSON; every other path streams its
 * body straight through without holding it.
 */
import type { IncomingMessage } from 'node:http';
import { clientKey } from '../client-address';
import { joinPieces } from '../protocol/bytes';

export type BodyFailure = 'too_large' | 'budget' | 'timeout' | 'aborted';

export class BodyError extends Error {
  override name = 'BodyError';
  constructor(
    readonly failure: BodyFailure,
    message: string,
    /** The rest of the body is being read and discarded, so the connection can carry the answer. */
    readonly drained = false,
  ) {
    super(message);
  }
}

/**
 * A body over the limit whose remaining length is known and at most this is read and thrown
 * away rather than left unread: closing a connection the client is still writing to resets it,
 * and the client may lose the 413 it was sent. Longer bodies, or chunked ones, close the connection.
 */
const DRAIN_MAX_BYTES = 16 * 1024 * 1024;
/** The longest a refused body is drained before its connection is closed. */
const DRAIN_MS = 2000;

/** Starts discarding the rest of `req`'s body, when that is bounded; whether it does. */
function drain(req: IncomingMessage, declared: number, received: number): boolean {
  if (!(declared > 0) || declared - received > DRAIN_MAX_BYTES) return false;
  req.resume();
  const timer = setTimeout(() => {
    if (!req.complete) req.socket?.destroy();
  }, DRAIN_MS);
  timer.unref();
  req.once('end', () => clearTimeout(timer));
  return true;
}

function mib(n: number): string {
  const v = n / (1024 * 1024);
  return `${Number.isInteger(v) ? v : v.toFixed(3)} MiB`;
}

/** Why a reservation failed: the whole budget is taken, or this client's share of it. */
export type BudgetRefusal = 'total' | 'client';

/**
 * The memory held for request bodies, across all requests. A body reserves its bytes as they
 * arrive and gives them back through its lease; a reservation that would pass the budget fails,
 * and so does one that would pass its client's share, so that no one client (however many
 * connections it opens) can take the whole budget from the others.
 */
export class BodyBudget {
  private used = 0;
  /** Bytes held per client; a client holding nothing has no entry. */
  private readonly byClient = new Map<string, number>();

  constructor(
    readonly maxBytes: number,
    /** What the bodies of one client may hold together. */
    readonly perClientBytes: number = maxBytes,
  ) {}

  /** Bytes held now. */
  get held(): number {
    return this.used;
  }

  /** Bytes held now for `client`. */
  heldBy(client: string): number {
    return this.byClient.get(client) ?? 0;
  }

  /** Reserves `n` bytes for `client`; on refusal nothing is reserved and the reason is returned. */
  take(n: number, client?: string): BudgetRefusal | undefined {
    if (this.used + n > this.maxBytes) return 'total';
    if (client !== undefined) {
      const mine = this.heldBy(client) + n;
      if (mine > this.perClientBytes) return 'client';
      this.byClient.set(client, mine);
    }
    this.used += n;
    return undefined;
  }

  /** Reserves `n` bytes counted against no client; false (and nothing reserved) when that would pass the budget. */
  reserve(n: number): boolean {
    return this.take(n) === undefined;
  }

  release(n: number, client?: string): void {
    this.used -= n;
    if (client === undefined) return;
    const left = this.heldBy(client) - n;
    if (left > 0) this.byClient.set(client, left);
    else this.byClient.delete(client);
  }
}

/** A body in hand, and its share of the budget, given back once with `release()`. */
export class HeldBody {
  private held: number;

  constructor(
    readonly bytes: Buffer,
    private readonly budget: BodyBudget,
    private readonly client?: string,
  ) {
    this.held = bytes.length;
  }

  release(): void {
    if (this.held === 0) return;
    this.budget.release(this.held, this.client);
    this.held = 0;
  }
}

export interface BodyLimits {
  /** Largest body accepted. */
  maxBytes: number;
  budget: BodyBudget;
  /** Longest silence while the body arrives, in ms; 0 waits for ever. */
  idleTimeoutMs: number;
  /** Longest the whole body may take to arrive, in ms; 0 or absent for no limit. */
  deadlineMs?: number;
}

/**
 * Resolves with the whole body, or rejects with a BodyError: `too_large` as soon as the declared or
 * received length passes the limit, `budget` when the bytes cannot be reserved (in the whole budget
 * or in the client's share), `timeout` after `idleTimeoutMs` without a byte or `deadlineMs` in all,
 * `aborted` when the client goes away. On rejection every byte
 * reserved is given back and the rest of the body is not read.
 */
export function readBody(req: IncomingMessage, limits: BodyLimits): Promise<HeldBody> {
  const { maxBytes, budget } = limits;
  const client = clientKey(req.socket?.remoteAddress);
  const declared = req.headers['content-length'];
  const declaredBytes = declared === undefined ? 0 : Number(declared);
  if (declaredBytes > maxBytes) {
    return Promise.reject(
      new BodyError('too_large', `request body exceeds the gateway's limit of ${mib(maxBytes)} (MAX_REQUEST_BODY_MB)`, drain(req, declaredBytes, 0)),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    let deadline: NodeJS.Timeout | undefined;
    const settle = (err?: BodyError) => {
      if (timer) clearTimeout(timer);
      if (deadline) clearTimeout(deadline);
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
      if (!err) return;
      budget.release(size, client);
      chunks.length = 0;
      if (!err.drained) req.pause();
      reject(err);
    };
    const fail = (failure: BodyFailure, message: string) => settle(new BodyError(failure, message, failure === 'too_large' && drain(req, declaredBytes, size)));
    const arm = () => {
      if (limits.idleTimeoutMs <= 0) return;
      if (timer) timer.refresh();
      else
        timer = setTimeout(
          () => fail('timeout', `the request body stopped arriving for ${limits.idleTimeoutMs / 1000} s (REQUEST_BODY_TIMEOUT_SECONDS)`),
          limits.idleTimeoutMs,
        );
    };
    const onData = (chunk: Buffer) => {
      if (size + chunk.length > maxBytes) {
        fail('too_large', `request body exceeds the gateway's limit of ${mib(maxBytes)} (MAX_REQUEST_BODY_MB)`);
        return;
      }
      const refused = budget.take(chunk.length, client);
      if (refused === 'total') {
        fail('budget', `the request bodies the gateway holds would pass its budget of ${mib(budget.maxBytes)} (MAX_BUFFERED_BODY_MB); retry shortly`);
        return;
      }
      if (refused === 'client') {
        fail(
          'budget',
          `the request bodies this client is sending would pass its share of ${mib(budget.perClientBytes)} (MAX_BUFFERED_BODY_MB_PER_CLIENT); retry once they are sent`,
        );
        return;
      }
      size += chunk.length;
      chunks.push(chunk);
      arm();
    };
    const onEnd = () => {
      settle();
      resolve(new HeldBody(joinPieces(chunks, size), budget, client));
    };
    const onError = () => fail('aborted', 'client closed the connection while sending the request body');
    const onClose = () => {
      if (!req.complete) onError();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
    arm();
    const deadlineMs = limits.deadlineMs ?? 0;
    if (deadlineMs > 0) {
      deadline = setTimeout(
        () => fail('timeout', `the request body took longer than ${deadlineMs / 1000} s to arrive (REQUEST_BODY_DEADLINE_SECONDS)`),
        deadlineMs,
      );
    }
  });
}
