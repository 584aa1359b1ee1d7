/**
 * planSchema: how every kind of drift between the database and bansho's schema is judged.
 * Pure unit tests with hand-built ActualTable maps, plus one round trip through a real
 * PostgreSQL proving that the DDL the spec generates introspects back as "as specified".
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closePostgres, createPostgresPool, type Sql } from '../src/index.js';
import { introspectSchema } from '../src/schema/introspect.js';
import {
  type ActualColumn,
  type ActualConstraint,
  type ActualIndex,
  type ActualTable,
  planSchema,
  type SchemaPlan,
} from '../src/schema/plan.js';
import { createIndexSql, createTableSql, SCHEMA, type TableSpec } from '../src/schema/spec.js';
import { ALL_CHANGES } from './support/schema.js';
import { type PostgresEndpoint, usePostgres } from './support/servers.js';

const RECORD_VERSION = {
  object: 'schema version 1',
  action: 'record',
  sql: 'INSERT INTO bansho_schema_version (version) VALUES (1) ON CONFLICT (version) DO NOTHING',
};
/** The plan for a database that is exactly as specified, version 1 recorded. */
const NOTHING_TO_DO: SchemaPlan = {
  changes: [],
  drift: [],
  missingTables: [],
  recordedVersion: 1,
  newer: false,
};

// ---------------------------------------------------------------------------
// Hand-built tables, written out as PostgreSQL's catalogs print them (not derived from SCHEMA,
// so that a change to the spec is noticed here).

interface MutableTable {
  name: string;
  columns: Map<string, ActualColumn>;
  constraints: ActualConstraint[];
  indexes: ActualIndex[];
}

function apiKeys(): MutableTable {
  return {
    name: 'api_keys',
    columns: new Map<string, ActualColumn>([
      ['id', { type: 'uuid', notNull: true, default: 'gen_random_uuid()' }],
      ['key_hash', { type: 'text', notNull: true, default: null }],
      ['role', { type: 'text', notNull: true, default: null }],
      ['created_at', { type: 'timestamp with time zone', notNull: true, default: 'now()' }],
      ['revoked_at', { type: 'timestamp with time zone', notNull: false, default: null }],
    ]),
    constraints: [
      { name: 'api_keys_pkey', definition: 'PRIMARY KEY (id)' },
      { name: 'api_keys_key_hash_key', definition: 'UNIQUE (key_hash)' },
    ],
    // The indexes behind the primary key and the unique constraint, as introspection reports them.
    indexes: [
      { name: 'api_keys_pkey', columns: ['id'], partial: false },
      { name: 'api_keys_key_hash_key', columns: ['key_hash'], partial: false },
    ],
  };
}

function auditEvents(): MutableTable {
  return {
    name: 'audit_events',
    columns: new Map<string, ActualColumn>([
      ['id', { type: 'uuid', notNull: true, default: 'gen_random_uuid()' }],
      ['ts', { type: 'timestamp with time zone', notNull: true, default: 'now()' }],
      ['api_key_id', { type: 'uuid', notNull: false, default: null }],
      ['method', { type: 'text', notNull: true, default: null }],
      ['tool_name', { type: 'text', notNull: false, default: null }],
      ['request_json', { type: 'jsonb', notNull: false, default: null }],
      ['response_json', { type: 'jsonb', notNull: false, default: null }],
      ['status_code', { type: 'integer', notNull: false, default: null }],
      ['latency_ms', { type: 'integer', notNull: false, default: null }],
    ]),
    constraints: [
      { name: 'audit_events_pkey', definition: 'PRIMARY KEY (id)' },
      {
        name: 'audit_events_api_key_id_fkey',
        definition: 'FOREIGN KEY (api_key_id) REFERENCES api_keys(id) ON DELETE SET NULL',
      },
      { name: 'audit_events_latency_ms_check', definition: 'CHECK ((latency_ms >= 0))' },
    ],
    indexes: [
      { name: 'audit_events_pkey', columns: ['id'], partial: false },
      { name: 'audit_events_ts_idx', columns: ['ts'], partial: false },
      { name: 'audit_events_api_key_id_ts_idx', columns: ['api_key_id', 'ts'], partial: false },
    ],
  };
}

