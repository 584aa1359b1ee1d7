import { type PostgresPoolOptions, resolvePostgresTarget } from '../storage/postgres.js';
import { type EnsureSchemaResult, ensureSchemaOn } from './ensure.js';

export interface EnsureSchemaOptions extends Pick<PostgresPoolOptions, 'dsn' | 'env'> {
  /** Hard bound in milliseconds; default 30000 (creating indexes on a large table takes a while). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Creates the missing parts of bansho's schema on POSTGRES_DSN (or `options.dsn`) and
 * returns what changed. Idempotent; throws a BanshoError (`schema_mismatch` when existing
 * tables differ, nothing changed then).
 */
export function ensureSchema(options: EnsureSchemaOptions = {}): Promise<EnsureSchemaResult> {
  return ensureSchemaOn(resolvePostgresTarget(options), {
    timeoutMs: options.timeoutMs ?? 30_000,
    signal: options.signal,
  });
}
