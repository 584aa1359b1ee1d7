/**
 * The `bansho` CLI spawned as users run it (bin/bansho → dist/, so `npm run build` first),
 * against real Redis and PostgreSQL servers: success paths, output formats, schema bootstrap
 * and drift, configuration precedence, help and version.
 *
 * Every run passes the harness's servers explicitly (flags, or REDIS_URL / POSTGRES_DSN in the
 * child's environment), so nothing here depends on servers on the default ports.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { type CliOptions, type CliResult, emptyDir, LEAK_MESSAGE, parseJson, runCli } from './support/cli.js';
import { ALL_CHANGES, described } from './support/schema.js';
import {
  exec,
  freePort,
  type PostgresEndpoint,
  type RedisEndpoint,
  startSilentPeer,
  usePostgres,
  useRedis,
} from './support/servers.js';

const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

// A non-TTY child must never be coloured; any escape sequence at all is a bug here.
// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for ESC on purpose.
const ANSI = /\x1b/;

let redis: RedisEndpoint;
let pg: PostgresEndpoint;
/** What the harness's Redis reports as redis_version (read with redis-cli, not with bansho). */
let redisVersion: string;
/** What the harness's PostgreSQL reports as server_version (read with psql). */
let postgresVersion: string;
/** A loopback port where nothing listens: the "wrong" value in precedence tests. */
let closedPort: number;
let closedRedisUrl: string;

before(async () => {
  [redis, pg, closedPort] = await Promise.all([useRedis(), usePostgres(), freePort()]);
  closedRedisUrl = `redis://127.0.0.1:${closedPort}`;
  const info = await exec('redis-cli', ['-u', redis.url, 'INFO', 'server']);
  redisVersion = /^redis_version:(.+)$/m.exec(info.stdout)?.[1]?.trim() ?? '';
  assert.ok(redisVersion, `could not read redis_version with redis-cli: ${info.stderr}`);
  postgresVersion = (await pg.query("select current_setting('server_version')")).trim();
});

/** Runs the CLI and checks what must hold for every run: no leaked handle, no colour, no crash. */
async function bansho(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const result = await runCli(args, options);
  const context = `bansho ${args.join(' ')}\nexit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
  assert.ok(!result.stderr.includes(LEAK_MESSAGE), `leaked handle:\n${context}`);
  assert.ok(!result.stderr.includes('internal error'), `internal error:\n${context}`);
  assert.doesNotMatch(result.stdout, ANSI, `ANSI escape on stdout:\n${context}`);
  assert.doesNotMatch(result.stderr, ANSI, `ANSI escape on stderr:\n${context}`);
  assert.equal(result.signal, null, context);
  return result;
}

/** Like bansho(), also timing the first byte of stdout (the report) from spawn. */
async function banshoTimed(
  args: readonly string[],
  options: CliOptions = {},
): Promise<{ result: CliResult; reportMs: number }> {
  const start = performance.now();
  let reportMs = Number.NaN;
  const result = await bansho(args, {
    ...options,
    onSpawn: (child) => {
      child.stdout?.once('data', () => {
        reportMs = performance.now() - start;
      });
    },
  });
  return { result, reportMs };
}

function assertExit(result: CliResult, code: number): void {
  assert.equal(
    result.code,
    code,
    `expected exit ${code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
}

/** How bansho shows a harness URL: exactly the URL, when it has no password or query to mask or drop. */
function displayOf(url: string): string | undefined {
  const parsed = new URL(url);
  return parsed.password === '' && parsed.search === '' ? url : undefined;
}

function assertTarget(actual: string, url: string): void {
  const expected = displayOf(url);
  if (expected !== undefined) assert.equal(actual, expected);
  else assert.ok(actual.includes(`:${new URL(url).port}`), `target ${actual} should name ${url}`);
}

/** Indented sub-check lines ("pass  role  master"), each maybe followed by its hint, in this order. */
function assertSubCheckLines(lines: readonly string[], names: readonly string[], context: string): void {
  const shown = lines.filter((line) => !/^\s+hint: /.test(line));
  assert.deepEqual(
    shown.map((line) => /^\s+pass\s+(\w+)\s+\S/.exec(line)?.[1]),
    names,
    context,
  );
}

async function freshDatabase(prefix: string): Promise<{ name: string; dsn: string }> {
  const name = await pg.createDatabase(prefix);
  return { name, dsn: pg.dsn(name) };
}

/** The catalog rows of the given query as arrays of fields (psql -A -t: "|"-separated lines). */
async function rows(sql: string, database: string): Promise<string[][]> {
  const out = (await pg.query(sql, database)).trim();
  return out === '' ? [] : out.split('\n').map((line) => line.split('|'));
}

function columnsOf(table: string, database: string): Promise<string[][]> {
  return rows(
    `select column_name, data_type, is_nullable, coalesce(column_default, '')
     from information_schema.columns
     where table_schema = current_schema() and table_name = '${table}' order by ordinal_position`,
    database,
  );
}

function constraintsOf(table: string, database: string): Promise<string[][]> {
  return rows(
    `select conname, pg_get_constraintdef(oid) from pg_constraint
     where conrelid = to_regclass('${table}') order by conname`,
    database,
  );
}

/** Every relation (table, index, sequence…) in the current schema with its kind, for before/after comparisons. */
async function relations(database: string): Promise<string[][]> {
  return rows(
    `select c.relname, c.relkind from pg_class c
     join pg_namespace n on n.oid = c.relnamespace and n.nspname = current_schema()
     order by c.relname`,
    database,
  );
}

async function tableExists(table: string, database: string): Promise<boolean> {
  return (await pg.query(`select to_regclass('${table}') is not null`, database)).trim() === 't';
}

/** The DDL of a correct api_keys, written by hand (as an operator might), not from bansho's spec. */
const HAND_MADE_API_KEYS = `CREATE TABLE api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  key_hash text NOT NULL UNIQUE,
  role text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
)`;

// ---------------------------------------------------------------------------

describe('ping-redis', { concurrency: true }, () => {
  test('human output is a PASS line naming the target and the Redis version, then its sub-checks, exit 0', async () => {
    const result = await bansho(['ping-redis', '--redis-url', redis.url]);
    assertExit(result, 0);
    const [line = '', ...rest] = result.stdout.trimEnd().split('\n');
    assertSubCheckLines(rest, ['role', 'write', 'commands', 'eviction', 'memory', 'clock'], result.stdout);
    assert.match(line, /^PASS\s+redis\s/);
    assert.ok(line.includes(displayOf(redis.url) ?? `:${redis.port}`), line);
    assert.ok(line.includes(`Redis ${redisVersion}`), line);
    assert.match(line, /Redis 7\./);
    assert.equal(result.stderr, '');
  });

  test('--json prints exactly one document with status, target, latency and version', async () => {
    const result = await bansho(['ping-redis', '--redis-url', redis.url, '--json']);
    assertExit(result, 0);
    const doc = parseJson(result);
    assert.deepEqual(Object.keys(doc), ['status', 'checks']);
    assert.equal(doc.status, 'pass');
    assert.deepEqual(Object.keys(doc.checks), ['redis']);
    const check = doc.checks.redis;
    assert.ok(check);
    assert.deepEqual(Object.keys(check).sort(), ['details', 'latencyMs', 'status', 'target', 'version']);
    assert.equal(check.status, 'pass');
    assertTarget(check.target, redis.url);
    assert.equal(typeof check.latencyMs, 'number');
    assert.ok(check.latencyMs >= 0 && check.latencyMs < 5000, `latencyMs ${check.latencyMs}`);
    assert.equal(check.version, `Redis ${redisVersion}`);
    assert.match(check.version ?? '', /^Redis 7\.\d+\.\d+/);
    assert.equal(result.stderr, '');
  });

  test('--quiet prints nothing at all and exits 0', async () => {
    const result = await bansho(['ping-redis', '--redis-url', redis.url, '--quiet']);
    assertExit(result, 0);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, '');
  });

  test('-q is --quiet', async () => {
    const result = await bansho(['ping-redis', '-q'], { env: { REDIS_URL: redis.url } });
    assertExit(result, 0);
    assert.equal(result.stdout + result.stderr, '');
  });

  test('REDIS_URL in the environment is used without a flag', async () => {
    const result = await bansho(['ping-redis', '--json'], { env: { REDIS_URL: redis.url } });
    assertExit(result, 0);
    assertTarget(parseJson(result).checks.redis?.target ?? '', redis.url);
  });
});

