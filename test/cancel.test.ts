/**
 * When bansho stops in the middle of a statement (a signal, --timeout, a library caller's
 * AbortSignal), it cancels that statement on the server before it closes: no session of
 * bansho's is left waiting for a lock, and nothing queues behind its pending lock request.
 * Each case holds a lock in another session so that bansho's statement waits, starts the
 * gateway's INSERT behind it, stops bansho, and then looks at pg_stat_activity.
 *
 * Needs `npm run build` first: the CLI under test is bin/bansho.js → dist/.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { BanshoError, ensureSchema } from '../src/index.js';
import { assertExit, type CliResult, parseJson, runCli } from './support/cli.js';
import { holdLock, startGatewayInsert, waitFor } from './support/locks.js';
import { hasPgBouncer, type PgBouncer, startPgBouncer } from './support/pgbouncer.js';
import {
  type ForwardingProxy,
  freePort,
  makeTlsFiles,
  type PostgresEndpoint,
  type PostgresServer,
  type RedisEndpoint,
  startPostgres,
  startProxy,
  usePostgres,
  useRedis,
} from './support/servers.js';

/** "Within a second of its exit" is the requirement; this machine is shared and noisy. */
const GONE_WITHIN_MS = 4000;

let pg: PostgresEndpoint;
let redis: RedisEndpoint;
const withBouncer = await hasPgBouncer();
let tlsServer: PostgresServer;

before(async () => {
  const tls = await makeTlsFiles();
  [pg, redis, tlsServer] = await Promise.all([usePostgres(), useRedis(), startPostgres({ ssl: tls })]);
});
after(() => tlsServer.stop());

/** A database with bansho's schema, less one index: ensure-schema has work to do on audit_events. */
async function databaseMissingAnIndex(server: PostgresEndpoint, prefix: string): Promise<string> {
  const name = await server.createDatabase(prefix);
  assertExit(await runCli(['ensure-schema', '--quiet', '--postgres-dsn', server.dsn(name)]), 0);
  await server.query('drop index audit_events_ts_idx', name);
  return name;
}

/**
 * Sessions in `database` named `application`, and how many of them wait for a lock (of the
 * kind `lock` names, as pg_stat_activity's wait_event does: `relation`, `advisory`; any kind
 * when absent).
 */
async function sessions(
  server: PostgresEndpoint,
  database: string,
  application: string,
  lock?: 'relation' | 'advisory',
): Promise<{ count: number; waiting: number }> {
  const kind = lock === undefined ? '' : ` and wait_event = '${lock}'`;
  const row = await server.query(
    `select count(*) || ' ' || count(*) filter (where wait_event_type = 'Lock'${kind})
       from pg_stat_activity where datname = '${database}' and application_name = '${application}'`,
  );
  const [count = 0, waiting = 0] = row.trim().split(' ').map(Number);
  return { count, waiting };
}

const waitsForLock = (
  server: PostgresEndpoint,
  database: string,
  application: string,
  lock?: 'relation' | 'advisory',
) =>
  waitFor(`a session of ${application} waiting for a ${lock ?? 'any'} lock`, async () => {
    return (await sessions(server, database, application, lock)).waiting > 0;
  });

/**
 * The two things that must hold once bansho has stopped: no session of bansho's is left, and
 * the gateway's INSERT, which queued behind bansho's lock request, completes.
 */
async function assertNothingLeftBehind(
  server: PostgresEndpoint,
  database: string,
  insert: Promise<void>,
  context: string,
): Promise<void> {
  await waitFor(
    `bansho's session ending (${context})`,
    async () => (await sessions(server, database, 'bansho')).count === 0,
    GONE_WITHIN_MS,
  );
  await Promise.race([
    insert,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error(`the gateway's INSERT still waits (${context})`)), GONE_WITHIN_MS),
    ),
  ]);
}

