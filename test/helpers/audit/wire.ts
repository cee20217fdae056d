/**
 * The bytes the scripted upstream answers with, in Ollama's wire format for each API family (the
 * shapes of test/fixtures/ and the fixtures README §8 and §10), built from the script's numbers.
 *
 * Cached prompt tokens (§10.1): native `prompt_eval_cached_count` beside `prompt_eval_count` (the
 * whole prompt); OpenAI chat and completions `usage.prompt_tokens_details.cached_tokens`; Responses
 * `usage.input_tokens_details.cached_tokens`; Anthropic `usage.cache_read_input_tokens` with
 * `input_tokens` excluding the cached part, as Anthropic's API does (`ANTHROPIC_INPUT_EXCLUDES_CACHED`:
 * the one place to change should Ollama's bridge turn out to count it in).
 */
import type { Attempt, PlannedCall } from './plan';

export const ANTHROPIC_INPUT_EXCLUDES_CACHED = true;

/** What one answer is: its head, the pieces written one by one, and how it ends. */
export interface Answer {
  status: number;
  contentType: string;
  /** Pieces before the final event, one write each. */
  pieces: Buffer[];
  /** The final event (with the stats), when the answer has one. */
  final?: Buffer;
  /** After the pieces: end the body, or destroy the connection. */
  end: 'end' | 'reset';
  /** A body small enough that Go sends it with Content-Length. */
  lengthFramed: boolean;
  /** The piece that carries the usage, when it comes before the final event (OpenAI's usage event, Anthropic's `message_delta`). */
  usageAt?: number;
  /** What the answer reports, when it reports usage (nothing on a failure or without usage). */
  reported?: { tokensIn: number; cached?: number; tokensOut: number; loadNs?: number; promptNs?: number; evalNs?: number };
}

const WORDS = [' The', ' sky', ' is', ' blue', ' because', ' of', ' Rayleigh', ' scattering', '.'];
const CREATED = '2026-12-07T02:00:00.000000000Z';
const json = (v: unknown) => JSON.stringify(v);
const line = (v: unknown) => Buffer.from(json(v) + '\n');
const sse = (v: unknown) => Buffer.from(`data: ${json(v)}\n\n`);
const named = (type: string, v: unknown) => Buffer.from(`event: ${type}\ndata: ${json(v)}\n\n`);

/** The answer to `attempt` of `call`; `includeUsage`: whether the request Ollama got asked for usage. */
export function answerFor(call: PlannedCall, attempt: Attempt, includeUsage: boolean): Answer {
  const { family, streamed } = call;
  if (attempt.ending === 'status-500' || attempt.ending === 'status-404') return errorAnswer(call, attempt.ending === 'status-500' ? 500 : 404);
  const words = Array.from({ length: call.pieces }, (_, i) => WORDS[i % WORDS.length]);
  let a: Answer;
  switch (family.api) {
    case 'native':
      a = family.embed ? nativeEmbed(call) : native(call, words);
      break;
    case 'openai':
      a = family.embed ? openAiEmbed(call) : openAi(call, words, includeUsage);
      break;
    case 'responses':
      a = responses(call, words);
      break;
    case 'anthropic':
      a = anthropic(call, words);
      break;
  }
  if (!streamed || attempt.ending === 'complete') return a;
  // A broken stream: part of the answer, then an error line, a clean end without the final event, or a reset.
  const cut = a.pieces.slice(0, Math.max(1, Math.ceil(a.pieces.length / 2)));
  if (attempt.ending === 'error-line') cut.push(line({ error: 'an error was encountered while running the model: unexpected EOF' }));
  const usageKept = a.usageAt !== undefined && a.usageAt < cut.length;
  return { ...a, pieces: cut, final: undefined, reported: usageKept ? a.reported : undefined, end: attempt.ending === 'reset' ? 'reset' : 'end' };
}

function errorAnswer(call: PlannedCall, status: number): Answer {
  const message = status === 404 ? `model '${call.model}' not found` : 'llama runner process has terminated: exit status 2';
  const body =
    call.family.api === 'native'
      ? json({ error: message })
      : call.family.api === 'anthropic'
        ? json({ type: 'error', error: { type: status === 404 ? 'not_found_error' : 'api_error', message } })
        : json({ error: { message, type: status === 404 ? 'not_found_error' : 'api_error', param: null, code: null } }) + '\n';
  return {
    status,
    contentType: call.family.api === 'native' ? 'application/json; charset=utf-8' : 'application/json',
    pieces: [Buffer.from(body)],
    end: 'end',
    lengthFramed: true,
  };
}

