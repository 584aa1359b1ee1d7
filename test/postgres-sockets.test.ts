/**
 * PostgreSQL through its Unix-domain socket, in every form libpq accepts, against a
 * throwaway server whose socket is in its instance directory (test/support/postgres.ts;
 * the directory is the postgres OS user's, mode 0700: these tests run as root, or as that user).
 *
 * Needs `npm run build` first: the CLI under test is bin/bansho → dist/.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { closePostgres, createPostgresPool, ensureSchema, pingPostgres } from '../src/index.js';
import { assertExit, type CliResult, parseJson, runCli } from './support/cli.js';
import {
  freePort,
  type PostgresServer,
  type RedisEndpoint,
  startPostgres,
  useRedis,
} from './support/servers.js';

let pg: PostgresServer;
let redis: RedisEndpoint;
let database: string;
const SECRET = 'S0cket-Pa55';

before(async () => {
  [pg, redis] = await Promise.all([startPostgres(), useRedis()]);
  database = await pg.createDatabase('sockets');
});
after(() => pg.stop());

/** 203.0.113.1 (TEST-NET-3) is never routed: were it dialled instead of the socket, the check would time out. */
const UNROUTABLE = '203.0.113.1';

function describeRun(result: CliResult): string {
  return `exit ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
}

async function pingJson(dsn: string, ...flags: string[]) {
  const result = await runCli([
    'ping-postgres',
    '--json',
    '--timeout',
    '3s',
    '--postgres-dsn',
    dsn,
    ...flags,
  ]);
  return { result, report: parseJson(result) };
}

describe('the forms libpq accepts', { concurrency: true }, () => {
  test('?host=<dir> with no host part: passes, shown in the ?host= form', async () => {
    const dsn = `postgres://postgres@/${database}?host=${pg.socketDir}&port=${pg.port}`;
    const { result, report } = await pingJson(dsn);
    assertExit(result, 0);
    assert.equal(
      report.checks.postgres?.target,
      `postgres://postgres@/${database}?host=${pg.socketDir}&port=${pg.port}`,
    );
    assert.equal(report.checks.postgres?.status, 'pass', describeRun(result));
  });

  test('a host part that ?host=<dir> overrides: the socket is used, the host never dialled', async () => {
    const { result, report } = await pingJson(
      `postgres://postgres@${UNROUTABLE}:${pg.port}/${database}?host=${pg.socketDir}`,
    );
    assertExit(result, 0);
    assert.equal(report.checks.postgres?.status, 'pass', describeRun(result));
  });

  test('a percent-encoded socket directory as the host, its port choosing the socket file', async () => {
    const host = encodeURIComponent(pg.socketDir);
    const { result, report } = await pingJson(`postgresql://postgres@${host}:${pg.port}/${database}`);
    assertExit(result, 0);
    assert.equal(
      report.checks.postgres?.target,
      `postgresql://postgres@/${database}?host=${pg.socketDir}&port=${pg.port}`,
    );
  });

  test('a password in a socket DSN is masked in every mode', async () => {
    const dsn = `postgres://postgres:${SECRET}@/${database}?host=${pg.socketDir}&port=${pg.port}`;
    for (const flags of [[], ['--json'], ['--verbose']]) {
      const result = await runCli(['ping-postgres', '--postgres-dsn', dsn, ...flags]);
      assertExit(result, 0);
      assert.ok(!`${result.stdout}${result.stderr}`.includes(SECRET), describeRun(result));
      assert.match(result.stdout, /postgres:\*\*\*@\//, describeRun(result));
    }
  });

  test('sslmode=verify-full over a Unix socket is plain, as in libpq (no TLS on a socket): it passes', async () => {
    const { result } = await pingJson(
      `postgres://postgres@/${database}?host=${pg.socketDir}&port=${pg.port}&sslmode=verify-full`,
    );
    assertExit(result, 0);
  });

  test('ensure-schema and smoke run through the socket', async () => {
    const name = await pg.createDatabase('sockets_schema');
    const dsn = `postgres://postgres@/${name}?host=${pg.socketDir}&port=${pg.port}`;
    const ensured = await runCli(['ensure-schema', '--json', '--postgres-dsn', dsn]);
    assertExit(ensured, 0);
    assert.equal(parseJson(ensured).changes?.length, 6, describeRun(ensured));
    const smoke = await runCli(['smoke', '--json', '--redis-url', redis.url, '--postgres-dsn', dsn]);
    assertExit(smoke, 0);
    assert.equal(parseJson(smoke).checks.schema?.status, 'pass', describeRun(smoke));
  });
});

describe('several hosts mixing a socket and TCP', { concurrency: true }, () => {
  test('a socket directory with no server first, then TCP: the TCP host gives the session', async () => {
    const dsn = `postgres://postgres@%2Fnonexistent-bansho-dir:${pg.port},127.0.0.1:${pg.port}/${database}`;
    const { result, report } = await pingJson(dsn);
    assertExit(result, 0);
    assert.equal(report.checks.postgres?.host, `127.0.0.1:${pg.port}`, describeRun(result));
  });

  test('a closed TCP port first, then the socket: the socket gives the session, named as its file', async () => {
    const closed = await freePort();
    const dsn = `postgres://postgres@/${database}?host=127.0.0.1,${pg.socketDir}&port=${closed},${pg.port}`;
    const { result, report } = await pingJson(dsn);
    assertExit(result, 0);
    assert.equal(report.checks.postgres?.host, `${pg.socketDir}/.s.PGSQL.${pg.port}`, describeRun(result));
  });

  test('neither answers: exit 1 with connection_refused naming each', async () => {
    const closed = await freePort();
    const dsn = `postgres://postgres@/${database}?host=/nonexistent-bansho-dir,127.0.0.1&port=${closed}`;
    const { result, report } = await pingJson(dsn);
    assertExit(result, 1);
    const error = report.checks.postgres?.error;
    assert.equal(error?.code, 'connection_refused', describeRun(result));
    assert.match(
      error?.message ?? '',
      new RegExp(`/nonexistent-bansho-dir/\\.s\\.PGSQL\\.${closed}: ENOENT`),
    );
    assert.match(error?.message ?? '', new RegExp(`127\\.0\\.0\\.1:${closed}: ECONNREFUSED`));
  });
});

test('a socket directory without a server: exit 1 with connection_refused naming the socket file', async () => {
  const { result, report } = await pingJson(`postgres://postgres@/${database}?host=/nonexistent-bansho-dir`);
  assertExit(result, 1);
  assert.equal(report.checks.postgres?.error?.code, 'connection_refused', describeRun(result));
  assert.match(
    report.checks.postgres?.error?.message ?? '',
    /no socket at \/nonexistent-bansho-dir\/\.s\.PGSQL\.5432 \(ENOENT\)/,
  );
});

test('the library: pingPostgres, ensureSchema and createPostgresPool through the socket', async () => {
  const name = await pg.createDatabase('sockets_library');
  const dsn = `postgres://postgres@/${name}?host=${pg.socketDir}&port=${pg.port}`;
  assert.equal(await pingPostgres({ dsn, timeoutMs: 3000 }), true);
  assert.equal((await ensureSchema({ dsn })).changes.length, 6);
  const sql = createPostgresPool({ dsn, max: 1 });
  try {
    const [row] = await sql<{ local: boolean }[]>`select inet_client_addr() is null as local`;
    assert.equal(row?.local, true, 'the session is not over the Unix socket');
  } finally {
    await closePostgres(sql);
  }
});