function describeRun(result: CliResult): string {
  return `exit ${result.code} (signal ${result.signal}) after ${Math.round(result.elapsedMs)} ms\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
}

/**
 * Runs the CLI; once `ready` resolves (bansho waits for a lock, the gateway queues behind it),
 * sends `signal`. Resolves with the run.
 */
async function runAndSignal(
  args: readonly string[],
  signal: NodeJS.Signals,
  ready: () => Promise<void>,
): Promise<CliResult> {
  let child: ChildProcess | undefined;
  const running = runCli(args, {
    killAfterMs: 60_000,
    onSpawn: (spawned) => {
      child = spawned;
    },
  });
  await Promise.race([
    ready(),
    running.then((result) => assert.fail(`exited early: ${describeRun(result)}`)),
  ]);
  child?.kill(signal);
  return running;
}

/**
 * The scenario of the issue: ensure-schema (through `dsn`, on `database` of `server`) waits
 * for CREATE INDEX's lock behind an open transaction that wrote to audit_events, the
 * gateway's INSERT waits behind ensure-schema, and `signal` stops it. `whileWaiting` looks at
 * the server while both wait. Returns the run, once nothing of bansho's is left behind.
 */
async function signalWhileWaiting(
  server: PostgresEndpoint,
  database: string,
  dsn: string,
  signal: NodeJS.Signals,
  whileWaiting: () => Promise<void> = async () => {},
): Promise<CliResult> {
  const release = await holdLock(server.dsn(database), 'lock table audit_events in row exclusive mode');
  let insert: Promise<void> = Promise.resolve();
  try {
    const result = await runAndSignal(
      ['ensure-schema', '--timeout', '60s', '--postgres-dsn', dsn],
      signal,
      async () => {
        await waitsForLock(server, database, 'bansho');
        await whileWaiting();
        insert = startGatewayInsert(server.dsn(database)).done;
        await waitsForLock(server, database, 'gateway');
      },
    );
    await assertNothingLeftBehind(server, database, insert, describeRun(result));
    return result;
  } finally {
    await release();
  }
}

describe('a signal while ensure-schema waits for a lock', { concurrency: true }, () => {
  for (const [signal, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    test(`${signal}: exit ${code}, bansho's statement is cancelled on the server, and the gateway's INSERT goes through`, async () => {
      const name = await databaseMissingAnIndex(pg, `cancel_${signal.toLowerCase()}`);
      assertExit(await signalWhileWaiting(pg, name, pg.dsn(name), signal), code);
    });
  }

  test('with several hosts, the cancel goes to the host that gave the session', async () => {
    const name = await databaseMissingAnIndex(pg, 'cancel_hosts');
    const closed = await freePort();
    const dsn = `postgres://postgres@127.0.0.1:${closed},127.0.0.1:${pg.port}/${name}`;
    assertExit(await signalWhileWaiting(pg, name, dsn, 'SIGTERM'), 143);
  });

  test('over a TLS session (sslmode=require), the cancel is sent and the statement ends', async () => {
    const name = await databaseMissingAnIndex(tlsServer, 'cancel_tls');
    const result = await signalWhileWaiting(
      tlsServer,
      name,
      `${tlsServer.dsn(name)}?sslmode=require`,
      'SIGTERM',
      async () => {
        const overTls = await tlsServer.query(
          `select count(*) from pg_stat_ssl s join pg_stat_activity a using (pid)
          where a.datname = '${name}' and a.application_name = 'bansho' and s.ssl`,
        );
        assert.equal(overTls.trim(), '1', "bansho's session is not a TLS one");
      },
    );
    assertExit(result, 143);
  });
});

describe('through PgBouncer in transaction pooling', {
  skip: withBouncer ? false : 'pgbouncer is not installed',
}, () => {
  let bouncer: PgBouncer;
  before(async () => {
    bouncer = await startPgBouncer({ backend: pg });
  });
  after(() => bouncer?.stop());

  test("SIGTERM: the cancel goes to PgBouncer, which passes it on; the server connection stops waiting, the gateway's INSERT goes through", async () => {
    const name = await databaseMissingAnIndex(pg, 'cancel_bouncer');
    const release = await holdLock(pg.dsn(name), 'lock table audit_events in row exclusive mode');
    try {
      let insert: Promise<void> = Promise.resolve();
      const result = await runAndSignal(
        ['ensure-schema', '--timeout', '60s', '--postgres-dsn', bouncer.dsn(name)],
        'SIGTERM',
        async () => {
          await waitsForLock(pg, name, 'bansho');
          insert = startGatewayInsert(pg.dsn(name)).done;
          await waitsForLock(pg, name, 'gateway');
        },
      );
      assertExit(result, 143);
      // PgBouncer keeps its server connection for the next client: what must go is the wait.
      await waitFor(
        `the server connection to stop waiting (${describeRun(result)})`,
        async () => (await sessions(pg, name, 'bansho')).waiting === 0,
        GONE_WITHIN_MS,
      );
      await Promise.race([
        insert,
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error("the gateway's INSERT still waits")), GONE_WITHIN_MS),
        ),
      ]);
    } finally {
      await release();
    }
  });
});

