/**
 * The audit's script: for a seed, every call it makes — the API family, streamed or not, the model,
 * what the upstream will do (tokens, durations, how the answer ends) and what the client will do
 * with it. Everything is decided here, from (seed, index) alone, so a run can be repeated.
 */
import { Rng } from '../fuzz/rng';

/** The API families the gateway meters, one per endpoint. */
export const FAMILIES = [
  { endpoint: '/api/chat', api: 'native', streams: true, embed: false },
  { endpoint: '/api/generate', api: 'native', streams: true, embed: false },
  { endpoint: '/api/embed', api: 'native', streams: false, embed: true },
  { endpoint: '/v1/chat/completions', api: 'openai', streams: true, embed: false },
  { endpoint: '/v1/completions', api: 'openai', streams: true, embed: false },
  { endpoint: '/v1/embeddings', api: 'openai', streams: false, embed: true },
  { endpoint: '/v1/responses', api: 'responses', streams: true, embed: false },
  { endpoint: '/v1/messages', api: 'anthropic', streams: true, embed: false },
] as const;

export type Family = (typeof FAMILIES)[number];
export type Endpoint = Family['endpoint'];

/**
 * What the client does with the answer.
 * - `read`: reads it to the end.
 * - `close-final`: closes the connection as soon as the final event (`"done":true`, `[DONE]`,
 *   `message_stop`, `response.completed`) has arrived, before the chunked terminator, as the
 *   OpenAI SDKs and Codex do.
 * - `abort`: closes the connection after the first piece of the answer, mid-stream.
 * - `pipeline`: this call and the next are written in one write on one connection, read to the end.
 * - `retry`: the first attempt fails upstream (a 5xx), the client sends the same call again.
 * - `held`: a slow stream in flight while a worker is killed (`--workers` only).
 */
export type Behaviour = 'read' | 'close-final' | 'abort' | 'pipeline' | 'retry' | 'held';

/**
 * How the upstream ends its answer.
 * - `complete`: every event, the final one with the stats, then (a moment later) the end of the body.
 * - `error-line`: a native stream that carries an `{"error":…}` line instead of its final line.
 * - `truncated`: a compatible-API stream that stops, cleanly, without its final event (how Ollama's
 *   compatibility writers end when the runner fails mid-answer).
 * - `reset`: the connection is destroyed mid-stream, after the headers.
 * - `status-500`, `status-404`: an error answer before anything else.
 */
export type Ending = 'complete' | 'error-line' | 'truncated' | 'reset' | 'status-500' | 'status-404';

export interface Attempt {
  /** `x-audit-call` header value: the call's index, and `.1` for a retry. */
  id: string;
  ending: Ending;
}

export interface PlannedCall {
  index: number;
  family: Family;
  streamed: boolean;
  model: string;
  behaviour: Behaviour;
  /** `pipeline`: the first call of the pair (which writes both) or the second. */
  pipelineRole?: 'first' | 'second';
  attempts: Attempt[];
  /** Tokens the upstream reports when it reports any. */
  tokensIn: number;
  cached: number;
  tokensOut: number;
  /** Whether this Ollama is new enough to report cached prompt tokens (the field is absent otherwise). */
  reportsCached: boolean;
  /** Content pieces before the final event. */
  pieces: number;
  /** Gap between streamed pieces, ms (0: as fast as the socket takes them). */
  gapMs: number;
  /**
   * Between the final event and the end of the body (the chunked terminator), ms. Go writes the
   * terminator after the handler returns: a separate write, one to a few milliseconds later, longer
   * under load. The client runs in the same process as this upstream, so a gap of 1 ms is often over
   * before the client has even seen the final event; the script draws 1–20 ms.
   */
  endGapMs: number;
  /** OpenAI chat/completions streams: whether the client asked for usage itself. */
  includeUsage: boolean;
  loadNs: number;
  promptNs: number;
  evalNs: number;
}

export interface PlanOptions {
  seed: number;
  calls: number;
  /** Client behaviours to use (default: all but `held`). */
  behaviours?: readonly Behaviour[];
  /** Whether any upstream reports cached prompt tokens (false: an Ollama from before the field). */
  cached?: boolean;
}

export const CHAT_MODELS = ['audit-chat:3b', 'audit-code:7b'];
export const EMBED_MODEL = 'audit-embed:v1';
export const ALL_MODELS = [...CHAT_MODELS, EMBED_MODEL];

