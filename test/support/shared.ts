/**
 * One server per test process for ordinary tests that do not care about
 * server configuration. Set BANSHO_TEST_REDIS_URL / BANSHO_TEST_POSTGRES_DSN
 * to use an existing server instead of starting a throwaway one.
 *
 * stop() on a shared server is a no-op, because other tests in the same file
 * may still use it: a throwaway one is stopped when the process is about to exit.
 */
import { type PostgresEndpoint, postgresAt, startPostgres } from './postgres.js';
import { type RedisEndpoint, redisAt, startRedis } from './redis.js';

let sharedRedis: Promise<RedisEndpoint> | undefined;
let sharedPostgres: Promise<PostgresEndpoint> | undefined;

export function useRedis(): Promise<RedisEndpoint> {
  sharedRedis ??= (async () => {
    const url = process.env.BANSHO_TEST_REDIS_URL;
    if (url) return redisAt(url);
    return shareUntilExit(await startRedis());
  })();
  return sharedRedis;
}

/** Tests should work in their own createDatabase() database: the server is shared. */
export function usePostgres(): Promise<PostgresEndpoint> {
  sharedPostgres ??= (async () => {
    const dsn = process.env.BANSHO_TEST_POSTGRES_DSN;
    if (dsn) return postgresAt(dsn);
    return shareUntilExit(await startPostgres());
  })();
  return sharedPostgres;
}

/**
 * Stops the server on 'beforeExit' (when the tests are done and the event loop
 * is empty), where an orderly async stop is still possible; the 'exit' hook in
 * process.ts is the fallback. Returns a copy whose stop() does nothing.
 */
function shareUntilExit<T extends { stop(): Promise<void> }>(server: T): T {
  process.once('beforeExit', () => {
    void server.stop();
  });
  return { ...server, stop: async () => {} };
}
