/**
 * ensure-schema as a production operation (issue 4), against a real PostgreSQL and the CLI
 * spawned as users run it: concurrent runs, all-or-nothing, healing, drift refused with the
 * database left exactly as it was, read-only targets, locks held elsewhere, dry runs and
 * schema versions. Every "nothing changed" is checked against a snapshot of the catalog.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { judgePostgres, type PostgresFacts } from '../src/postgres/sub-checks.js';
import { refuseServer } from '../src/schema/ensure.js';
import { assertExit, type CliResult, emptyDir, parseJson, runCli } from './support/cli.js';
import { UNLIMITED_SESSION } from './support/facts.js';
import { holdLock } from './support/locks.js';
import { ALL_CHANGES, described } from './support/schema.js';
import {
  type PostgresEndpoint,
  pgBinary,
  type RedisEndpoint,
  run,
  usePostgres,
  useRedis,
} from './support/servers.js';

let pg: PostgresEndpoint;
let redis: RedisEndpoint;

before(async () => {
  [pg, redis] = await Promise.all([usePostgres(), useRedis()]);
});

async function ensure(dsn: string, ...args: string[]): Promise<CliResult> {
  return runCli(['ensure-schema', '--postgres-dsn', dsn, ...args]);
}

/**
 * Everything ensure-schema could change, as one text: relations with their kind, columns with
 * type, nullability and default, constraints, index definitions, and the versions recorded.
 */
async function snapshot(database: string): Promise<string> {
  const catalog = await pg.query(
    `select string_agg(line, E'\\n' order by line) from (
       select 'rel ' || c.relname || ' ' || c.relkind::text as line
         from pg_class c join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
       union all
       select 'col ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
              || ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
         from pg_class c join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
         join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
         left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
         where c.relkind in ('r', 'v')
       union all
       select 'con ' || conname || ' ' || pg_get_constraintdef(k.oid)
         from pg_constraint k join pg_namespace n on n.oid = k.connamespace and n.nspname = 'public'
       union all
       select 'idx ' || indexdef from pg_indexes where schemaname = 'public'
     ) lines`,
    database,
  );
  const hasVersions = (
    await pg.query("select to_regclass('bansho_schema_version') is not null", database)
  ).trim();
  const versions =
    hasVersions === 't'
      ? await pg.query("select string_agg(version::text, ',') from bansho_schema_version", database)
      : '';
  return `${catalog.trim()}\nversions: ${versions.trim()}`;
}

/** A fresh database with bansho's schema made by ensure-schema itself. */
async function ensuredDatabase(prefix: string): Promise<{ name: string; dsn: string }> {
  const name = await pg.createDatabase(prefix);
  const dsn = pg.dsn(name);
  assertExit(await ensure(dsn, '--quiet'), 0);
  return { name, dsn };
}

/** `bansho smoke` against the shared Redis and this DSN, with `flags`. */
function runSmoke(dsn: string, ...flags: string[]): Promise<CliResult> {
  return runCli(['smoke', ...flags, '--redis-url', redis.url, '--postgres-dsn', dsn]);
}

// ---------------------------------------------------------------------------

describe('what ensure-schema refuses to start on (refuseServer)', () => {
  const healthy: PostgresFacts = {
    version: '15.20',
    versionNum: 150020,
    inRecovery: false,
    readOnly: false,
    user: 'app',
    schema: 'public',
    canCreate: true,
    privileges: [],
    maxConnections: 100,
    reservedConnections: 3,
    connectionsInUse: 1,
    ...UNLIMITED_SESSION,
    encoding: 'UTF8',
    serverMs: 1000,
  };
  const refusal = (facts: Partial<PostgresFacts>) =>
    refuseServer(
      judgePostgres({ ...healthy, ...facts }, { sentAtMs: 1000, receivedAtMs: 1000, create: true }),
    );

  test('13 and newer on a writable primary with CREATE: nothing to refuse', () => {
    assert.equal(refusal({}), undefined);
    assert.equal(refusal({ versionNum: 130000, version: '13.0' }), undefined);
  });

  test('a warning (a LATIN1 database, connections nearly used up) does not stop it', () => {
    assert.equal(refusal({ encoding: 'LATIN1', connectionsInUse: 97 }), undefined);
  });

  test('12 is refused as unsupported_version, naming the version and the reason', () => {
    const error = refusal({ versionNum: 120018, version: '12.18' });
    assert.equal(error?.code, 'unsupported_version');
    assert.match(error?.message ?? '', /PostgreSQL 12\.18/);
    assert.match(error?.hint ?? '', /13 or newer.*gen_random_uuid/);
  });

  test('a standby in recovery is refused as read_only: nothing can be created there', () => {
    const error = refusal({ inRecovery: true, readOnly: true });
    assert.equal(error?.code, 'read_only');
    assert.match(error?.message ?? '', /standby in recovery/);
  });

  test('default_transaction_read_only is refused as read_only', () => {
    const error = refusal({ readOnly: true });
    assert.equal(error?.code, 'read_only');
    assert.match(error?.message ?? '', /default_transaction_read_only/);
  });

  test('no CREATE on the schema while tables are missing is refused as permission_denied, with the GRANT', () => {
    const error = refusal({ canCreate: false });
    assert.equal(error?.code, 'permission_denied');
    assert.match(error?.message ?? '', /CREATE on schema public/);
    assert.match(error?.hint ?? '', /GRANT CREATE ON SCHEMA public TO app/);
  });
});

