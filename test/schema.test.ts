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
} from '../src/schema/plan.js';
import { createIndexSql, createTableSql, SCHEMA, type TableSpec } from '../src/schema/spec.js';
import { type PostgresEndpoint, usePostgres } from './support/servers.js';

const ALL_STEPS = [
  'create table api_keys',
  'create table audit_events',
  'create index audit_events_ts_idx',
  'create index audit_events_api_key_id_ts_idx',
];

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

function database(...tables: MutableTable[]): Map<string, ActualTable> {
  return new Map(tables.map((table) => [table.name, table]));
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
  test('an empty database gets every table and index, in dependency order, and both tables are missing', () => {
    const plan = planSchema(new Map());
    assert.deepEqual(
      plan.steps.map((step) => step.description),
      ALL_STEPS,
    );
    assert.deepEqual(plan.missingTables, ['api_keys', 'audit_events']);
    assert.deepEqual(plan.problems, []);
    assert.equal(plan.steps[0]?.sql, createTableSql(specOf('api_keys')));
    assert.equal(plan.steps[1]?.sql, createTableSql(specOf('audit_events')));
    assert.equal(plan.steps[2]?.sql, 'CREATE INDEX audit_events_ts_idx ON audit_events (ts)');
    assert.equal(
      plan.steps[3]?.sql,
      'CREATE INDEX audit_events_api_key_id_ts_idx ON audit_events (api_key_id, ts)',
    );
  });

  test('an exact match needs no steps and has no problems', () => {
    const plan = planSchema(database(apiKeys(), auditEvents()));
    assert.deepEqual(plan, { steps: [], problems: [], missingTables: [] });
  });

  test('only audit_events missing: its table and indexes are planned, api_keys is left alone', () => {
    const plan = planSchema(database(apiKeys()));
    assert.deepEqual(
      plan.steps.map((step) => step.description),
      ALL_STEPS.slice(1),
    );
    assert.deepEqual(plan.missingTables, ['audit_events']);
    assert.deepEqual(plan.problems, []);
  });
});

