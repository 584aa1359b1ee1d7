/**
 * Stable failure codes. They appear in `--json` output and in the README's table,
 * so scripts may match on them: add codes, never rename one.
 */
export type FailureCode =
  | 'connection_refused'
  | 'timeout'
  | 'dns'
  | 'auth_failed'
  | 'tls'
  | 'not_ready'
  | 'unknown_database'
  | 'read_only'
  | 'too_many_connections'
  | 'protocol'
  | 'connection_closed'
  | 'server_error'
  | 'schema_mismatch'
  | 'schema_newer'
  | 'locked'
  | 'permission_denied'
  | 'unsupported_version'
  | 'interrupted'
  | 'config'
  | 'unexpected';

/** Process exit codes; the same table is printed by `--help` and kept in the README. */
export const ExitCode = {
  /** Every check passed (or warned, without `--strict`). */
  healthy: 0,
  /** A check failed: a dependency is down, unhealthy or its schema differs. */
  checkFailed: 1,
  /** Invalid invocation or configuration: nothing was attempted. */
  usage: 2,
  /** Ended by SIGINT (128 + 2). */
  interrupted: 130,
  /** Ended by SIGTERM (128 + 15). */
  terminated: 143,
} as const;

export type Service = 'redis' | 'postgres';

/** What an operator should look at next, per failure code and service. */
const HINTS: Record<FailureCode, Partial<Record<Service | 'any', string>>> = {
  connection_refused: {
    redis: 'is Redis running, and do the host and port in REDIS_URL point at it?',
    postgres: 'is PostgreSQL running, and do the host and port in POSTGRES_DSN point at it?',
  },
  timeout: {
    redis:
      'the server did not answer in time: check the host and port in REDIS_URL, a firewall, or raise --timeout',
    postgres:
      'the server did not answer in time: check the host and port in POSTGRES_DSN, a firewall, or raise --timeout',
  },
  dns: {
    redis: "REDIS_URL's host name does not resolve: check its spelling and the machine's DNS",
    postgres: "POSTGRES_DSN's host name does not resolve: check its spelling and the machine's DNS",
  },
  auth_failed: {
    redis: "is REDIS_URL's password set, and right for its user?",
    postgres: "check the user and password in POSTGRES_DSN, and the server's pg_hba.conf",
  },
  tls: {
    redis:
      "check rediss:// against the server's TLS port, and that its certificate chains to the CA of REDIS_URL's ssl_ca_certs (or to one Node trusts)",
    postgres:
      "check sslmode and sslrootcert in POSTGRES_DSN against the server's ssl setting and certificate",
  },
  not_ready: {
    redis:
      'the server is up but not serving (loading data, or a replica without its master): retry with --wait',
    postgres:
      'the server is up but not serving (starting, shutting down, or a standby in recovery): retry with --wait, or point POSTGRES_DSN at the primary',
  },
  unknown_database: {
    redis: "the database number in REDIS_URL's path is beyond the server's `databases` setting",
    postgres: "create the database named in POSTGRES_DSN's path, or fix the name",
  },
  read_only: {
    redis: 'the server is a read-only replica: point REDIS_URL at the primary',
    postgres:
      'the session is read-only (a standby, or default_transaction_read_only): point POSTGRES_DSN at the primary',
  },
  too_many_connections: {
    redis: "the server's maxclients is reached: look for a connection leak, or raise maxclients",
    postgres: "the server's max_connections is reached: look for a connection leak, or use a pooler",
  },
  protocol: {
    redis: 'the peer does not speak Redis: does the port in REDIS_URL belong to another service?',
    postgres: 'the peer does not speak PostgreSQL: does the port in POSTGRES_DSN belong to another service?',
  },
  connection_closed: {
    redis:
      'the server (or a proxy before it) hung up after it had answered: look in its log for a CLIENT KILL, a restart or shutdown, a timeout or client limit of a proxy; retry with --wait',
    postgres:
      "the server closed a session it had started: a backend ended by pg_terminate_backend or idle_session_timeout, a crash or restart, or a proxy or firewall between; see the server's log, and retry with --wait",
    any: 'the server hung up after it had answered: look in its log for why, and retry with --wait',
  },
  server_error: {
    redis: "the server answered the check with an error: read its message, and the server's log",
    postgres: "the server answered the check with an error: read its message, and the server's log",
  },
  schema_mismatch: {
    any: 'bansho changes nothing while anything differs: migrate or restore the objects listed, then run it again',
  },
  schema_newer: {
    any: 'the database holds a newer schema than this bansho knows: upgrade bansho rather than change the schema',
  },
  locked: {
    postgres:
      'another session holds a lock ensure-schema needs (see pg_locks / pg_stat_activity): retry, or raise --timeout',
  },
  permission_denied: {
    redis: 'the ACL user of REDIS_URL may not run a command bansho needs: grant it (ACL SETUSER)',
    postgres:
      'the role of POSTGRES_DSN lacks a privilege bansho needs: GRANT it, or connect as the table owner',
  },
  unsupported_version: {
    redis:
      "bansho and the gateway's client (node-redis, as createRedisClient makes it) speak RESP3, which needs Redis 6 or newer: upgrade the server, or connect past a proxy that does not speak RESP3",
    postgres: 'bansho needs PostgreSQL 13 or newer (for the built-in gen_random_uuid()): upgrade the server',
  },
  interrupted: { any: 'the command was interrupted by a signal' },
  config: { any: 'see `bansho --help` for flags and variables' },
  unexpected: { any: 'rerun with --verbose for details, and report it if it persists' },
};

export function hintFor(code: FailureCode, service?: Service): string {
  const hints = HINTS[code];
  return (service && hints[service]) ?? hints.any ?? hints.redis ?? '';
}

/** How an existing object differs from what bansho expects; the shape of `drift` in `--json`. */
export interface Difference {
  /** "column api_keys.key_hash", "table audit_events", "index audit_events_ts_idx". */
  object: string;
  expected: string;
  found: string;
}

/**
 * The one error type bansho raises: a stable `code`, a message safe to print
 * (never a password), a `hint` for the operator, and the driver's error as `cause`.
 */
export class BanshoError extends Error {
  override readonly name = 'BanshoError';
  readonly code: FailureCode;
  readonly hint: string;
  /** With `schema_mismatch`: every difference found, none repaired. */
  readonly drift?: Difference[];
  /** What the check learned before it failed, for its report (a Redis `topology`). */
  readonly facts?: Readonly<Record<string, unknown>>;

  constructor(
    code: FailureCode,
    message: string,
    options: {
      hint?: string;
      cause?: unknown;
      service?: Service;
      drift?: Difference[];
      facts?: Readonly<Record<string, unknown>>;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint ?? hintFor(code, options.service);
    if (options.drift) this.drift = options.drift;
    if (options.facts) this.facts = options.facts;
  }
}

/** A user's mistake in flags, variables or files: exit 2, nothing attempted. */
export function configError(message: string, hint?: string): BanshoError {
  return new BanshoError('config', message, hint === undefined ? {} : { hint });
}