/** Client behaviours and their weights in the mix (a `pipeline` call brings a second call with it). */
const WEIGHTS: Record<Exclude<Behaviour, 'held'>, number> = { read: 4, 'close-final': 3, abort: 1, pipeline: 1, retry: 1 };
const DEFAULT_BEHAVIOURS = Object.keys(WEIGHTS) as Exclude<Behaviour, 'held'>[];

/** The calls of a run, in the order they are started (a `pipeline` call takes the next one with it). */
export function makePlan(opts: PlanOptions): PlannedCall[] {
  const behaviours = opts.behaviours ?? DEFAULT_BEHAVIOURS;
  const out: PlannedCall[] = [];
  for (let i = 0; i < opts.calls; i++) {
    const second = out[i - 1]?.pipelineRole === 'first';
    const call = planCall(opts, i, behaviours, second);
    if (second) call.pipelineRole = 'second';
    else if (call.behaviour === 'pipeline') {
      if (i === opts.calls - 1) call.behaviour = 'read';
      else call.pipelineRole = 'first';
    }
    // A pipelined call reset while the call before it is still streaming: its answer waits behind
    // that stream, so the reset reaches it before it has a socket of its own.
    const first = out[i - 1];
    if (call.pipelineRole === 'second' && call.attempts[0].ending === 'reset' && first.family.streams) {
      Object.assign(first, { streamed: true, pieces: 6, gapMs: 30, attempts: [{ id: first.attempts[0].id, ending: 'complete' }] });
    }
    out.push(call);
  }
  return out;
}

function planCall(opts: PlanOptions, index: number, behaviours: readonly Behaviour[], pairedSecond: boolean): PlannedCall {
  const rng = new Rng(opts.seed, index);
  const family = rng.pick(FAMILIES);
  let behaviour: Behaviour = pairedSecond ? 'pipeline' : rng.weighted(behaviours.map((b) => [b === 'held' ? 1 : WEIGHTS[b], b] as const));
  const streamed = family.streams && (behaviour === 'close-final' || behaviour === 'abort' || rng.chance(0.7));
  // Closing at the final event or mid-stream is about streams; a non-streamed call is read whole.
  if (!streamed && (behaviour === 'close-final' || behaviour === 'abort')) behaviour = 'read';
  const model = family.embed ? EMBED_MODEL : rng.pick(CHAT_MODELS);
  const tokensIn = rng.range(5, 4000);
  const reportsCached = opts.cached !== false && !family.embed && rng.chance(0.8);
  const cached = reportsCached && rng.chance(0.7) ? rng.range(0, tokensIn - 1) : 0;
  const tokensOut = family.embed ? 0 : rng.range(1, 600);
  const ending = behaviour === 'abort' || behaviour === 'held' ? 'complete' : pickEnding(rng, family, streamed);
  const attempts: Attempt[] =
    behaviour === 'retry'
      ? [
          { id: `${index}`, ending: rng.pick(['status-500', 'status-500', 'status-404'] as const) },
          { id: `${index}.1`, ending },
        ]
      : [{ id: `${index}`, ending }];
  return {
    index,
    family,
    streamed,
    model,
    behaviour,
    attempts,
    tokensIn,
    cached,
    tokensOut,
    reportsCached,
    // A call aborted mid-stream must still be streaming when the client leaves, on a loaded machine
    // too: 20 pieces 40 ms apart, and the client leaves at the first.
    pieces: behaviour === 'abort' ? 20 : rng.range(1, 6),
    gapMs: behaviour === 'abort' ? 40 : rng.chance(0.2) ? rng.range(1, 5) : 0,
    includeUsage: rng.chance(0.5),
    endGapMs: rng.range(1, 20),
    loadNs: rng.chance(0.2) ? rng.range(1e6, 2e9) : rng.range(0, 1e5),
    promptNs: rng.range(1e5, 5e8),
    evalNs: rng.range(1e6, 9e9),
  };
}

function pickEnding(rng: Rng, family: Family, streamed: boolean): Ending {
  if (!streamed)
    return rng.weighted<Ending>([
      [85, 'complete'],
      [10, 'status-500'],
      [5, 'status-404'],
    ]);
  const broken: Ending = family.api === 'native' ? 'error-line' : 'truncated';
  return rng.weighted<Ending>([
    [76, 'complete'],
    [8, broken],
    [8, 'reset'],
    [6, 'status-500'],
    [2, 'status-404'],
  ]);
}
