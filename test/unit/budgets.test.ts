/**
 * The pure parts of budgets and model access: the tenants file's `models` and `limits` as parsed,
 * calendar windows in time zones (daylight saving both ways, half-hour offsets, a skipped or
 * repeated midnight, a year's end), the refusal's headers in each SDK's format, and the book's
 * arithmetic against a source the test controls (no database, the clock mocked).
 */
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import type { UsageRecord } from '../../otel/usage';
import { admittedHeaders, modelRefused, rateLimited, rateLimitHeaders, resetDuration } from '../../src/budgets/answer';
import { Budgets, tokensOf, type BudgetSource, type LimitState } from '../../src/budgets/book';
import { windowEnd, windowStart } from '../../src/budgets/calendar';
import { tenantsFromConfig } from '../../src/app';
import { ConfigError, loadConfig } from '../../src/config';
import { HOUR_MS, REFUSED_REASONS, type BudgetQuery, type BudgetReading, type RollingSums } from '../../src/ledger/schema';
import { createLogger } from '../../src/logger';
import { usageRecord } from '../helpers/ledger-cases';
import { parseTenantsFile, TenantsFileError } from '../../src/tenants/file';
import {
  checkedModelName,
  LIMIT_NAMES,
  MAX_LIMITS,
  modelPattern,
  parseLimits,
  parseRules,
  RulesError,
  type Limit,
  type TenantRules,
} from '../../src/tenants/rules';

const at = (iso: string): number => Date.parse(iso);
const iso = (t: number): string => new Date(t).toISOString();