test('smoke interrupted while reading the schema under a lock: its session is gone after exit 143', async () => {
  const name = await databaseMissingAnIndex(pg, 'cancel_smoke');
  // ACCESS EXCLUSIVE: the catalog functions smoke's schema check calls wait for it.
  const release = await holdLock(pg.dsn(name), 'lock table audit_events in access exclusive mode');
  try {
    const result = await runAndSignal(
      ['smoke', '--timeout', '60s', '--redis-url', redis.url, '--postgres-dsn', pg.dsn(name)],
      'SIGTERM',
      () => waitsForLock(pg, name, 'bansho'),
    );
    assertExit(result, 143);
    await waitFor(
      `bansho's session ending (${describeRun(result)})`,
      async () => (await sessions(pg, name, 'bansho')).count === 0,
      GONE_WITHIN_MS,
    );
  } finally {
    await release();
  }
});

test('--timeout expiring while ensure-schema waits for a lock cancels the statement: exit 1 with timeout, nothing left waiting', async () => {
  const name = await databaseMissingAnIndex(pg, 'cancel_deadline');
  // The schema lock is held first, for half of --timeout: lock_timeout (three quarters of what
  // is left when the transaction begins) bounds each wait on its own, so CREATE INDEX, which
  // then waits for the table, would wait on ~7 s past --timeout: bansho's deadline ends the
  // wait, not the server's bound. Half leaves seconds of margin either way on a busy machine.
  const releaseSchemaLock = await holdLock(
    pg.dsn(name),
    "select pg_advisory_xact_lock(hashtext('bansho.schema'))",
  );
  const releaseTable = await holdLock(pg.dsn(name), 'lock table audit_events in row exclusive mode');
  let insert: Promise<void> | undefined;
  try {
    const running = runCli(['ensure-schema', '--json', '--timeout', '30s', '--postgres-dsn', pg.dsn(name)], {
      killAfterMs: 60_000,
    });
    await waitsForLock(pg, name, 'bansho', 'advisory');
    await new Promise((resolve) => setTimeout(resolve, 15_000));
    await releaseSchemaLock();
    // The gateway's INSERT queues only behind a lock request already made: wait for bansho's
    // CREATE INDEX to wait for the table (on a busy machine the INSERT could otherwise go first,
    // take its compatible lock and never wait).
    await waitsForLock(pg, name, 'bansho', 'relation');
    insert = startGatewayInsert(pg.dsn(name)).done;
    await waitsForLock(pg, name, 'gateway');
    const result = await running;
    assertExit(result, 1);
    assert.equal(parseJson(result).checks.schema?.error?.code, 'timeout', describeRun(result));
    await assertNothingLeftBehind(pg, name, insert, describeRun(result));
  } finally {
    await releaseSchemaLock();
    await releaseTable();
  }
});

test('the library: ensureSchema aborted by its AbortSignal cancels its statement and rejects with interrupted', async () => {
  const name = await databaseMissingAnIndex(pg, 'cancel_library');
  const release = await holdLock(pg.dsn(name), 'lock table audit_events in row exclusive mode');
  const controller = new AbortController();
  try {
    const running = ensureSchema({ dsn: pg.dsn(name), timeoutMs: 60_000, signal: controller.signal });
    running.catch(() => {});
    await waitsForLock(pg, name, 'bansho');
    const { done: insert } = startGatewayInsert(pg.dsn(name));
    await waitsForLock(pg, name, 'gateway');
    controller.abort('SIGTERM');
    await assert.rejects(
      running,
      (error: unknown) => error instanceof BanshoError && error.code === 'interrupted',
    );
    await assertNothingLeftBehind(pg, name, insert, 'ensureSchema aborted');
  } finally {
    await release();
  }
});

describe('the cancel request is bounded', () => {
  let proxy: ForwardingProxy;
  before(async () => {
    // The session goes through; every later connection (the cancel request's) is left
    // unanswered, as by a server or a firewall that drops the cancel connection.
    proxy = await startProxy(pg.port, (index) => index === 0);
  });
  after(() => proxy.close());

  test('a cancel connection that is never answered does not hold the exit', async () => {
    const name = await databaseMissingAnIndex(pg, 'cancel_bounded');
    const release = await holdLock(pg.dsn(name), 'lock table audit_events in row exclusive mode');
    try {
      let signalledAt = 0;
      const result = await runAndSignal(
        [
          'ensure-schema',
          '--timeout',
          '60s',
          '--postgres-dsn',
          `postgres://postgres@127.0.0.1:${proxy.port}/${name}`,
        ],
        'SIGTERM',
        async () => {
          await waitsForLock(pg, name, 'bansho');
          signalledAt = performance.now();
        },
      );
      assertExit(result, 143);
      const exitedAfterMs = performance.now() - signalledAt;
      assert.ok(
        exitedAfterMs < 3000,
        `exited ${Math.round(exitedAfterMs)} ms after the signal: ${describeRun(result)}`,
      );
      assert.ok(proxy.clients().length >= 2, 'no cancel request was attempted');
    } finally {
      await release();
    }
  });
});