function stats(call: PlannedCall) {
  return {
    total_duration: call.loadNs + call.promptNs + call.evalNs + 1_000_000,
    load_duration: call.loadNs,
    prompt_eval_count: call.tokensIn,
    ...(call.reportsCached ? { prompt_eval_cached_count: call.cached } : {}),
    prompt_eval_duration: call.promptNs,
    eval_count: call.tokensOut,
    eval_duration: call.evalNs,
  };
}

function reported(call: PlannedCall, durations = false): Answer['reported'] {
  return {
    tokensIn: call.tokensIn,
    cached: call.reportsCached ? call.cached : undefined,
    tokensOut: call.tokensOut,
    ...(durations ? { loadNs: call.loadNs, promptNs: call.promptNs, evalNs: call.evalNs } : {}),
  };
}

function native(call: PlannedCall, words: string[]): Answer {
  const chat = call.family.endpoint === '/api/chat';
  const content = (text: string) => (chat ? { message: { role: 'assistant', content: text } } : { response: text });
  const done = {
    model: call.model,
    created_at: CREATED,
    ...content(''),
    done: true,
    done_reason: 'stop',
    ...(chat ? {} : { context: [1, 2, 3] }),
    ...stats(call),
  };
  if (!call.streamed) {
    const body = Buffer.from(json({ ...done, ...content(words.join('')) }));
    return {
      status: 200,
      contentType: 'application/json; charset=utf-8',
      pieces: [body],
      end: 'end',
      lengthFramed: body.length <= 2048,
      reported: reported(call, true),
    };
  }
  return {
    status: 200,
    contentType: 'application/x-ndjson',
    pieces: words.map((w) => line({ model: call.model, created_at: CREATED, ...content(w), done: false })),
    final: line(done),
    end: 'end',
    lengthFramed: false,
    reported: reported(call, true),
  };
}

function nativeEmbed(call: PlannedCall): Answer {
  const body = Buffer.from(
    json({
      model: call.model,
      embeddings: [[0.125, -0.25, 0.5]],
      total_duration: call.loadNs + call.promptNs,
      load_duration: call.loadNs,
      prompt_eval_count: call.tokensIn,
    }),
  );
  return {
    status: 200,
    contentType: 'application/json; charset=utf-8',
    pieces: [body],
    end: 'end',
    lengthFramed: true,
    reported: { tokensIn: call.tokensIn, tokensOut: 0, loadNs: call.loadNs },
  };
}

function openAiUsage(call: PlannedCall) {
  return {
    prompt_tokens: call.tokensIn,
    completion_tokens: call.tokensOut,
    total_tokens: call.tokensIn + call.tokensOut,
    ...(call.reportsCached ? { prompt_tokens_details: { cached_tokens: call.cached } } : {}),
  };
}

function openAi(call: PlannedCall, words: string[], includeUsage: boolean): Answer {
  const chat = call.family.endpoint === '/v1/chat/completions';
  const id = chat ? `chatcmpl-${call.index}` : `cmpl-${call.index}`;
  if (!call.streamed) {
    const choice = chat
      ? { index: 0, message: { role: 'assistant', content: words.join('') }, finish_reason: 'stop' }
      : { text: words.join(''), index: 0, finish_reason: 'stop' };
    const body = Buffer.from(
      json({
        id,
        object: chat ? 'chat.completion' : 'text_completion',
        created: 1795634860,
        model: call.model,
        system_fingerprint: 'fp_ollama',
        choices: [choice],
        usage: openAiUsage(call),
      }),
    );
    return { status: 200, contentType: 'application/json', pieces: [body], end: 'end', lengthFramed: body.length <= 2048, reported: reported(call) };
  }
  const object = chat ? 'chat.completion.chunk' : 'text_completion';
  // Ollama's completions stream carries a zeroed usage on every chunk when usage is asked for.
  const zero = !chat && includeUsage ? { usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } } : {};
  const chunk = (text: string | undefined, finish: string | null) =>
    sse({
      id,
      object,
      created: 1795634883,
      model: call.model,
      system_fingerprint: 'fp_ollama',
      choices: [
        chat ? { index: 0, delta: text === undefined ? {} : { content: text }, finish_reason: finish } : { text: text ?? '', index: 0, finish_reason: finish },
      ],
      ...zero,
    });
  const pieces = [...words.map((w) => chunk(w, null)), chunk(undefined, 'stop')];
  if (includeUsage)
    pieces.push(sse({ id, object, created: 1795634883, model: call.model, system_fingerprint: 'fp_ollama', choices: [], usage: openAiUsage(call) }));
  return {
    status: 200,
    contentType: 'text/event-stream',
    pieces,
    final: Buffer.from('data: [DONE]\n\n'),
    usageAt: includeUsage ? pieces.length - 1 : undefined,
    end: 'end',
    lengthFramed: false,
    reported: includeUsage ? reported(call) : undefined,
  };
}

