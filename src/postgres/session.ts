import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { Sql } from 'postgres';
import { startDeadline } from '../checks/deadline.js';
import {
  displayPostgresHost,
  type PostgresHost,
  type PostgresTarget,
  type TargetSessionAttrs,
} from '../config/postgres-dsn.js';
import { BanshoError } from '../errors.js';
import { scrubPassword } from '../redact.js';
import { classifyPostgresError } from './classify.js';
import { closePostgres, createPool } from './client.js';
import { cancelSession, dialHost, type PostgresSession, type SessionWire, watchSession } from './wire.js';

export type { PostgresSession } from './wire.js';

export interface PostgresCheckOptions {
  /** Hard bound for the whole check in milliseconds: resolve, connect, TLS, auth, work, close. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Overrides the DSN's target_session_attrs. */
  targetSessionAttrs?: TargetSessionAttrs | undefined;
}

/**
 * Runs `work` on a one-connection pool under a hard deadline, then closes the pool, and
 * turns anything thrown into a classified BanshoError. Every PostgreSQL check goes through here.
 * With several hosts, postgres.js moves from one to the next (a host that refuses, or does
 * not match target_session_attrs); bansho hands it one socket per host, in order.
 * When the check is cut short (its deadline, the caller's signal, any failure while a
 * statement runs), the statement is cancelled on the server before the sockets close.
 */
