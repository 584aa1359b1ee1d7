import { pingPostgres } from '../postgres/check.js';
import { pingRedis } from '../redis/check.js';

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
  const common = { env: options.env, timeoutMs, signal: options.signal };
  const [redis, postgres] = await Promise.all([
    settle(() => pingRedis({ ...common, url: options.redisUrl })),
    settle(() => pingPostgres({ ...common, dsn: options.postgresDsn })),
  ]);
  return { redis, postgres };
}
