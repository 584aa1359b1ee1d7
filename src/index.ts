/** bansho's storage library: the gateway builds on these. Re-exports only. */
export type { CheckDetail, CheckError, CheckResult, CheckStatus, Report } from './checks.js';
export type { PostgresTarget, RedisTarget, SslMode } from './config.js';
export { BanshoError, type Difference, ExitCode, type FailureCode } from './errors.js';
export { redactUrl } from './redact.js';
export { type EnsureSchemaOptions, ensureSchema } from './schema/api.js';
export type { EnsureSchemaResult } from './schema/ensure.js';
export type { SchemaChange } from './schema/plan.js';
export { SCHEMA, SCHEMA_VERSION } from './schema/spec.js';
export { type StorageSmokeOptions, storageSmokeCheck } from './smoke-check.js';
export {
  closePostgres,
  createPostgresPool,
  type PostgresPoolOptions,
  pingPostgres,
  type Sql,
} from './storage/postgres.js';
export {
  closeRedis,
  createRedisClient,
  defineScript,
  type RedisClient,
  type RedisClientOptions,
  type RedisClusterClient,
  type RedisScript,
  redisOps,
} from './storage/redis.js';
export { createRedisCluster, pingRedis } from './storage/redis-topology.js';
