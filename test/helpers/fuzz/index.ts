/**
 * The hostile-input fuzzer: thousands of random and mutated requests, written byte by byte over raw
 * sockets to the real gateway process (`node dist/src/main.js`) in front of a FakeOllama, and then
 * the books that must balance whatever was sent (see /tmp/spec9.md, issue 9):
 *
 *  - the process is alive, `/healthz` answers 200, a valid call still works, `/metrics` passes
 *    `promtool check metrics` and stays under 1 MB;
 *  - (a) `ollama_requests_in_flight` is 0 for every series; (b) `ollama_gateway_buffered_body_bytes`
 *    is 0; (c) per LLM endpoint, the LLM calls Ollama received ≤ `ollama_requests_total`; (d) the sum
 *    of `ollama_requests_total` equals the LLM-call log lines; (e) the fake has nothing in flight;
 *  - what reached Ollama: exactly the normalised path, never the gateway's own paths, never a target
 *    in neither origin- nor absolute-form, never a request without a valid API key, never the key;
 *  - model labels stay bounded and clean; stdout is all JSON; no stack traces on stderr.
 *
 * Every request is generated from (seed, index) alone, so `--seed` reproduces the same traffic and
 * `describeRequest(seed, i)` shows request i. Used by test/integration/fuzz.test.ts (short) and
 * bench/fuzz.ts (long). Loopback only; every socket has an idle timeout and a hard cap.
 *
 * The modules, by concern:
 *
 *   rng.ts        the seeded random source
 *   targets.ts    request targets as the spec normalises them, and their spellings
 *   records.ts    what a plan is, and what was sent, by id
 *   bodies.ts     the JSON bodies of LLM calls (models known, faulty and strange)
 *   shapes.ts     structured hostile JSON in the fields a client controls: depth, key counts,
 *                 string sizes, edge numbers
 *   requests.ts   generated requests (LLM calls, own paths, pass-through) and their bytes
 *   mutations.ts  body, framing and header mutations, random bytes, byte-level damage
 *   plan.ts       the plan for request i: kind of traffic and delivery, and the spec's answer
 *   reader.ts     reading responses off a socket as they arrive
 *   delivery.ts   running one plan on one socket
 *   upstream.ts   the fake Ollama's faults and the books of what it received
 *   logs.ts       the books of the gateway's stdout
 *   metrics.ts    reading /metrics without trusting it
 *   run.ts        one run: start, send on parallel lanes, judge, stop
 *   judge.ts      the books a run must balance
 *   report.ts     the markdown report
 */
export { FUZZ_ENV, type Book, type FuzzOptions, type FuzzResult } from './config';
export { runPlan, type ClientEnd, type ClientResult } from './delivery';
export { LogBooks } from './logs';
export { getCapped, readMetrics, samples, type MetricsRead, type Sample } from './metrics';
export { describeRequest, makePlan } from './plan';
export type { Ctx, Oracle, Plan, SentRecord } from './records';
export { formatReport } from './report';
export { API_KEY } from './requests';
export { Rng } from './rng';
export { runFuzz } from './run';
export { expectedForward, normalisePath, spellPath } from './targets';
export { installFaults, UpstreamBooks } from './upstream';
