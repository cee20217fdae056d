/** The per-tenant counters of one finished call, from its ledger row. */
import type { Attributes } from '@opentelemetry/api';
import { ATTR_MODEL, ATTR_STATUS, ATTR_TENANT, ATTR_TYPE, type TenantInstruments } from './instruments';
import type { UsageRecord } from './usage';

export function recordTenantCall(ins: TenantInstruments, r: UsageRecord): void {
  const attrs: Attributes = { [ATTR_TENANT]: r.tenant, [ATTR_MODEL]: r.model };
  ins.requests.add(1, { ...attrs, [ATTR_STATUS]: String(r.status) });
  // Added at 0 too, so every tenant's series exist from its first call and rate() sees the first rise.
  ins.tokens.add(r.inputTokens, { ...attrs, [ATTR_TYPE]: 'input' });
  ins.tokens.add(r.cachedTokens, { ...attrs, [ATTR_TYPE]: 'cached' });
  ins.tokens.add(r.outputTokens, { ...attrs, [ATTR_TYPE]: 'output' });
  ins.gpuSeconds.add(r.gpuSeconds, attrs);
  ins.gpuSecondsEstimated.add(r.gpuSecondsEstimated, attrs);
  ins.modelLoads.add(r.loads, attrs);
  ins.optionReloads.add(r.optionReloads, attrs);
}