describe('planSchema reports columns that differ, naming the column', () => {
  test('a wrong type is a problem naming table.column, the type found and the type expected', () => {
    const plan = planSchema(database(withColumn(apiKeys(), 'key_hash', { type: 'integer' }), auditEvents()));
    assert.deepEqual(plan.problems, ['api_keys.key_hash has type integer, expected text']);
    assert.deepEqual(plan.steps, []);
  });

  test('a timestamp without time zone is not accepted for a timestamptz column', () => {
    const plan = planSchema(
      database(apiKeys(), withColumn(auditEvents(), 'ts', { type: 'timestamp without time zone' })),
    );
    assert.deepEqual(plan.problems, [
      'audit_events.ts has type timestamp without time zone, expected timestamp with time zone',
    ]);
  });

  test('a nullable column that should be NOT NULL is a problem naming the column', () => {
    const plan = planSchema(database(withColumn(apiKeys(), 'role', { notNull: false }), auditEvents()));
    assert.deepEqual(plan.problems, ['api_keys.role is nullable, expected NOT NULL']);
  });

  test('a NOT NULL column that should be nullable is a problem naming the column', () => {
    const plan = planSchema(database(apiKeys(), withColumn(auditEvents(), 'api_key_id', { notNull: true })));
    assert.deepEqual(plan.problems, ['audit_events.api_key_id is NOT NULL, expected nullable']);
  });

  test('a missing default is a problem naming the column and the expected default', () => {
    const plan = planSchema(database(withColumn(apiKeys(), 'created_at', { default: null }), auditEvents()));
    assert.deepEqual(plan.problems, ['api_keys.created_at has default none, expected now()']);
  });

  test('a different default is a problem naming the column', () => {
    const plan = planSchema(
      database(apiKeys(), withColumn(auditEvents(), 'id', { default: 'uuid_generate_v4()' })),
    );
    assert.deepEqual(plan.problems, [
      'audit_events.id has default uuid_generate_v4(), expected gen_random_uuid()',
    ]);
  });

  test('a default where none is specified is a problem naming the column', () => {
    const plan = planSchema(
      database(withColumn(apiKeys(), 'revoked_at', { default: 'now()' }), auditEvents()),
    );
    assert.deepEqual(plan.problems, ['api_keys.revoked_at has default now(), expected none']);
  });

  test('a missing column is a problem naming it, and nothing is planned for an existing table', () => {
    const table = auditEvents();
    table.columns.delete('method');
    const plan = planSchema(database(apiKeys(), table));
    assert.deepEqual(plan.problems, ['audit_events.method is missing']);
    assert.deepEqual(plan.steps, []);
    assert.deepEqual(plan.missingTables, []);
  });

  test('an extra NOT NULL column without a default is a problem naming it', () => {
    const table = apiKeys();
    table.columns.set('owner', { type: 'text', notNull: true, default: null });
    const plan = planSchema(database(table, auditEvents()));
    assert.deepEqual(plan.problems, ['api_keys.owner is an extra NOT NULL column without a default']);
  });

  test('an extra nullable column, or NOT NULL with a default, is tolerated', () => {
    const table = apiKeys();
    table.columns.set('note', { type: 'text', notNull: false, default: null });
    table.columns.set('tier', { type: 'text', notNull: true, default: "'free'::text" });
    const plan = planSchema(database(table, auditEvents()));
    assert.deepEqual(plan, { steps: [], problems: [], missingTables: [] });
  });

  test('several differences are all reported, one problem each', () => {
    const keys = withColumn(apiKeys(), 'key_hash', { type: 'bytea' });
    const events = withColumn(auditEvents(), 'latency_ms', { type: 'bigint', notNull: true });
    const plan = planSchema(database(keys, events));
    assert.deepEqual(plan.problems, [
      'api_keys.key_hash has type bytea, expected text',
      'audit_events.latency_ms has type bigint, expected integer',
      'audit_events.latency_ms is NOT NULL, expected nullable',
    ]);
  });
});

