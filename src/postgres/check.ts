import type { CheckDetail } from '../checks/model.js';
import { throwOnFailedDetail } from '../checks/sub-check.js';
import { monotonicMs } from '../checks/time.js';
import type { PostgresTarget } from '../config/postgres-dsn.js';
import { type PostgresPoolOptions, resolvePostgresTarget } from './client.js';
import { answeringHost, inBoundedTransaction, type PostgresCheckOptions, withPostgres } from './session.js';
import { runPostgresSubChecks } from './sub-checks.js';

/** What one successful PostgreSQL check learned. */
export interface PostgresOutcome {
  /** server_version, e.g. "15.20 (Debian 15.20-0+deb12u1)". */
  version: string;
  /** The sub-checks: version, primary, privileges, connections, timeouts, clock, encoding (see src/sub-checks/postgres.ts). */
  details: CheckDetail[];
  /** With several hosts in the DSN: the one that gave the session ("db2:5432"). */
  host?: string;
}

/**
 * Connects and runs the sub-checks: whether the session can serve the gateway (a primary,
 * writable, privileges), the version, and what to watch (connections, timeouts, clock, encoding).
 */
export function checkPostgres(
  target: PostgresTarget,
  options: PostgresCheckOptions,
): Promise<PostgresOutcome> {
  const started = monotonicMs();
  return withPostgres(target, options, async (sql, race, session) => ({
    ...(await race(
      inBoundedTransaction(sql, options.timeoutMs - (monotonicMs() - started), () =>
        runPostgresSubChecks(sql),
      ),
    )),
    ...answeringHost(target, session),
  }));
}

/**
 * Resolves true when the server accepts a session and no sub-check fails (a standby, a
 * read-only session, a missing privilege throw); otherwise throws a BanshoError.
 */
export async function pingPostgres(
  options: Pick<PostgresPoolOptions, 'dsn' | 'env' | 'target'> & {
    timeoutMs?: number;
    signal?: AbortSignal | undefined;
  } = {},
): Promise<true> {
  const outcome = await checkPostgres(resolvePostgresTarget(options), {
    timeoutMs: options.timeoutMs ?? 5000,
    signal: options.signal,
  });
  throwOnFailedDetail(outcome.details, 'postgres');
  return true;
}