function versionTable(): MutableTable {
  return {
    name: 'bansho_schema_version',
    columns: new Map<string, ActualColumn>([
      ['version', { type: 'integer', notNull: true, default: null }],
      ['applied_at', { type: 'timestamp with time zone', notNull: true, default: 'now()' }],
    ]),
    constraints: [{ name: 'bansho_schema_version_pkey', definition: 'PRIMARY KEY (version)' }],
    indexes: [{ name: 'bansho_schema_version_pkey', columns: ['version'], partial: false }],
  };
}

function tablesOf(tables: MutableTable[]): Map<string, ActualTable> {
  return new Map(tables.map((table) => [table.name, table]));
}

/** Plans a database holding `tables` and the version table, version 1 recorded. */
function plan(...tables: MutableTable[]): SchemaPlan {
  return planSchema({ tables: tablesOf([...tables, versionTable()]), version: 1 });
}

/** The plan's changes as people read them: "create table api_keys". */
function described(result: SchemaPlan): string[] {
  return result.changes.map((change) => `${change.action} ${change.object}`);
}

/** Changes one column of a table in place and returns the table. */
function withColumn(table: MutableTable, name: string, change: Partial<ActualColumn>): MutableTable {
  const column = table.columns.get(name);
  assert.ok(column, `fixture has no column ${table.name}.${name}`);
  table.columns.set(name, { ...column, ...change });
  return table;
}

function specOf(name: string): TableSpec {
  const table = SCHEMA.find((candidate) => candidate.name === name);
  assert.ok(table, `SCHEMA has no table ${name}`);
  return table;
}

// ---------------------------------------------------------------------------

describe('planSchema on an empty or complete database', () => {
  test('an empty database gets every table and index in dependency order, then the version record', () => {
    const result = planSchema({ tables: new Map(), version: null });
    assert.deepEqual(described(result), ALL_CHANGES);
    assert.deepEqual(result.missingTables, ['api_keys', 'audit_events', 'bansho_schema_version']);
    assert.deepEqual(result.drift, []);
    assert.equal(result.changes[0]?.sql, createTableSql(specOf('api_keys')));
    assert.equal(result.changes[1]?.sql, createTableSql(specOf('audit_events')));
    assert.equal(result.changes[2]?.sql, 'CREATE INDEX audit_events_ts_idx ON audit_events (ts)');
    assert.equal(
      result.changes[3]?.sql,
      'CREATE INDEX audit_events_api_key_id_ts_idx ON audit_events (api_key_id, ts)',
    );
    assert.deepEqual(result.changes[5], RECORD_VERSION);
  });

  test('an exact match with version 1 recorded needs no changes and has no drift', () => {
    assert.deepEqual(plan(apiKeys(), auditEvents()), NOTHING_TO_DO);
  });

  test('only audit_events missing: its table and indexes are planned, api_keys is left alone', () => {
    const result = plan(apiKeys());
    assert.deepEqual(described(result), ALL_CHANGES.slice(1, 4));
    assert.deepEqual(result.missingTables, ['audit_events']);
    assert.deepEqual(result.drift, []);
  });

  test('tables made by a bansho that recorded no version: the version table and record are planned', () => {
    const result = planSchema({ tables: tablesOf([apiKeys(), auditEvents()]), version: null });
    assert.deepEqual(described(result), ['create table bansho_schema_version', 'record schema version 1']);
    assert.deepEqual(result.drift, []);
  });

  test('a version table without a row plans the record alone', () => {
    const result = planSchema({
      tables: tablesOf([apiKeys(), auditEvents(), versionTable()]),
      version: null,
    });
    assert.deepEqual(result.changes, [RECORD_VERSION]);
  });

  test('a newer recorded version is reported as newer, with nothing compared and nothing planned', () => {
    const keys = withColumn(apiKeys(), 'key_hash', { type: 'bytea' });
    const result = planSchema({ tables: tablesOf([keys, versionTable()]), version: 2 });
    assert.deepEqual(result, { changes: [], drift: [], missingTables: [], recordedVersion: 2, newer: true });
  });
});