export async function withPostgres<T>(
  target: PostgresTarget,
  options: PostgresCheckOptions,
  work: (sql: Sql, race: <R>(promise: Promise<R>) => Promise<R>, session: PostgresSession) => Promise<T>,
): Promise<T> {
  // postgres.js's end() only half-closes a socket, which keeps the process alive while a
  // silent peer or a long query holds the other half: bansho makes the sockets, so it can destroy them.
  // It also redials when a socket closes during startup; a check dials each host exactly once.
  const sockets = new Set<Socket>();
  const hosts = target.hosts;
  const ca = target.caPem;
  const outcomes: string[] = [];
  let dialled = 0;
  let finished = false;
  let closing = false;
  let wire: SessionWire | undefined;
  let cancelling: Promise<void> | undefined;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const destroySockets = () => {
    finished = true;
    for (const socket of sockets) socket.destroy();
  };
  // Once: a statement under way on a session the server gave is cancelled there. The session
  // stays open until the cancel is through: PgBouncer passes a cancel on only for a client
  // still connected, and closes the server connection of one that left mid-transaction.
  const cancelRunning = (): Promise<void> => {
    if (!cancelling && !closing && wire?.busy && wire.key) cancelling = cancelSession(target, wire, ca);
    return cancelling ?? Promise.resolve();
  };
  const close = () => {
    finished = true;
    void cancelRunning().then(() => {
      void sql.end({ timeout: 0 }).catch(() => {});
      destroySockets();
    });
  };
  // postgres.js waits for another host after a failed one; when none is left, this ends the wait.
  let exhausted: (error: BanshoError) => void = () => {};
  const noHostLeft = new Promise<never>((_, reject) => {
    exhausted = reject;
  });
  noHostLeft.catch(() => {});
  const sessionAttrs =
    options.targetSessionAttrs ?? target.targetSessionAttrs ?? (hosts.length > 1 ? 'read-write' : undefined);
  const sql = createPool({
    target,
    max: 1,
    connectTimeoutMs: options.timeoutMs,
    // No timeouts as startup parameters: PgBouncer refuses them ("unsupported startup
    // parameter"). The hard deadline bounds the check; inBoundedTransaction bounds waits on the server.
    statementTimeoutMs: 0,
    ...(sessionAttrs ? { targetSessionAttrs: sessionAttrs } : {}),
    socket: async () => {
      if (finished)
        throw new BanshoError('interrupted', 'the check is over: not reconnecting', { service: 'postgres' });
      // A host that cannot be dialled is passed over here; one that closes the session later
      // (a standby, for target_session_attrs) brings postgres.js back for the next.
      while (dialled < hosts.length) {
        const next = hosts[dialled] as PostgresHost;
        dialled++;
        const name = displayPostgresHost(next);
        const answered =
          hosts.length > 1
            ? boundHostAnswer(next, Math.floor(options.timeoutMs / hosts.length), track)
            : { watch: track, clear: () => {} };
        try {
          const opened = await dialHost(target, next, ca, answered.watch, answered.clear);
          const session: SessionWire = {
            host: next,
            tls: opened.tls,
            spoke: opened.negotiated,
            started: false,
            busy: false,
          };
          watchSession(opened.socket, session, answered.clear);
          wire = session;
          opened.socket.once('error', (error: NodeJS.ErrnoException) =>
            outcomes.push(`${name}: ${error.code ?? scrubPassword(error.message, target)}`),
          );
          opened.socket.once('close', () => {
            if (outcomes.length < dialled) outcomes.push(`${name}: closed the session`);
          });
          return opened.socket;
        } catch (error) {
          answered.clear();
          outcomes.push(`${name}: ${describeDialFailure(error, target)}`);
          if (hosts.length === 1 || finished) throw error;
        }
      }
      const error =
        hosts.length > 1
          ? noHostError(target, sessionAttrs, outcomes)
          : wire?.spoke
            ? new BanshoError(
                'connection_closed',
                `${target.display} answered, then closed the connection during start-up`,
                { service: 'postgres' },
              )
            : new BanshoError(
                'protocol',
                `${target.display} closed the connection before the session started`,
                {
                  service: 'postgres',
                },
              );
      exhausted(error);
      throw error;
    },
  });
  const deadline = startDeadline({
    timeoutMs: options.timeoutMs,
    service: 'postgres',
    signal: options.signal,
    onExpire: close,
  });
  const race = <R>(promise: Promise<R>) => deadline.race(Promise.race([promise, noHostLeft]));
  const session: PostgresSession = {
    host: () => {
      const current = hosts[Math.max(0, dialled - 1)] ?? hosts[0];
      return current ? displayPostgresHost(current) : '';
    },
    started: () => wire?.started === true,
    tls: () => wire?.tls === true,
    spoke: () => wire?.spoke === true,
    fatal: () => wire?.fatal,
  };
  try {
    const result = await work(sql, race, session);
    deadline.phase = 'closing';
    closing = true;
    // The Terminate message is the clean goodbye; once it has left, waiting for the server to
    // close its side too only waits for the backend to exit (~4 ms), so the socket goes first.
    const terminated = Promise.all([...sockets].map((socket) => once(socket, 'finish')));
    await deadline.race(Promise.race([closePostgres(sql, options.timeoutMs), terminated]));
    destroySockets();
    return result;
  } catch (error) {
    void cancelRunning();
    throw classifyPostgresError(error, target, session);
  } finally {
    deadline.clear();
    await cancelRunning();
    await sql.end({ timeout: 0 }).catch(() => {});
    destroySockets();
  }
}

/** `{ host }` naming the host that gave the session, when the DSN lists several. */
export function answeringHost(target: PostgresTarget, session: PostgresSession): { host?: string } {
  return target.hosts.length > 1 ? { host: session.host() } : {};
}

/** Why a host could not be dialled, in a few words: its system error code, or bansho's message. */
function describeDialFailure(error: unknown, target: PostgresTarget): string {
  if (error instanceof BanshoError) return error.message;
  const { code, message } = error as NodeJS.ErrnoException;
  return code ?? scrubPassword(message, target);
}

/**
 * Gives one host of a list its share of the time to answer at all, as libpq's per-host
 * connect_timeout does: a host that drops packets or accepts and stays silent would otherwise
 * use up the whole --timeout, and postgres.js would never get to the next one. The server's
 * first byte (its answer to the TLS request or to the startup) ends the bound: `clear`.
 */
