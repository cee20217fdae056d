/**
 * The attribute sets one (operation, endpoint, model) records with, made once, frozen and reused:
 * hashing a fresh attribute object costs the SDK more than the record itself, and a frozen set is
 * hashed only once (attribute-hash.ts). The model label is bounded (labels.ts), and so are the
 * statuses, error reasons and error types, so the cache is too.
 */
import type { Attributes } from '@opentelemetry/api';
import { fixedAttributes } from './attribute-hash';
import { ATTR_ENDPOINT, ATTR_MODEL, ATTR_REASON, ATTR_STATUS, GEN_AI_TOKEN_TYPE, TOKEN_TYPE_INPUT, TOKEN_TYPE_OUTPUT } from './instruments';
import * as sc from './semconv';

/** Attribute sets derived from a base set by one more label, made once per value. */
class Derived {
  private readonly byValue = new Map<string, Attributes>();

  constructor(
    private readonly base: Attributes,
    private readonly key: string,
  ) {}

  with(value: string): Attributes {
    let a = this.byValue.get(value);
    if (!a) {
      a = fixedAttributes({ ...this.base, [this.key]: value });
      this.byValue.set(value, a);
    }
    return a;
  }
}

export interface CallAttributes {
  /** `{model}` */
  model: Attributes;
  /** `{model, endpoint}` */
  modelEndpoint: Attributes;
  /** The GenAI metrics' attributes, and the same with `gen_ai.token.type`. */
  genAi: Attributes;
  genAiInput: Attributes;
  genAiOutput: Attributes;
  /** `{model, endpoint, status}` by status label. */
  byStatus: Derived;
  /** `{model, endpoint, reason}` by error reason. */
  byReason: Derived;
  /** The GenAI attributes with `error.type`, by type. */
  byErrorType: Derived;
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
      const modelEndpoint = fixedAttributes({ [ATTR_MODEL]: model, [ATTR_ENDPOINT]: endpoint });
      a = {
        model: fixedAttributes({ [ATTR_MODEL]: model }),
        modelEndpoint,
        genAi: fixedAttributes(genAi),
        genAiInput: fixedAttributes({ ...genAi, [GEN_AI_TOKEN_TYPE]: TOKEN_TYPE_INPUT }),
        genAiOutput: fixedAttributes({ ...genAi, [GEN_AI_TOKEN_TYPE]: TOKEN_TYPE_OUTPUT }),
        byStatus: new Derived(modelEndpoint, ATTR_STATUS),
        byReason: new Derived(modelEndpoint, ATTR_REASON),
        byErrorType: new Derived(genAi, sc.ERROR_TYPE),
      };
      this.cache.set(key, a);
    }
    return a;
  }
}