describe('a fresh database', { concurrency: true }, () => {
  test('gets the whole schema and version 1; a second run changes nothing at all', async () => {
    const name = await pg.createDatabase('es_fresh');
    const first = await ensure(pg.dsn(name), '--json');
    assertExit(first, 0);
    assert.deepEqual(described(parseJson(first).changes), ALL_CHANGES);
    assert.deepEqual(parseJson(first).drift, []);
    const after = await snapshot(name);
    assert.match(after, /versions: 1$/);

    const second = await ensure(pg.dsn(name), '--json');
    assertExit(second, 0);
    assert.deepEqual(parseJson(second).changes, []);
    assert.equal(await snapshot(name), after);
  });

  test('eight concurrent runs all exit 0; exactly one makes the changes, and one schema results', async () => {
    const name = await pg.createDatabase('es_race');
    const runs = await Promise.all(Array.from({ length: 8 }, () => ensure(pg.dsn(name), '--json')));
    for (const run of runs) assertExit(run, 0);
    const made = runs
      .map((run) => described(parseJson(run).changes) ?? [])
      .filter((changes) => changes.length > 0);
    assert.deepEqual(made, [ALL_CHANGES]);

    const reference = await pg.createDatabase('es_race_ref');
    assertExit(await ensure(pg.dsn(reference), '--quiet'), 0);
    assert.equal(await snapshot(name), await snapshot(reference));
    assert.equal((await pg.query('select count(*) from bansho_schema_version', name)).trim(), '1');
  });
});

describe('healing: what is missing and safe to add is added, data kept', { concurrency: true }, () => {
  test('a nullable column, a defaulted column, a foreign key and an index, in one transaction', async () => {
    const { name, dsn } = await ensuredDatabase('es_heal');
    await pg.query(
      `insert into api_keys (key_hash, role) values ('h1', 'admin');
       insert into audit_events (method, tool_name) values ('tools/call', 'search');
       alter table audit_events drop column tool_name;
       alter table api_keys drop column created_at;
       alter table audit_events drop constraint audit_events_api_key_id_fkey;
       drop index audit_events_ts_idx;`,
      name,
    );
    const result = await ensure(dsn, '--json');
    assertExit(result, 0);
    assert.deepEqual(described(parseJson(result).changes), [
      'add column api_keys.created_at',
      'add column audit_events.tool_name',
      'add constraint audit_events_api_key_id_fkey',
      'create index audit_events_ts_idx',
    ]);
    // Existing rows are kept; the added NOT NULL column got its default.
    assert.equal(
      (await pg.query('select key_hash, created_at is not null from api_keys', name)).trim(),
      'h1|t',
    );
    assert.equal(
      (await pg.query('select method, tool_name is null from audit_events', name)).trim(),
      'tools/call|t',
    );

    const smoke = await runSmoke(dsn, '--json', '--strict');
    assertExit(smoke, 0);
    assert.equal(parseJson(smoke).checks.schema?.status, 'pass');
  });

  test('tables made before versions were recorded get the version table and version 1', async () => {
    const { name, dsn } = await ensuredDatabase('es_heal_version');
    await pg.query('drop table bansho_schema_version', name);
    const smoke = await runSmoke(dsn, '--json');
    assertExit(smoke, 0);
    assert.deepEqual(parseJson(smoke).checks.schema?.pending, [
      'create table bansho_schema_version',
      'record schema version 1',
    ]);
    const result = await ensure(dsn, '--json');
    assertExit(result, 0);
    assert.deepEqual(described(parseJson(result).changes), [
      'create table bansho_schema_version',
      'record schema version 1',
    ]);
  });

  test('all or nothing: a step that fails on the data (a unique constraint over duplicates) undoes the steps before it', async () => {
    const { name, dsn } = await ensuredDatabase('es_atomic');
    await pg.query(
      `alter table api_keys drop constraint api_keys_key_hash_key;
       insert into api_keys (key_hash, role) values ('same', 'a'), ('same', 'b');
       alter table api_keys drop column revoked_at;`,
      name,
    );
    const before = await snapshot(name);
    const result = await ensure(dsn, '--json');
    assertExit(result, 1);
    const schema = parseJson(result).checks.schema;
    assert.equal(schema?.error?.code, 'server_error');
    assert.match(schema?.error?.message ?? '', /23505/);
    assert.deepEqual(parseJson(result).changes, []);
    // The column was added first in the plan; the failed constraint rolled it back.
    assert.equal(await snapshot(name), before);
  });
});

