/** Waiting in tests: a plain sleep, and polling until something holds. */
import assert from 'node:assert/strict';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 20 ms until it holds; fails naming `what` after `ms`. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string | (() => string), ms = 2000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) assert.fail(`timed out after ${ms} ms waiting for: ${typeof what === 'string' ? what : what()}`);
    await sleep(20);
  }
}
