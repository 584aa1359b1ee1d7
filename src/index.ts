/** bansho's storage library: the gateway builds on these. Re-exports only. */
export type { CheckDetail, CheckError, CheckResult, CheckStatus } from './checks/model.js';
export type { PostgresTarget, SslMode } from './config/postgres-dsn.js';
export type { RedisTarget } from './config/redis-url.js';
export type { Report } from './engine/report.js';
export { type StorageSmokeOptions, storageSmokeCheck } from './engine/storage-smoke-check.js';
export { BanshoError, type Difference, ExitCode, type FailureCode } from './errors.js';
export { pingPostgres } from './postgres/check.js';
export { closePostgres, createPostgresPool, type PostgresPoolOptions, type Sql } from './postgres/client.js';
export { redactUrl } from './redact.js';
export { pingRedis } from './redis/check.js';
export {
  closeRedis,
  createRedisClient,
  createRedisCluster,
  defineScript,
  type RedisClient,
  type RedisClientOptions,
  type RedisClusterClient,
  type RedisScript,
  redisOps,
} from './redis/client.js';
export { type EnsureSchemaOptions, ensureSchema } from './schema/api.js';
export type { EnsureSchemaResult } from './schema/ensure.js';
export type { SchemaChange } from './schema/plan.js';
export { SCHEMA, SCHEMA_VERSION } from './schema/spec.js';
export type { HealthHandler } from './server/handler.js';
export { createHealthHandler, type HealthHandlerOptions } from './server/health-handler.js';
export type { TimedReport } from './server/result-cache.js';