describe('drift is refused, named, and nothing is changed', { concurrency: true }, () => {
  const cases: { title: string; sql: string; drift: { object: string; expected: string; found: string } }[] =
    [
      {
        title: 'a column of another type',
        sql: 'alter table audit_events alter column status_code type bigint',
        drift: { object: 'column audit_events.status_code', expected: 'integer', found: 'bigint' },
      },
      {
        title: 'a missing NOT NULL the gateway relies on',
        sql: 'alter table api_keys alter column role drop not null',
        drift: { object: 'column api_keys.role', expected: 'NOT NULL', found: 'nullable' },
      },
      {
        title: 'a default that differs',
        sql: 'alter table api_keys alter column created_at set default clock_timestamp()',
        drift: {
          object: 'column api_keys.created_at',
          expected: 'DEFAULT now()',
          found: 'DEFAULT clock_timestamp()',
        },
      },
      {
        title: 'a missing NOT NULL column without a default',
        sql: 'alter table audit_events drop column method',
        drift: { object: 'column audit_events.method', expected: 'text NOT NULL', found: 'missing' },
      },
      {
        title: 'an extra NOT NULL column without a default',
        sql: "alter table api_keys add column owner text not null default 'x'; alter table api_keys alter column owner drop default",
        drift: {
          object: 'column api_keys.owner',
          expected: 'absent, nullable or with a default',
          found: 'text NOT NULL without a default',
        },
      },
      {
        title: 'a view where a table should be',
        sql: 'drop table audit_events; create view audit_events as select 1 as id',
        drift: { object: 'table audit_events', expected: 'a table', found: 'a view' },
      },
      {
        title: 'a constraint of the expected name with another definition',
        sql: `alter table audit_events drop constraint audit_events_latency_ms_check;
            alter table audit_events add constraint audit_events_latency_ms_check check (latency_ms > 10)`,
        drift: {
          object: 'constraint audit_events_latency_ms_check',
          expected: 'CHECK ((latency_ms >= 0))',
          found: 'CHECK ((latency_ms > 10))',
        },
      },
      {
        title: 'an index of the expected name on other columns',
        sql: 'drop index audit_events_ts_idx; create index audit_events_ts_idx on audit_events (method)',
        drift: { object: 'index audit_events_ts_idx', expected: 'on (ts)', found: 'on (method)' },
      },
    ];

  for (const { title, sql, drift } of cases) {
    test(`${title}: exit 1, schema_mismatch naming ${drift.object}; the healable rest is not applied either`, async () => {
      const { name, dsn } = await ensuredDatabase('es_drift');
      // Something healable beside the drift: all or nothing means it stays missing.
      await pg.query(`${sql}; alter table api_keys drop column revoked_at`, name);
      const before = await snapshot(name);

      const result = await ensure(dsn, '--json');
      assertExit(result, 1);
      const doc = parseJson(result);
      assert.equal(doc.checks.schema?.error?.code, 'schema_mismatch');
      assert.deepEqual(doc.checks.schema?.drift, [drift]);
      assert.deepEqual(doc.drift, [drift]);
      assert.deepEqual(doc.changes, []);
      assert.equal(await snapshot(name), before);

      const human = await ensure(dsn);
      assertExit(human, 1);
      assert.ok(
        human.stdout.includes(`drift: ${drift.object}: expected ${drift.expected}, found ${drift.found}`),
        human.stdout,
      );

      const smoke = await runSmoke(dsn, '--json');
      assertExit(smoke, 1);
      assert.equal(parseJson(smoke).checks.schema?.error?.code, 'schema_mismatch');
      assert.deepEqual(parseJson(smoke).checks.schema?.drift, [drift]);
      assert.equal(await snapshot(name), before);
    });
  }
});