function boundHostAnswer(
  host: PostgresHost,
  shareMs: number,
  track: (socket: Socket) => void,
): { watch: (socket: Socket) => void; clear: () => void } {
  const watched = new Set<Socket>();
  const timer = setTimeout(() => {
    const error = Object.assign(
      new Error(`no answer from ${displayPostgresHost(host)} within ${shareMs} ms`),
      {
        code: 'ETIMEDOUT',
      },
    );
    for (const socket of watched) socket.destroy(error);
  }, shareMs);
  return {
    watch(socket: Socket) {
      watched.add(socket);
      track(socket);
    },
    clear() {
      clearTimeout(timer);
    },
  };
}

/** Every host of the list was tried: say why each was passed over. */
function noHostError(
  target: PostgresTarget,
  sessionAttrs: string | undefined,
  outcomes: string[],
): BanshoError {
  const tried = outcomes.join('; ');
  const unreachable = (outcome: string) =>
    /: (ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOENT)$/.test(outcome);
  if (outcomes.every(unreachable) && outcomes.some((outcome) => outcome.endsWith('ETIMEDOUT'))) {
    return new BanshoError(
      'timeout',
      `no host of ${target.display} answered in its share of the time (${tried})`,
      {
        service: 'postgres',
      },
    );
  }
  if (outcomes.every((outcome) => /: (ECONNREFUSED|ENOENT)$/.test(outcome))) {
    return new BanshoError(
      'connection_refused',
      `no host of ${target.display} accepted a connection (${tried})`,
      {
        service: 'postgres',
      },
    );
  }
  const code = sessionAttrs === 'read-write' || sessionAttrs === 'primary' ? 'read_only' : 'not_ready';
  return new BanshoError(
    code,
    `no host of ${target.display} gave a session with target_session_attrs=${sessionAttrs ?? 'any'} (${tried})`,
    { service: 'postgres' },
  );
}

/**
 * Runs `work` in a transaction whose waits the server bounds: statement_timeout and
 * lock_timeout end a wait with a clear error (`timeout`, `locked`) before bansho's hard
 * deadline cuts the connection, and idle_in_transaction_session_timeout ends a session bansho
 * left in the middle of it. SET LOCAL, transaction-scoped, because through PgBouncer in
 * transaction pooling a session-level SET would leak to other clients, and startup parameters
 * are refused. BEGIN and the SETs go in one message, pipelined with work's first statement:
 * a role's or database's own statement_timeout (even 1ms) then only bounds BEGIN and SET,
 * which take microseconds, and there is no idle gap before the bounds hold.
 * The pool must have one connection (withPostgres's), so that every statement runs in it,
 * and the session must end after a failure.
 */
export async function inBoundedTransaction<T>(
  sql: Sql,
  remainingMs: number,
  work: () => Promise<T>,
): Promise<T> {
  const statementMs = Math.max(1, Math.floor(remainingMs * 0.9));
  const lockMs = Math.max(1, Math.floor(remainingMs * 0.75));
  const idleMs = Math.max(1, Math.ceil(remainingMs));
  const begun = sql.unsafe(
    `begin; set local statement_timeout = ${statementMs}; set local lock_timeout = ${lockMs}; set local idle_in_transaction_session_timeout = ${idleMs}`,
  );
  begun.catch(() => {});
  // On failure there is no ROLLBACK to wait for: withPostgres ends the session, which rolls
  // the transaction back, and a session that never started would queue it forever.
  const [, result] = await Promise.all([begun, work()]);
  await sql.unsafe('commit');
  return result;
}

/** Runs `work` inside a savepoint of the current transaction: its failure does not abort the transaction. */
export async function inSavepoint<T>(sql: Sql, work: () => Promise<T>): Promise<T> {
  const saved = sql.unsafe('savepoint bansho');
  saved.catch(() => {});
  try {
    const [, result] = await Promise.all([saved, work()]);
    await sql.unsafe('release savepoint bansho');
    return result;
  } catch (error) {
    await sql.unsafe('rollback to savepoint bansho').catch(() => {});
    throw error;
  }
}
