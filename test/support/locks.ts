/**
 * Sessions that hold a lock, and the sessions that queue behind one, as another client of the
 * database would: for tests of what bansho does while it waits, and what it leaves behind.
 */
import { closePostgres, createPostgresPool } from '../../src/index.js';

/**
 * Runs `statement` (which takes a lock) in a transaction of a session of its own, named
 * `holder` in pg_stat_activity, and keeps that transaction open; resolves once the lock is
 * held, with a function that ends the transaction and closes the session.
 */
export async function holdLock(dsn: string, statement: string): Promise<() => Promise<void>> {
  const sql = createPostgresPool({ dsn: withApplicationName(dsn, 'holder'), max: 1 });
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let locked: () => void = () => {};
  const lockHeld = new Promise<void>((resolve) => {
    locked = resolve;
  });
  const transaction = sql.begin(async (tx) => {
    await tx.unsafe(statement);
    locked();
    await released;
  });
  try {
    await Promise.race([lockHeld, transaction]);
  } catch (error) {
    await closePostgres(sql, 0);
    throw error;
  }
  return async () => {
    release();
    try {
      await transaction;
    } finally {
      await closePostgres(sql, 0);
    }
  };
}

/** The DSN with `?application_name=` set, so that a test's own sessions are told apart from bansho's. */
export function withApplicationName(dsn: string, name: string): string {
  const url = new URL(dsn);
  url.searchParams.set('application_name', name);
  return url.toString();
}

/**
 * Polls `check` every 50 ms until it resolves true; rejects naming `what` after `timeoutMs`.
 * For "happens within a bound": the bound is generous, and no test asserts how soon.
 */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (performance.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Starts the gateway's write, an INSERT into audit_events in a session of its own named
 * `gateway`; `done` settles when the INSERT does.
 */
export function startGatewayInsert(dsn: string): { done: Promise<void> } {
  const sql = createPostgresPool({ dsn: withApplicationName(dsn, 'gateway'), max: 1, statementTimeoutMs: 0 });
  const done = (async () => {
    try {
      await sql`insert into audit_events (method) values ('tools/call')`;
    } finally {
      await closePostgres(sql, 0);
    }
  })();
  done.catch(() => {});
  return { done };
}
