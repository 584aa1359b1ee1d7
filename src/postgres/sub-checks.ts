import type { Sql } from 'postgres';
import { judgeClock } from '../checks/clock.js';
import type { CheckDetail } from '../checks/model.js';
import { failed, passed, warned } from '../checks/sub-check.js';
import { formatDuration } from '../config/duration.js';
import { BanshoError } from '../errors.js';

/** The oldest PostgreSQL bansho supports: 13 has gen_random_uuid() built in. */
export const MIN_POSTGRES_VERSION_NUM = 130000;
/** Connections in use above this share of a limit (the server's, the role's, the database's) get a warning. */
export const CONNECTIONS_WARN_RATIO = 0.9;
/**
 * A session default (statement_timeout, lock_timeout, idle_in_transaction_session_timeout,
 * idle_session_timeout) below this many milliseconds, and not off, gets a warning: the
 * gateway's ordinary queries and the pauses between them take about that long.
 */
export const MIN_SESSION_TIMEOUT_MS = 100;
/** The session defaults the `timeouts` sub-check judges; idle_session_timeout exists from PostgreSQL 14. */
export const SESSION_TIMEOUTS = [
  'statement_timeout',
  'lock_timeout',
  'idle_in_transaction_session_timeout',
  'idle_session_timeout',
] as const;

/** What the gateway does to each table: it writes audit rows, and reads and maintains keys. */
export const GATEWAY_PRIVILEGES: ReadonlyArray<{ table: string; privileges: readonly string[] }> = [
  { table: 'audit_events', privileges: ['INSERT'] },
  { table: 'api_keys', privileges: ['SELECT', 'INSERT', 'UPDATE'] },
];

export interface PostgresSubCheckOptions {
  /**
   * Also require CREATE on the current schema while a table is missing, as `ensure-schema`
   * does; default false (the gateway creates nothing).
   */
  create?: boolean;
}

/** One row of facts, read by one query; see factsQuery. */
export interface PostgresFacts {
  version: string;
  versionNum: number;
  inRecovery: boolean;
  readOnly: boolean;
  user: string;
  /** current_schema(): null when no schema on the search_path exists. */
  schema: string | null;
  canCreate: boolean | null;
  /** Per table of GATEWAY_PRIVILEGES that exists in the current schema, each privilege and whether it is held. */
  privileges: Array<{ table: string; privilege: string; granted: boolean }>;
  maxConnections: number;
  /** superuser_reserved_connections plus, on PostgreSQL 16+, reserved_connections. */
  reservedConnections: number;
  /** Client sessions on the whole server, this one included. */
  connectionsInUse: number;
  /** The database connected to (current_database()). */
  database: string;
  /** Whether the session's role is a superuser: no role or database CONNECTION LIMIT holds it back. */
  superuser: boolean;
  /** The session role's CONNECTION LIMIT (-1: none), and its client sessions on the server, this one included. */
  roleConnectionLimit: number;
  roleConnections: number;
  /** The database's CONNECTION LIMIT (-1: none), and the client sessions in it, this one included. */
  databaseConnectionLimit: number;
  databaseConnections: number;
  /**
   * Per session default of SESSION_TIMEOUTS that the server has: the value a session starts
   * with (pg_settings.reset_val, milliseconds, 0 off), and where it is set, when it is set by
   * ALTER ROLE / ALTER DATABASE (pg_db_role_setting); the strongest of those.
   */
  timeouts: Array<{ name: string; ms: number; setBy?: 'role' | 'database' | 'role in database' }>;
  encoding: string;
  serverMs: number;
}

/** What the sub-checks learned: the server's version, and one detail per sub-check. */
export interface PostgresFindings {
  version: string;
  details: CheckDetail[];
}

/**
 * Runs the PostgreSQL sub-checks over a session the caller holds: one query, whose reply
 * the sub-checks judge. Nothing is written; a failed query throws (the caller classifies it).
 */