describe('ping-postgres', { concurrency: true }, () => {
  test('human output is a PASS line naming the target and the PostgreSQL version, then its sub-checks, exit 0', async () => {
    const dsn = pg.dsn();
    const result = await bansho(['ping-postgres', '--postgres-dsn', dsn]);
    assertExit(result, 0);
    const [line = '', ...rest] = result.stdout.trimEnd().split('\n');
    assertSubCheckLines(
      rest,
      ['version', 'primary', 'privileges', 'connections', 'timeouts', 'clock', 'encoding'],
      result.stdout,
    );
    assert.match(line, /^PASS\s+postgres\s/);
    assert.ok(line.includes(displayOf(dsn) ?? `:${pg.port}`), line);
    assert.ok(line.includes(`PostgreSQL ${postgresVersion}`), line);
    assert.match(line, /PostgreSQL 15\b/);
    assert.equal(result.stderr, '');
  });

  test('--json prints exactly one document with status, target, latency and version', async () => {
    const { dsn } = await freshDatabase('cli_ping_json');
    const result = await bansho(['ping-postgres', '--postgres-dsn', dsn, '--json']);
    assertExit(result, 0);
    const doc = parseJson(result);
    assert.deepEqual(Object.keys(doc), ['status', 'checks']);
    assert.equal(doc.status, 'pass');
    assert.deepEqual(Object.keys(doc.checks), ['postgres']);
    const check = doc.checks.postgres;
    assert.ok(check);
    assert.deepEqual(Object.keys(check).sort(), ['details', 'latencyMs', 'status', 'target', 'version']);
    assert.equal(check.status, 'pass');
    assertTarget(check.target, dsn);
    assert.equal(typeof check.latencyMs, 'number');
    assert.ok(check.latencyMs >= 0 && check.latencyMs < 5000, `latencyMs ${check.latencyMs}`);
    assert.equal(check.version, `PostgreSQL ${postgresVersion}`);
    assert.match(check.version ?? '', /^PostgreSQL 15\./);
    assert.equal(result.stderr, '');
  });

  test('--quiet prints nothing at all and exits 0', async () => {
    const result = await bansho(['ping-postgres', '--postgres-dsn', pg.dsn(), '--quiet']);
    assertExit(result, 0);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, '');
  });

  test('POSTGRES_DSN in the environment is used without a flag', async () => {
    const { dsn } = await freshDatabase('cli_ping_env');
    const result = await bansho(['ping-postgres', '--json'], { env: { POSTGRES_DSN: dsn } });
    assertExit(result, 0);
    assertTarget(parseJson(result).checks.postgres?.target ?? '', dsn);
  });
});

// ---------------------------------------------------------------------------

