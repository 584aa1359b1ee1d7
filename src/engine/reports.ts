import { runCheck, summarize } from '../checks/model.js';
import type { Config } from '../config/load.js';
import type { SchemaChange } from '../schema/plan.js';
import { postgresAndSchemaChecks, postgresCheck, redisCheck } from './checks.js';
import type { Report } from './report.js';

/*
 * What each front-end runs: the CLI's commands, `bansho serve`'s /readyz and the library's health
 * handler all make their reports here. Each runs every check once, within `config.timeoutMs`,
 * and never throws for a failed check: a failure is in the report.
 */

/** The report of a set of checks, by name. */
export type MakeReport = (config: Config, signal: AbortSignal) => Promise<Report>;

export const pingRedisReport: MakeReport = async (config, signal) => {
  const checks = { redis: await redisCheck(config, signal) };
  return { status: summarize(checks, config.strict), checks };
};

export const pingPostgresReport: MakeReport = async (config, signal) => {
  const checks = { postgres: await postgresCheck(config, signal) };
  return { status: summarize(checks, config.strict), checks };
};

/** Redis, PostgreSQL and the schema, concurrently: the two PostgreSQL checks share one session. */
export const smokeReport: MakeReport = async (config, signal) => {
  const [redis, { postgres, schema }] = await Promise.all([
    redisCheck(config, signal),
    postgresAndSchemaChecks(config, signal),
  ]);
  const checks = { redis, postgres, schema };
  return { status: summarize(checks, config.strict), checks };
};

/** ensure-schema: the schema check is the run itself; `changes` says what it did (or would do). */
export const ensureSchemaReport: MakeReport = async (config, signal) => {
  const target = config.postgres;
  if (!target) throw new Error('bug: postgres was not configured for ensure-schema');
  const { ensureSchemaOn } = await import('../schema/ensure.js');
  const { dryRun } = config;
  let changes: SchemaChange[] = [];
  const schema = await runCheck(target, async () => {
    const result = await ensureSchemaOn(target, { timeoutMs: config.timeoutMs, signal, dryRun });
    changes = result.changes;
    const host = result.host ? { host: result.host } : {};
    const count = changes.length === 1 ? '1 change' : `${changes.length} changes`;
    if (changes.length === 0) return { message: 'already up to date', ...host };
    return { message: dryRun ? `${count} planned (dry run: nothing changed)` : `${count} made`, ...host };
  });
  const checks = { schema };
  return {
    status: summarize(checks, config.strict),
    checks,
    changes,
    drift: schema.drift ?? [],
    ...(dryRun ? { dryRun } : {}),
  };
};