export async function runPostgresSubChecks(
  sql: Sql,
  options: PostgresSubCheckOptions = {},
): Promise<PostgresFindings> {
  const sentAtMs = Date.now();
  const facts = await readFacts(sql);
  const receivedAtMs = Date.now();
  return {
    version: facts.version,
    details: judgePostgres(facts, { sentAtMs, receivedAtMs, create: options.create ?? false }),
  };
}

async function readFacts(sql: Sql): Promise<PostgresFacts> {
  const pairs = GATEWAY_PRIVILEGES.flatMap(({ table, privileges }) =>
    privileges.map((privilege) => ({ table, privilege })),
  );
  const tables = pairs.map((pair) => pair.table).join(',');
  const privileges = pairs.map((pair) => pair.privilege).join(',');
  // Kept cheap for a fresh session's cold catalog caches: to_regclass and pg_stat_get_activity()
  // rather than joins over pg_class and the pg_stat_activity view (about 3 ms less).
  // A role without pg_read_all_stats sees other roles' sessions without their backend_type, but
  // with their database: a session in a database is counted as a client.
  // clock_timestamp(), not now(): now() is frozen at the start of a transaction the caller may hold open.
  const timeoutNames = SESSION_TIMEOUTS.join(',');
  const [row] = await sql<
    {
      version: string;
      version_num: number;
      in_recovery: boolean;
      read_only: string;
      user: string;
      schema: string | null;
      can_create: boolean | null;
      privileges: string | null;
      max_connections: number;
      reserved_connections: number;
      connections_in_use: number;
      database: string;
      superuser: boolean;
      role_connection_limit: number;
      role_connections: number;
      database_connection_limit: number;
      database_connections: number;
      timeouts: string | null;
      encoding: string;
      server_ms: number;
    }[]
  >`
    select current_setting('server_version') as version,
           current_setting('server_version_num')::int as version_num,
           pg_is_in_recovery() as in_recovery,
           current_setting('transaction_read_only') as read_only,
           current_user as user,
           current_schema() as schema,
           has_schema_privilege(current_schema(), 'CREATE') as can_create,
           (select string_agg(w.name || ':' || w.privilege || ':' || has_table_privilege(w.oid, w.privilege), ',')
              from (select t.name, t.privilege, to_regclass(quote_ident(current_schema()) || '.' || t.name) as oid
                      from unnest(string_to_array(${tables}, ','), string_to_array(${privileges}, ','))
                           as t(name, privilege)) w
             where w.oid is not null) as privileges,
           current_setting('max_connections')::int as max_connections,
           current_setting('superuser_reserved_connections')::int
             + coalesce(current_setting('reserved_connections', true), '0')::int as reserved_connections,
           a.in_use as connections_in_use,
           current_database() as database,
           r.rolsuper as superuser,
           r.rolconnlimit as role_connection_limit,
           a.of_role as role_connections,
           d.datconnlimit as database_connection_limit,
           a.in_database as database_connections,
           -- The value each session starts with (reset_val: what our SET LOCAL hides), and where
           -- ALTER ROLE / DATABASE set it, strongest first: role in database, role, database.
           (select string_agg(p.name || ':' || p.reset_val || ':' || coalesce((
                     select case when s.setrole <> 0 and s.setdatabase <> 0 then 'role in database'
                                 when s.setrole <> 0 then 'role' else 'database' end
                       from pg_db_role_setting s, unnest(s.setconfig) c
                      where s.setrole in (0, r.oid) and s.setdatabase in (0, d.oid)
                        and (s.setrole, s.setdatabase) <> (0::oid, 0::oid)
                        and split_part(c, '=', 1) = p.name
                      order by (s.setrole <> 0) desc, (s.setdatabase <> 0) desc limit 1), ''), ',')
              from pg_settings p where p.name = any(string_to_array(${timeoutNames}, ','))) as timeouts,
           current_setting('server_encoding') as encoding,
           (extract(epoch from clock_timestamp()) * 1000)::float8 as server_ms
      from (select oid, rolsuper, rolconnlimit from pg_roles where rolname = session_user) r,
           (select oid, datconnlimit from pg_database where datname = current_database()) d,
           lateral (select count(*)::int as in_use,
                           count(*) filter (where s.usesysid = r.oid)::int as of_role,
                           count(*) filter (where s.datid = d.oid)::int as in_database
                      from pg_stat_get_activity(null) s
                     where s.datid is not null and coalesce(s.backend_type, 'client backend') = 'client backend') a`;
  if (!row)
    throw new BanshoError('protocol', 'the sub-checks query returned no row', { service: 'postgres' });
  return {
    version: row.version,
    versionNum: row.version_num,
    inRecovery: row.in_recovery,
    readOnly: row.read_only === 'on',
    user: row.user,
    schema: row.schema,
    canCreate: row.can_create,
    privileges: (row.privileges ?? '')
      .split(',')
      .filter(Boolean)
      .map((item) => {
        const [table = '', privilege = '', granted] = item.split(':');
        return { table, privilege, granted: granted === 'true' };
      }),
    maxConnections: row.max_connections,
    reservedConnections: row.reserved_connections,
    connectionsInUse: row.connections_in_use,
    database: row.database,
    superuser: row.superuser,
    roleConnectionLimit: row.role_connection_limit,
    roleConnections: row.role_connections,
    databaseConnectionLimit: row.database_connection_limit,
    databaseConnections: row.database_connections,
    timeouts: (row.timeouts ?? '')
      .split(',')
      .filter(Boolean)
      .map((item) => {
        const [name = '', ms = '0', setBy = ''] = item.split(':');
        return {
          name,
          ms: Number(ms),
          ...(setBy ? { setBy: setBy as 'role' | 'database' | 'role in database' } : {}),
        };
      })
      .sort((a, b) => SESSION_TIMEOUTS.indexOf(a.name as never) - SESSION_TIMEOUTS.indexOf(b.name as never)),
    encoding: row.encoding,
    serverMs: row.server_ms,
  };
}