describe('ensure-schema on a fresh database', { concurrency: true }, () => {
  test('creates both tables and both indexes, then reports no changes on a second run', async () => {
    const { dsn } = await freshDatabase('cli_ensure');
    const first = await bansho(['ensure-schema', '--postgres-dsn', dsn, '--json']);
    assertExit(first, 0);
    const doc = parseJson(first);
    assert.equal(doc.status, 'pass');
    assert.deepEqual(described(doc.changes), ALL_CHANGES);
    assert.equal(doc.checks.schema?.status, 'pass');
    assertTarget(doc.checks.schema?.target ?? '', dsn);
    assert.equal(first.stderr, '');

    const second = await bansho(['ensure-schema', '--postgres-dsn', dsn, '--json']);
    assertExit(second, 0);
    const again = parseJson(second);
    assert.equal(again.status, 'pass');
    assert.deepEqual(again.changes, []);
  });

  test('human output lists each change, and a second run says the schema is up to date', async () => {
    const { dsn } = await freshDatabase('cli_ensure_human');
    const first = await bansho(['ensure-schema'], { env: { POSTGRES_DSN: dsn } });
    assertExit(first, 0);
    const lines = first.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^PASS\s+schema\s.*6 changes made$/);
    assert.deepEqual(
      lines.slice(1),
      ALL_CHANGES.map((change) => `done  ${change}`),
    );

    const second = await bansho(['ensure-schema'], { env: { POSTGRES_DSN: dsn } });
    assertExit(second, 0);
    assert.match(second.stdout, /^PASS\s+schema\s.*already up to date\n/);
    assert.match(second.stdout, /schema is up to date: nothing to change\n$/);
  });

  test('--quiet creates the schema and prints nothing', async () => {
    const { name, dsn } = await freshDatabase('cli_ensure_quiet');
    const result = await bansho(['ensure-schema', '--postgres-dsn', dsn, '--quiet']);
    assertExit(result, 0);
    assert.equal(result.stdout + result.stderr, '');
    assert.ok(await tableExists('audit_events', name));
  });

  test('the tables have exactly the specified columns, types, nullability, defaults, constraints and indexes', async () => {
    const { name, dsn } = await freshDatabase('cli_ensure_shape');
    assertExit(await bansho(['ensure-schema', '--postgres-dsn', dsn, '--quiet']), 0);

    assert.deepEqual(await columnsOf('api_keys', name), [
      ['id', 'uuid', 'NO', 'gen_random_uuid()'],
      ['key_hash', 'text', 'NO', ''],
      ['role', 'text', 'NO', ''],
      ['created_at', 'timestamp with time zone', 'NO', 'now()'],
      ['revoked_at', 'timestamp with time zone', 'YES', ''],
    ]);
    assert.deepEqual(await columnsOf('audit_events', name), [
      ['id', 'uuid', 'NO', 'gen_random_uuid()'],
      ['ts', 'timestamp with time zone', 'NO', 'now()'],
      ['api_key_id', 'uuid', 'YES', ''],
      ['method', 'text', 'NO', ''],
      ['tool_name', 'text', 'YES', ''],
      ['request_json', 'jsonb', 'YES', ''],
      ['response_json', 'jsonb', 'YES', ''],
      ['status_code', 'integer', 'YES', ''],
      ['latency_ms', 'integer', 'YES', ''],
    ]);
    assert.deepEqual(await constraintsOf('api_keys', name), [
      ['api_keys_key_hash_key', 'UNIQUE (key_hash)'],
      ['api_keys_pkey', 'PRIMARY KEY (id)'],
    ]);
    assert.deepEqual(await constraintsOf('audit_events', name), [
      ['audit_events_api_key_id_fkey', 'FOREIGN KEY (api_key_id) REFERENCES api_keys(id) ON DELETE SET NULL'],
      ['audit_events_latency_ms_check', 'CHECK ((latency_ms >= 0))'],
      ['audit_events_pkey', 'PRIMARY KEY (id)'],
    ]);
    assert.deepEqual(
      await rows(
        "select indexname, indexdef from pg_indexes where tablename = 'audit_events' order by indexname",
        name,
      ),
      [
        [
          'audit_events_api_key_id_ts_idx',
          'CREATE INDEX audit_events_api_key_id_ts_idx ON public.audit_events USING btree (api_key_id, ts)',
        ],
        [
          'audit_events_pkey',
          'CREATE UNIQUE INDEX audit_events_pkey ON public.audit_events USING btree (id)',
        ],
        ['audit_events_ts_idx', 'CREATE INDEX audit_events_ts_idx ON public.audit_events USING btree (ts)'],
      ],
    );
  });

  test('the created tables behave as specified: uuid and time defaults, unique key_hash, latency check, ON DELETE SET NULL', async () => {
    const { name, dsn } = await freshDatabase('cli_ensure_behaviour');
    assertExit(await bansho(['ensure-schema', '--postgres-dsn', dsn, '--quiet']), 0);
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

    // gen_random_uuid() and now() defaults; revoked_at starts out null.
    const [key] = await rows(
      "insert into api_keys (key_hash, role) values ('hash-1', 'admin') returning id, created_at is not null, revoked_at is null",
      name,
    );
    const keyId = key?.[0] ?? '';
    assert.match(keyId, uuid);
    assert.deepEqual(key?.slice(1), ['t', 't']);
    const [other] = await rows(
      "insert into api_keys (key_hash, role) values ('hash-2', 'user') returning id",
      name,
    );
    assert.notEqual(other?.[0], keyId, 'each row gets its own uuid');

    await assert.rejects(
      pg.query("insert into api_keys (key_hash, role) values ('hash-1', 'user')", name),
      /duplicate key value violates unique constraint "api_keys_key_hash_key"/,
    );
    await assert.rejects(
      pg.query("insert into api_keys (key_hash) values ('hash-3')", name),
      /null value in column "role"/,
    );

    const [event] = await rows(
      `insert into audit_events (api_key_id, method, tool_name, request_json, status_code, latency_ms)
       values ('${keyId}', 'tools/call', 'search', '{"q": 1}', 200, 0)
       returning id, ts is not null`,
      name,
    );
    assert.match(event?.[0] ?? '', uuid);
    assert.equal(event?.[1], 't');

    await assert.rejects(
      pg.query("insert into audit_events (method, latency_ms) values ('tools/call', -1)", name),
      /violates check constraint "audit_events_latency_ms_check"/,
    );
    await assert.rejects(
      pg.query('insert into audit_events (latency_ms) values (5)', name),
      /null value in column "method"/,
    );
    await assert.rejects(
      pg.query(
        "insert into audit_events (api_key_id, method) values ('00000000-0000-4000-8000-000000000000', 'x')",
        name,
      ),
      /violates foreign key constraint "audit_events_api_key_id_fkey"/,
    );

    await pg.query(`delete from api_keys where id = '${keyId}'`, name);
    assert.deepEqual(
      await rows(`select api_key_id is null, method from audit_events where id = '${event?.[0]}'`, name),
      [['t', 'tools/call']],
    );
  });
});

