import type { Difference } from '../errors.js';
import {
  addColumnSql,
  addConstraintSql,
  type ColumnSpec,
  createIndexSql,
  createTableSql,
  recordVersionSql,
  SCHEMA,
  SCHEMA_VERSION,
  type TableSpec,
} from './spec.js';

export interface ActualColumn {
  type: string;
  notNull: boolean;
  default: string | null;
}

export interface ActualConstraint {
  name: string;
  /** As pg_get_constraintdef() prints it. */
  definition: string;
}

export interface ActualIndex {
  name: string;
  columns: readonly string[];
  partial: boolean;
}

/** A table as found in the database by `introspectSchema`. */
export interface ActualTable {
  name: string;
  /** 'table', or what else holds the name ('view', 'sequence', …); absent means 'table'. */
  kind?: string;
  columns: ReadonlyMap<string, ActualColumn>;
  constraints: readonly ActualConstraint[];
  indexes: readonly ActualIndex[];
}

/** What the database holds, as `introspectSchema` reads it. */
export interface ActualSchema {
  tables: ReadonlyMap<string, ActualTable>;
  /** The highest version in bansho_schema_version; null when none is recorded (or unreadable). */
  version: number | null;
  /** The version table exists but this role may not read it: the version is unknown. */
  versionUnreadable?: boolean;
}

/** One statement of a plan; the shape of `changes` in `--json`. */
export interface SchemaChange {
  /** What it changes: "table api_keys", "column api_keys.revoked_at", "schema version 1". */
  object: string;
  action: 'create' | 'add' | 'record';
  sql: string;
}

export interface SchemaPlan {
  /** What would make the database match the spec: only ever additive, in the order to run it. */
  changes: SchemaChange[];
  /** Objects that exist but differ in a way bansho will not repair; non-empty means change nothing. */
  drift: Difference[];
  /** Tables of the spec that do not exist at all. */
  missingTables: string[];
  /** The schema version recorded in the database, null when none is. */
  recordedVersion: number | null;
  /** True when the database records a newer version than this bansho knows: compare nothing, change nothing. */
  newer: boolean;
  /** The version table exists but this role may not read it. */
  versionUnreadable?: boolean;
}

/**
 * Compares what exists with the spec. Pure, so every kind of healing and drift is unit-tested.
 * Heals only what cannot lose or reinterpret data: missing tables, missing columns that are
 * nullable or have a default, missing indexes and constraints. Everything else is drift.
 */
export function planSchema(
  actual: ActualSchema,
  spec: readonly TableSpec[] = SCHEMA,
  version: number = SCHEMA_VERSION,
): SchemaPlan {
  const plan: SchemaPlan = {
    changes: [],
    drift: [],
    missingTables: [],
    recordedVersion: actual.version,
    newer: actual.version !== null && actual.version > version,
    ...(actual.versionUnreadable ? { versionUnreadable: true } : {}),
  };
  // A newer bansho may have changed what "as specified" means: judging by our spec would be wrong.
  if (plan.newer) return plan;
  for (const table of spec) {
    const found = actual.tables.get(table.name);
    if (!found) {
      plan.missingTables.push(table.name);
      plan.changes.push({ object: `table ${table.name}`, action: 'create', sql: createTableSql(table) });
      for (const index of table.indexes) {
        plan.changes.push({
          object: `index ${index.name}`,
          action: 'create',
          sql: createIndexSql(table, index),
        });
      }
      continue;
    }
    if (found.kind !== undefined && found.kind !== 'table') {
      plan.drift.push({ object: `table ${table.name}`, expected: 'a table', found: `a ${found.kind}` });
      continue;
    }
    planColumns(table, found, plan);
    planConstraints(table, found, plan);
    planIndexes(table, found, plan);
  }
  if (!actual.versionUnreadable && (actual.version === null || actual.version < version)) {
    plan.changes.push({
      object: `schema version ${version}`,
      action: 'record',
      sql: recordVersionSql(version),
    });
  }
  return plan;
}