/** Judges the facts; pure, so that states a real server cannot be put into (PostgreSQL 12) are tested too. */
export function judgePostgres(
  facts: PostgresFacts,
  context: { sentAtMs: number; receivedAtMs: number; create: boolean },
): CheckDetail[] {
  return [
    judgeVersion(facts),
    judgePrimary(facts),
    judgePrivileges(facts, context.create),
    judgeConnections(facts),
    judgeTimeouts(facts),
    judgeClock(
      { serverMs: facts.serverMs, sentAtMs: context.sentAtMs, receivedAtMs: context.receivedAtMs },
      "audit rows are stamped with the server's now(), and read next to the gateway's own logs",
    ),
    judgeEncoding(facts),
  ];
}

function judgeVersion(facts: PostgresFacts): CheckDetail {
  const observed = `PostgreSQL ${facts.version}`;
  if (facts.versionNum >= MIN_POSTGRES_VERSION_NUM) return passed('version', observed);
  return failed(
    'version',
    'unsupported_version',
    observed,
    'bansho needs PostgreSQL 13 or newer (for the built-in gen_random_uuid()): upgrade the server',
  );
}

function judgePrimary(facts: PostgresFacts): CheckDetail {
  if (facts.inRecovery) {
    return failed(
      'primary',
      'not_ready',
      'a standby in recovery',
      'the gateway and ensure-schema write: point POSTGRES_DSN at the primary',
    );
  }
  if (facts.readOnly) {
    return failed(
      'primary',
      'read_only',
      'a primary, but sessions are read-only (default_transaction_read_only)',
      'the gateway writes audit rows: point POSTGRES_DSN at a writable database, or ALTER DATABASE/ROLE ... SET default_transaction_read_only = off',
    );
  }
  return passed('primary', 'a primary, sessions writable');
}

