import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { type ConnectionOptions, checkServerIdentity, type PeerCertificate } from 'node:tls';
import postgres, { type Options, type Sql, type TransactionSql } from 'postgres';
import type { CheckDetail } from '../checks.js';
import {
  DEFAULT_POSTGRES_DSN,
  displayAddress,
  type Env,
  type PostgresTarget,
  parsePostgresDsn,
  type TargetSessionAttrs,
} from '../config.js';
import { startDeadline } from '../deadline.js';
import { BanshoError, type FailureCode } from '../errors.js';
import { scrubPassword } from '../redact.js';
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
  // Both are startup parameters, which PgBouncer refuses: behind it, set them to 0.
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

/**
 * Maps libpq's sslmode onto Node's TLS options, as libpq itself interprets each mode.
 * `currentHost` names the host being connected to, when it is one of several.
 */
function tlsOptionsFor(
  target: PostgresTarget,
  ca: string | undefined,
  currentHost: () => string = () => target.host,
): Options<never>['ssl'] {
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
      // The certificate is checked against the host dialled, named explicitly: bansho hands
      // postgres.js sockets it opened itself, and Node would otherwise check against the SNI
      // name, or "localhost" for an IP address. postgres.js sends SNI from `socket.host`.
      return {
        rejectUnauthorized: true,
        ...(ca ? { ca } : {}),
        checkServerIdentity: (_name: string, cert: PeerCertificate) =>
          checkServerIdentity(currentHost(), cert),
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

function createPool(
  options: PostgresPoolOptions & {
    socket?: SocketFactory;
    targetSessionAttrs?: TargetSessionAttrs;
    currentHost?: () => string;
  },
): Sql {
  const target = resolvePostgresTarget(options);
  const statementTimeoutMs = options.statementTimeoutMs ?? 30_000;
  return postgres({
    ...(options.socket ? ({ socket: options.socket } as object) : {}),
    // postgres.js takes lists of hosts and ports, which its type definitions leave out.
    host: target.hosts.map((entry) => entry.host) as unknown as string,
    port: target.hosts.map((entry) => entry.port) as unknown as number,
    ...(options.targetSessionAttrs && options.targetSessionAttrs !== 'any'
      ? { target_session_attrs: postgresJsSessionAttrs(options.targetSessionAttrs) }
      : {}),
    database: target.database,
    username: target.username,
    ...(target.password === undefined ? {} : { password: target.password }),
    ssl: tlsOptionsFor(target, options.ca ?? target.caPem, options.currentHost),
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

/**
 * libpq's read-write skips a hot standby; postgres.js's looks only at default_transaction_read_only,
 * which a standby leaves off, so it would settle on the standby. Its `primary` skips standbys;
 * a primary with default_transaction_read_only on is then reported as read_only, not skipped.
 */
function postgresJsSessionAttrs(
  attrs: Exclude<TargetSessionAttrs, 'any'>,
): Exclude<TargetSessionAttrs, 'any'> {
  return attrs === 'read-write' ? 'primary' : attrs;
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
  /** With several hosts in the DSN: the one that gave the session ("db2:5432"). */
  host?: string;
}

export interface PostgresCheckOptions {
  /** Hard bound for the whole check in milliseconds: resolve, connect, TLS, auth, work, close. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Overrides the DSN's target_session_attrs. */
  targetSessionAttrs?: TargetSessionAttrs | undefined;
}

/** What `work` learns about the session it runs on. */
export interface PostgresSession {
  /** The host that accepted the session ("db2:5432"), of the DSN's list. */
  host(): string;
}

/**
 * Runs `work` on a one-connection pool under a hard deadline, then closes the pool, and
 * turns anything thrown into a classified BanshoError. Every PostgreSQL check goes through here.
 * With several hosts, postgres.js moves from one to the next (a host that refuses, or does
 * not match target_session_attrs); bansho only hands it one socket per host, in order.
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
  const outcomes: string[] = [];
  let dialled = 0;
  let finished = false;
  const destroySockets = () => {
    finished = true;
    for (const socket of sockets) socket.destroy();
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
    // parameter"). The hard deadline bounds the check; boundTransaction bounds waits on the server.
    statementTimeoutMs: 0,
    ...(sessionAttrs ? { targetSessionAttrs: sessionAttrs } : {}),
    currentHost: () => (hosts[Math.max(0, dialled - 1)] ?? target).host,
    socket: async () => {
      if (finished)
        throw new BanshoError('interrupted', 'the check is over: not reconnecting', { service: 'postgres' });
      const next = hosts[dialled];
      if (!next) {
        const error =
          hosts.length === 1
            ? new BanshoError(
                'protocol',
                `${target.display} closed the connection before the session started`,
                {
                  service: 'postgres',
                },
              )
            : noHostError(target, sessionAttrs, outcomes);
        exhausted(error);
        throw error;
      }
      dialled++;
      const name = displayAddress(next);
      const socket = connect({ host: next.host, port: next.port });
      // postgres.js names the TLS server (SNI) after `socket.host`, as on the sockets it makes.
      Object.assign(socket, { host: next.host });
      sockets.add(socket);
      socket.once('error', (error: NodeJS.ErrnoException) =>
        outcomes.push(`${name}: ${error.code ?? scrubPassword(error.message, target)}`),
      );
      socket.once('close', () => {
        sockets.delete(socket);
        if (outcomes.length < dialled) outcomes.push(`${name}: closed the session`);
      });
      // With one host, a refused connection is reported as it is; with several, postgres.js
      // is told through the socket's own events, and tries the next host.
      if (hosts.length === 1) await once(socket, 'connect');
      else boundHost(socket, Math.floor(options.timeoutMs / hosts.length));
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
  const race = <R>(promise: Promise<R>) => deadline.race(Promise.race([promise, noHostLeft]));
  const session: PostgresSession = {
    host: () => {
      const current = hosts[Math.max(0, dialled - 1)] ?? hosts[0];
      return current ? displayAddress(current) : '';
    },
  };
  try {
    const result = await work(sql, race, session);
    deadline.phase = 'closing';
    // The Terminate message is the clean goodbye; once it has left, waiting for the server to
    // close its side too only waits for the backend to exit (~4 ms), so the socket goes first.
    const terminated = Promise.all([...sockets].map((socket) => once(socket, 'finish')));
    await deadline.race(Promise.race([closePostgres(sql, options.timeoutMs), terminated]));
    destroySockets();
    return result;
  } catch (error) {
    throw classifyPostgresError(error, target);
  } finally {
    deadline.clear();
    await sql.end({ timeout: 0 }).catch(() => {});
    destroySockets();
  }
}

/** `{ host }` naming the host that gave the session, when the DSN lists several. */
export function answeringHost(target: PostgresTarget, session: PostgresSession): { host?: string } {
  return target.hosts.length > 1 ? { host: session.host() } : {};
}

/**
 * Gives one host of a list its share of the time to answer at all, as libpq's per-host
 * connect_timeout does: a host that drops packets or accepts and stays silent would otherwise
 * use up the whole --timeout, and postgres.js would never get to the next one. The server's
 * first byte (its answer to the startup or TLS request) ends the bound.
 */
function boundHost(socket: Socket, shareMs: number): void {
  const timer = setTimeout(() => {
    socket.destroy(Object.assign(new Error(`no answer within ${shareMs} ms`), { code: 'ETIMEDOUT' }));
  }, shareMs);
  // Attached before postgres.js sends anything, so it runs first, before a TLS upgrade drops it.
  socket.once('data', () => clearTimeout(timer));
  socket.once('close', () => clearTimeout(timer));
}

/** Every host of the list was tried: say why each was passed over. */
function noHostError(
  target: PostgresTarget,
  sessionAttrs: string | undefined,
  outcomes: string[],
): BanshoError {
  const tried = outcomes.join('; ');
  const unreachable = (outcome: string) =>
    /: (ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH)$/.test(outcome);
  if (outcomes.every(unreachable) && outcomes.some((outcome) => outcome.endsWith('ETIMEDOUT'))) {
    return new BanshoError(
      'timeout',
      `no host of ${target.display} answered in its share of the time (${tried})`,
      {
        service: 'postgres',
      },
    );
  }
  if (outcomes.every((outcome) => outcome.endsWith('ECONNREFUSED'))) {
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
 * Sets lock_timeout and statement_timeout for the current transaction only (SET LOCAL), so
 * that the server ends a wait with a clear error (`locked`, or 57014) before bansho's hard
 * deadline cuts the connection with a bare `timeout`. Transaction-scoped on purpose: through
 * PgBouncer in transaction pooling a session-level SET would leak to other clients.
 */
export async function boundTransaction(tx: TransactionSql, remainingMs: number): Promise<void> {
  const lockTimeout = `${Math.max(1, Math.floor(remainingMs * 0.75))}ms`;
  const statementTimeout = `${Math.max(1, Math.floor(remainingMs * 0.9))}ms`;
  await tx`select set_config('lock_timeout', ${lockTimeout}, true),
                  set_config('statement_timeout', ${statementTimeout}, true)`;
}

/**
 * Connects and runs the sub-checks: whether the session can serve the gateway (a primary,
 * writable, privileges), the version, and what to watch (connections, clock, encoding).
 */
export function checkPostgres(target: PostgresTarget, options: PostgresCheckOptions): Promise<PostgresProbe> {
  return withPostgres(target, options, async (sql, race, session) => ({
    ...(await race(probePostgres(sql))),
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
      const text = scrubPassword(String(layer.message), target);
      const message = `${String(layer.severity ?? 'ERROR')} ${layer.code}: ${text}`;
      return make(SQLSTATE_CODES[layer.code] ?? 'server_error', message);
    }
  }
  const network = classifyNetworkError(error, 'postgres', where, target);
  if (network) return network;
  const codes = layers.map((layer) => (typeof layer.code === 'string' ? layer.code : ''));
  const first = scrubPassword(String(layers[0]?.message ?? error), target);
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