describe('read-only targets, locks and time bounds', { concurrency: true }, () => {
  test('default_transaction_read_only: exit 1 with read_only before anything is attempted', async () => {
    const name = await pg.createDatabase('es_readonly');
    await pg.query(`alter database ${name} set default_transaction_read_only = on`);
    const before = await snapshot(name);
    const result = await ensure(pg.dsn(name), '--json');
    assertExit(result, 1);
    const error = parseJson(result).checks.schema?.error;
    assert.equal(error?.code, 'read_only');
    assert.match(error?.message ?? '', /default_transaction_read_only/);
    assert.match(error?.hint ?? '', /default_transaction_read_only = off/);
    assert.equal(await snapshot(name), before);
  });

  test('a role without CREATE on the schema: exit 1 with permission_denied and the GRANT to run, nothing created', async () => {
    const name = await pg.createDatabase('es_nocreate');
    const role = `es_nocreate_${process.pid}`;
    await pg.query(`create role ${role} login`);
    try {
      const before = await snapshot(name);
      const dsn = pg.dsn(name).replace('postgres@', `${role}@`);
      const result = await ensure(dsn, '--json');
      assertExit(result, 1);
      const error = parseJson(result).checks.schema?.error;
      assert.equal(error?.code, 'permission_denied');
      assert.match(error?.message ?? '', new RegExp(`role ${role} lacks CREATE on schema public`));
      assert.match(error?.hint ?? '', new RegExp(`GRANT CREATE ON SCHEMA public TO ${role}`));
      assert.equal(await snapshot(name), before);
    } finally {
      await pg.query(`drop role ${role}`);
    }
  });

  test('another ensure-schema holding the schema lock: exit 1 with locked within --timeout, then success once released', async () => {
    const name = await pg.createDatabase('es_lock_advisory');
    const before = await snapshot(name);
    const release = await holdLock(pg.dsn(name), "select pg_advisory_xact_lock(hashtext('bansho.schema'))");
    try {
      const result = await ensure(pg.dsn(name), '--json', '--timeout', '1500ms');
      assertExit(result, 1);
      const error = parseJson(result).checks.schema?.error;
      assert.equal(error?.code, 'locked');
      assert.match(error?.message ?? '', /lock timeout/i);
      assert.match(error?.hint ?? '', /pg_locks/);
      assert.equal(await snapshot(name), before);
    } finally {
      await release();
    }
    assertExit(await ensure(pg.dsn(name), '--quiet'), 0);
  });

  test('a table locked by another session while an index is missing: exit 1 with locked, nothing created', async () => {
    const { name, dsn } = await ensuredDatabase('es_lock_table');
    await pg.query('drop index audit_events_ts_idx', name);
    const before = await snapshot(name);
    const release = await holdLock(pg.dsn(name), 'lock table audit_events in access exclusive mode');
    try {
      const result = await ensure(dsn, '--json', '--timeout', '1500ms');
      assertExit(result, 1);
      assert.equal(parseJson(result).checks.schema?.error?.code, 'locked');
    } finally {
      await release();
    }
    assert.equal(await snapshot(name), before);
  });
});

