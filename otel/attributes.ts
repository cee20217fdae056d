/**
 * The attribute sets one (operation, endpoint, model) records with, made once and reused: hashing
 * a fresh attribute object costs the SDK more than the record itself. The model label is bounded
 * (labels.ts), so the cache is too.
 */
import type { Attributes } from '@opentelemetry/api';
import { ATTR_ENDPOINT, ATTR_MODEL, GEN_AI_TOKEN_TYPE, TOKEN_TYPE_INPUT, TOKEN_TYPE_OUTPUT } from './instruments';
import * as sc from './semconv';

export interface CallAttributes {
  /** `{model}` */
  model: Attributes;
  /** `{model, endpoint}` */
  modelEndpoint: Attributes;
  /** The GenAI metrics' attributes, and the same with `gen_ai.token.type`. */
  genAi: Attributes;
  genAiInput: Attributes;
  genAiOutput: Attributes;
}

export class AttributeCache {
  private readonly cache = new Map<string, CallAttributes>();

  constructor(
    private readonly serverAddress: string,
    private readonly serverPort: number,
  ) {}

  /** The attribute sets for a call; `model` is an already bounded label. */
  get(operation: string, endpoint: string, model: string): CallAttributes {
    const key = `${operation}\u0000${endpoint}\u0000${model}`;
    let a = this.cache.get(key);
    if (!a) {
      const genAi: Attributes = {
        [sc.GEN_AI_OPERATION_NAME]: operation,
        [sc.GEN_AI_PROVIDER_NAME]: sc.PROVIDER_OLLAMA,
        [sc.GEN_AI_REQUEST_MODEL]: model,
        [sc.SERVER_ADDRESS]: this.serverAddress,
        [sc.SERVER_PORT]: this.serverPort,
      };
      a = {
        model: { [ATTR_MODEL]: model },
        modelEndpoint: { [ATTR_MODEL]: model, [ATTR_ENDPOINT]: endpoint },
        genAi,
        genAiInput: { ...genAi, [GEN_AI_TOKEN_TYPE]: TOKEN_TYPE_INPUT },
        genAiOutput: { ...genAi, [GEN_AI_TOKEN_TYPE]: TOKEN_TYPE_OUTPUT },
      };
      this.cache.set(key, a);
    }
    return a;
  }
}
