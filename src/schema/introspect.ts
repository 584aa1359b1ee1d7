import type { Sql } from 'postgres';
import type { ActualColumn, ActualConstraint, ActualIndex, ActualSchema } from './plan.js';
import { SCHEMA, VERSION_TABLE } from './spec.js';

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

/** Everything introspection reads, as the one query below returns it. */
interface CatalogRows {
  relations: [table: string, kind: string][] | null;
  columns:
    | [table: string, column: string, type: string, notNull: boolean, defaultExpr: string | null][]
    | null;
  constraints: [table: string, name: string, definition: string][] | null;
  indexes: [table: string, name: string, partial: boolean, columns: string[]][] | null;
  /** Whether this role may read the version table; null when there is none. */
  versionReadable: boolean | null;
}

/**
 * Reads the spec's tables as they exist in the current schema (every relation holding one of
 * their names, columns, constraints, plain-column indexes) and the schema version recorded.
 * One catalog query, as one JSON document: on a new session, where every catalog lookup is
 * cold, that costs a third of four separate queries. A second query reads the version table.
 */
export async function introspectSchema(sql: Sql): Promise<ActualSchema> {
  const names = SCHEMA.map((table) => table.name);
  const [row] = await sql<{ catalog: string }[]>`
    with rels as (
      select c.oid, c.relname, c.relkind
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
      where c.relname in ${sql(names)}
    )
    select json_build_object(
      'relations', (select json_agg(json_build_array(r.relname, r.relkind)) from rels r),
      'versionReadable', (select has_table_privilege(r.oid, 'SELECT') from rels r where r.relname = ${VERSION_TABLE}),
      'columns', (
        select json_agg(json_build_array(r.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                                         a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
                        order by r.relname, a.attnum)
        from rels r
        join pg_attribute a on a.attrelid = r.oid and a.attnum > 0 and not a.attisdropped
        left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum),
      'constraints', (
        select json_agg(json_build_array(r.relname, k.conname, pg_get_constraintdef(k.oid)))
        from rels r join pg_constraint k on k.conrelid = r.oid),
      'indexes', (
        select json_agg(json_build_array(r.relname, i.relname, x.indpred is not null,
                 array(select a.attname from unnest(x.indkey) with ordinality k(attnum, position)
                       join pg_attribute a on a.attrelid = r.oid and a.attnum = k.attnum
                       order by k.position)))
        from rels r join pg_index x on x.indrelid = r.oid join pg_class i on i.oid = x.indexrelid)
    )::text as catalog`;
  const catalog = JSON.parse(row?.catalog ?? '{}') as CatalogRows;

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
  for (const [table, kind] of catalog.relations ?? []) {
    tables.set(table, {
      name: table,
      kind: KINDS[kind] ?? `relation of kind ${kind}`,
      columns: new Map(),
      constraints: [],
      indexes: [],
    });
  }
  for (const [table, column, type, notNull, defaultExpr] of catalog.columns ?? []) {
    tables.get(table)?.columns.set(column, { type, notNull, default: defaultExpr });
  }
  for (const [table, name, definition] of catalog.constraints ?? [])
    tables.get(table)?.constraints.push({ name, definition });
  for (const [table, name, partial, columns] of catalog.indexes ?? [])
    tables.get(table)?.indexes.push({ name, columns, partial });

  const versionTable = tables.get(VERSION_TABLE);
  let version: number | null = null;
  // The gateway's role commonly has no privilege on the version table: then the version is unknown.
  if (catalog.versionReadable === false) return { tables, version: null, versionUnreadable: true };
  if (versionTable?.kind === 'table' && versionTable.columns.get('version')?.type === 'integer') {
    const [found] = await sql<
      { version: number | null }[]
    >`select max(version) as version from ${sql(VERSION_TABLE)}`;
    version = found?.version ?? null;
  }
  return { tables, version };
}