function judgePrivileges(facts: PostgresFacts, create: boolean): CheckDetail {
  const schema = facts.schema ?? '(none)';
  const existing = new Set(facts.privileges.map((entry) => entry.table));
  const missingTables = GATEWAY_PRIVILEGES.map(({ table }) => table).filter((table) => !existing.has(table));
  // What is lacking, by object: a GRANT statement per object.
  const lacking = new Map<string, string[]>();
  for (const entry of facts.privileges.filter((entry) => !entry.granted)) {
    lacking.set(entry.table, [...(lacking.get(entry.table) ?? []), entry.privilege]);
  }
  if (create && missingTables.length > 0 && facts.canCreate !== true)
    lacking.set(`SCHEMA ${schema}`, ['CREATE']);
  if (lacking.size > 0) {
    const objects = [...lacking];
    return failed(
      'privileges',
      'permission_denied',
      `role ${facts.user} lacks ${objects.map(([object, privileges]) => `${privileges.join(', ')} on ${object.replace(/^SCHEMA /, 'schema ')}`).join('; ')}`,
      `${objects.map(([object, privileges]) => `GRANT ${privileges.join(', ')} ON ${object} TO ${facts.user}`).join('; ')} (as the owner)`,
    );
  }
  const held = GATEWAY_PRIVILEGES.filter(({ table }) => existing.has(table)).map(
    ({ table, privileges }) => `${privileges.join(', ')} on ${table}`,
  );
  if (missingTables.length === 0) return passed('privileges', `role ${facts.user} has ${held.join('; ')}`);
  // A missing table is the schema check's business; its privileges can only be checked once it exists.
  const notYet = `${missingTables.join(', ')} not created yet`;
  return passed(
    'privileges',
    held.length > 0 ? `role ${facts.user} has ${held.join('; ')}; ${notYet}` : notYet,
    `checked once the tables exist: run \`bansho ensure-schema\` as a role with CREATE on schema ${schema}${facts.canCreate ? ` (${facts.user} has it)` : ''}, and GRANT the gateway's role INSERT on audit_events and SELECT, INSERT, UPDATE on api_keys if another role creates them`,
  );
}

/** One limit on the number of sessions, as the connections sub-check weighs it. */
interface ConnectionLimit {
  limit: number;
  used: number;
  observed: string;
  hint: string;
}

/**
 * Judges headroom against every limit the session can see: the server's slots open to
 * ordinary roles, and (for a role that is no superuser) the role's and the database's own
 * CONNECTION LIMIT. The limit with least headroom is named first; one above 90% warns.
 */
function judgeConnections(facts: PostgresFacts): CheckDetail {
  const open = facts.maxConnections - facts.reservedConnections;
  const limits: ConnectionLimit[] = [
    {
      limit: open,
      used: facts.connectionsInUse,
      observed: `${facts.connectionsInUse} of ${open} in use (max_connections ${facts.maxConnections}, ${facts.reservedConnections} reserved)`,
      hint: 'above 90% of the slots open to ordinary roles: new sessions (the gateway scaling out, a deploy) will be refused; look for idle or leaked sessions in pg_stat_activity, use a pooler, or raise max_connections',
    },
  ];
  // As the server enforces them: a superuser is held back by neither.
  if (!facts.superuser && facts.roleConnectionLimit >= 0) {
    limits.push({
      limit: facts.roleConnectionLimit,
      used: facts.roleConnections,
      observed: `${facts.roleConnections} of ${facts.roleConnectionLimit} for role ${facts.user} (its CONNECTION LIMIT)`,
      hint: `above 90% of role ${facts.user}'s CONNECTION LIMIT, which is tighter than the server's: its new sessions (the gateway scaling out, a deploy) will be refused with "too many connections for role"; look for its idle or leaked sessions in pg_stat_activity, use a pooler, or raise it: ALTER ROLE ${facts.user} CONNECTION LIMIT <n>`,
    });
  }
  if (!facts.superuser && facts.databaseConnectionLimit >= 0) {
    limits.push({
      limit: facts.databaseConnectionLimit,
      used: facts.databaseConnections,
      observed: `${facts.databaseConnections} of ${facts.databaseConnectionLimit} in database ${facts.database} (its CONNECTION LIMIT)`,
      hint: `above 90% of database ${facts.database}'s CONNECTION LIMIT: new sessions in it (the gateway scaling out, a deploy) will be refused with "too many connections for database"; look for idle or leaked sessions in pg_stat_activity, use a pooler, or raise it: ALTER DATABASE ${facts.database} CONNECTION LIMIT <n>`,
    });
  }
  const byHeadroom = [...limits].sort((a, b) => a.limit - a.used - (b.limit - b.used));
  const observed = byHeadroom.map((limit) => limit.observed).join('; ');
  const full = byHeadroom.find((limit) => limit.used > limit.limit * CONNECTIONS_WARN_RATIO);
  if (!full) return passed('connections', observed);
  // The limit that warns is named first, even when another has less headroom but is not nearly full.
  const shown = [full, ...byHeadroom.filter((limit) => limit !== full)].map((limit) => limit.observed);
  return warned('connections', shown.join('; '), full.hint);
}