function describeColumn(column: ColumnSpec): string {
  return `${column.type}${column.notNull ? ' NOT NULL' : ''}${column.default ? ` DEFAULT ${column.default}` : ''}`;
}

function planColumns(table: TableSpec, found: ActualTable, plan: SchemaPlan): void {
  for (const column of table.columns) {
    const object = `column ${table.name}.${column.name}`;
    const actual = found.columns.get(column.name);
    if (!actual) {
      if (column.notNull && column.default === undefined) {
        // ADD COLUMN … NOT NULL fails on a table with rows, and inventing a value would be worse.
        plan.drift.push({ object, expected: describeColumn(column), found: 'missing' });
      } else {
        plan.changes.push({ object, action: 'add', sql: addColumnSql(table, column) });
      }
      continue;
    }
    if (actual.type !== column.type) plan.drift.push({ object, expected: column.type, found: actual.type });
    if (actual.notNull !== column.notNull) {
      plan.drift.push({
        object,
        expected: column.notNull ? 'NOT NULL' : 'nullable',
        found: actual.notNull ? 'NOT NULL' : 'nullable',
      });
    }
    if ((actual.default ?? undefined) !== column.default) {
      plan.drift.push({
        object,
        expected: column.default === undefined ? 'no default' : `DEFAULT ${column.default}`,
        found: actual.default === null ? 'no default' : `DEFAULT ${actual.default}`,
      });
    }
  }
  const known = new Set(table.columns.map((column) => column.name));
  for (const [name, actual] of found.columns) {
    // An extra column only breaks the gateway's inserts when it demands a value they don't give.
    if (!known.has(name) && actual.notNull && actual.default === null) {
      plan.drift.push({
        object: `column ${table.name}.${name}`,
        expected: 'absent, nullable or with a default',
        found: `${actual.type} NOT NULL without a default`,
      });
    }
  }
}

function planConstraints(table: TableSpec, found: ActualTable, plan: SchemaPlan): void {
  const definitions = new Set(found.constraints.map((constraint) => constraint.definition));
  const foundPrimaryKey = found.constraints.find((constraint) =>
    constraint.definition.startsWith('PRIMARY KEY'),
  );
  for (const constraint of table.constraints) {
    // Matched by definition, whatever its name: a unique constraint made by hand serves as well.
    if (definitions.has(constraint.definition)) continue;
    const object = `constraint ${constraint.name}`;
    const sameName = found.constraints.find((candidate) => candidate.name === constraint.name);
    if (sameName) {
      plan.drift.push({ object, expected: constraint.definition, found: sameName.definition });
    } else if (constraint.definition.startsWith('PRIMARY KEY') && foundPrimaryKey) {
      // A table has one primary key: another one cannot be added next to it.
      plan.drift.push({
        object: `primary key of ${table.name}`,
        expected: constraint.definition,
        found: foundPrimaryKey.definition,
      });
    } else {
      plan.changes.push({ object, action: 'add', sql: addConstraintSql(table, constraint) });
    }
  }
}

function planIndexes(table: TableSpec, found: ActualTable, plan: SchemaPlan): void {
  for (const index of table.indexes) {
    const columns = index.columns.join(',');
    // Matched by columns, whatever its name; a partial index does not serve every query.
    if (found.indexes.some((candidate) => !candidate.partial && candidate.columns.join(',') === columns))
      continue;
    const sameName = found.indexes.find((candidate) => candidate.name === index.name);
    if (sameName) {
      plan.drift.push({
        object: `index ${index.name}`,
        expected: `on (${index.columns.join(', ')})`,
        found: `${sameName.partial ? 'a partial index ' : ''}on (${sameName.columns.join(', ')})`,
      });
    } else {
      plan.changes.push({
        object: `index ${index.name}`,
        action: 'create',
        sql: createIndexSql(table, index),
      });
    }
  }
}
