import type { CheckDetail, CheckOutcome } from '../checks/model.js';
import { detailFailure } from '../checks/sub-check.js';
import { monotonicMs } from '../checks/time.js';
import type { PostgresTarget } from '../config/postgres-dsn.js';
import { BanshoError } from '../errors.js';
import type { Sql } from '../postgres/client.js';
import {
  answeringHost,
  inBoundedTransaction,
  type PostgresCheckOptions,
  withPostgres,
} from '../postgres/session.js';
import { runPostgresSubChecks } from '../postgres/sub-checks.js';
import { introspectSchema } from './introspect.js';
import { planSchema, type SchemaChange, type SchemaPlan } from './plan.js';
import { SCHEMA, SCHEMA_VERSION, VERSION_TABLE } from './spec.js';

/** Serialises concurrent `ensure-schema` runs (every replica's start-up at once), whatever their timing. */
const SCHEMA_LOCK_KEY = 'bansho.schema';

export interface EnsureSchemaResult {
  /** What was changed, in order; with `dryRun`, what would be. Empty when nothing was missing. */
  changes: SchemaChange[];
  dryRun: boolean;
  /** With several hosts in the DSN: the one it ran on. */
  host?: string;
}

export interface EnsureSchemaRunOptions extends PostgresCheckOptions {
  /** Plan and report, change nothing. */
  dryRun?: boolean;
}

/** The sub-checks that must pass before ensure-schema attempts anything. */
const PREREQUISITES = ['version', 'primary', 'privileges'];

/**
 * Why ensure-schema must not start, from the PostgreSQL sub-checks (with CREATE required), if
 * it must not: PostgreSQL before 13, a standby or a read-only session (both `read_only`: nothing
 * can be created there), a missing privilege. Pure, so each case is unit-tested.
 */
export function refuseServer(details: readonly CheckDetail[]): BanshoError | undefined {
  const failure = details.find((detail) => detail.status === 'fail' && PREREQUISITES.includes(detail.name));
  if (!failure) return undefined;
  return detailFailure(failure, 'postgres', failure.name === 'primary' ? 'read_only' : undefined);
}

/**
 * Makes the database match the spec: reads the catalog and plans without a lock; when there
 * is anything to do, applies it in one transaction under a transaction-level advisory lock
 * (which PgBouncer's transaction pooling keeps), re-planning after the lock is taken because
 * another run may have done the work meanwhile. Drift or a newer schema changes nothing and throws.
 */
export async function ensureSchemaOn(
  target: PostgresTarget,
  options: EnsureSchemaRunOptions,
): Promise<EnsureSchemaResult> {
  const started = monotonicMs();
  const remaining = () => options.timeoutMs - (monotonicMs() - started);
  const dryRun = options.dryRun === true;
  return withPostgres(target, options, async (sql, race, session) => {
    // Read in a transaction of its own so that its waits are bounded on the server too: the
    // catalog functions wait for a table another session holds exclusively.
    const plan = await race(
      inBoundedTransaction(sql, remaining(), async () => {
        const refusal = refuseServer((await runPostgresSubChecks(sql, { create: true })).details);
        if (refusal) throw refusal;
        return planSchema(await introspectSchema(sql));
      }),
    );
    // Read once the session exists: postgres.js connects on the first query.
    const host = answeringHost(target, session);
    throwOnProblems(plan);
    if (dryRun || plan.changes.length === 0) return { changes: plan.changes, dryRun, ...host };

    const changes = await race(
      inBoundedTransaction(sql, remaining(), async () => {
        await sql`select pg_advisory_xact_lock(hashtext(${SCHEMA_LOCK_KEY}))`;
        // Another run may have done the work while this one waited for the lock.
        const locked = planSchema(await introspectSchema(sql));
        throwOnProblems(locked);
        for (const change of locked.changes) await sql.unsafe(change.sql);
        return locked.changes;
      }),
    );
    return { changes, dryRun, ...host };
  });
}

/** Reads the schema on an open connection and compares it with the spec, changing nothing. */
export async function inspectSchemaOn(sql: Sql): Promise<SchemaPlan> {
  return planSchema(await introspectSchema(sql));
}

/** Throws `schema_newer` or `schema_mismatch` (with every difference) when the plan must not be applied. */
export function throwOnProblems(plan: SchemaPlan): void {
  if (plan.newer) {
    throw new BanshoError(
      'schema_newer',
      `the database holds schema version ${plan.recordedVersion}, newer than this bansho's ${SCHEMA_VERSION}: nothing compared or changed`,
      { service: 'postgres' },
    );
  }
  if (plan.drift.length === 0) return;
  const count = plan.drift.length === 1 ? 'one place' : `${plan.drift.length} places`;
  // The message stays one short line; each difference is in `drift`, and on its own line in human output.
  throw new BanshoError('schema_mismatch', `schema differs from bansho's in ${count}`, {
    service: 'postgres',
    drift: plan.drift,
  });
}

/**
 * smoke's verdict on the schema: pass when it is as specified, warn when (part of) it is not
 * created yet or it is newer than this bansho, fail (throw) when it differs.
 */
export function judgeSchema(plan: SchemaPlan): CheckOutcome {
  if (plan.newer) {
    // Failing would mark every replica of the old version unhealthy in the middle of a rolling
    // deploy; the newer bansho owns the schema now, and ensure-schema here refuses to touch it.
    return {
      status: 'warn',
      message: `schema version ${plan.recordedVersion} is newer than this bansho's ${SCHEMA_VERSION}: not compared`,
    };
  }
  throwOnProblems(plan);
  if (plan.changes.length === 0) {
    const version = plan.versionUnreadable
      ? `this role may not read ${VERSION_TABLE}`
      : `schema version ${SCHEMA_VERSION}`;
    return { message: `as specified (${version})` };
  }
  const pending = plan.changes.map((change) => `${change.action} ${change.object}`);
  const message =
    plan.missingTables.length === SCHEMA.length
      ? 'not bootstrapped yet: run `bansho ensure-schema`'
      : `incomplete (${pending.length} pending): run \`bansho ensure-schema\``;
  return { status: 'warn', message, pending };
}
