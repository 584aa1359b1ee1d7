import { classifyNetworkError, errorChain } from '../checks/network-errors.js';
import type { PostgresTarget } from '../config/postgres-dsn.js';
import { BanshoError, type FailureCode } from '../errors.js';
import { scrubPassword } from '../redact.js';

import type { PostgresSession, ServerError } from './wire.js';

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

/**
 * What an error's message tells beyond its SQLSTATE, which several conditions share: a
 * better code, or a hint that sends the operator the right way. Undefined when it tells nothing more.
 */
function classifyServerMessage(
  sqlstate: string,
  message: string,
): { code?: FailureCode; hint: string } | undefined {
  for (const rule of SERVER_MESSAGES) {
    if ((rule.sqlstate === undefined || rule.sqlstate === sqlstate) && rule.pattern.test(message)) {
      return { ...(rule.code ? { code: rule.code } : {}), hint: rule.hint(message) };
    }
  }
  return undefined;
}

interface ServerMessageRule {
  sqlstate?: string;
  pattern: RegExp;
  code?: FailureCode;
  hint: (message: string) => string;
}

/** PgBouncer's name for a hint, and where its own settings live. */
const PGBOUNCER = 'PgBouncer (the pooler in front of PostgreSQL)';

const SERVER_MESSAGES: readonly ServerMessageRule[] = [
  {
    sqlstate: '53300',
    pattern: /too many connections for role "([^"]*)"/,
    hint: (message) => {
      const role = /for role "([^"]*)"/.exec(message)?.[1] ?? '<role>';
      return `role ${role}'s own CONNECTION LIMIT is reached, not the server's max_connections: look for its idle or leaked sessions in pg_stat_activity, use a pooler, or raise it: ALTER ROLE ${role} CONNECTION LIMIT <n>`;
    },
  },
  {
    sqlstate: '53300',
    pattern: /too many connections for database "([^"]*)"/,
    hint: (message) => {
      const database = /for database "([^"]*)"/.exec(message)?.[1] ?? '<database>';
      return `database ${database}'s own CONNECTION LIMIT is reached, not the server's max_connections: look for idle or leaked sessions in it (pg_stat_activity), use a pooler, or raise it: ALTER DATABASE ${database} CONNECTION LIMIT <n>`;
    },
  },
  {
    sqlstate: '53300',
    pattern: /remaining connection slots are reserved/,
    hint: () =>
      'max_connections is reached for ordinary roles: only the slots reserved for superusers (superuser_reserved_connections, reserved_connections) are left; look for idle or leaked sessions in pg_stat_activity, use a pooler, or raise max_connections',
  },
  {
    sqlstate: '57014',
    pattern: /due to statement timeout/,
    hint: () =>
      'a statement ran into the statement_timeout bansho sets just under --timeout: the server is slow, or the statement waits for something (see pg_stat_activity); raise --timeout',
  },
  {
    // bansho's own statement_timeout is "due to statement timeout"; this one came from elsewhere.
    sqlstate: '57014',
    pattern: /due to user request/,
    code: 'server_error',
    hint: () =>
      "another session cancelled bansho's statement (pg_cancel_backend()), or a pooler in front of the server did: retry, and look for what cancels sessions",
  },
  {
    sqlstate: '57P01',
    pattern: /terminating connection due to administrator command/,
    code: 'connection_closed',
    hint: () =>
      "the server ended bansho's session: pg_terminate_backend() from another session, or a shutdown (pg_ctl stop -m fast); retry with --wait, and if it recurs look for what terminates sessions",
  },
  {
    sqlstate: '57P05',
    pattern: /idle-session timeout/,
    code: 'connection_closed',
    hint: () =>
      "idle_session_timeout ended the session between two of bansho's statements, and will end the gateway's pooled sessions: ALTER ROLE … RESET idle_session_timeout (or raise it above the pool's idle timeout)",
  },
  {
    sqlstate: '25P03',
    pattern: /idle-in-transaction timeout/,
    code: 'connection_closed',
    hint: () =>
      'idle_in_transaction_session_timeout ended the session inside a transaction: ALTER ROLE … RESET idle_in_transaction_session_timeout, or raise it',
  },
  // PgBouncer answers most of its own conditions with an ErrorResponse coded 08P01: the message tells which.
  {
    sqlstate: '08P01',
    pattern: /^no such database/i,
    code: 'unknown_database',
    hint: () =>
      `${PGBOUNCER} has no [databases] entry for this database (and no * fallback): add one to pgbouncer.ini, or fix the database in POSTGRES_DSN`,
  },
  {
    sqlstate: '08P01',
    pattern: /^bouncer config error/i,
    code: 'server_error',
    hint: () =>
      `${PGBOUNCER} cannot serve this database as configured ("bouncer config error"): e.g. auth_type=any without user= in the [databases] entry, or an auth_user / auth_dbname it cannot use; see PgBouncer's log`,
  },
  {
    sqlstate: '08P01',
    pattern: /^no such user/i,
    code: 'auth_failed',
    hint: () =>
      `${PGBOUNCER} does not know this user: add it to its auth_file, or set auth_user / auth_query`,
  },
  {
    sqlstate: '08P01',
    pattern: /^"?trust"? authentication failed/i,
    code: 'auth_failed',
    hint: () =>
      `${PGBOUNCER} refused the user: with auth_type=trust it must still be listed in PgBouncer's auth_file`,
  },
  {
    sqlstate: '08P01',
    pattern: /password authentication failed|server login failed|SASL authentication failed/i,
    code: 'auth_failed',
    hint: () =>
      `${PGBOUNCER} could not log this user in: check the password in POSTGRES_DSN and in PgBouncer's auth_file (it logs in to PostgreSQL with it), and the server's pg_hba.conf`,
  },
  {
    sqlstate: '08P01',
    pattern: /no more connections allowed \(max_client_conn\)/,
    code: 'too_many_connections',
    hint: () =>
      `${PGBOUNCER}'s max_client_conn is reached: look for leaked clients, or raise it in pgbouncer.ini`,
  },
  {
    sqlstate: '08P01',
    pattern: /query_wait_timeout|client_login_timeout/,
    code: 'timeout',
    hint: () =>
      `${PGBOUNCER} found no server connection in time (query_wait_timeout / client_login_timeout): its pool is busy with long transactions, too small (default_pool_size), or PostgreSQL is unreachable from it`,
  },
  {
    sqlstate: '08P01',
    pattern: /cannot connect to server/i,
    code: 'connection_refused',
    hint: () =>
      `${PGBOUNCER} is up but cannot reach PostgreSQL: check host and port of its [databases] entry, and that PostgreSQL is running`,
  },
  {
    sqlstate: '08P01',
    pattern: /^SSL required/i,
    code: 'tls',
    hint: () =>
      `${PGBOUNCER} requires TLS from its clients (client_tls_sslmode): use sslmode=require or stronger`,
  },
  {
    sqlstate: '08P01',
    pattern: /^unsupported startup parameter/i,
    code: 'server_error',
    hint: () =>
      `${PGBOUNCER} refuses a startup parameter of POSTGRES_DSN: remove it, or list it in PgBouncer's ignore_startup_parameters`,
  },
  {
    sqlstate: '08P01',
    pattern: /does not allow connections/i,
    code: 'not_ready',
    hint: () => `${PGBOUNCER} has this database disabled or paused (DISABLE / PAUSE): ENABLE / RESUME it`,
  },
  {
    // An ErrorResponse is PostgreSQL's protocol: whoever sent it speaks it.
    sqlstate: '08P01',
    pattern: /./,
    hint: () =>
      "the server, or a pooler such as PgBouncer in front of it, refused bansho's messages: read its message, and the log of whichever of them listens on POSTGRES_DSN's port",
  },
  {
    sqlstate: '28000',
    pattern: /requires a valid client certificate/,
    hint: () =>
      'the server requires a client certificate for this role (pg_hba cert, or clientcert=verify-full): give sslcert and sslkey in POSTGRES_DSN',
  },
  {
    sqlstate: '28000',
    pattern: /certificate authentication failed/,
    hint: () =>
      "the client certificate's CN (sslcert) must be the role in POSTGRES_DSN, or map to it in pg_ident.conf",
  },
];

