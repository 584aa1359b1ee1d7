import { type CheckResult, runCheck } from './checks.js';
import type { Config } from './config.js';
import { SCHEMA } from './schema/spec.js';

/*
 * The checks that commands combine, each a CheckResult that never throws. Storage modules
 * are imported only by the commands that use them: `ping-redis` should not pay for loading
 * the PostgreSQL driver, and a healthcheck pays start-up time every few seconds.
 */

/**
 * Loads the drivers the configuration names, and builds node-redis's client class, before
 * any check's clock starts: checks run concurrently, and one driver's start-up blocking the
 * event loop must not show up as another server's latency.
 */
export async function loadDrivers(config: Config): Promise<void> {
  const { redis: redisTarget, postgres: postgresTarget, timeoutMs } = config;
  await Promise.all([
    redisTarget
      ? import('./storage/redis.js').then((redis) => redis.warmRedisDriver(redisTarget, timeoutMs))
      : undefined,
    postgresTarget ? import('./schema/ensure.js') : undefined,
  ]);
}

function required<T>(value: T | undefined, name: string): T {
  if (value === undefined) throw new Error(`bug: ${name} was not configured for this command`);
  return value;
}

export async function redisCheck(
  config: Config,
  signal: AbortSignal,
  options: { write: boolean },
): Promise<CheckResult> {
  const target = required(config.redis, 'redis');
  const { checkRedis } = await import('./storage/redis.js');
  return runCheck(target.display, async () => {
    const probe = await checkRedis(target, { timeoutMs: config.timeoutMs, signal, write: options.write });
    return {
      latencyMs: probe.latencyMs,
      ...(probe.version === undefined ? {} : { version: `Redis ${probe.version}` }),
    };
  });
}

export async function postgresCheck(config: Config, signal: AbortSignal): Promise<CheckResult> {
  const target = required(config.postgres, 'postgres');
  const { checkPostgres } = await import('./storage/postgres.js');
  return runCheck(target.display, async () => {
    const probe = await checkPostgres(target, { timeoutMs: config.timeoutMs, signal });
    return { version: `PostgreSQL ${probe.version}` };
  });
}

/** Passes when the schema is as specified, warns when (part of) it is not created yet, fails when it differs. */
export async function schemaCheck(config: Config, signal: AbortSignal): Promise<CheckResult> {
  const target = required(config.postgres, 'postgres');
  const { inspectSchema, throwOnProblems } = await import('./schema/ensure.js');
  return runCheck(target.display, async () => {
    const plan = await inspectSchema(target, { timeoutMs: config.timeoutMs, signal });
    throwOnProblems(plan);
    if (plan.steps.length === 0) return { message: 'api_keys and audit_events as specified' };
    const pending = plan.steps.map((step) => step.description);
    const message =
      plan.missingTables.length === SCHEMA.length
        ? 'not bootstrapped yet: run `bansho ensure-schema`'
        : `incomplete (${pending.length} missing): run \`bansho ensure-schema\``;
    return { status: 'warn', message, pending };
  });
}