describe('planSchema heals what is missing and can be added without touching data', () => {
  test('a missing nullable column is added', () => {
    const table = auditEvents();
    table.columns.delete('tool_name');
    const result = plan(apiKeys(), table);
    assert.deepEqual(result.changes, [
      {
        object: 'column audit_events.tool_name',
        action: 'add',
        sql: 'ALTER TABLE audit_events ADD COLUMN tool_name text',
      },
    ]);
    assert.deepEqual(result.drift, []);
  });

  test('a missing NOT NULL column with a default is added with its default', () => {
    const table = apiKeys();
    table.columns.delete('created_at');
    assert.deepEqual(plan(table, auditEvents()).changes, [
      {
        object: 'column api_keys.created_at',
        action: 'add',
        sql: 'ALTER TABLE api_keys ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()',
      },
    ]);
  });

  test('a missing unique constraint is added under its name', () => {
    const table = apiKeys();
    table.constraints = table.constraints.filter(
      (constraint) => constraint.definition !== 'UNIQUE (key_hash)',
    );
    table.indexes = table.indexes.filter((index) => index.name !== 'api_keys_key_hash_key');
    const result = plan(table, auditEvents());
    assert.deepEqual(result.changes, [
      {
        object: 'constraint api_keys_key_hash_key',
        action: 'add',
        sql: 'ALTER TABLE api_keys ADD CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash)',
      },
    ]);
    assert.deepEqual(result.drift, []);
  });

  test('missing check and foreign key constraints are added', () => {
    const table = auditEvents();
    table.constraints = table.constraints.filter((constraint) => constraint.definition.startsWith('PRIMARY'));
    assert.deepEqual(described(plan(apiKeys(), table)), [
      'add constraint audit_events_api_key_id_fkey',
      'add constraint audit_events_latency_ms_check',
    ]);
  });

  test('a missing primary key is added when the table has none', () => {
    const table = apiKeys();
    table.constraints = table.constraints.filter(
      (constraint) => !constraint.definition.startsWith('PRIMARY'),
    );
    assert.deepEqual(plan(table, auditEvents()).changes, [
      {
        object: 'constraint api_keys_pkey',
        action: 'add',
        sql: 'ALTER TABLE api_keys ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id)',
      },
    ]);
  });

  test('a missing index alone is planned as exactly one change', () => {
    const table = auditEvents();
    table.indexes = table.indexes.filter((index) => index.name !== 'audit_events_api_key_id_ts_idx');
    const result = plan(apiKeys(), table);
    assert.deepEqual(result.changes, [
      {
        object: 'index audit_events_api_key_id_ts_idx',
        action: 'create',
        sql: 'CREATE INDEX audit_events_api_key_id_ts_idx ON audit_events (api_key_id, ts)',
      },
    ]);
    assert.deepEqual(result.drift, []);
    assert.deepEqual(result.missingTables, []);
  });

  test('columns come before the constraints and indexes that use them', () => {
    const table = apiKeys();
    table.columns.delete('id');
    table.constraints = table.constraints.filter(
      (constraint) => !constraint.definition.startsWith('PRIMARY'),
    );
    table.indexes = table.indexes.filter((index) => index.name !== 'api_keys_pkey');
    assert.deepEqual(described(plan(table, auditEvents())), [
      'add column api_keys.id',
      'add constraint api_keys_pkey',
    ]);
  });
});

