import type { PostgresTarget } from '../config.js';
import { BanshoError } from '../errors.js';
import { type PostgresCheckOptions, withPostgres } from '../storage/postgres.js';
import { introspectSchema } from './introspect.js';
import { planSchema, type SchemaPlan } from './plan.js';

/** Serialises concurrent `ensure-schema` runs (two deploys at once), whatever their timing. */
const SCHEMA_LOCK_KEY = 'bansho.schema';

export interface EnsureSchemaResult {
  /** What was created, in order ("create table api_keys"); empty when nothing was missing. */
  changes: string[];
}

/**
 * Creates whatever part of the schema is missing, in one transaction under an advisory
 * lock. When something exists but differs from the spec it changes nothing and throws
 * `schema_mismatch`, naming every difference: bansho never alters a table it did not create.
 */
export async function ensureSchemaOn(
  target: PostgresTarget,
  options: PostgresCheckOptions,
): Promise<EnsureSchemaResult> {
  return withPostgres(target, options, (sql, race) =>
    race(
      sql.begin(async (tx) => {
        const [state] = await tx<{ in_recovery: boolean }[]>`select pg_is_in_recovery() as in_recovery`;
        if (state?.in_recovery) {
          throw new BanshoError(
            'not_ready',
            'the server is a standby in recovery; the schema is created on the primary',
            {
              service: 'postgres',
            },
          );
        }
        await tx`select pg_advisory_xact_lock(hashtext(${SCHEMA_LOCK_KEY}))`;
        const plan = planSchema(await introspectSchema(tx));
        throwOnProblems(plan);
        for (const step of plan.steps) await tx.unsafe(step.sql);
        return { changes: plan.steps.map((step) => step.description) };
      }),
    ),
  );
}

/** Reads the schema and compares it with the spec, changing nothing. */
export async function inspectSchema(
  target: PostgresTarget,
  options: PostgresCheckOptions,
): Promise<SchemaPlan> {
  return withPostgres(target, options, (sql, race) =>
    race(introspectSchema(sql)).then((actual) => planSchema(actual)),
  );
}

export function throwOnProblems(plan: SchemaPlan): void {
  if (plan.problems.length === 0) return;
  throw new BanshoError('schema_mismatch', `schema differs from bansho's: ${plan.problems.join('; ')}`);
}
