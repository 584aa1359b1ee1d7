/**
 * Verdicts and hints that must send the operator the right way, each against a real server:
 * a role's or a database's CONNECTION LIMIT (not max_connections), a role's or database's
 * default timeouts (bansho bounds its own statements; the `timeouts` sub-check warns),
 * PgBouncer's own errors (not "does not speak PostgreSQL"), and a session the server closed
 * after starting it.
 *
 * Needs `npm run build` first: the CLI under test is bin/bansho → dist/.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { closePostgres, createPostgresPool, type Sql } from '../src/index.js';
import { assertExit, type CliResult, parseJson, runCli } from './support/cli.js';
import { holdLock, waitFor } from './support/locks.js';
import { hasPgBouncer, type PgBouncer, startPgBouncer } from './support/pgbouncer.js';
import {
  type ForwardingProxy,
  type PostgresServer,
  type RedisEndpoint,
  startPostgres,
  startProxy,
  useRedis,
} from './support/servers.js';

let pg: PostgresServer;
let redis: RedisEndpoint;
const pools: Sql[] = [];
const withBouncer = await hasPgBouncer();
const skip = withBouncer ? false : 'pgbouncer is not installed';

before(async () => {
  [pg, redis] = await Promise.all([startPostgres(), useRedis()]);
  await pg.query(
    [
      'CREATE ROLE capped LOGIN CONNECTION LIMIT 2',
      'CREATE ROLE full_role LOGIN CONNECTION LIMIT 1',
      'CREATE ROLE plain_role LOGIN',
      'CREATE ROLE tiny LOGIN',
      "ALTER ROLE tiny SET statement_timeout = '1ms'",
      "ALTER ROLE tiny SET lock_timeout = '1ms'",
      "ALTER ROLE tiny SET idle_in_transaction_session_timeout = '1ms'",
      'CREATE DATABASE capped_db CONNECTION LIMIT 1',
    ].join(';\n'),
  );
});
after(async () => {
  await Promise.all(pools.map((sql) => closePostgres(sql, 0)));
  await pg.stop();
});

function dsnAs(user: string, database = 'postgres', port = pg.port): string {
  return `postgres://${user}@127.0.0.1:${port}/${database}`;
}

/** Opens a session as `user` in `database` and keeps it, idle, until the file's end. */
async function holdSession(user: string, database = 'postgres'): Promise<void> {
  const sql = createPostgresPool({ dsn: `${dsnAs(user, database)}?application_name=holder`, max: 1 });
  pools.push(sql);
  await sql`select 1`;
}

