import type { Sql } from 'postgres';
import type { CheckDetail } from '../checks.js';
import { BanshoError } from '../errors.js';
import { judgeClock } from './clock.js';
import { failed, passed, warned } from './detail.js';

/** The oldest PostgreSQL bansho supports: 13 has gen_random_uuid() built in. */
export const MIN_POSTGRES_VERSION_NUM = 130000;
/** Connections in use above this share of the slots open to ordinary roles get a warning. */
export const CONNECTIONS_WARN_RATIO = 0.9;

/** What the gateway does to each table: it writes audit rows, and reads and maintains keys. */
export const GATEWAY_PRIVILEGES: ReadonlyArray<{ table: string; privileges: readonly string[] }> = [
  { table: 'audit_events', privileges: ['INSERT'] },
  { table: 'api_keys', privileges: ['SELECT', 'INSERT', 'UPDATE'] },
];

export interface PostgresProbeOptions {
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
export async function probePostgres(sql: Sql, options: PostgresProbeOptions = {}): Promise<PostgresFindings> {
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
           (select count(*) from pg_stat_get_activity(null)
             where datid is not null and coalesce(backend_type, 'client backend') = 'client backend')::int
             as connections_in_use,
           current_setting('server_encoding') as encoding,
           (extract(epoch from clock_timestamp()) * 1000)::float8 as server_ms`;
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

function judgeConnections(facts: PostgresFacts): CheckDetail {
  const open = facts.maxConnections - facts.reservedConnections;
  const observed = `${facts.connectionsInUse} of ${open} in use (max_connections ${facts.maxConnections}, ${facts.reservedConnections} reserved)`;
  if (facts.connectionsInUse <= open * CONNECTIONS_WARN_RATIO) return passed('connections', observed);
  return warned(
    'connections',
    observed,
    'above 90% of the slots open to ordinary roles: new sessions (the gateway scaling out, a deploy) will be refused; look for idle or leaked sessions in pg_stat_activity, use a pooler, or raise max_connections',
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
