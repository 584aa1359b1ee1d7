import type { RedisTopology } from '../checks/model.js';
import { type CheckResult, runCheck } from '../checks/model.js';
import { monotonicMs } from '../checks/time.js';
import type { Config } from '../config/load.js';
import type { PostgresSession } from '../postgres/session.js';

/*
 * The checks that commands combine, each a CheckResult that never throws. Storage modules
 * are imported only by the commands that use them: `ping-redis` should not pay for loading
 * the PostgreSQL driver, and a healthcheck pays start-up time every few seconds.
 */

/**
 * Loads the drivers the configuration names before any check's clock starts: checks run
 * concurrently, and one driver's loading blocking the event loop must not show up as
 * another server's latency.
 */
export async function loadDrivers(config: Config): Promise<void> {
  await Promise.all([
    config.redis ? import('../redis/check.js') : undefined,
    config.postgres ? import('../schema/ensure.js') : undefined,
  ]);
}

function required<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new Error(`bug: ${name} was not configured for this command`);
  return value;
}

export async function redisCheck(config: Config, signal: AbortSignal): Promise<CheckResult> {
  const target = required(config.redis, 'redis');
  const checkOptions = { timeoutMs: config.timeoutMs, signal, write: config.writeProbe };
  return runCheck(target, async () => {
    const { checkRedisTarget } = await import('../redis/check.js');
    const outcome = await checkRedisTarget(target, checkOptions);
    return {
      latencyMs: outcome.latencyMs,
      ...(outcome.version === undefined ? {} : { version: `Redis ${outcome.version}` }),
      details: outcome.details,
      ...('topology' in outcome
        ? { topology: outcome.topology, message: describeTopology(outcome.topology) }
        : {}),
    };
  });
}

/** One line for people: "cluster of 3 masters" or "master mymaster at 10.0.0.5:6379". */
function describeTopology(topology: RedisTopology): string {
  if (topology.kind === 'cluster')
    return `cluster of ${topology.nodes.length} master${topology.nodes.length === 1 ? '' : 's'}`;
  return `master ${topology.master.name} at ${topology.master.node ?? 'unknown'}, from the sentinels`;
}

export async function postgresCheck(config: Config, signal: AbortSignal): Promise<CheckResult> {
  const target = required(config.postgres, 'postgres');
  const { checkPostgres } = await import('../postgres/check.js');
  return runCheck(target, async () => {
    const outcome = await checkPostgres(target, { timeoutMs: config.timeoutMs, signal });
    return {
      version: `PostgreSQL ${outcome.version}`,
      details: outcome.details,
      ...(outcome.host ? { host: outcome.host } : {}),
    };
  });
}

/**
 * smoke's two PostgreSQL checks, the server and the schema, on one connection: a healthcheck
 * every few seconds across a fleet should cost the server one session, not two. Once the
 * sub-checks' query has answered, the schema is read even if a sub-check failed (a standby
 * still shows its tables); when the connection itself fails, both checks report that failure.
 */
export async function postgresAndSchemaChecks(
  config: Config,
  signal: AbortSignal,
): Promise<{ postgres: CheckResult; schema: CheckResult }> {
  const target = required(config.postgres, 'postgres');
  const { withPostgres, answeringHost, inBoundedTransaction, inSavepoint } = await import(
    '../postgres/session.js'
  );
  const { classifyPostgresError } = await import('../postgres/classify.js');
  const { runPostgresSubChecks } = await import('../postgres/sub-checks.js');
  const { inspectSchemaOn, judgeSchema } = await import('../schema/ensure.js');
  const classified = <T>(promise: Promise<T>, session: PostgresSession) =>
    promise.catch((error: unknown) => {
      throw classifyPostgresError(error, target, session);
    });
  let schema: CheckResult | undefined;
  // Both checks count from the start of the session they share: each needed the connection.
  const start = monotonicMs();
  const postgres = await runCheck(target, async () => {
    let serverMs = 0;
    const outcome = await withPostgres(
      target,
      { timeoutMs: config.timeoutMs, signal },
      (sql, race, session) =>
        // One transaction, so that the server bounds its waits.
        race(
          inBoundedTransaction(sql, config.timeoutMs - (monotonicMs() - start), async () => {
            const findings = await classified(runPostgresSubChecks(sql), session);
            serverMs = monotonicMs() - start;
            schema = await runCheck(
              target,
              async () => ({
                // In a savepoint: a failed read (a privilege, say) must not abort the transaction
                // the PostgreSQL check's findings came from.
                ...judgeSchema(await classified(race(inSavepoint(sql, () => inspectSchemaOn(sql))), session)),
                ...answeringHost(target, session),
              }),
              start,
            );
            return { ...findings, ...answeringHost(target, session) };
          }),
        ),
    );
    return {
      version: `PostgreSQL ${outcome.version}`,
      latencyMs: serverMs,
      details: outcome.details,
      ...(outcome.host ? { host: outcome.host } : {}),
    };
  });
  return { postgres, schema: schema ?? { ...postgres, version: undefined } };
}