function describeRun(result: CliResult): string {
  return `exit ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
}

async function json(args: readonly string[], exit: number) {
  const result = await runCli([...args, '--json']);
  assertExit(result, exit);
  return { result, report: parseJson(result) };
}

function detail(report: ReturnType<typeof parseJson>, check: string, name: string) {
  const found = report.checks[check]?.details?.find((entry) => entry.name === name);
  assert.ok(found, `no ${name} sub-check in ${JSON.stringify(report)}`);
  return found;
}

describe("a role's or a database's CONNECTION LIMIT", () => {
  test('the connections sub-check judges the role limit, tighter than the server, and names it', async () => {
    await holdSession('capped');
    const { report } = await json(['ping-postgres', '--postgres-dsn', dsnAs('capped')], 0);
    const connections = detail(report, 'postgres', 'connections');
    assert.equal(connections.status, 'warn');
    assert.match(connections.observed, /^2 of 2 for role capped \(its CONNECTION LIMIT\); \d+ of 97 in use/);
    assert.match(connections.hint ?? '', /ALTER ROLE capped CONNECTION LIMIT <n>/);
    assert.doesNotMatch(connections.hint ?? '', /max_connections/);
  });

  test('a role at its CONNECTION LIMIT: too_many_connections whose hint names the role limit, not max_connections', async () => {
    await holdSession('full_role');
    const { result, report } = await json(['ping-postgres', '--postgres-dsn', dsnAs('full_role')], 1);
    const error = report.checks.postgres?.error;
    assert.equal(error?.code, 'too_many_connections', describeRun(result));
    assert.match(error?.message ?? '', /too many connections for role "full_role"/);
    assert.match(
      error?.hint ?? '',
      /role full_role's own CONNECTION LIMIT.*ALTER ROLE full_role CONNECTION LIMIT/,
    );
    assert.doesNotMatch(error?.hint ?? '', /^the server's max_connections/);
  });

  test('a database at its CONNECTION LIMIT: too_many_connections naming ALTER DATABASE', async () => {
    await holdSession('plain_role', 'capped_db');
    const { result, report } = await json(
      ['ping-postgres', '--postgres-dsn', dsnAs('plain_role', 'capped_db')],
      1,
    );
    const error = report.checks.postgres?.error;
    assert.equal(error?.code, 'too_many_connections', describeRun(result));
    assert.match(error?.hint ?? '', /ALTER DATABASE capped_db CONNECTION LIMIT/);
  });
});

describe("a role's default timeouts of 1ms", { concurrency: true }, () => {
  test('ping-postgres passes its own probe, and the timeouts sub-check warns with ALTER ROLE … RESET', async () => {
    const { result, report } = await json(['ping-postgres', '--postgres-dsn', dsnAs('tiny')], 0);
    assert.equal(report.status, 'warn', describeRun(result));
    const timeouts = detail(report, 'postgres', 'timeouts');
    assert.equal(timeouts.status, 'warn');
    assert.equal(
      timeouts.observed,
      'statement_timeout 1ms (ALTER ROLE), lock_timeout 1ms (ALTER ROLE), idle_in_transaction_session_timeout 1ms (ALTER ROLE); the others off',
    );
    assert.match(timeouts.hint ?? '', /ALTER ROLE tiny RESET statement_timeout/);
    assert.match(timeouts.hint ?? '', /ALTER ROLE tiny RESET lock_timeout/);
    await json(['ping-postgres', '--strict', '--postgres-dsn', dsnAs('tiny')], 1);
  });

  test('ensure-schema and smoke run to the end as that role', async () => {
    const name = await pg.createDatabase('tiny_schema');
    await pg.query(`ALTER DATABASE ${name} OWNER TO tiny`);
    const { report: ensured } = await json(['ensure-schema', '--postgres-dsn', dsnAs('tiny', name)], 0);
    assert.equal(ensured.changes?.length, 6);
    const { report: smoked } = await json(
      ['smoke', '--redis-url', redis.url, '--postgres-dsn', dsnAs('tiny', name)],
      0,
    );
    assert.equal(smoked.checks.schema?.status, 'pass', JSON.stringify(smoked));
  });

  test("a database's default: the hint is ALTER DATABASE … RESET", async () => {
    const name = await pg.createDatabase('tiny_db');
    await pg.query(`ALTER DATABASE ${name} SET statement_timeout = '5ms'`);
    const { report } = await json(['ping-postgres', '--postgres-dsn', dsnAs('plain_role', name)], 0);
    const timeouts = detail(report, 'postgres', 'timeouts');
    assert.equal(timeouts.status, 'warn');
    assert.match(timeouts.observed, /^statement_timeout 5ms \(ALTER DATABASE\)/);
    assert.match(timeouts.hint ?? '', new RegExp(`ALTER DATABASE ${name} RESET statement_timeout`));
  });

  test('ordinary defaults pass', async () => {
    const { report } = await json(['ping-postgres', '--postgres-dsn', dsnAs('plain_role')], 0);
    assert.equal(detail(report, 'postgres', 'timeouts').status, 'pass');
  });
});

describe('through PgBouncer in transaction pooling', { concurrency: true, skip }, () => {
  let bouncer: PgBouncer;
  before(async () => {
    bouncer = await startPgBouncer({ backend: pg, users: ['tiny'] });
  });
  after(() => bouncer?.stop());

  test("a role's 1ms statement_timeout: ping-postgres, ensure-schema and smoke complete, timeouts warns", async () => {
    const name = await pg.createDatabase('tiny_bouncer');
    await pg.query(`ALTER DATABASE ${name} OWNER TO tiny`);
    const dsn = dsnAs('tiny', name, bouncer.port);
    const { report: pinged } = await json(['ping-postgres', '--postgres-dsn', dsn], 0);
    assert.equal(detail(pinged, 'postgres', 'timeouts').status, 'warn');
    const { report: ensured } = await json(['ensure-schema', '--postgres-dsn', dsn], 0);
    assert.equal(ensured.changes?.length, 6);
    await json(['smoke', '--redis-url', redis.url, '--postgres-dsn', dsn], 0);
  });
});

describe("PgBouncer's own errors are told by what they mean", { concurrency: true, skip }, () => {
  const bouncers: PgBouncer[] = [];
  after(() => Promise.all(bouncers.map((bouncer) => bouncer.stop())));
  const start = async (options: Omit<Parameters<typeof startPgBouncer>[0], 'backend'>) => {
    const bouncer = await startPgBouncer({ backend: pg, ...options });
    bouncers.push(bouncer);
    return bouncer;
  };
  const failure = async (dsn: string) => {
    const { result, report } = await json(['ping-postgres', '--postgres-dsn', dsn], 1);
    const error = report.checks.postgres?.error;
    assert.ok(error, describeRun(result));
    assert.doesNotMatch(error.hint, /does not speak PostgreSQL/, describeRun(result));
    assert.match(error.hint, /PgBouncer/, describeRun(result));
    return error;
  };

  test('a database it has no entry for: unknown_database', async () => {
    const bouncer = await start({ databases: { only: 'dbname=postgres' } });
    const error = await failure(bouncer.dsn('elsewhere'));
    assert.equal(error.code, 'unknown_database');
    assert.match(error.message, /08P01: no such database: elsewhere/);
    assert.match(error.hint, /\[databases\]/);
  });

  test('"bouncer config error" (auth_type=any without a user): server_error naming its configuration', async () => {
    const bouncer = await start({ authType: 'any' });
    const error = await failure(bouncer.dsn());
    assert.equal(error.code, 'server_error');
    assert.match(error.message, /bouncer config error/);
    assert.match(error.hint, /auth_type=any/);
  });

  test('a user missing from its auth_file: auth_failed', async () => {
    const bouncer = await start({});
    const error = await failure(bouncer.dsn().replace('postgres@', 'plain_role@'));
    assert.equal(error.code, 'auth_failed');
    assert.match(error.hint, /auth_file/);
  });

  test('a user PostgreSQL refuses (no password where one is needed): auth_failed', async () => {
    const pwServer = await startPostgres({ passwordUser: { name: 'app_pw', password: 'Not-Given-1' } });
    try {
      const bouncer = await startPgBouncer({ backend: pwServer, users: ['app_pw'] });
      bouncers.push(bouncer);
      const error = await failure(bouncer.dsn().replace('postgres@', 'app_pw@'));
      assert.equal(error.code, 'auth_failed');
      assert.match(error.message, /password authentication failed/);
    } finally {
      await pwServer.stop();
    }
  });
});

describe('a session the server closed after starting it', () => {
  test('pg_terminate_backend while ensure-schema waits: connection_closed, with a hint naming it', async () => {
    const name = await pg.createDatabase('terminated');
    const dsn = pg.dsn(name);
    assertExit(await runCli(['ensure-schema', '--quiet', '--postgres-dsn', dsn]), 0);
    await pg.query('drop index audit_events_ts_idx', name);
    const release = await holdLock(dsn, 'lock table audit_events in row exclusive mode');
    try {
      const running = runCli(['ensure-schema', '--json', '--timeout', '30s', '--postgres-dsn', dsn]);
      const banshoWaits = `select count(*) from pg_stat_activity where datname = '${name}' and application_name = 'bansho' and wait_event_type = 'Lock'`;
      await waitFor('bansho waiting for the lock', async () => (await pg.query(banshoWaits)).trim() === '1');
      await pg.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name}' and application_name = 'bansho'`,
      );
      const result = await running;
      assertExit(result, 1);
      const error = parseJson(result).checks.schema?.error;
      assert.equal(error?.code, 'connection_closed', describeRun(result));
      assert.match(error?.message ?? '', /terminating connection due to administrator command/);
      assert.match(error?.hint ?? '', /pg_terminate_backend/);
    } finally {
      await release();
    }
  });

  describe('a connection reset in the middle of a statement', () => {
    let proxy: ForwardingProxy;
    before(async () => {
      proxy = await startProxy(pg.port);
    });
    after(() => proxy.close());

    test('connection_closed, not "the peer does not speak PostgreSQL"', async () => {
      const name = await pg.createDatabase('reset');
      assertExit(await runCli(['ensure-schema', '--quiet', '--postgres-dsn', pg.dsn(name)]), 0);
      await pg.query('drop index audit_events_ts_idx', name);
      const release = await holdLock(pg.dsn(name), 'lock table audit_events in row exclusive mode');
      try {
        const running = runCli([
          'ensure-schema',
          '--json',
          '--timeout',
          '30s',
          '--postgres-dsn',
          dsnAs('postgres', name, proxy.port),
        ]);
        const banshoWaits = `select count(*) from pg_stat_activity where datname = '${name}' and application_name = 'bansho' and wait_event_type = 'Lock'`;
        await waitFor(
          'bansho waiting for the lock',
          async () => (await pg.query(banshoWaits)).trim() === '1',
        );
        proxy.resetAll();
        const result = await running;
        assertExit(result, 1);
        const error = parseJson(result).checks.schema?.error;
        assert.equal(error?.code, 'connection_closed', describeRun(result));
        assert.match(error?.message ?? '', /closed the session/);
        assert.doesNotMatch(error?.hint ?? '', /does not speak/);
      } finally {
        await release();
      }
    });
  });

  test('a peer that answers the TLS request as PostgreSQL does, then hangs up: connection_closed', async () => {
    const peer = createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', () => {
        socket.write('N');
        socket.once('data', () => socket.destroy());
      });
    });
    const port = await new Promise<number>((resolve) => {
      peer.listen(0, '127.0.0.1', () => resolve((peer.address() as { port: number }).port));
    });
    try {
      const { result, report } = await json(
        ['ping-postgres', '--timeout', '3s', '--postgres-dsn', dsnAs('postgres', 'postgres', port)],
        1,
      );
      const error = report.checks.postgres?.error;
      assert.equal(error?.code, 'connection_closed', describeRun(result));
      assert.match(error?.message ?? '', /answered, then closed the connection during start-up/);
    } finally {
      peer.close();
    }
  });
});