function openAiEmbed(call: PlannedCall): Answer {
  const body = Buffer.from(
    json({
      object: 'list',
      data: [{ object: 'embedding', embedding: [0.125, -0.25, 0.5], index: 0 }],
      model: call.model,
      usage: { prompt_tokens: call.tokensIn, total_tokens: call.tokensIn },
    }) + '\n',
  );
  return { status: 200, contentType: 'application/json', pieces: [body], end: 'end', lengthFramed: true, reported: { tokensIn: call.tokensIn, tokensOut: 0 } };
}

function responses(call: PlannedCall, words: string[]): Answer {
  const id = `resp_${call.index}`;
  const usage = {
    input_tokens: call.tokensIn,
    input_tokens_details: { cached_tokens: call.reportsCached ? call.cached : 0 },
    output_tokens: call.tokensOut,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: call.tokensIn + call.tokensOut,
  };
  const response = (status: string, u: unknown, text: string) => ({
    id,
    object: 'response',
    created_at: 1795635126,
    status,
    model: call.model,
    output: text
      ? [
          {
            id: `msg_${call.index}`,
            type: 'message',
            status: 'completed',
            role: 'assistant',
            content: [{ type: 'output_text', text, annotations: [], logprobs: [] }],
          },
        ]
      : [],
    usage: u,
  });
  // Before the field existed (§10.1) Ollama always wrote cached_tokens 0: the same bytes say "none".
  const rep = { tokensIn: call.tokensIn, cached: call.reportsCached ? call.cached : 0, tokensOut: call.tokensOut };
  if (!call.streamed) {
    const body = Buffer.from(json(response('completed', usage, words.join(''))));
    return { status: 200, contentType: 'application/json', pieces: [body], end: 'end', lengthFramed: body.length <= 2048, reported: rep };
  }
  let seq = 0;
  const pieces = [
    named('response.created', { response: response('in_progress', null, ''), sequence_number: seq++, type: 'response.created' }),
    ...words.map((w) =>
      named('response.output_text.delta', {
        content_index: 0,
        delta: w,
        item_id: `msg_${call.index}`,
        logprobs: [],
        output_index: 0,
        sequence_number: seq++,
        type: 'response.output_text.delta',
      }),
    ),
  ];
  const final = named('response.completed', { response: response('completed', usage, words.join('')), sequence_number: seq, type: 'response.completed' });
  return { status: 200, contentType: 'text/event-stream', pieces, final, end: 'end', lengthFramed: false, reported: rep };
}

function anthropicUsage(call: PlannedCall) {
  const cached = call.reportsCached ? call.cached : 0;
  return {
    input_tokens: ANTHROPIC_INPUT_EXCLUDES_CACHED ? call.tokensIn - cached : call.tokensIn,
    ...(call.reportsCached ? { cache_read_input_tokens: cached } : {}),
    output_tokens: call.tokensOut,
  };
}

function anthropic(call: PlannedCall, words: string[]): Answer {
  const id = `msg_${call.index}`;
  if (!call.streamed) {
    const body = Buffer.from(
      json({
        id,
        type: 'message',
        role: 'assistant',
        model: call.model,
        content: [{ type: 'text', text: words.join('') }],
        stop_reason: 'end_turn',
        usage: anthropicUsage(call),
      }),
    );
    return { status: 200, contentType: 'application/json', pieces: [body], end: 'end', lengthFramed: body.length <= 2048, reported: reported(call) };
  }
  const u = anthropicUsage(call);
  const pieces = [
    named('message_start', {
      type: 'message_start',
      message: { id, type: 'message', role: 'assistant', model: call.model, content: [], usage: { input_tokens: u.input_tokens, output_tokens: 0 } },
    }),
    named('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    ...words.map((w) => named('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: w } })),
    named('content_block_stop', { type: 'content_block_stop', index: 0 }),
    named('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: u }),
  ];
  return {
    status: 200,
    contentType: 'text/event-stream',
    pieces,
    final: named('message_stop', { type: 'message_stop' }),
    usageAt: pieces.length - 1,
    end: 'end',
    lengthFramed: false,
    reported: reported(call),
  };
}