describe('--dry-run', { concurrency: true }, () => {
  test('on a fresh database prints the plan as SQL and leaves the database untouched', async () => {
    const name = await pg.createDatabase('es_dry');
    const before = await snapshot(name);
    const human = await ensure(pg.dsn(name), '--dry-run');
    assertExit(human, 0);
    const lines = human.stdout.trimEnd().split('\n');
    // The report is an SQL comment above the plan, so that stdout is a script psql runs as it is.
    assert.match(lines[0] ?? '', /^-- PASS\s+schema\s.*6 changes planned \(dry run: nothing changed\)$/);
    assert.equal(lines[1], '-- create table api_keys');
    assert.equal(lines[2], 'CREATE TABLE api_keys (');
    assert.ok(
      human.stdout.includes(
        '-- create index audit_events_ts_idx\nCREATE INDEX audit_events_ts_idx ON audit_events (ts);\n',
      ),
    );
    assert.ok(
      human.stdout.endsWith(
        '-- record schema version 1\nINSERT INTO bansho_schema_version (version) VALUES (1) ON CONFLICT (version) DO NOTHING;\n',
      ),
    );

    const json = await ensure(pg.dsn(name), '--dry-run', '--json');
    assertExit(json, 0);
    const doc = parseJson(json);
    assert.equal(doc.dryRun, true);
    assert.deepEqual(described(doc.changes), ALL_CHANGES);
    assert.ok(doc.changes?.every((change) => change.sql.length > 0));
    assert.equal(await snapshot(name), before);
  });

  test('`--dry-run > plan.sql && psql -v ON_ERROR_STOP=1 -f plan.sql` gives the schema a real run makes', async () => {
    const name = await pg.createDatabase('es_dry_apply');
    const plan = await ensure(pg.dsn(name), '--dry-run');
    assertExit(plan, 0);
    const file = join(emptyDir(), 'plan.sql');
    await writeFile(file, plan.stdout);
    // stdout as it is, status line included: psql must run it to the end without an error.
    await run(await pgBinary('psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', pg.dsn(name), '-f', file]);
    const reference = (await ensuredDatabase('es_dry_ref')).name;
    assert.equal(await snapshot(name), await snapshot(reference));
    const after = await ensure(pg.dsn(name), '--json');
    assertExit(after, 0);
    assert.deepEqual(parseJson(after).changes, []);
  });

  test('with drift it fails like a real run, and changes nothing', async () => {
    const { name, dsn } = await ensuredDatabase('es_dry_drift');
    await pg.query('alter table api_keys alter column role type varchar(10)', name);
    const before = await snapshot(name);
    const result = await ensure(dsn, '--dry-run', '--json');
    assertExit(result, 1);
    assert.equal(parseJson(result).checks.schema?.error?.code, 'schema_mismatch');
    // The human report of a failed dry run is comments only: run by psql, it does nothing.
    const human = await ensure(dsn, '--dry-run');
    assertExit(human, 1);
    const lines = human.stdout.trimEnd().split('\n');
    assert.ok(lines.length >= 3 && lines.every((line) => line.startsWith('-- ')), human.stdout);
    assert.match(human.stdout, /^-- FAIL {2}schema .*schema_mismatch/);
    assert.equal(await snapshot(name), before);
  });

  test('on an up-to-date database plans nothing', async () => {
    const { dsn } = await ensuredDatabase('es_dry_noop');
    const result = await ensure(dsn, '--dry-run', '--json');
    assertExit(result, 0);
    assert.deepEqual(parseJson(result).changes, []);
  });
});

describe('schema versions', { concurrency: true }, () => {
  test('a newer version recorded: ensure-schema exits 1 with schema_newer and heals nothing; smoke warns', async () => {
    const { name, dsn } = await ensuredDatabase('es_newer');
    await pg.query(
      'insert into bansho_schema_version (version) values (2); drop index audit_events_ts_idx',
      name,
    );
    const before = await snapshot(name);

    const result = await ensure(dsn, '--json');
    assertExit(result, 1);
    const error = parseJson(result).checks.schema?.error;
    assert.equal(error?.code, 'schema_newer');
    assert.match(error?.message ?? '', /schema version 2, newer than this bansho's 1/);
    assert.match(error?.hint ?? '', /upgrade bansho/);
    assert.equal(await snapshot(name), before);

    const smoke = await runSmoke(dsn, '--json');
    assertExit(smoke, 0);
    const schema = parseJson(smoke).checks.schema;
    assert.equal(schema?.status, 'warn');
    assert.match(schema?.message ?? '', /schema version 2 is newer than this bansho's 1/);
    const strict = await runSmoke(dsn, '--json', '--strict');
    assertExit(strict, 1);
  });
});
