import type { Sql, TransactionSql } from 'postgres';
import type { ActualColumn, ActualConstraint, ActualIndex, ActualTable } from './plan.js';
import { SCHEMA } from './spec.js';

/** pg_class.relkind, in words. */
const KINDS: Record<string, string> = {
  r: 'table',
  p: 'table',
  v: 'view',
  m: 'materialized view',
  i: 'index',
  I: 'index',
  S: 'sequence',
  f: 'foreign table',
  c: 'composite type',
};

/**
 * Reads the spec's tables as they exist in the current schema: columns, constraints and
 * plain-column indexes. Four catalog queries, whatever the number of tables.
 */
export async function introspectSchema(sql: Sql | TransactionSql): Promise<Map<string, ActualTable>> {
  const names = SCHEMA.map((table) => table.name);
  // Every relation with a spec'd name, whatever its kind: a view called api_keys is drift, not absence.
  const relations = await sql<{ table: string; kind: string }[]>`
    select c.relname as table, c.relkind as kind
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
    where c.relname in ${sql(names)}`;
  const columns = await sql<
    { table: string; column: string; type: string; not_null: boolean; default: string | null }[]
  >`
    select c.relname as table, a.attname as column, format_type(a.atttypid, a.atttypmod) as type,
           a.attnotnull as not_null, pg_get_expr(d.adbin, d.adrelid) as default
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
    join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
    left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where c.relname in ${sql(names)}
    order by c.relname, a.attnum`;
  const constraints = await sql<{ table: string; name: string; definition: string }[]>`
    select c.relname as table, k.conname as name, pg_get_constraintdef(k.oid) as definition
    from pg_constraint k
    join pg_class c on c.oid = k.conrelid
    join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
    where c.relname in ${sql(names)}`;
  // Joined to text: without fetch_types postgres.js does not parse arrays.
  const indexes = await sql<{ table: string; name: string; columns: string; partial: boolean }[]>`
    select c.relname as table, i.relname as name, x.indpred is not null as partial,
           array_to_string(array(select a.attname from unnest(x.indkey) with ordinality k(attnum, position)
                 join pg_attribute a on a.attrelid = c.oid and a.attnum = k.attnum
                 order by k.position), ',') as columns
    from pg_index x
    join pg_class c on c.oid = x.indrelid
    join pg_class i on i.oid = x.indexrelid
    join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
    where c.relname in ${sql(names)}`;

  const tables = new Map<
    string,
    {
      name: string;
      kind: string;
      columns: Map<string, ActualColumn>;
      constraints: ActualConstraint[];
      indexes: ActualIndex[];
    }
  >();
  for (const row of relations) {
    tables.set(row.table, {
      name: row.table,
      kind: KINDS[row.kind] ?? `relation of kind ${row.kind}`,
      columns: new Map(),
      constraints: [],
      indexes: [],
    });
  }
  for (const row of columns) {
    tables
      .get(row.table)
      ?.columns.set(row.column, { type: row.type, notNull: row.not_null, default: row.default });
  }
  for (const row of constraints)
    tables.get(row.table)?.constraints.push({ name: row.name, definition: row.definition });
  for (const row of indexes) {
    tables
      .get(row.table)
      ?.indexes.push({ name: row.name, columns: row.columns.split(','), partial: row.partial });
  }
  return tables;
}
