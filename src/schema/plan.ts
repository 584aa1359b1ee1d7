import { createIndexSql, createTableSql, SCHEMA, type TableSpec } from './spec.js';

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

export interface SchemaStep {
  /** For people and for `changes` in JSON: "create table api_keys". */
  description: string;
  sql: string;
}

export interface SchemaPlan {
  /** What would make the database match the spec: only ever additive. */
  steps: SchemaStep[];
  /** Differences that bansho will not repair: objects that exist but are not as specified. */
  problems: string[];
  /** Tables of the spec that do not exist at all. */
  missingTables: string[];
}

/** Compares what exists with the spec. Pure, so every kind of drift is unit-tested. */
export function planSchema(
  actual: ReadonlyMap<string, ActualTable>,
  spec: readonly TableSpec[] = SCHEMA,
): SchemaPlan {
  const plan: SchemaPlan = { steps: [], problems: [], missingTables: [] };
  for (const table of spec) {
    const found = actual.get(table.name);
    if (!found) {
      plan.missingTables.push(table.name);
      plan.steps.push({ description: `create table ${table.name}`, sql: createTableSql(table) });
      for (const index of table.indexes) {
        plan.steps.push({ description: `create index ${index.name}`, sql: createIndexSql(table, index) });
      }
      continue;
    }
    if (found.kind !== undefined && found.kind !== 'table') {
      plan.problems.push(`${table.name} exists but is a ${found.kind}, not a table`);
      continue;
    }
    plan.problems.push(...compareColumns(table, found), ...compareConstraints(table, found));
    for (const index of table.indexes) {
      const sameColumns = found.indexes.find(
        (candidate) => !candidate.partial && candidate.columns.join(',') === index.columns.join(','),
      );
      if (sameColumns) continue;
      if (found.indexes.some((candidate) => candidate.name === index.name)) {
        plan.problems.push(`index ${index.name} exists but is not on (${index.columns.join(', ')})`);
      } else {
        plan.steps.push({ description: `create index ${index.name}`, sql: createIndexSql(table, index) });
      }
    }
  }
  return plan;
}

function compareColumns(table: TableSpec, found: ActualTable): string[] {
  const problems: string[] = [];
  for (const column of table.columns) {
    const where = `${table.name}.${column.name}`;
    const actual = found.columns.get(column.name);
    if (!actual) {
      problems.push(`${where} is missing`);
      continue;
    }
    if (actual.type !== column.type)
      problems.push(`${where} has type ${actual.type}, expected ${column.type}`);
    if (actual.notNull !== column.notNull) {
      problems.push(
        `${where} is ${actual.notNull ? 'NOT NULL' : 'nullable'}, expected ${column.notNull ? 'NOT NULL' : 'nullable'}`,
      );
    }
    if ((actual.default ?? undefined) !== column.default) {
      problems.push(`${where} has default ${actual.default ?? 'none'}, expected ${column.default ?? 'none'}`);
    }
  }
  const known = new Set(table.columns.map((column) => column.name));
  for (const [name, actual] of found.columns) {
    // An extra column only breaks the gateway's inserts when it demands a value they don't give.
    if (!known.has(name) && actual.notNull && actual.default === null) {
      problems.push(`${table.name}.${name} is an extra NOT NULL column without a default`);
    }
  }
  return problems;
}

function compareConstraints(table: TableSpec, found: ActualTable): string[] {
  const definitions = new Set(found.constraints.map((constraint) => constraint.definition));
  return table.constraints
    .filter((constraint) => !definitions.has(constraint.definition))
    .map((constraint) => `${table.name} lacks constraint ${constraint.definition}`);
}
