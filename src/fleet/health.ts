/**
 * One backend's health as the router sees it, a small state machine:
 *
 *   up ──(refused / unreachable / poll failed)──▶ down ──(poll succeeds, or a trial call answers)──▶ up
 *   up ──(failed calls, FIVE_XX_STRIKES in a row)──▶ cooling ──(cool-down over, a poll succeeded
 *        since, and a trial call answers below 500)──▶ up
 *
 * A failed call is one answered with 5xx, or one the backend took and then reset or closed
 * without an answer: a backend that accepts every connection and drops every call is as broken as
 * one that answers 500, and no poll would show it (it answers `/api/version`). One such failure
 * is no proof (a runner may crash once), so it counts as a strike, not as down.
 *
 * A backend that is down or cooling gets no calls until its hold-out is over; then exactly one
 * call at a time is let through as a trial. Each hold-out is longer than the one before (doubling,
 * capped), and resets once the backend is up again. Every transition is reported once, for the log.
 */

export type HealthStatus = 'up' | 'down' | 'cooling';

export interface HealthTransition {
  from: HealthStatus;
  to: HealthStatus;
  /** Why, in a few words (an error message, `3 answers with HTTP 5xx`). */
  reason: string;
  /** When the backend may be tried again (epoch ms); only when leaving `up`. */
  retryAt?: number;
}

/** Failed calls (5xx answers, or calls reset with no answer) in a row that take a backend out. */
export const FIVE_XX_STRIKES = 3;
/** First and longest cool-down after repeated 5xx answers. */
export const COOL_DOWN_FIRST_MS = 5_000;
export const COOL_DOWN_MAX_MS = 60_000;
/** First and longest wait before an unreachable backend is tried with a call again (polls go on meanwhile). */
export const DOWN_FIRST_MS = 1_000;
export const DOWN_MAX_MS = 30_000;

export class BackendHealth {
  private current: HealthStatus = 'up';
  /** While down or cooling: no call before this (epoch ms). */
  private until = 0;
  private strikes = 0;
  /** Hold-outs in a row, which lengthen the next. */
  private holdOuts = 0;
  /** A poll succeeded since the cool-down began. */
  private polledSince = false;
  private trialOut = false;

  constructor(
    private readonly onChange: (t: HealthTransition) => void,
    /** Whether the backend is polled: a cool-down then also waits for a successful poll. */
    private readonly polled: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  get status(): HealthStatus {
    return this.current;
  }

  /** Whether a call may be sent to it now (a backend that is not up: one trial call at a time, after its hold-out). */
  get routable(): boolean {
    if (this.current === 'up') return true;
    if (this.trialOut || this.now() < this.until) return false;
    return this.current === 'down' || !this.polled || this.polledSince;
  }

  /** A call is sent to it; returns whether that call is the trial (the backend is not up). */
  beginCall(): boolean {
    if (this.current === 'up') return false;
    this.trialOut = true;
    return true;
  }

  /** The trial call is over, whatever became of it. */
  endTrial(): void {
    this.trialOut = false;
  }

  /** It refused or reset a connection before answering, or a poll failed. */
  unreachable(reason: string): void {
    this.strikes = 0;
    this.holdOut('down', DOWN_FIRST_MS, DOWN_MAX_MS, reason);
  }

  /** A poll of it succeeded. */
  pollSucceeded(): void {
    if (this.current === 'down') this.set('up', 'a poll succeeded');
    else if (this.current === 'cooling') this.polledSince = true;
  }

  /** It answered a call with `status`. */
  answered(status: number, trial: boolean): void {
    if (status >= 500) {
      this.strike(trial, `was answered with HTTP ${status}`);
      return;
    }
    this.strikes = 0;
    if (this.current !== 'up') this.set('up', trial ? `a trial call was answered with HTTP ${status}` : `a call was answered with HTTP ${status}`);
  }

  /**
   * A call it had taken failed with no answer: the connection was reset or closed, or what came
   * was not HTTP. `what`: how, in a few words.
   */
  failedCall(what: string, trial: boolean): void {
    this.strike(trial, what);
  }

  /** One failed call: the trial's takes it out at once, otherwise FIVE_XX_STRIKES in a row do. */
  private strike(trial: boolean, what: string): void {
    this.strikes++;
    if (trial || (this.current === 'up' && this.strikes >= FIVE_XX_STRIKES)) {
      this.strikes = 0;
      this.polledSince = false;
      this.holdOut(
        'cooling',
        COOL_DOWN_FIRST_MS,
        COOL_DOWN_MAX_MS,
        trial ? `the trial call ${what}` : `${FIVE_XX_STRIKES} calls in a row failed; the last ${what}`,
      );
    }
  }

  private holdOut(to: 'down' | 'cooling', firstMs: number, maxMs: number, reason: string): void {
    const ms = Math.min(maxMs, firstMs * 2 ** Math.min(this.holdOuts, 16));
    this.holdOuts++;
    this.until = this.now() + ms;
    this.trialOut = false;
    if (this.current !== to) this.set(to, reason, this.until);
  }

  private set(to: HealthStatus, reason: string, retryAt?: number): void {
    const from = this.current;
    this.current = to;
    if (to === 'up') {
      this.holdOuts = 0;
      this.until = 0;
    }
    this.onChange({ from, to, reason, retryAt });
  }
}
