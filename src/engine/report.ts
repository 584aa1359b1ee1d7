import type { CheckResult, CheckStatus } from '../checks/model.js';
import type { Difference } from '../errors.js';
import type { SchemaChange } from '../schema/plan.js';

/** What every command returns; the `--json` document. */
export interface Report {
  status: CheckStatus;
  checks: Record<string, CheckResult>;
  /** `ensure-schema` only: what it changed (with `dryRun`, would change), empty when nothing was missing. */
  changes?: SchemaChange[];
  /** `ensure-schema` only: the differences that stopped it (as in `checks.schema.drift`), empty when none. */
  drift?: Difference[];
  /** `ensure-schema --dry-run`: `changes` is the plan, and nothing was changed. */
  dryRun?: boolean;
}

/**
 * A report as one line of JSON: the `--json` document, and /readyz's body. The drivers' error
 * details are for `verbose` only: they are long, and not a stable interface.
 */
export function reportJson<T extends Report>(report: T, verbose = false): string {
  return JSON.stringify(report, (key, value: unknown) => (key === 'detail' && !verbose ? undefined : value));
}
