import { type PostgresPoolOptions, resolvePostgresTarget } from '../postgres/client.js';
import { type EnsureSchemaResult, ensureSchemaOn } from './ensure.js';

export interface EnsureSchemaOptions extends Pick<PostgresPoolOptions, 'dsn' | 'env'> {
  /**
   * Hard bound in milliseconds for the whole run; lock_timeout and statement_timeout are set
   * just under it. Default 30000 (creating an index on a large table takes a while).
   */
  timeoutMs?: number;
  /** Plan only: `changes` says what would be done, and nothing is. Default false. */
  dryRun?: boolean;
  signal?: AbortSignal;
}

/**
 * Makes bansho's schema on POSTGRES_DSN (or `options.dsn`) match the spec, creating only what
 * is missing, all or nothing, and returns the changes. Idempotent and safe to run from many
 * processes at once. Throws a BanshoError: `schema_mismatch` (with `drift`) when existing
 * objects differ, `schema_newer`, `read_only`, `locked`, `unsupported_version`; nothing is changed then.
 */
export function ensureSchema(options: EnsureSchemaOptions = {}): Promise<EnsureSchemaResult> {
  return ensureSchemaOn(resolvePostgresTarget(options), {
    timeoutMs: options.timeoutMs ?? 30_000,
    signal: options.signal,
    dryRun: options.dryRun === true,
  });
}