test('two ensure-schema processes at once on one fresh database both exit 0 and leave the full schema', async () => {
  const { name, dsn } = await freshDatabase('cli_ensure_race');
  const [a, b] = await Promise.all([
    bansho(['ensure-schema', '--postgres-dsn', dsn, '--json']),
    bansho(['ensure-schema', '--postgres-dsn', dsn, '--json']),
  ]);
  assertExit(a, 0);
  assertExit(b, 0);
  // The advisory lock serialises them: one creates everything, the other then finds nothing to do.
  const changes = [described(parseJson(a).changes), described(parseJson(b).changes)].sort(
    (x, y) => (x?.length ?? 0) - (y?.length ?? 0),
  );
  assert.deepEqual(changes, [[], ALL_CHANGES]);

  const smoke = await bansho(['smoke', '--redis-url', redis.url, '--postgres-dsn', dsn, '--json']);
  assertExit(smoke, 0);
  assert.equal(parseJson(smoke).checks.schema?.status, 'pass');
  assert.deepEqual(
    (await relations(name)).map(([relname]) => relname),
    [
      'api_keys',
      'api_keys_key_hash_key',
      'api_keys_pkey',
      'audit_events',
      'audit_events_api_key_id_ts_idx',
      'audit_events_pkey',
      'audit_events_ts_idx',
      'bansho_schema_version',
      'bansho_schema_version_pkey',
    ],
  );
});

// ---------------------------------------------------------------------------

