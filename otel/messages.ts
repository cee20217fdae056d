/**
 * Prompt and completion text in the GenAI conventions' message shape, for the opt-in
 * `gen_ai.input.messages` / `gen_ai.output.messages` span attributes
 * (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/, "Recording content").
 * Each text part is cut to `maxChars` characters.
 */

interface TextPart {
  type: 'text';
  content: string;
}
interface ChatMessage {
  role: string;
  parts: TextPart[];
  finish_reason?: string;
}

function cut(text: string, maxChars: number): string {
  return text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
}

/** Text of an OpenAI content value: a string, or an array of `{type:"text", text}` parts. */
function contentText(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    const texts = content
      .map((p) =>
        p && typeof p === 'object' && typeof (p as Record<string, unknown>).text === 'string' ? ((p as Record<string, unknown>).text as string) : undefined,
      )
      .filter((t): t is string => t !== undefined);
    return texts.length > 0 ? texts.join('') : undefined;
  }
  return undefined;
}

function message(role: string, text: string, maxChars: number): ChatMessage {
  return { role, parts: [{ type: 'text', content: cut(text, maxChars) }] };
}

/** The input messages of a chat or completion request body (native or OpenAI), as a JSON string. */
export function inputMessages(body: Record<string, unknown> | undefined, maxChars: number): string | undefined {
  if (!body) return undefined;
  const out: ChatMessage[] = [];
  if (Array.isArray(body.messages)) {
    for (const m of body.messages) {
      if (!m || typeof m !== 'object') continue;
      const r = m as Record<string, unknown>;
      const text = contentText(r.content);
      if (text !== undefined) out.push(message(typeof r.role === 'string' ? r.role : 'user', text, maxChars));
    }
  } else {
    if (typeof body.system === 'string') out.push(message('system', body.system, maxChars));
    const prompt = Array.isArray(body.prompt) ? body.prompt.filter((p) => typeof p === 'string').join('\n') : body.prompt;
    if (typeof prompt === 'string') out.push(message('user', prompt, maxChars));
  }
  return out.length > 0 ? JSON.stringify(out) : undefined;
}

/** The model's answer as output messages, as a JSON string. */
export function outputMessages(text: string | undefined, finishReason: string | undefined, maxChars: number): string | undefined {
  if (text === undefined) return undefined;
  const m = message('assistant', text, maxChars);
  if (finishReason) m.finish_reason = finishReason;
  return JSON.stringify([m]);
}
