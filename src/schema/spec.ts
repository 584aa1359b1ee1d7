/**
 * The one place where bansho's PostgreSQL schema is written down. The DDL that
 * `ensureSchema` runs and the checks that `smoke` makes are both derived from it.
 */

export interface ColumnSpec {
  name: string;
  /** As PostgreSQL's format_type() prints it, so introspection compares by equality. */
  type: string;
  /** The type as written in DDL. */
  ddlType: string;
  notNull: boolean;
  /** As pg_get_expr() prints the default. */
  default?: string;
}

export interface ConstraintSpec {
  name: string;
  /** As pg_get_constraintdef() prints it. */
  definition: string;
}

export interface IndexSpec {
  name: string;
  columns: string[];
}

export interface TableSpec {
  name: string;
  columns: ColumnSpec[];
  constraints: ConstraintSpec[];
  indexes: IndexSpec[];
}

const uuidKey: ColumnSpec = {
  name: 'id',
  type: 'uuid',
  ddlType: 'uuid',
  notNull: true,
  default: 'gen_random_uuid()',
};

/**
 * The version of the schema below, recorded in bansho_schema_version by ensure-schema. Raise it
 * with every change to SCHEMA, so that an older bansho recognises a newer schema and leaves it alone.
 */
export const SCHEMA_VERSION = 1;

/** The table where ensure-schema records which schema versions it applied. */
export const VERSION_TABLE = 'bansho_schema_version';

export const SCHEMA: readonly TableSpec[] = [
  {
    name: 'api_keys',
    columns: [
      uuidKey,
      { name: 'key_hash', type: 'text', ddlType: 'text', notNull: true },
      { name: 'role', type: 'text', ddlType: 'text', notNull: true },
      {
        name: 'created_at',
        type: 'timestamp with time zone',
        ddlType: 'timestamptz',
        notNull: true,
        default: 'now()',
      },
      { name: 'revoked_at', type: 'timestamp with time zone', ddlType: 'timestamptz', notNull: false },
    ],
    constraints: [
      { name: 'api_keys_pkey', definition: 'PRIMARY KEY (id)' },
      { name: 'api_keys_key_hash_key', definition: 'UNIQUE (key_hash)' },
    ],
    indexes: [],
  },
  {
    name: 'audit_events',
    columns: [
      uuidKey,
      {
        name: 'ts',
        type: 'timestamp with time zone',
        ddlType: 'timestamptz',
        notNull: true,
        default: 'now()',
      },
      { name: 'api_key_id', type: 'uuid', ddlType: 'uuid', notNull: false },
      { name: 'method', type: 'text', ddlType: 'text', notNull: true },
      { name: 'tool_name', type: 'text', ddlType: 'text', notNull: false },
      { name: 'request_json', type: 'jsonb', ddlType: 'jsonb', notNull: false },
      { name: 'response_json', type: 'jsonb', ddlType: 'jsonb', notNull: false },
      { name: 'status_code', type: 'integer', ddlType: 'integer', notNull: false },
      { name: 'latency_ms', type: 'integer', ddlType: 'integer', notNull: false },
    ],
    constraints: [
      { name: 'audit_events_pkey', definition: 'PRIMARY KEY (id)' },
      {
        name: 'audit_events_api_key_id_fkey',
        definition: 'FOREIGN KEY (api_key_id) REFERENCES api_keys(id) ON DELETE SET NULL',
      },
      { name: 'audit_events_latency_ms_check', definition: 'CHECK ((latency_ms >= 0))' },
    ],
    indexes: [
      { name: 'audit_events_ts_idx', columns: ['ts'] },
      { name: 'audit_events_api_key_id_ts_idx', columns: ['api_key_id', 'ts'] },
    ],
  },
  {
    name: VERSION_TABLE,
    columns: [
      { name: 'version', type: 'integer', ddlType: 'integer', notNull: true },
      {
        name: 'applied_at',
        type: 'timestamp with time zone',
        ddlType: 'timestamptz',
        notNull: true,
        default: 'now()',
      },
    ],
    constraints: [{ name: `${VERSION_TABLE}_pkey`, definition: 'PRIMARY KEY (version)' }],
    indexes: [],
  },
];

/** A column as written in DDL: "key_hash text NOT NULL". */
export function columnSql(column: ColumnSpec): string {
  return `${column.name} ${column.ddlType}${column.notNull ? ' NOT NULL' : ''}${column.default ? ` DEFAULT ${column.default}` : ''}`;
}

/** CREATE TABLE for a table of the spec; constraints are named so that they are found again. */
export function createTableSql(table: TableSpec): string {
  const columns = table.columns.map((column) => `  ${columnSql(column)}`);
  const constraints = table.constraints.map(
    (constraint) => `  CONSTRAINT ${constraint.name} ${constraint.definition}`,
  );
  return `CREATE TABLE ${table.name} (\n${[...columns, ...constraints].join(',\n')}\n)`;
}

export function createIndexSql(table: TableSpec, index: IndexSpec): string {
  return `CREATE INDEX ${index.name} ON ${table.name} (${index.columns.join(', ')})`;
}

export function addColumnSql(table: TableSpec, column: ColumnSpec): string {
  return `ALTER TABLE ${table.name} ADD COLUMN ${columnSql(column)}`;
}

export function addConstraintSql(table: TableSpec, constraint: ConstraintSpec): string {
  return `ALTER TABLE ${table.name} ADD CONSTRAINT ${constraint.name} ${constraint.definition}`;
}

/** Idempotent, so that a version recorded by a concurrent run is no error. */
export function recordVersionSql(version: number): string {
  return `INSERT INTO ${VERSION_TABLE} (version) VALUES (${version}) ON CONFLICT (version) DO NOTHING`;
}