describe('smoke', { concurrency: true }, () => {
  test('on a fresh database: exit 0, Redis and PostgreSQL pass, the schema warns "not bootstrapped yet"', async () => {
    const { dsn } = await freshDatabase('cli_smoke_fresh');
    const result = await bansho(['smoke', '--redis-url', redis.url, '--postgres-dsn', dsn, '--json']);
    assertExit(result, 0);
    const doc = parseJson(result);
    assert.equal(doc.status, 'warn');
    assert.deepEqual(Object.keys(doc.checks).sort(), ['postgres', 'redis', 'schema']);
    assert.equal(doc.checks.redis?.status, 'pass');
    assert.equal(doc.checks.redis?.version, `Redis ${redisVersion}`);
    assert.equal(doc.checks.postgres?.status, 'pass');
    assert.equal(doc.checks.postgres?.version, `PostgreSQL ${postgresVersion}`);
    const schema = doc.checks.schema;
    assert.equal(schema?.status, 'warn');
    assert.match(schema?.message ?? '', /not bootstrapped yet/);
    assert.deepEqual(schema?.pending, ALL_CHANGES);
    assert.equal(schema?.error, undefined);
    assert.equal(result.stderr, '');
  });

  test('on a fresh database with --strict: exit 1, status fail, the schema check still says why', async () => {
    const { dsn } = await freshDatabase('cli_smoke_strict');
    const result = await bansho([
      'smoke',
      '--redis-url',
      redis.url,
      '--postgres-dsn',
      dsn,
      '--json',
      '--strict',
    ]);
    assertExit(result, 1);
    const doc = parseJson(result);
    assert.equal(doc.status, 'fail');
    assert.equal(doc.checks.schema?.status, 'warn');
    assert.match(doc.checks.schema?.message ?? '', /not bootstrapped yet/);
  });

  test('human output on a fresh database: PASS redis, PASS postgres, WARN schema with what is pending', async () => {
    const { dsn } = await freshDatabase('cli_smoke_human');
    const result = await bansho(['smoke'], { env: { REDIS_URL: redis.url, POSTGRES_DSN: dsn } });
    assertExit(result, 0);
    // The checks' own lines; sub-checks, hints and pending items are indented under them.
    const lines = result.stdout.split('\n').filter((line) => /^\S/.test(line));
    assert.equal(lines.length, 3, result.stdout);
    assert.match(lines[0] ?? '', /^PASS\s+redis\s/);
    assert.match(lines[1] ?? '', /^PASS\s+postgres\s/);
    assert.match(lines[2] ?? '', /^WARN\s+schema\s.*not bootstrapped yet/);
    for (const change of ALL_CHANGES) assert.ok(result.stdout.includes(`pending: ${change}`), result.stdout);
  });

  test('after ensure-schema every check passes and it exits 0, with --strict too', async () => {
    const { dsn } = await freshDatabase('cli_smoke_ready');
    assertExit(await bansho(['ensure-schema', '--postgres-dsn', dsn, '--quiet']), 0);
    for (const extra of [[], ['--strict']]) {
      const result = await bansho([
        'smoke',
        '--redis-url',
        redis.url,
        '--postgres-dsn',
        dsn,
        '--json',
        ...extra,
      ]);
      assertExit(result, 0);
      const doc = parseJson(result);
      assert.equal(doc.status, 'pass');
      assert.deepEqual(
        Object.fromEntries(Object.entries(doc.checks).map(([name, check]) => [name, check.status])),
        { redis: 'pass', postgres: 'pass', schema: 'pass' },
      );
      assert.equal(doc.checks.schema?.pending, undefined);
    }
  });

  test('checks Redis and PostgreSQL concurrently on one connection each: both connect at once, and silent servers cost one timeout', async () => {
    // A silent server that notes how many connections are open when each arrives: concurrent
    // checks are both connected at once; one after another, the first would be gone (its timeout
    // destroys it) before the second arrives.
    const openAtArrival: number[] = [];
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      openAtArrival.push(sockets.size);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      socket.resume();
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const { port } = silent.address() as AddressInfo;
    try {
      const result = await bansho([
        'smoke',
        '--redis-url',
        `redis://127.0.0.1:${port}`,
        '--postgres-dsn',
        `postgres://postgres@127.0.0.1:${port}/postgres`,
        '--timeout',
        '1500ms',
        '--json',
      ]);
      assertExit(result, 1);
      const doc = parseJson(result);
      assert.deepEqual(Object.keys(doc.checks).sort(), ['postgres', 'redis', 'schema']);
      for (const check of Object.values(doc.checks)) {
        assert.equal(check.error?.code, 'timeout');
        assert.ok(check.latencyMs >= 1400 && check.latencyMs < 3000, `latencyMs ${check.latencyMs}`);
      }
      // The schema check shares the PostgreSQL check's connection: two connections, not three.
      assert.equal(openAtArrival.length, 2, `${openAtArrival.length} connections arrived, expected 2`);
      assert.deepEqual(openAtArrival, [1, 2], 'the second check connected after the first had given up');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test('exits right after its report when PostgreSQL timed out: nothing reconnects after the deadline', async () => {
    const peer = await startSilentPeer();
    try {
      const runs = await Promise.all(
        ['ping-postgres', 'ensure-schema', 'ping-postgres'].map((command) =>
          banshoTimed([command, '--postgres-dsn', peer.url('postgres'), '--timeout', '2s', '--json']),
        ),
      );
      for (const { result, reportMs } of runs) {
        assertExit(result, 1);
        assert.equal(Object.values(parseJson(result).checks)[0]?.error?.code, 'timeout');
        const linger = result.elapsedMs - reportMs;
        // A reconnect after the deadline would keep it alive another --timeout (2 s); noise stays well under that.
        assert.ok(linger < 1500, `the process stayed alive ${Math.round(linger)} ms after its report`);
      }
    } finally {
      await peer.close();
    }
  });
});

// ---------------------------------------------------------------------------

describe('schema drift', { concurrency: true }, () => {
  test('smoke exits 1 with schema_mismatch naming api_keys.key_hash when it is an integer', async () => {
    const { name, dsn } = await freshDatabase('cli_drift_type_smoke');
    await pg.query(HAND_MADE_API_KEYS.replace('key_hash text', 'key_hash integer'), name);
    const result = await bansho(['smoke', '--redis-url', redis.url, '--postgres-dsn', dsn, '--json']);
    assertExit(result, 1);
    const doc = parseJson(result);
    assert.equal(doc.status, 'fail');
    assert.equal(doc.checks.redis?.status, 'pass');
    assert.equal(doc.checks.postgres?.status, 'pass');
    assert.equal(doc.checks.schema?.status, 'fail');
    assert.equal(doc.checks.schema?.error?.code, 'schema_mismatch');
    assert.deepEqual(doc.checks.schema?.drift, [
      { object: 'column api_keys.key_hash', expected: 'text', found: 'integer' },
    ]);
  });

  test('ensure-schema exits 1 with schema_mismatch and creates nothing when api_keys.key_hash is an integer', async () => {
    const { name, dsn } = await freshDatabase('cli_drift_type_ensure');
    await pg.query(HAND_MADE_API_KEYS.replace('key_hash text', 'key_hash integer'), name);
    const columnsBefore = await columnsOf('api_keys', name);
    const relationsBefore = await relations(name);

    const result = await bansho(['ensure-schema', '--postgres-dsn', dsn, '--json']);
    assertExit(result, 1);
    const doc = parseJson(result);
    assert.equal(doc.status, 'fail');
    assert.equal(doc.checks.schema?.error?.code, 'schema_mismatch');
    assert.deepEqual(doc.checks.schema?.drift, [
      { object: 'column api_keys.key_hash', expected: 'text', found: 'integer' },
    ]);
    assert.deepEqual(doc.changes, []);

    assert.deepEqual(await columnsOf('api_keys', name), columnsBefore, 'api_keys was altered');
    assert.equal((await columnsOf('api_keys', name))[1]?.[1], 'integer');
    assert.equal(
      await tableExists('audit_events', name),
      false,
      'audit_events was created despite the mismatch',
    );
    assert.deepEqual(await relations(name), relationsBefore, 'something was created or dropped');
  });

  test('ensure-schema human output on a mismatch: a FAIL line with the code, a hint and a line per difference, no "done" lines', async () => {
    const { name, dsn } = await freshDatabase('cli_drift_human');
    await pg.query(HAND_MADE_API_KEYS.replace('key_hash text', 'key_hash integer'), name);
    const result = await bansho(['ensure-schema', '--postgres-dsn', dsn]);
    assertExit(result, 1);
    assert.match(
      result.stdout,
      /^FAIL\s+schema\s.*schema_mismatch: schema differs from bansho's in one place\n/,
    );
    assert.match(result.stdout, /\n\s+drift: column api_keys\.key_hash: expected text, found integer\n/);
    assert.match(result.stdout, /hint: /);
    assert.doesNotMatch(result.stdout, /^done/m);
    assert.doesNotMatch(result.stdout, /up to date/);
  });

  test('a missing unique constraint on key_hash: smoke warns, ensure-schema adds it under its name', async () => {
    const { name, dsn } = await freshDatabase('cli_heal_unique');
    await pg.query(
      HAND_MADE_API_KEYS.replace('key_hash text NOT NULL UNIQUE', 'key_hash text NOT NULL'),
      name,
    );

    const smoke = await bansho(['smoke', '--redis-url', redis.url, '--postgres-dsn', dsn, '--json']);
    assertExit(smoke, 0);
    const schema = parseJson(smoke).checks.schema;
    assert.equal(schema?.status, 'warn');
    assert.ok(schema?.pending?.includes('add constraint api_keys_key_hash_key'), String(schema?.pending));

    const ensure = await bansho(['ensure-schema', '--postgres-dsn', dsn, '--json']);
    assertExit(ensure, 0);
    assert.ok(described(parseJson(ensure).changes)?.includes('add constraint api_keys_key_hash_key'));
    assert.deepEqual(
      await rows(
        "select pg_get_constraintdef(oid) from pg_constraint where conname = 'api_keys_key_hash_key'",
        name,
      ),
      [['UNIQUE (key_hash)']],
    );
  });

  test('audit_events without its latency check: ensure-schema adds the check and the two indexes', async () => {
    const { name, dsn } = await freshDatabase('cli_heal_check');
    await pg.query(
      `${HAND_MADE_API_KEYS};
       CREATE TABLE audit_events (
         id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
         ts timestamptz NOT NULL DEFAULT now(),
         api_key_id uuid REFERENCES api_keys(id) ON DELETE SET NULL,
         method text NOT NULL,
         tool_name text,
         request_json jsonb,
         response_json jsonb,
         status_code integer,
         latency_ms integer
       );`,
      name,
    );
    const ensure = await bansho(['ensure-schema', '--postgres-dsn', dsn, '--json']);
    assertExit(ensure, 0);
    assert.deepEqual(described(parseJson(ensure).changes), [
      'add constraint audit_events_latency_ms_check',
      'create index audit_events_ts_idx',
      'create index audit_events_api_key_id_ts_idx',
      'create table bansho_schema_version',
      'record schema version 1',
    ]);
    const smoke = await bansho([
      'smoke',
      '--redis-url',
      redis.url,
      '--postgres-dsn',
      dsn,
      '--json',
      '--strict',
    ]);
    assertExit(smoke, 0);
  });

  test('a view named api_keys is drift, not "not bootstrapped": smoke and ensure-schema exit 1 with schema_mismatch', async () => {
    const { name, dsn } = await freshDatabase('cli_drift_view');
    await pg.query("CREATE VIEW api_keys AS SELECT gen_random_uuid() AS id, 'h'::text AS key_hash", name);
    const relationsBefore = await relations(name);

    const smoke = await bansho(['smoke', '--redis-url', redis.url, '--postgres-dsn', dsn, '--json']);
    assertExit(smoke, 1);
    const smokeSchema = parseJson(smoke).checks.schema;
    assert.equal(smokeSchema?.status, 'fail');
    assert.equal(smokeSchema?.error?.code, 'schema_mismatch');
    assert.deepEqual(smokeSchema?.drift, [
      { object: 'table api_keys', expected: 'a table', found: 'a view' },
    ]);

    const ensure = await bansho(['ensure-schema', '--postgres-dsn', dsn, '--json']);
    assertExit(ensure, 1);
    assert.equal(parseJson(ensure).checks.schema?.error?.code, 'schema_mismatch');
    assert.deepEqual(await relations(name), relationsBefore);
  });

  test('partial bootstrap (only a correct api_keys): smoke warns "incomplete", ensure-schema creates just the rest', async () => {
    const { name, dsn } = await freshDatabase('cli_partial');
    await pg.query(HAND_MADE_API_KEYS, name);
    await pg.query("insert into api_keys (key_hash, role) values ('kept', 'admin')", name);

    const smoke = await bansho(['smoke', '--redis-url', redis.url, '--postgres-dsn', dsn, '--json']);
    assertExit(smoke, 0);
    const schema = parseJson(smoke).checks.schema;
    assert.equal(schema?.status, 'warn');
    assert.match(schema?.message ?? '', /incomplete/);
    assert.doesNotMatch(schema?.message ?? '', /not bootstrapped/);
    assert.deepEqual(schema?.pending, ALL_CHANGES.slice(1));

    const ensure = await bansho(['ensure-schema', '--postgres-dsn', dsn, '--json']);
    assertExit(ensure, 0);
    assert.deepEqual(described(parseJson(ensure).changes), ALL_CHANGES.slice(1));
    assert.deepEqual(
      await rows('select key_hash from api_keys', name),
      [['kept']],
      'api_keys data must survive',
    );

    const after = await bansho([
      'smoke',
      '--redis-url',
      redis.url,
      '--postgres-dsn',
      dsn,
      '--json',
      '--strict',
    ]);
    assertExit(after, 0);
    assert.equal(parseJson(after).checks.schema?.status, 'pass');
  });

  test('a missing index alone: smoke warns "incomplete", ensure-schema creates only that index', async () => {
    const { name, dsn } = await freshDatabase('cli_missing_index');
    assertExit(await bansho(['ensure-schema', '--postgres-dsn', dsn, '--quiet']), 0);
    await pg.query('DROP INDEX audit_events_api_key_id_ts_idx', name);

    const smoke = await bansho(['smoke', '--redis-url', redis.url, '--postgres-dsn', dsn, '--json']);
    assertExit(smoke, 0);
    assert.match(parseJson(smoke).checks.schema?.message ?? '', /incomplete/);
    assert.deepEqual(parseJson(smoke).checks.schema?.pending, [
      'create index audit_events_api_key_id_ts_idx',
    ]);

    const ensure = await bansho(['ensure-schema', '--postgres-dsn', dsn, '--json']);
    assertExit(ensure, 0);
    assert.deepEqual(described(parseJson(ensure).changes), ['create index audit_events_api_key_id_ts_idx']);
  });
});

// ---------------------------------------------------------------------------

describe('configuration precedence, end to end', { concurrency: true }, () => {
  /** Runs `ping-redis --json` and returns the exit code and the target it checked. */
  async function pingRedisTarget(
    args: string[],
    options: CliOptions,
  ): Promise<{ code: number | null; target: string }> {
    const result = await bansho(['ping-redis', '--json', ...args], options);
    const doc = parseJson(result);
    return { code: result.code, target: doc.checks.redis?.target ?? '' };
  }

  function dirWithEnvFile(contents: string, fileName = '.env'): string {
    const dir = emptyDir();
    writeFileSync(join(dir, fileName), contents);
    return dir;
  }

  test('.env in the working directory is read', async () => {
    const cwd = dirWithEnvFile(`REDIS_URL=${redis.url}\n`);
    const { code, target } = await pingRedisTarget([], { cwd });
    assert.equal(code, 0);
    assertTarget(target, redis.url);
  });

  test('the real environment beats .env', async () => {
    const cwd = dirWithEnvFile(`REDIS_URL=${closedRedisUrl}\n`);
    const { code, target } = await pingRedisTarget([], { cwd, env: { REDIS_URL: redis.url } });
    assert.equal(code, 0);
    assertTarget(target, redis.url);
  });

  test('the real environment beats .env even when it is the one that is wrong', async () => {
    const cwd = dirWithEnvFile(`REDIS_URL=${redis.url}\n`);
    const result = await bansho(['ping-redis', '--json'], { cwd, env: { REDIS_URL: closedRedisUrl } });
    assertExit(result, 1);
    const check = parseJson(result).checks.redis;
    assert.equal(check?.target, closedRedisUrl);
    assert.equal(check?.error?.code, 'connection_refused');
  });

  test('a flag beats both the environment and .env', async () => {
    const cwd = dirWithEnvFile(`REDIS_URL=${closedRedisUrl}\n`);
    const { code, target } = await pingRedisTarget(['--redis-url', redis.url], {
      cwd,
      env: { REDIS_URL: closedRedisUrl },
    });
    assert.equal(code, 0);
    assertTarget(target, redis.url);
  });

  test('a flag beats both even when it is the one that is wrong', async () => {
    const cwd = dirWithEnvFile(`REDIS_URL=${redis.url}\n`);
    const { code, target } = await pingRedisTarget(['--redis-url', closedRedisUrl], {
      cwd,
      env: { REDIS_URL: redis.url },
    });
    assert.equal(code, 1);
    assert.equal(target, closedRedisUrl);
  });

  test('--env-file reads that file instead of ./.env', async () => {
    const cwd = dirWithEnvFile(`REDIS_URL=${closedRedisUrl}\n`);
    const other = join(dirWithEnvFile(`REDIS_URL=${redis.url}\n`, 'staging.env'), 'staging.env');
    const { code, target } = await pingRedisTarget(['--env-file', other], { cwd });
    assert.equal(code, 0);
    assertTarget(target, redis.url);
  });

  test('--env-file with a relative path is read from the working directory', async () => {
    const cwd = dirWithEnvFile(`REDIS_URL=${redis.url}\n`, 'custom.env');
    const { code } = await pingRedisTarget(['--env-file', 'custom.env'], { cwd });
    assert.equal(code, 0);
  });

  test('--env-file naming a missing file exits 2 with one line on stderr and nothing attempted', async () => {
    const cwd = dirWithEnvFile(`REDIS_URL=${redis.url}\n`);
    const missing = join(cwd, 'missing.env');
    // `node --`: otherwise Node itself rejects the missing file first (next test).
    const result = await bansho(['ping-redis', '--env-file', missing], { cwd, nodeArgs: ['--'] });
    assertExit(result, 2);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, `bansho: --env-file ${JSON.stringify(missing)} cannot be read (ENOENT)\n`);
  });

  test('--env-file=<missing> with --json exits 2 with a config error document', async () => {
    const cwd = dirWithEnvFile(`REDIS_URL=${redis.url}\n`);
    const missing = join(cwd, 'missing.env');
    const result = await bansho(['ping-redis', `--env-file=${missing}`, '--json'], { cwd, nodeArgs: ['--'] });
    assertExit(result, 2);
    const doc = parseJson(result);
    assert.equal(doc.status, 'fail');
    assert.equal(doc.error?.code, 'config');
    assert.ok(doc.error?.message.includes(missing), doc.error?.message);
  });

  test('run as the bansho executable, a missing --env-file exits 2 before any connection', async () => {
    const cwd = dirWithEnvFile(`REDIS_URL=redis://127.0.0.1:${await freePort()}\n`);
    const missing = join(cwd, 'missing.env');
    // bin/bansho passes `--` to node, which otherwise reads a --env-file even after the
    // script's name (nodejs/node#54232) and exits 9 before bansho runs.
    const result = await bansho(['ping-redis', '--env-file', missing], { cwd });
    assertExit(result, 2);
    assert.equal(result.stderr, `bansho: --env-file ${JSON.stringify(missing)} cannot be read (ENOENT)\n`);
    assert.equal(result.stdout, '');
  });

  test('POSTGRES_DSN from .env is used by ping-postgres and smoke', async () => {
    const { dsn } = await freshDatabase('cli_dotenv_pg');
    const cwd = dirWithEnvFile(`REDIS_URL=${redis.url}\nPOSTGRES_DSN=${dsn}\n`);
    const ping = await bansho(['ping-postgres', '--json'], { cwd });
    assertExit(ping, 0);
    assertTarget(parseJson(ping).checks.postgres?.target ?? '', dsn);
    const smoke = await bansho(['smoke', '--json'], { cwd });
    assertExit(smoke, 0);
    assertTarget(parseJson(smoke).checks.schema?.target ?? '', dsn);
  });

  test('a broken POSTGRES_DSN in .env does not stop ping-redis, which does not need it', async () => {
    const cwd = dirWithEnvFile(`REDIS_URL=${redis.url}\nPOSTGRES_DSN=http://not-postgres\n`);
    const result = await bansho(['ping-redis'], { cwd });
    assertExit(result, 0);
  });
});

// ---------------------------------------------------------------------------

describe('help and version', { concurrency: true }, () => {
  test('--help exits 0, lists the four commands and shows the exit codes', async () => {
    const result = await bansho(['--help']);
    assertExit(result, 0);
    for (const command of ['ping-redis', 'ping-postgres', 'ensure-schema', 'smoke']) {
      assert.match(result.stdout, new RegExp(`^\\s+${command}\\b`, 'm'), `--help does not list ${command}`);
    }
    assert.match(result.stdout, /Exit codes:/);
    assert.match(result.stdout, /^\s+2\s+invalid invocation/m);
    assert.equal(result.stderr, '');
  });

  test('--help into a reader that closes the pipe early (| head -1) exits 0 without a crash', async () => {
    // The pipe is closed before bansho writes: every write it makes then fails with EPIPE.
    const result = await bansho(['--help'], {
      onSpawn: (child) => {
        child.stdout?.destroy();
      },
    });
    assertExit(result, 0);
    assert.doesNotMatch(result.stderr, /EPIPE|Unhandled/);
  });

  test('smoke --help exits 0 and shows its flags, --strict and the exit codes', async () => {
    const result = await bansho(['smoke', '--help']);
    assertExit(result, 0);
    for (const flag of [
      '--redis-url',
      '--postgres-dsn',
      '--env-file',
      '--timeout',
      '--json',
      '--quiet',
      '--strict',
    ]) {
      assert.ok(result.stdout.includes(flag), `smoke --help does not mention ${flag}`);
    }
    assert.match(result.stdout, /Exit codes:/);
  });

  test('ping-redis and ensure-schema --help offer only the flags that mean something for them', async () => {
    // Option lines only: the exit-code table below them mentions --strict in prose.
    const flagsOf = async (command: string) => {
      const result = await bansho([command, '--help']);
      assertExit(result, 0);
      const optionLines = result.stdout.split('\n').filter((line) => /^\s+(-\w, )?--[a-z-]+/.test(line));
      return optionLines.map((line) => /--[a-z-]+/.exec(line)?.[0]);
    };
    const pingRedis = await flagsOf('ping-redis');
    for (const flag of ['--redis-url', '--no-write-probe', '--strict'])
      assert.ok(pingRedis.includes(flag), flag);
    assert.ok(!pingRedis.includes('--postgres-dsn'));
    const ensureSchema = await flagsOf('ensure-schema');
    assert.ok(ensureSchema.includes('--postgres-dsn'));
    for (const flag of ['--redis-url', '--no-write-probe', '--strict'])
      assert.ok(!ensureSchema.includes(flag), flag);
  });

  test('--version prints the package.json version and exits 0', async () => {
    // Alone, the flag is answered by bin/bansho without loading the CLI; with another, commander answers.
    for (const args of [['--version'], ['-V'], ['-V', '--version'], ['--version', '--json']]) {
      const result = await bansho(args);
      assertExit(result, 0);
      assert.equal(result.stdout, `${PACKAGE_VERSION}\n`, args.join(' '));
      assert.equal(result.stderr, '');
    }
  });
});

// ---------------------------------------------------------------------------

test('no colour when stdout is not a terminal, even with a colour-capable TERM', async () => {
  const [fresh, other] = await Promise.all([
    freshDatabase('cli_colour_warn'),
    freshDatabase('cli_colour_done'),
  ]);
  const env = { TERM: 'xterm-256color', COLORTERM: 'truecolor' };
  // pass, warn (pending lines are dimmed on a terminal) and fail: every colour the report uses.
  const runs = await Promise.all([
    bansho(['smoke', '--redis-url', redis.url, '--postgres-dsn', fresh.dsn], { env }),
    bansho(['ensure-schema', '--postgres-dsn', other.dsn], { env }),
    bansho(['ping-redis', '--redis-url', closedRedisUrl, '--verbose'], { env }),
  ]);
  assert.deepEqual(
    runs.map((run) => run.code),
    [0, 0, 1],
  );
  for (const run of runs) {
    assert.doesNotMatch(run.stdout, ANSI);
    assert.doesNotMatch(run.stderr, ANSI);
  }
  assert.match(runs[0]?.stdout ?? '', /^WARN\s+schema\s/m);
  assert.match(runs[1]?.stdout ?? '', /^done {2}create table api_keys$/m);
  assert.match(runs[2]?.stdout ?? '', /^FAIL\s+redis\s.*connection_refused/);
});