describe('planSchema reports constraints and indexes that differ', () => {
  test('a missing unique constraint is a problem naming its definition', () => {
    const table = apiKeys();
    table.constraints = table.constraints.filter(
      (constraint) => constraint.definition !== 'UNIQUE (key_hash)',
    );
    table.indexes = table.indexes.filter((index) => index.name !== 'api_keys_key_hash_key');
    const plan = planSchema(database(table, auditEvents()));
    assert.deepEqual(plan.problems, ['api_keys lacks constraint UNIQUE (key_hash)']);
    assert.deepEqual(plan.steps, []);
  });

  test('a missing check constraint on latency_ms is a problem naming it', () => {
    const table = auditEvents();
    table.constraints = table.constraints.filter((constraint) => !constraint.definition.startsWith('CHECK'));
    const plan = planSchema(database(apiKeys(), table));
    assert.deepEqual(plan.problems, ['audit_events lacks constraint CHECK ((latency_ms >= 0))']);
  });

  test('a foreign key without ON DELETE SET NULL is a problem', () => {
    const table = auditEvents();
    table.constraints = table.constraints.map((constraint) =>
      constraint.definition.startsWith('FOREIGN KEY')
        ? { ...constraint, definition: 'FOREIGN KEY (api_key_id) REFERENCES api_keys(id)' }
        : constraint,
    );
    const plan = planSchema(database(apiKeys(), table));
    assert.deepEqual(plan.problems, [
      'audit_events lacks constraint FOREIGN KEY (api_key_id) REFERENCES api_keys(id) ON DELETE SET NULL',
    ]);
  });

  test('constraints are matched by definition, whatever their names', () => {
    const table = apiKeys();
    table.constraints = [
      { name: 'pk', definition: 'PRIMARY KEY (id)' },
      { name: 'uq', definition: 'UNIQUE (key_hash)' },
    ];
    assert.deepEqual(planSchema(database(table, auditEvents())).problems, []);
  });

  test('a missing index alone is planned as exactly one step, with no problems', () => {
    const table = auditEvents();
    table.indexes = table.indexes.filter((index) => index.name !== 'audit_events_api_key_id_ts_idx');
    const plan = planSchema(database(apiKeys(), table));
    assert.deepEqual(plan.steps, [
      {
        description: 'create index audit_events_api_key_id_ts_idx',
        sql: 'CREATE INDEX audit_events_api_key_id_ts_idx ON audit_events (api_key_id, ts)',
      },
    ]);
    assert.deepEqual(plan.problems, []);
    assert.deepEqual(plan.missingTables, []);
  });

  test('an index with the expected name on other columns is a problem naming it, and is not recreated', () => {
    const table = auditEvents();
    table.indexes = table.indexes.map((index) =>
      index.name === 'audit_events_ts_idx' ? { ...index, columns: ['method'] } : index,
    );
    const plan = planSchema(database(apiKeys(), table));
    assert.deepEqual(plan.problems, ['index audit_events_ts_idx exists but is not on (ts)']);
    assert.deepEqual(plan.steps, []);
  });

  test('an index on the same columns in another order does not count', () => {
    const table = auditEvents();
    table.indexes = table.indexes.map((index) =>
      index.name === 'audit_events_api_key_id_ts_idx' ? { ...index, columns: ['ts', 'api_key_id'] } : index,
    );
    const plan = planSchema(database(apiKeys(), table));
    assert.deepEqual(plan.problems, [
      'index audit_events_api_key_id_ts_idx exists but is not on (api_key_id, ts)',
    ]);
  });

  test('an index under another name on the expected columns counts as present', () => {
    const table = auditEvents();
    table.indexes = table.indexes.map((index) =>
      index.name === 'audit_events_ts_idx' ? { ...index, name: 'by_time' } : index,
    );
    assert.deepEqual(planSchema(database(apiKeys(), table)), { steps: [], problems: [], missingTables: [] });
  });

  test('a partial index on the expected columns does not count: the full index is planned', () => {
    const table = auditEvents();
    table.indexes = table.indexes.map((index) =>
      index.name === 'audit_events_ts_idx'
        ? { name: 'recent_events', columns: ['ts'], partial: true }
        : index,
    );
    const plan = planSchema(database(apiKeys(), table));
    assert.deepEqual(
      plan.steps.map((step) => step.description),
      ['create index audit_events_ts_idx'],
    );
    assert.deepEqual(plan.problems, []);
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

  test('createTableSql and createIndexSql for every table introspect back to a plan with no steps and no problems', async () => {
    const sql = await freshDatabaseWith(SCHEMA);
    const actual = await introspectSchema(sql);
    assert.deepEqual([...actual.keys()].sort(), ['api_keys', 'audit_events']);
    assert.deepEqual(planSchema(actual), { steps: [], problems: [], missingTables: [] });
  });

  test('introspection reports columns exactly as the spec writes them', async () => {
    const sql = await freshDatabaseWith(SCHEMA);
    const actual = await introspectSchema(sql);
    for (const table of SCHEMA) {
      const found = actual.get(table.name);
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

  test('only api_keys created from the spec: the plan is the rest, with no problems', async () => {
    const sql = await freshDatabaseWith([specOf('api_keys')]);
    const plan = planSchema(await introspectSchema(sql));
    assert.deepEqual(
      plan.steps.map((step) => step.description),
      ALL_STEPS.slice(1),
    );
    assert.deepEqual(plan.missingTables, ['audit_events']);
    assert.deepEqual(plan.problems, []);
  });

  test('a real database without the tables plans everything', async () => {
    const sql = await freshDatabaseWith([]);
    const plan = planSchema(await introspectSchema(sql));
    assert.deepEqual(
      plan.steps.map((step) => step.description),
      ALL_STEPS,
    );
  });
});
