import { checkPostgres, resolvePostgresTarget } from './storage/postgres.js';
import { checkRedis, resolveRedisTarget } from './storage/redis.js';

export interface StorageSmokeOptions {
  redisUrl?: string;
  postgresDsn?: string;
  /** Where REDIS_URL / POSTGRES_DSN are read from when not given; default: `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Hard bound for each check, in milliseconds; default 5000. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Checks both stores concurrently and resolves `{ redis, postgres }`: true where the server
 * answered as it should. Never throws: a malformed URL counts as a failed check.
 */
export async function storageSmokeCheck(
  options: StorageSmokeOptions = {},
): Promise<{ redis: boolean; postgres: boolean }> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const settle = async (check: () => Promise<unknown>) => {
    try {
      await check();
      return true;
    } catch {
      return false;
    }
  };
  const [redis, postgres] = await Promise.all([
    settle(() =>
      checkRedis(
        resolveRedisTarget({
          ...options,
          ...(options.redisUrl === undefined ? {} : { url: options.redisUrl }),
        }),
        {
          timeoutMs,
          signal: options.signal,
        },
      ),
    ),
    settle(() =>
      checkPostgres(
        resolvePostgresTarget({
          ...options,
          ...(options.postgresDsn === undefined ? {} : { dsn: options.postgresDsn }),
        }),
        {
          timeoutMs,
          signal: options.signal,
        },
      ),
    ),
  ]);
  return { redis, postgres };
}
