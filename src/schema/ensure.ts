import type { TransactionSql } from 'postgres';
import type { CheckOutcome } from '../checks.js';
import type { PostgresTarget } from '../config.js';
import { BanshoError } from '../errors.js';
import {
  answeringHost,
  boundTransaction,
  type PostgresCheckOptions,
  type Sql,
  withPostgres,
} from '../storage/postgres.js';
import { introspectSchema } from './introspect.js';
import { planSchema, type SchemaChange, type SchemaPlan } from './plan.js';
import { SCHEMA, SCHEMA_VERSION } from './spec.js';

/** Serialises concurrent `ensure-schema` runs (every replica's start-up at once), whatever their timing. */
const SCHEMA_LOCK_KEY = 'bansho.schema';

/** PostgreSQL 13 is the first with a built-in gen_random_uuid(), which the spec's defaults call. */
export const MIN_SERVER_VERSION_NUM = 130000;

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

/** What the server says about itself, read in one query before anything is attempted. */
export interface ServerFacts {
  /** server_version_num, e.g. 150020. */
  versionNum: number;
  version: string;
  inRecovery: boolean;
  /** transaction_read_only of a new transaction: default_transaction_read_only, or a standby. */
  readOnly: boolean;
}

/** Why ensure-schema must not start on this server, if it must not. Pure, so each case is unit-tested. */
export function refuseServer(facts: ServerFacts): BanshoError | undefined {
  if (facts.versionNum < MIN_SERVER_VERSION_NUM) {
    return new BanshoError(
      'unsupported_version',
      `PostgreSQL ${facts.version} is too old: bansho needs 13 or newer (gen_random_uuid() is built in from 13)`,
      { service: 'postgres' },
    );
  }
  if (facts.inRecovery) {
    return new BanshoError(
      'read_only',
      'the server is a standby in recovery: the schema is created on the primary',
      {
        service: 'postgres',
      },
    );
  }
  if (facts.readOnly) {
    return new BanshoError(
      'read_only',
      'sessions on this database are read-only (default_transaction_read_only)',
      {
        service: 'postgres',
      },
    );
  }
  return undefined;
}

export async function readServerFacts(sql: Sql | TransactionSql): Promise<ServerFacts> {
  const [row] = await sql<
    { version_num: string; version: string; in_recovery: boolean; read_only: string }[]
  >`
    select current_setting('server_version_num') as version_num, current_setting('server_version') as version,
           pg_is_in_recovery() as in_recovery, current_setting('transaction_read_only') as read_only`;
  if (!row) throw new BanshoError('protocol', 'the server query returned no row', { service: 'postgres' });
  return {
    versionNum: Number(row.version_num),
    version: row.version,
    inRecovery: row.in_recovery,
    readOnly: row.read_only === 'on',
  };
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
  const started = performance.now();
  const remaining = () => options.timeoutMs - (performance.now() - started);
  const dryRun = options.dryRun === true;
  return withPostgres(target, options, async (sql, race, session) => {
    // Read in a transaction of its own so that its waits are bounded on the server too: the
    // catalog functions wait for a table another session holds exclusively.
    const plan = await race(
      sql.begin(async (tx) => {
        await boundTransaction(tx, remaining());
        const refusal = refuseServer(await readServerFacts(tx));
        if (refusal) throw refusal;
        return planSchema(await introspectSchema(tx));
      }),
    );
    // Read once the session exists: postgres.js connects on the first query.
    const host = answeringHost(target, session);
    throwOnProblems(plan);
    if (dryRun || plan.changes.length === 0) return { changes: plan.changes, dryRun, ...host };

    const changes = await race(
      sql.begin(async (tx) => {
        await boundTransaction(tx, remaining());
        await tx`select pg_advisory_xact_lock(hashtext(${SCHEMA_LOCK_KEY}))`;
        // Another run may have done the work while this one waited for the lock.
        const locked = planSchema(await introspectSchema(tx));
        throwOnProblems(locked);
        for (const change of locked.changes) await tx.unsafe(change.sql);
        return locked.changes;
      }),
    );
    return { changes, dryRun, ...host };
  });
}

/** Reads the schema on an open connection and compares it with the spec, changing nothing. */
export async function inspectSchemaOn(sql: Sql | TransactionSql): Promise<SchemaPlan> {
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
  if (plan.changes.length === 0) return { message: `as specified (schema version ${SCHEMA_VERSION})` };
  const pending = plan.changes.map((change) => `${change.action} ${change.object}`);
  const message =
    plan.missingTables.length === SCHEMA.length
      ? 'not bootstrapped yet: run `bansho ensure-schema`'
      : `incomplete (${pending.length} pending): run \`bansho ensure-schema\``;
  return { status: 'warn', message, pending };
}