describe('planSchema refuses drift, naming object, expected and found', () => {
  test('a wrong type', () => {
    const result = plan(withColumn(apiKeys(), 'key_hash', { type: 'integer' }), auditEvents());
    assert.deepEqual(result.drift, [
      { object: 'column api_keys.key_hash', expected: 'text', found: 'integer' },
    ]);
  });

  test('a timestamp without time zone is not accepted for a timestamptz column', () => {
    const result = plan(apiKeys(), withColumn(auditEvents(), 'ts', { type: 'timestamp without time zone' }));
    assert.deepEqual(result.drift, [
      {
        object: 'column audit_events.ts',
        expected: 'timestamp with time zone',
        found: 'timestamp without time zone',
      },
    ]);
  });

  test('a nullable column that should be NOT NULL (the gateway relies on it)', () => {
    const result = plan(withColumn(apiKeys(), 'role', { notNull: false }), auditEvents());
    assert.deepEqual(result.drift, [
      { object: 'column api_keys.role', expected: 'NOT NULL', found: 'nullable' },
    ]);
  });

  test('a NOT NULL column that should be nullable', () => {
    const result = plan(apiKeys(), withColumn(auditEvents(), 'api_key_id', { notNull: true }));
    assert.deepEqual(result.drift, [
      { object: 'column audit_events.api_key_id', expected: 'nullable', found: 'NOT NULL' },
    ]);
  });

  test('a missing, different or unexpected default', () => {
    const keys = withColumn(withColumn(apiKeys(), 'created_at', { default: null }), 'revoked_at', {
      default: 'now()',
    });
    const events = withColumn(auditEvents(), 'id', { default: 'uuid_generate_v4()' });
    assert.deepEqual(plan(keys, events).drift, [
      { object: 'column api_keys.created_at', expected: 'DEFAULT now()', found: 'no default' },
      { object: 'column api_keys.revoked_at', expected: 'no default', found: 'DEFAULT now()' },
      {
        object: 'column audit_events.id',
        expected: 'DEFAULT gen_random_uuid()',
        found: 'DEFAULT uuid_generate_v4()',
      },
    ]);
  });

  test('a missing NOT NULL column without a default cannot be added to rows that exist', () => {
    const table = auditEvents();
    table.columns.delete('method');
    const result = plan(apiKeys(), table);
    assert.deepEqual(result.drift, [
      { object: 'column audit_events.method', expected: 'text NOT NULL', found: 'missing' },
    ]);
    assert.deepEqual(result.changes, []);
  });

  test('an extra NOT NULL column without a default breaks the gateway inserts', () => {
    const table = apiKeys();
    table.columns.set('owner', { type: 'text', notNull: true, default: null });
    assert.deepEqual(plan(table, auditEvents()).drift, [
      {
        object: 'column api_keys.owner',
        expected: 'absent, nullable or with a default',
        found: 'text NOT NULL without a default',
      },
    ]);
  });

  test('an extra nullable column, or NOT NULL with a default, is tolerated', () => {
    const table = apiKeys();
    table.columns.set('note', { type: 'text', notNull: false, default: null });
    table.columns.set('tier', { type: 'text', notNull: true, default: "'free'::text" });
    assert.deepEqual(plan(table, auditEvents()), NOTHING_TO_DO);
  });

  test('a relation of another kind where a table should be', () => {
    const view: MutableTable & { kind: string } = { ...apiKeys(), kind: 'view' };
    assert.deepEqual(plan(view, auditEvents()).drift, [
      { object: 'table api_keys', expected: 'a table', found: 'a view' },
    ]);
  });

  test('a constraint of the expected name with another definition', () => {
    const table = auditEvents();
    table.constraints = table.constraints.map((constraint) =>
      constraint.definition.startsWith('FOREIGN KEY')
        ? { ...constraint, definition: 'FOREIGN KEY (api_key_id) REFERENCES api_keys(id)' }
        : constraint,
    );
    const result = plan(apiKeys(), table);
    assert.deepEqual(result.drift, [
      {
        object: 'constraint audit_events_api_key_id_fkey',
        expected: 'FOREIGN KEY (api_key_id) REFERENCES api_keys(id) ON DELETE SET NULL',
        found: 'FOREIGN KEY (api_key_id) REFERENCES api_keys(id)',
      },
    ]);
    assert.deepEqual(result.changes, []);
  });

  test('another primary key under another name', () => {
    const table = apiKeys();
    table.constraints = [
      { name: 'keys_pk', definition: 'PRIMARY KEY (key_hash)' },
      { name: 'api_keys_key_hash_key', definition: 'UNIQUE (key_hash)' },
    ];
    assert.deepEqual(plan(table, auditEvents()).drift, [
      { object: 'primary key of api_keys', expected: 'PRIMARY KEY (id)', found: 'PRIMARY KEY (key_hash)' },
    ]);
  });

  test('constraints are matched by definition, whatever their names', () => {
    const table = apiKeys();
    table.constraints = [
      { name: 'pk', definition: 'PRIMARY KEY (id)' },
      { name: 'uq', definition: 'UNIQUE (key_hash)' },
    ];
    assert.deepEqual(plan(table, auditEvents()), NOTHING_TO_DO);
  });

  test('an index with the expected name on other columns, or in another order', () => {
    const table = auditEvents();
    table.indexes = table.indexes.map((index) =>
      index.name === 'audit_events_ts_idx'
        ? { ...index, columns: ['method'] }
        : index.name === 'audit_events_api_key_id_ts_idx'
          ? { ...index, columns: ['ts', 'api_key_id'] }
          : index,
    );
    const result = plan(apiKeys(), table);
    assert.deepEqual(result.drift, [
      { object: 'index audit_events_ts_idx', expected: 'on (ts)', found: 'on (method)' },
      {
        object: 'index audit_events_api_key_id_ts_idx',
        expected: 'on (api_key_id, ts)',
        found: 'on (ts, api_key_id)',
      },
    ]);
    assert.deepEqual(result.changes, []);
  });

  test('an index under another name on the expected columns counts as present', () => {
    const table = auditEvents();
    table.indexes = table.indexes.map((index) =>
      index.name === 'audit_events_ts_idx' ? { ...index, name: 'by_time' } : index,
    );
    assert.deepEqual(plan(apiKeys(), table), NOTHING_TO_DO);
  });

  test('a partial index under another name does not count: the full index is planned', () => {
    const table = auditEvents();
    table.indexes = table.indexes.map((index) =>
      index.name === 'audit_events_ts_idx'
        ? { name: 'recent_events', columns: ['ts'], partial: true }
        : index,
    );
    const result = plan(apiKeys(), table);
    assert.deepEqual(described(result), ['create index audit_events_ts_idx']);
    assert.deepEqual(result.drift, []);
  });

  test('several differences are all reported, one each, and nothing is planned beside them is applied', () => {
    const keys = withColumn(apiKeys(), 'key_hash', { type: 'bytea' });
    const events = withColumn(auditEvents(), 'latency_ms', { type: 'bigint', notNull: true });
    events.columns.delete('tool_name');
    const result = plan(keys, events);
    assert.deepEqual(result.drift, [
      { object: 'column api_keys.key_hash', expected: 'text', found: 'bytea' },
      { object: 'column audit_events.latency_ms', expected: 'integer', found: 'bigint' },
      { object: 'column audit_events.latency_ms', expected: 'nullable', found: 'NOT NULL' },
    ]);
    // The healing is still planned; ensure-schema applies none of it while there is drift.
    assert.deepEqual(described(result), ['add column audit_events.tool_name']);
  });
});