/** Where a session default was set, as the statement that set it. */
const SET_BY = {
  role: 'ALTER ROLE',
  database: 'ALTER DATABASE',
  'role in database': 'ALTER ROLE IN DATABASE',
};

/** What each session default cuts short in the gateway, for the hint. */
const TIMEOUT_EFFECTS: Record<string, string> = {
  statement_timeout: 'cancels any of its statements that runs longer',
  lock_timeout: 'cancels any of its statements that waits longer for a lock',
  idle_in_transaction_session_timeout: 'ends its session when it pauses longer inside a transaction',
  idle_session_timeout: 'ends its pooled sessions when they are idle longer',
};

/**
 * Warns when the session would start with a timeout so low (below MIN_SESSION_TIMEOUT_MS,
 * not off) that it cuts the gateway's ordinary queries short; the hint is the RESET for where
 * it is set. bansho's own statements set their own bounds, so such a default no longer stops its check.
 */
function judgeTimeouts(facts: PostgresFacts): CheckDetail {
  const describe = (entry: PostgresFacts['timeouts'][number]) =>
    `${entry.name} ${formatDuration(entry.ms)}${entry.setBy ? ` (${SET_BY[entry.setBy]})` : ''}`;
  const set = facts.timeouts.filter((entry) => entry.ms > 0);
  const observed =
    set.length === 0
      ? `all off (${facts.timeouts.map((entry) => entry.name).join(', ')})`
      : `${set.map(describe).join(', ')}${set.length < facts.timeouts.length ? '; the others off' : ''}`;
  const low = facts.timeouts.filter((entry) => entry.ms > 0 && entry.ms < MIN_SESSION_TIMEOUT_MS);
  if (low.length === 0) return passed('timeouts', observed);
  const fixes = low.map((entry) => {
    const where =
      entry.setBy === 'role'
        ? `ALTER ROLE ${facts.user} RESET ${entry.name}`
        : entry.setBy === 'database'
          ? `ALTER DATABASE ${facts.database} RESET ${entry.name}`
          : entry.setBy === 'role in database'
            ? `ALTER ROLE ${facts.user} IN DATABASE ${facts.database} RESET ${entry.name}`
            : `raise ${entry.name} where it is set (postgresql.conf, ALTER SYSTEM, or the connection's options)`;
    return `${entry.name} ${formatDuration(entry.ms)} ${TIMEOUT_EFFECTS[entry.name] ?? 'cuts the gateway short'}: ${where}`;
  });
  return warned(
    'timeouts',
    observed,
    `sessions of role ${facts.user} start with a timeout too low for the gateway's queries; ${fixes.join('; ')} (or set it to ${MIN_SESSION_TIMEOUT_MS}ms or more)`,
  );
}

function judgeEncoding(facts: PostgresFacts): CheckDetail {
  if (facts.encoding === 'UTF8') return passed('encoding', 'UTF8');
  return warned(
    'encoding',
    facts.encoding,
    "audit rows keep tool calls' payloads as jsonb, which in this encoding cannot hold every Unicode character: such a row fails to insert; use a UTF8 database (CREATE DATABASE ... ENCODING 'UTF8')",
  );
}