/** How postgres.js and Node report a connection that the other side closed or reset. */
const CLOSED_CODES = new Set(['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'ECONNRESET', 'EPIPE']);

interface PostgresErrorLike {
  name?: unknown;
  code?: unknown;
  /** Node's system errors: the address dialled, a path for a Unix socket. */
  address?: unknown;
  message?: unknown;
  severity?: unknown;
}

/**
 * Maps anything a PostgreSQL check threw to a BanshoError with a stable code. `session`, when
 * known, tells a connection closed by a peer that never spoke PostgreSQL from one that the
 * server closed after starting the session.
 */
export function classifyPostgresError(
  error: unknown,
  target: PostgresTarget,
  session?: Pick<PostgresSession, 'started' | 'tls' | 'spoke' | 'fatal'>,
): BanshoError {
  if (error instanceof BanshoError) return error;
  const where = target.display;
  const make = (code: FailureCode, message: string) =>
    new BanshoError(code, message, { cause: error, service: 'postgres' });
  const layers = errorChain(error) as PostgresErrorLike[];
  const fromServer = (reply: ServerError) => {
    const known = classifyServerMessage(reply.code, reply.message);
    return new BanshoError(
      known?.code ?? SQLSTATE_CODES[reply.code] ?? 'server_error',
      `${reply.severity} ${reply.code}: ${scrubPassword(reply.message, target)}`,
      { cause: error, service: 'postgres', ...(known?.hint ? { hint: known.hint } : {}) },
    );
  };
  for (const layer of layers) {
    if (layer.name === 'PostgresError' && typeof layer.code === 'string') {
      return fromServer({
        severity: String(layer.severity ?? 'ERROR'),
        code: layer.code,
        message: String(layer.message),
      });
    }
  }
  const socketFailure = layers.find(
    (layer) => typeof layer.address === 'string' && layer.address.startsWith('/') && layer.code !== undefined,
  );
  if (socketFailure?.code === 'ENOENT') {
    return make(
      'connection_refused',
      `no socket at ${String(socketFailure.address)} (ENOENT): is PostgreSQL running, with this directory in unix_socket_directories and this port?`,
    );
  }
  if (socketFailure?.code === 'EACCES') {
    return new BanshoError(
      'connection_refused',
      `may not open the socket ${String(socketFailure.address)} (EACCES)`,
      {
        cause: error,
        service: 'postgres',
        hint: "the socket's directory or file does not let bansho's OS user in: check their owner and mode (unix_socket_group, unix_socket_permissions)",
      },
    );
  }
  const network = classifyNetworkError(error, 'postgres', where, target);
  if (network) return network;
  const codes = layers.map((layer) => (typeof layer.code === 'string' ? layer.code : ''));
  const first = scrubPassword(String(layers[0]?.message ?? error), target);
  if (codes.includes('CONNECT_TIMEOUT')) return make('timeout', `connecting to ${where} timed out`);
  if (codes.some((code) => CLOSED_CODES.has(code))) {
    // The server said why before it closed: postgres.js drops that when it closes.
    const fatal = session?.fatal();
    if (fatal) return fromServer(fatal);
    // A peer that started the session speaks PostgreSQL: it, or something between, ended it.
    if (session?.started()) return make('connection_closed', `${where} closed the session: ${first}`);
    // Under TLS 1.3 a server refuses a client certificate after the handshake, with a reset.
    if (session?.tls()) {
      return make(
        'tls',
        `${where} closed the TLS connection before the session started${target.sslCert ? ': does the server trust the CA of the client certificate (sslcert)?' : ''}: ${first}`,
      );
    }
    if (session?.spoke()) {
      return make(
        'connection_closed',
        `${where} answered, then closed the connection during start-up: ${first}`,
      );
    }
    return make('protocol', `${where} closed the connection before the session started: ${first}`);
  }
  return make('unexpected', `PostgreSQL check failed: ${first}`);
}
