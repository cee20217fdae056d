/**
 * Model names as Ollama resolves them. A name without a tag means `:latest`, so `llama3.2` and
 * `llama3.2:latest` are one model (Ollama `types/model/name.go`: the default tag is `latest`; and
 * `/api/tags`, `/api/ps` list `llama3.2:latest` while chat responses echo the request).
 */

import { UNKNOWN_LABEL } from '../../otel/instruments';

export const UNKNOWN_MODEL = UNKNOWN_LABEL;

/** `llama3.2` → `llama3.2:latest`; `hf.co/org/repo` → `hf.co/org/repo:latest`; tags are kept. */
export function normalizeModelName(name: string | undefined): string {
  if (name === undefined) return UNKNOWN_MODEL;
  const trimmed = name.trim();
  if (trimmed === '') return UNKNOWN_MODEL;
  // A digest reference (`name@sha256:…`) names one exact model: keep it as sent.
  if (trimmed.includes('@')) return trimmed;
  const lastSlash = trimmed.lastIndexOf('/');
  return trimmed.indexOf(':', lastSlash + 1) === -1 ? `${trimmed}:latest` : trimmed;
}