describe('the tenants file: models and limits', () => {
  it('reads every limit kind, its window, the token rule, and the end users’ limits', () => {
    const rules = parseRules(
      {
        models: ['llama3.2', 'qwen3:*'],
        limits: {
          requests_per_minute: 120,
          tokens_per_minute: 50_000,
          tokens_per_day: 2_000_000,
          tokens_per_month: 30_000_000,
          gpu_seconds_per_day: 3600,
          gpu_seconds_per_month: 36_000,
          count_tokens: 'output',
          cached_tokens: 0.1,
          rolling: [{ seconds: 10, requests: 20, tokens: 5000 }],
        },
        users: { header: 'X-OpenWebUI-User-Id', limits: { tokens_per_day: 200_000 } },
      },
      'webui',
      'Europe/Berlin',
    );
    assert.equal(rules.timeZone, 'Europe/Berlin', "the file's time zone when the tenant gives none");
    assert.deepEqual(
      rules.tenant?.limits.map((l) => [l.name, l.measure, l.window.kind === 'rolling' ? l.window.ms : l.window.kind, l.max]),
      [
        ['requests_per_minute', 'requests', 60_000, 120],
        ['tokens_per_minute', 'tokens', 60_000, 50_000],
        ['tokens_per_day', 'tokens', 'day', 2_000_000],
        ['tokens_per_month', 'tokens', 'month', 30_000_000],
        ['gpu_seconds_per_day', 'gpu_seconds', 'day', 3600],
        ['gpu_seconds_per_month', 'gpu_seconds', 'month', 36_000],
        ['requests_per_10s', 'requests', 10_000, 20],
        ['tokens_per_10s', 'tokens', 10_000, 5000],
      ],
    );
    assert.deepEqual(rules.tenant?.tokens, { count: 'output', cachedWeight: 0.1 });
    // The end users' block gives no token rule of its own: it counts tokens as the tenant does.
    assert.deepEqual(rules.user?.tokens, { count: 'output', cachedWeight: 0.1 });
    assert.deepEqual(
      rules.user?.limits.map((l) => l.name),
      ['tokens_per_day'],
    );
    assert.deepEqual(
      rules.models?.map((m) => m.text),
      ['llama3.2', 'qwen3:*'],
    );
    // Every named limit of the contract is one the file takes.
    assert.deepEqual(LIMIT_NAMES, [
      'requests_per_minute',
      'tokens_per_minute',
      'tokens_per_day',
      'tokens_per_month',
      'gpu_seconds_per_day',
      'gpu_seconds_per_month',
    ]);
  });

  it('counts all tokens, every cached one in full, when the block says nothing; an empty block limits nothing', () => {
    assert.deepEqual(parseLimits({ tokens_per_day: 10 }, 'tenant "t"')?.tokens, { count: 'total', cachedWeight: 1 });
    assert.equal(parseLimits({}, 'tenant "t"'), undefined);
    assert.equal(parseLimits(null, 'tenant "t"'), undefined);
    const rules = parseRules({ name: 't' }, 't');
    assert.deepEqual([rules.models, rules.tenant, rules.user, rules.timeZone], [undefined, undefined, undefined, 'UTC']);
    assert.equal(parseRules({ time_zone: 'Asia/Kolkata' }, 't', 'Europe/Berlin').timeZone, 'Asia/Kolkata', "the tenant's own zone wins");
  });

  const refused: [string, Record<string, unknown>, RegExp][] = [
    ['limits that are not a mapping', { limits: [1] }, /limits must be a mapping/],
    [
      'an unknown limit, naming the known ones',
      { limits: { tokens_per_week: 1 } },
      /unknown limit "tokens_per_week"; known: requests_per_minute, .*gpu_seconds_per_month, rolling/,
    ],
    ['a negative limit', { limits: { tokens_per_day: -1 } }, /limits\.tokens_per_day must be a number of at least 0/],
    ['a limit written as text', { limits: { tokens_per_day: '1M' } }, /limits\.tokens_per_day must be a number/],
    ['an infinite limit', { limits: { tokens_per_day: Infinity } }, /must be a number/],
    ['count_tokens other than total, input or output', { limits: { count_tokens: 'cached' } }, /count_tokens must be total, input or output/],
    ['a cached-token weight above 1', { limits: { cached_tokens: 2 } }, /cached_tokens is the weight of a cached token, 0 to 1/],
    ['a negative cached-token weight', { limits: { cached_tokens: -0.5 } }, /cached_tokens must be a number of at least 0/],
    ['rolling that is not a list', { limits: { rolling: { seconds: 10 } } }, /rolling must be a list/],
    ['a rolling entry that is not a mapping', { limits: { rolling: [10] } }, /rolling\[0\] must be a mapping/],
    [
      'a rolling window of 0 s',
      { limits: { rolling: [{ seconds: 0, requests: 1 }] } },
      /rolling\[0\]\.seconds must be a whole number of seconds from 1 to 86400/,
    ],
    ['a rolling window of a fraction of a second', { limits: { rolling: [{ seconds: 1.5, requests: 1 }] } }, /seconds must be a whole number/],
    ['a rolling window over a day', { limits: { rolling: [{ seconds: 86_401, requests: 1 }] } }, /from 1 to 86400/],
    [
      'a rolling entry with an unknown measure',
      { limits: { rolling: [{ seconds: 10, calls: 1 }] } },
      /rolling\[0\]: unknown field "calls"; use requests, tokens or gpu_seconds/,
    ],
    ['a rolling entry that limits nothing', { limits: { rolling: [{ seconds: 10 }] } }, /rolling\[0\] limits nothing/],
    [
      'the same rolling limit twice',
      {
        limits: {
          rolling: [
            { seconds: 10, requests: 1 },
            { seconds: 10, requests: 2 },
          ],
        },
      },
      /a limit is given twice/,
    ],
    [
      `more than ${MAX_LIMITS} limits`,
      { limits: { rolling: Array.from({ length: MAX_LIMITS + 1 }, (_, i) => ({ seconds: i + 1, requests: 1 })) } },
      new RegExp(`at most ${MAX_LIMITS} limits`),
    ],
    ['a time zone inside limits, where it would be ignored', { limits: { tokens_per_day: 1, time_zone: 'Europe/Berlin' } }, /time_zone belongs to the tenant/],
    ['an unknown time zone', { time_zone: 'Mars/Olympus' }, /time_zone must be an IANA time zone/],
    ['models that are not a list', { models: { llama3: true } }, /models must be a list/],
    ['a model pattern with a space', { models: ['llama 3'] }, /models\[0\] must be a model name or a \* pattern/],
    ['a model pattern that is not text', { models: ['llama3.2', 3] }, /models\[1\] must be/],
    ['more than 200 models', { models: Array.from({ length: 201 }, (_, i) => `m${i}`) }, /at most 200 models/],
    ['a bad limit of the end users', { users: { limits: { tokens_per_day: -5 } } }, /tenant "t": users: limits\.tokens_per_day must be/],
  ];
  for (const [what, entry, message] of refused) {
    it(`refuses ${what}, saying where`, () => {
      assert.throws(
        () => parseRules(entry, 't'),
        (err: unknown) => err instanceof RulesError && message.test(err.message) && err.message.startsWith('tenant "t"'),
      );
    });
  }

  it('refuses the whole file for one bad limit, with the tenant named', () => {
    const file = (limits: string, top = '') => `${top}tenants:\n  - name: ok\n    keys: [sk-a]\n  - name: bad\n    keys: [sk-b]\n    limits: ${limits}\n`;
    assert.equal(parseTenantsFile(file('{ tokens_per_day: 5 }'))[1]?.rules?.tenant?.limits[0]?.max, 5);
    assert.throws(
      () => parseTenantsFile(file('{ tokens_per_hour: 5 }')),
      (err: unknown) => err instanceof TenantsFileError && /tenant "bad": unknown limit/.test(err.message),
    );
    assert.throws(
      () => parseTenantsFile(file('{}', 'time_zone: Berlin\n')),
      (err: unknown) => err instanceof TenantsFileError && /time_zone must be an IANA time zone/.test(err.message),
    );
    assert.equal(parseTenantsFile(file('{}', 'time_zone: Asia/Kolkata\n'))[1]?.rules?.timeZone, 'Asia/Kolkata');
  });

  it('needs the ledger for limits: with LEDGER_URL=off, refuses them at start and on a reload, keeping the tenants in use', () => {
    const plain = 'tenants: [{ name: a, keys: [k1] }]\n';
    const limited = 'tenants: [{ name: a, keys: [k1], limits: { tokens_per_day: 10 } }]\n';
    const dir = mkdtempSync(path.join(os.tmpdir(), 'budgets-'));
    const file = path.join(dir, 'tenants.yaml');
    try {
      writeFileSync(file, limited);
      assert.throws(
        () => loadConfig({ OLLAMA_HOST: 'http://127.0.0.1:11434', GATEWAY_TENANTS_FILE: file, LEDGER_URL: 'off' }),
        (err: unknown) => err instanceof ConfigError && /tenant "a" has limits, which are reckoned from the usage ledger/.test(err.message),
      );
      writeFileSync(file, plain);
      const tenants = tenantsFromConfig(loadConfig({ OLLAMA_HOST: 'http://127.0.0.1:11434', GATEWAY_TENANTS_FILE: file, LEDGER_URL: 'off' }));
      const lines: string[] = [];
      const log = createLogger('info', { write: (l: string) => void lines.push(l) });
      writeFileSync(file, limited);
      assert.equal(tenants.reload(log, 'test'), false, 'not taken');
      assert.equal(tenants.spec('a')?.rules?.tenant, undefined, 'the tenants in use stay, without limits');
      assert.ok(lines.some((l) => l.includes('tenants file not reloaded: it is not valid') && l.includes('reckoned from the usage ledger')));
      // With the ledger on, the same file is taken.
      writeFileSync(file, plain);
      const withLedger = tenantsFromConfig(loadConfig({ OLLAMA_HOST: 'http://127.0.0.1:11434', GATEWAY_TENANTS_FILE: file, GATEWAY_DATA_DIR: dir }));
      writeFileSync(file, limited);
      assert.equal(withLedger.reload(log, 'test'), true);
      assert.equal(withLedger.spec('a')?.rules?.tenant?.limits[0]?.name, 'tokens_per_day');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('model names and patterns', () => {
    const allows = (pattern: string, model: string) => modelPattern(pattern).test(checkedModelName(model));
    const cases: [string, string, boolean][] = [
      ['llama3.2', 'llama3.2', true],
      ['llama3.2', 'llama3.2:latest', true],
      ['llama3.2', 'llama3.2:1b', false],
      ['llama3.2', 'llama3.20', false],
      ['llama3.2:1b', 'llama3.2:1b', true],
      ['llama3.2:1b', 'llama3.2', false],
      ['qwen3:*', 'qwen3:8b', true],
      ['qwen3:*', 'qwen3', true],
      ['qwen3:*', 'qwen3-coder:30b', false],
      ['qwen3*', 'qwen3-coder:30b', true],
      ['*', 'anything/at-all:tag', true],
      ['*:cloud', 'gpt-oss:120b', false],
      ['*-cloud', 'gpt-oss:120b-cloud', true],
      ['*/llama3', 'library/llama3', false],
      ['*/llama3:*', 'library/llama3', true],
      ['hf.co/*/gemma*', 'hf.co/unsloth/gemma-3-4b-it-GGUF:Q4_K_M', true],
      ['hf.co/*/gemma*', 'hf.co/unsloth/llama-3:Q4', false],
      ['Llama3.2', 'LLAMA3.2:LATEST', true],
      ['qwen3:*', ' Qwen3:8B ', true],
      // A `:` before the last `/` is a registry's port, on either side.
      ['localhost:5000/llama3', 'localhost:5000/llama3', true],
      ['localhost:5000/llama3', 'localhost:5000/llama3:latest', true],
      ['localhost:5000/llama3', 'localhost:5000/llama3:8b', false],
    ];
    for (const [pattern, model, expected] of cases) {
      it(`${JSON.stringify(pattern)} ${expected ? 'allows' : 'does not allow'} ${JSON.stringify(model)}`, () => {
        assert.equal(allows(pattern, model), expected);
      });
    }

    it('matches a long name against many stars in linear time, without backtracking', () => {
      const pattern = modelPattern(`${'a*'.repeat(60)}b`);
      assert.equal(pattern.test(`${'a'.repeat(100_000)}:latest`), false);
      assert.equal(pattern.test(`${'a'.repeat(100)}b:latest`), false, 'b then :latest is not a name ending in b');
      assert.equal(modelPattern(`${'a*'.repeat(60)}b:*`).test(`${'a'.repeat(100)}b:latest`), true);
    });

    it('lets a call without a model through to Ollama, which refuses it itself', () => {
      const rules = parseRules({ models: ['llama3.2'] }, 't');
      const budgets = new Budgets(undefined, (tenant) => (tenant === 't' ? rules : undefined), bookOptions());
      assert.deepEqual(budgets.modelAllowed('t', undefined), { ok: true });
      assert.deepEqual(budgets.modelAllowed('t', '  '), { ok: true });
      assert.deepEqual(budgets.modelAllowed('t', 'mistral'), { ok: false, allowed: ['llama3.2'] });
      assert.deepEqual(budgets.modelAllowed('other', 'mistral'), { ok: true }, 'a tenant without rules may use any model');
    });
  });
});

describe('calendar windows', () => {
  const window = (kind: 'day' | 'month', now: string, tz: string) => [iso(windowStart(kind, at(now), tz)), iso(windowEnd(kind, at(now), tz))];

  it('in UTC: midnight to midnight, the first to the first, December into January', () => {
    assert.deepEqual(window('day', '2026-12-07T05:20:38Z', 'UTC'), ['2026-12-07T00:00:00.000Z', '2026-12-08T00:00:00.000Z']);
    assert.deepEqual(window('month', '2026-12-07T05:20:38Z', 'UTC'), ['2026-12-01T00:00:00.000Z', '2027-01-01T00:00:00.000Z']);
    assert.deepEqual(window('day', '2026-12-31T23:59:59.999Z', 'UTC'), ['2026-12-31T00:00:00.000Z', '2027-01-01T00:00:00.000Z']);
    assert.deepEqual(window('month', '2027-01-01T00:00:00.000Z', 'UTC'), ['2027-01-01T00:00:00.000Z', '2027-02-01T00:00:00.000Z']);
    assert.deepEqual(window('month', '2028-02-29T12:00:00Z', 'UTC'), ['2028-02-01T00:00:00.000Z', '2028-03-01T00:00:00.000Z']);
  });

  it('in Europe/Berlin: a 23-hour day when the clocks go forward, a 25-hour one when they go back', () => {
    // 29 March 2026, 02:00 CET → 03:00 CEST (01:00 UTC).
    for (const now of ['2026-03-28T23:00:00Z', '2026-03-29T00:59:59Z', '2026-03-29T01:00:00Z', '2026-03-29T21:59:59Z']) {
      assert.deepEqual(window('day', now, 'Europe/Berlin'), ['2026-03-28T23:00:00.000Z', '2026-03-29T22:00:00.000Z'], now);
    }
    assert.deepEqual(window('day', '2026-03-28T22:59:59Z', 'Europe/Berlin'), ['2026-03-27T23:00:00.000Z', '2026-03-28T23:00:00.000Z']);
    // 25 October 2026, 03:00 CEST → 02:00 CET (01:00 UTC).
    for (const now of ['2026-10-24T22:00:00Z', '2026-10-25T00:30:00Z', '2026-10-25T01:30:00Z', '2026-10-25T22:59:59Z']) {
      assert.deepEqual(window('day', now, 'Europe/Berlin'), ['2026-10-24T22:00:00.000Z', '2026-10-25T23:00:00.000Z'], now);
    }
    // A month that holds a change begins in one offset and ends in the other.
    assert.deepEqual(window('month', '2026-03-15T12:00:00Z', 'Europe/Berlin'), ['2026-02-28T23:00:00.000Z', '2026-03-31T22:00:00.000Z']);
    assert.deepEqual(window('month', '2026-10-31T22:59:59Z', 'Europe/Berlin'), ['2026-09-30T22:00:00.000Z', '2026-10-31T23:00:00.000Z']);
    assert.deepEqual(window('month', '2026-12-31T23:00:00Z', 'Europe/Berlin'), ['2026-12-31T23:00:00.000Z', '2027-01-31T23:00:00.000Z']);
  });

  it('in Asia/Kolkata (+5:30): the day and the year turn at 18:30 UTC', () => {
    assert.deepEqual(window('day', '2026-12-31T18:29:59Z', 'Asia/Kolkata'), ['2026-12-30T18:30:00.000Z', '2026-12-31T18:30:00.000Z']);
    assert.deepEqual(window('month', '2026-12-31T18:29:59Z', 'Asia/Kolkata'), ['2026-11-30T18:30:00.000Z', '2026-12-31T18:30:00.000Z']);
    assert.deepEqual(window('day', '2026-12-31T18:30:00Z', 'Asia/Kolkata'), ['2026-12-31T18:30:00.000Z', '2027-01-01T18:30:00.000Z']);
    assert.deepEqual(window('month', '2026-12-31T18:30:00Z', 'Asia/Kolkata'), ['2026-12-31T18:30:00.000Z', '2027-01-31T18:30:00.000Z']);
  });

  it('in Pacific/Auckland: the new year begins on the 31st in UTC, and the spring-forward day is 23 hours', () => {
    // NZDT (+13) in summer.
    assert.deepEqual(window('day', '2026-12-31T12:00:00Z', 'Pacific/Auckland'), ['2026-12-31T11:00:00.000Z', '2027-01-01T11:00:00.000Z']);
    assert.deepEqual(window('month', '2026-12-31T12:00:00Z', 'Pacific/Auckland'), ['2026-12-31T11:00:00.000Z', '2027-01-31T11:00:00.000Z']);
    assert.deepEqual(window('month', '2026-12-31T10:59:59Z', 'Pacific/Auckland'), ['2026-11-30T11:00:00.000Z', '2026-12-31T11:00:00.000Z']);
    // 27 September 2026, 02:00 NZST (+12) → 03:00 NZDT (+13).
    assert.deepEqual(window('day', '2026-09-27T06:00:00Z', 'Pacific/Auckland'), ['2026-09-26T12:00:00.000Z', '2026-09-27T11:00:00.000Z']);
    // 5 April 2026, 03:00 NZDT → 02:00 NZST: 25 hours.
    assert.deepEqual(window('day', '2026-04-05T06:00:00Z', 'Pacific/Auckland'), ['2026-04-04T11:00:00.000Z', '2026-04-05T12:00:00.000Z']);
  });

  it('where the clocks skip midnight (America/Santiago), the day begins when they jump, and the one before ends then', () => {
    // Chile: 6 September 2026, 00:00 (-4) → 01:00 (-3), at 04:00 UTC.
    assert.deepEqual(window('day', '2026-09-06T06:00:00Z', 'America/Santiago'), ['2026-09-06T04:00:00.000Z', '2026-09-07T03:00:00.000Z']);
    // The last hour of the 5th (23:00 to 24:00 local) is still the 5th, and its end is ahead.
    for (const now of ['2026-09-05T12:00:00Z', '2026-09-06T03:30:00Z']) {
      assert.deepEqual(window('day', now, 'America/Santiago'), ['2026-09-05T04:00:00.000Z', '2026-09-06T04:00:00.000Z'], now);
      assert.ok(windowEnd('day', at(now), 'America/Santiago') > at(now));
    }
    // A day that never was (Samoa, 30 December 2011): the 29th ends when the 31st begins.
    assert.deepEqual(window('day', '2011-12-29T12:00:00Z', 'Pacific/Apia'), ['2011-12-29T10:00:00.000Z', '2011-12-30T10:00:00.000Z']);
  });

  it('where midnight happens twice (America/Havana), the day begins at the first', () => {
    // Cuba: 1 November 2026, 01:00 (-4) → 00:00 (-5), at 05:00 UTC.
    for (const now of ['2026-11-01T04:30:00Z', '2026-11-01T05:30:00Z']) {
      assert.deepEqual(window('day', now, 'America/Havana'), ['2026-11-01T04:00:00.000Z', '2026-11-02T05:00:00.000Z'], now);
    }
  });
});

describe('the refusal', () => {
  it('writes reset durations as OpenAI does', () => {
    assert.equal(resetDuration(20), '20ms');
    assert.equal(resetDuration(0.2), '1ms');
    assert.equal(resetDuration(-5), '0ms');
    assert.equal(resetDuration(999.5), '1s');
    assert.equal(resetDuration(1000), '1s');
    assert.equal(resetDuration(1001), '2s');
    assert.equal(resetDuration(59_000), '59s');
    assert.equal(resetDuration(360_000), '6m0s');
    assert.equal(resetDuration(3_723_000), '1h2m3s');
    assert.equal(resetDuration(3_600_000), '1h0m0s');
    assert.equal(resetDuration(26 * 3_600_000), '26h0m0s');
  });

  const limit = (name: string, measure: Limit['measure'], max: number): Limit => ({ name, measure, window: { kind: 'rolling', ms: 60_000 }, max });
  const now = at('2026-12-07T05:20:00.000Z');
  const rpm: LimitState = {
    limit: limit('requests_per_minute', 'requests', 60),
    scope: 'tenant',
    tenant: 'research',
    used: 60,
    remaining: 0,
    resetAt: now + 1500,
  };
  const tpmTenant: LimitState = {
    limit: limit('tokens_per_minute', 'tokens', 1000),
    scope: 'tenant',
    tenant: 'research',
    used: 400.6,
    remaining: 599.4,
    resetAt: now + 20,
  };
  const tpdUser: LimitState = {
    limit: { name: 'tokens_per_day', measure: 'tokens', window: { kind: 'day' }, max: 5000 },
    scope: 'user',
    tenant: 'research',
    user: 'alice',
    used: 4900,
    remaining: 100,
    resetAt: now + 3_723_000,
  };
  const gpu: LimitState = {
    limit: limit('gpu_seconds_per_day', 'gpu_seconds', 10),
    scope: 'tenant',
    tenant: 'research',
    used: 12.25,
    remaining: 0,
    resetAt: now + 5000,
  };
  const states = [rpm, tpmTenant, tpdUser, gpu];

  it("gives OpenAI's x-ratelimit-* headers for the tightest limit of each measure", () => {
    assert.deepEqual(rateLimitHeaders('openai', states, now), {
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '2s',
      // The end user's daily budget has less left than the tenant's minute.
      'x-ratelimit-limit-tokens': '5000',
      'x-ratelimit-remaining-tokens': '100',
      'x-ratelimit-reset-tokens': '1h2m3s',
    });
  });

  it("gives Anthropic's anthropic-ratelimit-* headers with RFC 3339 resets, and none on Ollama's API", () => {
    assert.deepEqual(rateLimitHeaders('anthropic', [rpm, tpmTenant], now), {
      'anthropic-ratelimit-requests-limit': '60',
      'anthropic-ratelimit-requests-remaining': '0',
      'anthropic-ratelimit-requests-reset': '2026-12-07T05:20:02Z',
      'anthropic-ratelimit-tokens-limit': '1000',
      'anthropic-ratelimit-tokens-remaining': '599',
      'anthropic-ratelimit-tokens-reset': '2026-12-07T05:20:01Z',
    });
    assert.deepEqual(rateLimitHeaders('ollama', states, now), {});
  });

  it("gives an admitted call's answer the same headers, with the call itself counted among the requests", () => {
    const open: LimitState = { ...rpm, used: 10, remaining: 50 };
    assert.deepEqual(admittedHeaders('openai', [open, tpmTenant], now), [
      'x-ratelimit-limit-requests',
      '60',
      'x-ratelimit-remaining-requests',
      '49',
      'x-ratelimit-reset-requests',
      '2s',
      'x-ratelimit-limit-tokens',
      '1000',
      'x-ratelimit-remaining-tokens',
      '599',
      'x-ratelimit-reset-tokens',
      '20ms',
    ]);
    assert.deepEqual(admittedHeaders('ollama', [open], now), []);
    assert.deepEqual(admittedHeaders('anthropic', [], now), []);
  });

  it('answers 429 with Retry-After, retry-after-ms and the limit it hit', () => {
    const r = rateLimited('openai', gpu, states, now);
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '5');
    assert.equal(r.headers['retry-after-ms'], '5000');
    assert.equal(r.headers['x-ollama-gateway-limit'], 'gpu_seconds_per_day; scope=tenant; reset=2026-12-07T05:20:05.000Z');
    assert.equal(r.headers['x-ratelimit-remaining-requests'], '0');
    assert.deepEqual(r.openai, { type: 'tokens', code: 'rate_limit_exceeded' });
    assert.equal(
      r.message,
      'Rate limit reached for tenant "research" on gpu_seconds_per_day: limit 10 GPU seconds, used 12.3. It resets at 2026-12-07T05:20:05.000Z; try again in 5s.',
    );
    const user = rateLimited('anthropic', tpdUser, states, now);
    assert.match(user.message, /^Rate limit reached for end user "alice" of tenant "research" on tokens_per_day: limit 5000 tokens, used 4900\./);
    assert.equal(user.headers['x-ollama-gateway-limit'], `tokens_per_day; scope=user; reset=${iso(now + 3_723_000)}`);
    assert.equal(user.headers['retry-after'], '3723');
    assert.equal(rateLimited('ollama', rpm, states, now).openai?.type, 'requests');
  });

  it('never says to retry in less than a second or a millisecond, even at the reset itself', () => {
    const r = rateLimited('openai', { ...rpm, resetAt: now }, [rpm], now);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(r.headers['retry-after-ms'], '1');
  });

  it('answers a model outside the list with 403, naming at most 20 of the allowed', () => {
    const allowed = Array.from({ length: 25 }, (_, i) => `m${i}`);
    const r = modelRefused('research', 'mistral', allowed);
    assert.equal(r.status, 403);
    assert.deepEqual(r.openai, { type: 'invalid_request_error', code: 'model_not_allowed' });
    assert.equal(r.message, `tenant "research" may not use model "mistral"; its models: ${allowed.slice(0, 20).join(', ')}, …`);
    const long = modelRefused('t', 'x'.repeat(1000), ['a']).message;
    assert.ok(long.includes(`"${'x'.repeat(256)}"`), 'the client-sent name is cut to 256 characters');
  });
});

/** A ledger the test commits to: what a reading holds is what was committed before it. */
class FakeLedger implements BudgetSource {
  committed: UsageRecord[] = [];
  readings = 0;
  /** When set, a reading waits for this before it answers. */
  gate: Promise<void> | undefined;
  fail: Error | undefined;

  async budget(q: BudgetQuery): Promise<BudgetReading> {
    this.readings++;
    const rows = this.committed.filter((r) => r.tenant === q.tenant && (q.user === undefined || r.user === q.user));
    if (this.gate) await this.gate;
    if (this.fail) throw this.fail;
    const hours = new Map<number, { bucket: number; input: number; cached: number; output: number; gpu: number }>();
    if (q.hoursFrom !== undefined) {
      for (const r of rows) {
        const bucket = Math.floor(r.time / HOUR_MS) * HOUR_MS;
        if (bucket < q.hoursFrom) continue;
        const h = hours.get(bucket) ?? { bucket, input: 0, cached: 0, output: 0, gpu: 0 };
        h.input += r.inputTokens;
        h.cached += r.cachedTokens;
        h.output += r.outputTokens;
        h.gpu += r.gpuSeconds;
        hours.set(bucket, h);
      }
    }
    const refused = new Set<string>(REFUSED_REASONS);
    const rolling = new Map<number, RollingSums>();
    for (const ms of q.rolling) {
      const since = q.now - ms;
      const s: RollingSums = { requests: 0, input: 0, cached: 0, output: 0, gpu: 0 };
      for (const r of rows) {
        const start = r.time - r.wallSeconds * 1000;
        if (start >= since && !refused.has(r.error)) {
          s.requests++;
          s.firstStart = Math.min(s.firstStart ?? Infinity, start);
        }
        if (r.time < since) continue;
        s.input += r.inputTokens;
        s.cached += r.cachedTokens;
        s.output += r.outputTokens;
        s.gpu += r.gpuSeconds;
        s.firstEnd = Math.min(s.firstEnd ?? Infinity, r.time);
      }
      rolling.set(ms, s);
    }
    return { hours: [...hours.values()], rolling };
  }
}

/** A logger that keeps nothing. */
const quiet = () => createLogger('error', { write: () => {} });

function bookOptions(log = quiet()) {
  return { log, readTimeoutMs: 1000, freshMs: 0 };
}

let clock = at('2026-12-07T12:00:00.000Z');
/** Moves the mocked clock on; each step also makes the next arrival need a reading of its own. */
function tick(ms = 1): number {
  clock += ms;
  mock.timers.setTime(clock);
  return clock;
}

/** A book over a fake ledger for tenants whose rules are given as a tenants-file entry. */
function book(entries: Record<string, Record<string, unknown>>, ledger: FakeLedger | undefined = new FakeLedger(), log = quiet()) {
  const rules = new Map<string, TenantRules>(Object.entries(entries).map(([name, e]) => [name, parseRules(e, name)]));
  const budgets = new Budgets(ledger, (t) => rules.get(t), bookOptions(log));
  const admit = async (tenant = 'team', user?: string) => budgets.admit({ tenant, user });
  const used = async (kind: string, tenant = 'team', user?: string) => {
    const v = await admit(tenant, user);
    if (v.ok) v.release();
    const s = v.states.find((x) => x.limit.name === kind && x.user === user);
    assert.ok(s, `a state of ${kind}`);
    return s;
  };
  return { budgets, ledger, admit, used };
}

describe('the book', () => {
  beforeEach(() => {
    clock = at('2026-12-07T12:00:00.000Z');
    mock.timers.enable({ apis: ['Date'], now: clock });
  });
  afterEach(() => mock.timers.reset());

  it('counts a call’s tokens as the limit says: total, input or output, cached ones at their weight', () => {
    const call = { input: 100, cached: 40, output: 10, gpu: 0 };
    assert.equal(tokensOf(call, { count: 'total', cachedWeight: 1 }), 110);
    assert.equal(tokensOf(call, { count: 'total', cachedWeight: 0.1 }), 100 - 40 * 0.9 + 10);
    assert.equal(tokensOf(call, { count: 'input', cachedWeight: 0 }), 60);
    assert.equal(tokensOf(call, { count: 'output', cachedWeight: 0 }), 10);
  });

  it('decides at once, and reads nothing, for a tenant without limits', () => {
    const { budgets, ledger } = book({ free: { models: ['*'] } });
    const v = budgets.admit({ tenant: 'free' });
    assert.ok(!(v instanceof Promise) && v.ok);
    assert.equal(ledger.readings, 0);
  });

  it('counts the tokens of a cached-weighted limit from the ledger and from calls not yet written', async () => {
    const { budgets, ledger, used } = book({ team: { limits: { tokens_per_day: 1000, cached_tokens: 0.25 } } });
    ledger.committed.push(usageRecord({ time: tick(), inputTokens: 200, cachedTokens: 100, outputTokens: 50 }));
    assert.equal((await used('tokens_per_day')).used, 200 - 75 + 50);
    // Finished here, not yet in the ledger: counted from this process's own record of it.
    const r = usageRecord({ time: tick(), inputTokens: 400, cachedTokens: 0, outputTokens: 100 });
    budgets.finished(r);
    tick();
    assert.equal((await used('tokens_per_day')).used, 175 + 500);
    // Written: the next reading holds it, and it is not counted twice.
    ledger.committed.push(r);
    budgets.written([r]);
    tick();
    const s = await used('tokens_per_day');
    assert.equal(s.used, 675);
    assert.equal(s.remaining, 325);
  });

  it('keeps counting a call written while a reading was under way, until a reading begun after it', async () => {
    const { budgets, ledger, used } = book({ team: { limits: { tokens_per_day: 1000 } } });
    const r = usageRecord({ time: tick(), inputTokens: 300 });
    budgets.finished(r);
    let open!: () => void;
    ledger.gate = new Promise<void>((resolve) => (open = resolve));
    tick();
    const pending = used('tokens_per_day');
    // Committed after the reading took its rows (the fake, like a database, answers from them).
    ledger.committed.push(r);
    budgets.written([r]);
    open();
    assert.equal((await pending).used, 300, 'counted from the local record: the reading does not hold it');
    ledger.gate = undefined;
    tick();
    assert.equal((await used('tokens_per_day')).used, 300, 'the next reading holds it; counted once');
  });

  it('does not count calls the gateway refused, nor the calls of other tenants', async () => {
    const { budgets, used } = book({ team: { limits: { requests_per_minute: 5, tokens_per_day: 100 } }, other: { limits: { tokens_per_day: 100 } } });
    for (const error of REFUSED_REASONS) budgets.finished(usageRecord({ time: tick(), error, status: 429, inputTokens: 10 }));
    budgets.finished(usageRecord({ time: tick(), tenant: 'other', inputTokens: 50 }));
    tick();
    assert.equal((await used('requests_per_minute')).used, 0);
    assert.equal((await used('tokens_per_day')).used, 0);
    assert.equal((await used('tokens_per_day', 'other')).used, 50);
  });

  it('counts running calls against a request limit, and a finished one until it leaves the window', async () => {
    const { budgets, admit, ledger } = book({ team: { limits: { requests_per_minute: 2 } } });
    const first = await admit();
    tick(1000);
    const second = await admit();
    assert.ok(first.ok && second.ok);
    tick(1000);
    const third = await admit();
    assert.ok(!third.ok);
    assert.equal(third.exceeded.limit.name, 'requests_per_minute');
    assert.equal(third.exceeded.used, 2);
    // The oldest counted call started 2 s ago: it leaves the minute in 58 s.
    assert.equal(third.exceeded.resetAt, clock - 2000 + 60_000);
    // The first finishes: still counted (it started in this minute), now as a finished call.
    const done = usageRecord({ time: clock, wallSeconds: 2 });
    budgets.finished(done);
    first.release();
    tick();
    assert.equal((await admit()).ok, false);
    // Written to the ledger: counted from the reading instead, still once.
    ledger.committed.push(done);
    budgets.written([done]);
    tick(57_000);
    const stillOut = await admit();
    assert.ok(!stillOut.ok);
    assert.equal(stillOut.exceeded.used, 2);
    // Past the minute since the first started: one place free.
    tick(1500);
    const fourth = await admit();
    assert.ok(fourth.ok, 'admitted once the oldest start left the window');
    assert.equal(fourth.states[0]?.used, 1, 'the second call, still running (its own place is taken after the check)');
  });

  it('checks a call that waited again against its token limits only, from what it has in hand', async () => {
    const { budgets, admit, ledger } = book({ team: { limits: { requests_per_minute: 1, tokens_per_day: 100 } } });
    const waiting = await admit();
    assert.ok(waiting.ok);
    assert.equal(budgets.recheck({ tenant: 'team' }), undefined, 'its own request is not counted against it again');
    // Meanwhile another call of the tenant finished here and spent the day's tokens.
    budgets.finished(usageRecord({ time: tick(), inputTokens: 100 }));
    const readings = ledger.readings;
    const over = budgets.recheck({ tenant: 'team' });
    assert.equal(over?.exceeded.limit.name, 'tokens_per_day');
    assert.ok(over.states.every((s) => s.limit.measure !== 'requests'));
    assert.equal(ledger.readings, readings, 'no reading: the start is not held up');
    assert.equal(budgets.recheck({ tenant: 'other' }), undefined);
  });

  it('admits concurrent arrivals on one reading, never past a request limit', async () => {
    const { admit, ledger } = book({ team: { limits: { requests_per_minute: 3 } } });
    const verdicts = await Promise.all(Array.from({ length: 8 }, () => admit()));
    assert.equal(ledger.readings, 1, 'one reading for all the arrivals');
    assert.equal(verdicts.filter((v) => v.ok).length, 3);
  });

  it('gives a rolling token limit the time its oldest counted call leaves the window', async () => {
    const { ledger, used } = book({ team: { limits: { rolling: [{ seconds: 10, tokens: 100 }] } } });
    const first = tick();
    ledger.committed.push(usageRecord({ time: first, inputTokens: 60 }));
    tick(3000);
    ledger.committed.push(usageRecord({ time: clock, inputTokens: 50 }));
    tick(1000);
    const s = await used('tokens_per_10s');
    assert.equal(s.used, 110);
    assert.equal(s.resetAt, first + 10_000);
    // With nothing counted, the window's whole length.
    tick(20_000);
    const empty = await used('tokens_per_10s');
    assert.equal(empty.used, 0);
    assert.equal(empty.resetAt, clock + 10_000);
  });

  it('counts a calendar budget from the day’s start in its time zone, and resets at the next', async () => {
    mock.timers.setTime((clock = at('2026-12-07T22:30:00.000Z'))); // 23:30 in Berlin
    const { ledger, used } = book({ team: { time_zone: 'Europe/Berlin', limits: { tokens_per_day: 1000, count_tokens: 'output' } } });
    ledger.committed.push(usageRecord({ time: at('2026-12-06T22:59:00.000Z'), outputTokens: 400 })); // the 6th, Berlin
    ledger.committed.push(usageRecord({ time: at('2026-12-06T23:00:00.000Z'), outputTokens: 70 })); // the 7th
    ledger.committed.push(usageRecord({ time: at('2026-12-07T22:00:00.000Z'), outputTokens: 30, inputTokens: 999 }));
    const s = await used('tokens_per_day');
    assert.equal(s.used, 100);
    assert.equal(s.resetAt, at('2026-12-07T23:00:00.000Z'));
    assert.equal(s.scope, 'tenant');
  });

  it('holds each end user to the users’ limits apart, beside the tenant’s own', async () => {
    const { budgets, admit } = book({ team: { limits: { tokens_per_day: 1000 }, users: { limits: { tokens_per_day: 100 } } } });
    budgets.finished(usageRecord({ time: tick(), user: 'alice', inputTokens: 100 }));
    tick();
    const alice = await admit('team', 'alice');
    assert.ok(!alice.ok);
    assert.equal(alice.exceeded.scope, 'user');
    assert.equal(alice.exceeded.user, 'alice');
    const bob = await admit('team', 'bob');
    assert.ok(bob.ok);
    assert.deepEqual(
      bob.states.map((s) => [s.scope, s.user, s.used]),
      [
        ['tenant', undefined, 100],
        ['user', 'bob', 0],
      ],
    );
  });

  it('decides on the calls this process saw when the ledger fails, and says so once', async () => {
    const lines: string[] = [];
    const log = createLogger('warn', { write: (l: string) => void lines.push(l) });
    const { budgets, ledger, admit } = book({ team: { limits: { tokens_per_day: 100 } } }, new FakeLedger(), log);
    ledger.fail = new Error('connection refused');
    budgets.finished(usageRecord({ time: tick(), inputTokens: 100 }));
    tick();
    const v = await admit();
    assert.ok(!v.ok, 'the local call alone reaches the limit');
    tick();
    await admit();
    assert.equal(lines.filter((l) => l.includes('budgets cannot read the usage ledger')).length, 1);
    ledger.fail = undefined;
    tick();
    // While failing, an arrival does not wait: the reading that finds the ledger back runs beside it.
    for (let i = 0; i < 50 && !lines.some((l) => l.includes('budgets read the usage ledger again')); i++) {
      await admit();
      await new Promise((r) => setTimeout(r, 2));
    }
    assert.equal(lines.filter((l) => l.includes('budgets read the usage ledger again')).length, 1);
  });

  it('while the ledger does not answer, arrivals go on at once with the last reading, one reading at a time', async () => {
    // The reading timer is unref'd, as it should be in a server: this keeps the test's loop alive while it waits.
    const alive = setInterval(() => {}, 1000);
    try {
      const ledger = new FakeLedger();
      const rules = parseRules({ limits: { requests_per_minute: 100 } }, 'team');
      const budgets = new Budgets(ledger, () => rules, { log: quiet(), readTimeoutMs: 50, freshMs: 0 });
      ledger.gate = new Promise<void>(() => {});
      const started = performance.now();
      await budgets.admit({ tenant: 'team' });
      assert.ok(performance.now() - started >= 40, 'the first arrival waits out the timeout');
      const reads = ledger.readings;
      const again = performance.now();
      for (let i = 0; i < 5; i++) assert.ok(((await budgets.admit({ tenant: 'team' })) as { ok: boolean }).ok);
      assert.ok(performance.now() - again < 40, 'later arrivals do not wait');
      assert.ok(ledger.readings - reads <= 1, 'at most one reading at a time while it fails');
    } finally {
      clearInterval(alive);
    }
  });

  it('does not wait longer than its timeout for a ledger that does not answer', async () => {
    // The reading timer is unref'd, as it should be in a server: this keeps the test's loop alive while it waits.
    const alive = setInterval(() => {}, 1000);
    try {
      const ledger = new FakeLedger();
      ledger.gate = new Promise<void>(() => {});
      const rules = parseRules({ limits: { requests_per_minute: 1 } }, 'team');
      const budgets = new Budgets(ledger, () => rules, { log: quiet(), readTimeoutMs: 10, freshMs: 0 });
      const v = await budgets.admit({ tenant: 'team' });
      assert.ok(v.ok, 'decided without a reading');
      tick();
      assert.equal((await budgets.admit({ tenant: 'team' })).ok, false, 'the running call still counts');
    } finally {
      clearInterval(alive);
    }
  });
});
