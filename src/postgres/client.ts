import type { Socket } from 'node:net';
import { type ConnectionOptions, checkServerIdentity, type PeerCertificate } from 'node:tls';
import postgres, { type Options, type Sql } from 'postgres';
import { readPostgresFiles } from '../config/files.js';
import { DEFAULT_POSTGRES_DSN, type Env } from '../config/load.js';
import { type PostgresTarget, parsePostgresDsn, type TargetSessionAttrs } from '../config/postgres-dsn.js';
import { configError } from '../errors.js';

export type { Sql } from 'postgres';

/** Options for a PostgreSQL pool. */
export interface PostgresPoolOptions {
  /** A postgres:// URL; default: `env.POSTGRES_DSN`, then `postgres://postgres@127.0.0.1:5432/postgres`. */
  dsn?: string;
  /** Where POSTGRES_DSN is read from when `dsn` is not given; default: `process.env`. */
  env?: Env;
  /** A target already parsed (and its TLS files read) by the CLI; wins over `dsn`. */
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

/**
 * Resolves the target a library caller means: an explicit DSN, else POSTGRES_DSN, else the
 * default; the TLS files it names are read here, as the CLI reads them at start-up.
 */
export function resolvePostgresTarget(
  options: Pick<PostgresPoolOptions, 'dsn' | 'env' | 'target'> = {},
): PostgresTarget {
  if (options.target) return options.target;
  const env = options.env ?? process.env;
  const target =
    options.dsn !== undefined
      ? parsePostgresDsn({ value: options.dsn, source: 'dsn' })
      : env.POSTGRES_DSN !== undefined
        ? parsePostgresDsn({ value: env.POSTGRES_DSN, source: 'POSTGRES_DSN' })
        : parsePostgresDsn({ value: DEFAULT_POSTGRES_DSN, source: 'the default POSTGRES_DSN' });
  readPostgresFiles(target);
  return target;
}

/**
 * What verifying the server means under each sslmode, as libpq interprets it, for a TLS
 * session with `hostName`; with the client certificate when the DSN names one.
 */
export function verificationFor(
  target: PostgresTarget,
  ca: string | undefined,
  hostName: string,
): ConnectionOptions {
  const client = target.certPem && target.keyPem ? { cert: target.certPem, key: target.keyPem } : {};
  switch (target.sslMode) {
    case 'verify-ca':
      // The chain must lead to the CA, whatever name the certificate carries.
      return {
        ...client,
        rejectUnauthorized: true,
        checkServerIdentity: () => undefined,
        ...(ca ? { ca } : {}),
      };
    case 'verify-full':
      // Checked against the host dialled, named explicitly: on a socket it is handed, Node
      // would otherwise check against the SNI name, or "localhost" for an IP address.
      return {
        ...client,
        rejectUnauthorized: true,
        ...(ca ? { ca } : {}),
        checkServerIdentity: (_name: string, cert: PeerCertificate) => checkServerIdentity(hostName, cert),
      };
    default:
      return { ...client, rejectUnauthorized: false };
  }
}

/** sslmode values under which a server without TLS is refused. */
export const TLS_REQUIRED = new Set(['require', 'verify-ca', 'verify-full']);

/** postgres.js's own TLS, for the library's pool: libpq's sslmode mapped onto its `ssl` option. */
function postgresJsSsl(target: PostgresTarget, ca: string | undefined): Options<never>['ssl'] {
  if (target.sslMode === 'disable' || target.hosts.every((host) => host.socketPath)) return false;
  // postgres.js falls back to plain text only for the string 'prefer', which carries no certificate.
  if (!TLS_REQUIRED.has(target.sslMode)) return 'prefer';
  return verificationFor(target, ca, target.host);
}

/**
 * Creates a postgres.js pool with every timeout chosen on purpose. Connections open
 * lazily, on the first query; `await sql.end()` closes them all.
 */
export function createPostgresPool(options: PostgresPoolOptions = {}): Sql {
  return createPool(options);
}

export function createPool(
  options: PostgresPoolOptions & {
    socket?: SocketFactory;
    targetSessionAttrs?: TargetSessionAttrs;
  },
): Sql {
  const target = resolvePostgresTarget(options);
  const statementTimeoutMs = options.statementTimeoutMs ?? 30_000;
  const [first] = target.hosts;
  if (!options.socket && target.hosts.length > 1 && target.hosts.some((host) => host.socketPath)) {
    throw configError(
      'createPostgresPool takes a Unix socket only as the one host of its DSN: list TCP hosts alone, or the socket alone',
    );
  }
  return postgres({
    ...(options.socket ? ({ socket: options.socket } as object) : {}),
    // postgres.js dials a Unix socket given its path; bansho's own socket factory does when it is given.
    ...(!options.socket && first?.socketPath ? { path: first.socketPath } : {}),
    // postgres.js takes lists of hosts and ports, which its type definitions leave out.
    host: target.hosts.map((entry) => entry.host) as unknown as string,
    port: target.hosts.map((entry) => entry.port) as unknown as number,
    ...(options.targetSessionAttrs && options.targetSessionAttrs !== 'any'
      ? { target_session_attrs: postgresJsSessionAttrs(options.targetSessionAttrs) }
      : {}),
    database: target.database,
    username: target.username,
    ...(target.password === undefined ? {} : { password: target.password }),
    // bansho's socket factory negotiates TLS itself, host by host.
    ssl: options.socket ? false : postgresJsSsl(target, options.ca ?? target.caPem),
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