// ---------------------------------------------------------------------------

describe('the generated DDL on a real database', () => {
  let pg: PostgresEndpoint;
  before(async () => {
    pg = await usePostgres();
  });

  /** Runs each table's CREATE TABLE (and CREATE INDEX) from the spec on a fresh database. */
  async function freshDatabaseWith(tables: readonly TableSpec[]): Promise<Sql> {
    const name = await pg.createDatabase('schema_ddl');
    const statements = tables.flatMap((table) => [
      createTableSql(table),
      ...table.indexes.map((index) => createIndexSql(table, index)),
    ]);
    await pg.query(statements.map((statement) => `${statement};`).join('\n'), name);
    const sql = createPostgresPool({ dsn: pg.dsn(name), max: 1 });
    pools.push(sql);
    return sql;
  }
  const pools: Sql[] = [];
  after(async () => {
    await Promise.all(pools.map((sql) => closePostgres(sql)));
  });

  test('createTableSql and createIndexSql for every table introspect back to a plan with no drift and only the version record left', async () => {
    const sql = await freshDatabaseWith(SCHEMA);
    const actual = await introspectSchema(sql);
    assert.deepEqual([...actual.tables.keys()].sort(), ['api_keys', 'audit_events', 'bansho_schema_version']);
    assert.equal(actual.version, null);
    // The DDL alone records no version: that is the one change left.
    assert.deepEqual(planSchema(actual).changes, [RECORD_VERSION]);
    assert.deepEqual(planSchema(actual).drift, []);
  });

  test('introspection reports columns exactly as the spec writes them', async () => {
    const sql = await freshDatabaseWith(SCHEMA);
    const actual = await introspectSchema(sql);
    for (const table of SCHEMA) {
      const found = actual.tables.get(table.name);
      assert.ok(found, `${table.name} was not introspected`);
      assert.deepEqual(
        [...found.columns.keys()],
        table.columns.map((column) => column.name),
      );
      for (const column of table.columns) {
        assert.deepEqual(found.columns.get(column.name), {
          type: column.type,
          notNull: column.notNull,
          default: column.default ?? null,
        });
      }
    }
  });

  test('only api_keys created from the spec: the plan is the rest, with no drift', async () => {
    const sql = await freshDatabaseWith([specOf('api_keys')]);
    const result = planSchema(await introspectSchema(sql));
    assert.deepEqual(described(result), ALL_CHANGES.slice(1));
    assert.deepEqual(result.missingTables, ['audit_events', 'bansho_schema_version']);
    assert.deepEqual(result.drift, []);
  });

  test('a real database without the tables plans everything', async () => {
    const sql = await freshDatabaseWith([]);
    assert.deepEqual(described(planSchema(await introspectSchema(sql))), ALL_CHANGES);
  });
});
