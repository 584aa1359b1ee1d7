import { once } from 'node:events';
import { connect, isIP, type Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import postgres, { type Options, type Sql } from 'postgres';
import type { CheckDetail } from '../checks.js';
import { DEFAULT_POSTGRES_DSN, type Env, type PostgresTarget, parsePostgresDsn } from '../config.js';
import { startDeadline } from '../deadline.js';
import { BanshoError, type FailureCode } from '../errors.js';
import { throwOnFailedDetail } from '../sub-checks/detail.js';
import { probePostgres } from '../sub-checks/postgres.js';
import { classifyNetworkError, errorChain } from './network-errors.js';

export type { Sql } from 'postgres';

/** Options for a PostgreSQL pool. */
export interface PostgresPoolOptions {
  /** A postgres:// URL; default: `env.POSTGRES_DSN`, then `postgres://postgres@127.0.0.1:5432/postgres`. */
  dsn?: string;
  /** Where POSTGRES_DSN is read from when `dsn` is not given; default: `process.env`. */
  env?: Env;
  /** A target already parsed (and its CA read) by the CLI; wins over `dsn`. */
  target?: PostgresTarget;
  /** PEM text of the CA that verify-ca / verify-full trust; default: the DSN's sslrootcert file. */
  ca?: string;
  /** TCP + TLS + startup bound in milliseconds; default 5000. */
  connectTimeoutMs?: number;
  /** An idle connection is closed after this many milliseconds; default 30000. */
  idleTimeoutMs?: number;
  /** Server-side statement_timeout in milliseconds; default 30000. 0 disables it. */
  statementTimeoutMs?: number;
  /** Server-side lock_timeout in milliseconds; default 0 (the server's own, usually none). */
  lockTimeoutMs?: number;
  /** Pool size; default 10. */
  max?: number;
}

/** postgres.js documents a `socket` factory option that its type definitions leave out. */
type SocketFactory = () => Promise<Socket>;

/** Resolves the target a library caller means: an explicit DSN, else POSTGRES_DSN, else the default. */
export function resolvePostgresTarget(
  options: Pick<PostgresPoolOptions, 'dsn' | 'env' | 'target'> = {},
): PostgresTarget {
  if (options.target) return options.target;
  const env = options.env ?? process.env;
  if (options.dsn !== undefined) return parsePostgresDsn({ value: options.dsn, source: 'dsn' });
  if (env.POSTGRES_DSN !== undefined)
    return parsePostgresDsn({ value: env.POSTGRES_DSN, source: 'POSTGRES_DSN' });
  return parsePostgresDsn({ value: DEFAULT_POSTGRES_DSN, source: 'the default POSTGRES_DSN' });
}

/** Maps libpq's sslmode onto Node's TLS options, as libpq itself interprets each mode. */
function tlsOptionsFor(target: PostgresTarget, ca: string | undefined): Options<never>['ssl'] {
  switch (target.sslMode) {
    case 'disable':
      return false;
    case 'allow':
    case 'prefer':
      return 'prefer';
    case 'require':
      return { rejectUnauthorized: false } satisfies ConnectionOptions;
    case 'verify-ca':
      // The chain must lead to the CA, whatever name the certificate carries.
      return { rejectUnauthorized: true, checkServerIdentity: () => undefined, ...(ca ? { ca } : {}) };
    case 'verify-full':
      // `host` is the name the certificate is checked against: bansho hands postgres.js a socket
      // it opened itself, and without it Node would check against "localhost". SNI takes names only.
      return {
        rejectUnauthorized: true,
        host: target.host,
        ...(ca ? { ca } : {}),
        ...(isIP(target.host) !== 0 ? {} : { servername: target.host }),
      };
  }
}

/**
 * Creates a postgres.js pool with every timeout chosen on purpose. Connections open
 * lazily, on the first query; `await sql.end()` closes them all.
 */
export function createPostgresPool(options: PostgresPoolOptions = {}): Sql {
  return createPool(options);
}

function createPool(options: PostgresPoolOptions & { socket?: SocketFactory }): Sql {
  const target = resolvePostgresTarget(options);
  const statementTimeoutMs = options.statementTimeoutMs ?? 30_000;
  return postgres({
    ...(options.socket ? ({ socket: options.socket } as object) : {}),
    host: target.host,
    port: target.port,
    database: target.database,
    username: target.username,
    ...(target.password === undefined ? {} : { password: target.password }),
    ssl: tlsOptionsFor(target, options.ca ?? target.caPem),
    max: options.max ?? 10,
    // postgres.js counts these two in seconds.
    connect_timeout: (options.connectTimeoutMs ?? 5000) / 1000,
    idle_timeout: (options.idleTimeoutMs ?? 30_000) / 1000,
    connection: {
      application_name: target.applicationName,
      ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
      ...(options.lockTimeoutMs ? { lock_timeout: options.lockTimeoutMs } : {}),
    },
    // A health check must not print the server's NOTICEs ("relation already exists, skipping").
    onnotice: () => {},
    // Skips the array-type lookup at connect: one round trip less, and bansho sends no arrays of custom types.
    fetch_types: false,
    prepare: false,
  });
}

/** Ends the pool: waits up to `graceMs` for running queries, then destroys the sockets. */
export async function closePostgres(sql: Sql, graceMs = 1000): Promise<void> {
  await sql.end({ timeout: graceMs / 1000 });
}

/** What one successful PostgreSQL check learned. */
export interface PostgresProbe {
  /** server_version, e.g. "15.20 (Debian 15.20-0+deb12u1)". */
  version: string;
  /** The sub-checks: version, primary, privileges, connections, clock, encoding (see src/sub-checks/postgres.ts). */
  details: CheckDetail[];
}

export interface PostgresCheckOptions {
  /** Hard bound for the whole check in milliseconds: resolve, connect, TLS, auth, work, close. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
}

/**
 * Runs `work` on a one-connection pool under a hard deadline, then closes the pool, and
 * turns anything thrown into a classified BanshoError. Every PostgreSQL check goes through here.
 */
export async function withPostgres<T>(
  target: PostgresTarget,
  options: PostgresCheckOptions,
  work: (sql: Sql, race: <R>(promise: Promise<R>) => Promise<R>) => Promise<T>,
): Promise<T> {
  // postgres.js's end() only half-closes a socket, which keeps the process alive while a
  // silent peer or a long query holds the other half: bansho makes the sockets, so it can destroy them.
  // It also redials when a socket closes during startup; a check dials exactly once.
  const sockets = new Set<Socket>();
  let dialled = false;
  let finished = false;
  const destroySockets = () => {
    finished = true;
    for (const socket of sockets) socket.destroy();
  };
  const sql = createPool({
    target,
    max: 1,
    connectTimeoutMs: options.timeoutMs,
    statementTimeoutMs: options.timeoutMs,
    // Reading the catalog waits for a table another session holds exclusively (pg_get_expr
    // opens it): the server ends that wait with a clear `locked` before the hard deadline.
    lockTimeoutMs: Math.max(1, Math.floor(options.timeoutMs * 0.75)),
    socket: async () => {
      if (finished)
        throw new BanshoError('interrupted', 'the check is over: not reconnecting', { service: 'postgres' });
      if (dialled) {
        throw new BanshoError(
          'protocol',
          `${target.display} closed the connection before the session started`,
          {
            service: 'postgres',
          },
        );
      }
      dialled = true;
      const socket = connect({ host: target.host, port: target.port });
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      await once(socket, 'connect');
      return socket;
    },
  });
  const deadline = startDeadline({
    timeoutMs: options.timeoutMs,
    service: 'postgres',
    signal: options.signal,
    onExpire: () => {
      void sql.end({ timeout: 0 }).catch(() => {});
      destroySockets();
    },
  });
  try {
    const result = await work(sql, deadline.race);
    deadline.phase = 'closing';
    await deadline.race(closePostgres(sql, options.timeoutMs));
    return result;
  } catch (error) {
    throw classifyPostgresError(error, target);
  } finally {
    deadline.clear();
    await sql.end({ timeout: 0 }).catch(() => {});
    destroySockets();
  }
}

/**
 * Connects and runs the sub-checks: whether the session can serve the gateway (a primary,
 * writable, privileges), the version, and what to watch (connections, clock, encoding).
 */
export function checkPostgres(target: PostgresTarget, options: PostgresCheckOptions): Promise<PostgresProbe> {
  return withPostgres(target, options, (sql, race) => race(probePostgres(sql)));
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
  const probe = await checkPostgres(resolvePostgresTarget(options), {
    timeoutMs: options.timeoutMs ?? 5000,
    signal: options.signal,
  });
  throwOnFailedDetail(probe.details, 'postgres');
  return true;
}

/** SQLSTATE → failure code; the server's own classification, so it is checked first. */
const SQLSTATE_CODES: Record<string, FailureCode> = {
  '28P01': 'auth_failed', // invalid_password
  '28000': 'auth_failed', // invalid_authorization_specification: no pg_hba entry, unknown role
  '3D000': 'unknown_database', // invalid_catalog_name
  '53300': 'too_many_connections',
  '57P03': 'not_ready', // cannot_connect_now: starting up, shutting down, in recovery
  '57P01': 'not_ready', // admin_shutdown
  '57P02': 'not_ready', // crash_shutdown
  '25006': 'read_only', // read_only_sql_transaction
  '57014': 'timeout', // query_canceled: statement_timeout
  '08P01': 'protocol', // protocol_violation
  '55P03': 'locked', // lock_not_available: lock_timeout
  '42501': 'permission_denied', // insufficient_privilege
};

interface PostgresErrorLike {
  name?: unknown;
  code?: unknown;
  message?: unknown;
  severity?: unknown;
}

/** Maps anything a PostgreSQL check threw to a BanshoError with a stable code. */
export function classifyPostgresError(error: unknown, target: PostgresTarget): BanshoError {
  if (error instanceof BanshoError) return error;
  const where = target.display;
  const make = (code: FailureCode, message: string) =>
    new BanshoError(code, message, { cause: error, service: 'postgres' });
  const layers = errorChain(error) as PostgresErrorLike[];
  for (const layer of layers) {
    if (layer.name === 'PostgresError' && typeof layer.code === 'string') {
      const message = `${String(layer.severity ?? 'ERROR')} ${layer.code}: ${String(layer.message)}`;
      return make(SQLSTATE_CODES[layer.code] ?? 'server_error', message);
    }
  }
  const network = classifyNetworkError(error, 'postgres', where);
  if (network) return network;
  const codes = layers.map((layer) => (typeof layer.code === 'string' ? layer.code : ''));
  const first = String(layers[0]?.message ?? error);
  if (codes.includes('CONNECT_TIMEOUT')) return make('timeout', `connecting to ${where} timed out`);
  if (/does not support SSL/i.test(first))
    return make('tls', `${where} does not accept TLS, but sslmode requires it`);
  if (
    codes.some((code) => code === 'CONNECTION_CLOSED' || code === 'ECONNRESET' || code === 'CONNECTION_ENDED')
  ) {
    return make('protocol', `${where} closed the connection before the session started: ${first}`);
  }
  return make('unexpected', `PostgreSQL check failed: ${first}`);
}
