/**
 * What one CLI run costs the servers, counted on the servers' side: exactly one Redis and one
 * PostgreSQL connection per check run, each closed cleanly (PostgreSQL logs no unexpected EOF
 * or reset), and no pool that opens connections ahead of need. Throwaway servers only, since
 * the counts and the log belong to the server. Needs `npm run build` first (the CLI is spawned).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@redis/client';
import { runCli } from './support/cli.js';
import { type PostgresServer, type RedisServer, startPostgres, startRedis } from './support/servers.js';

let redis: RedisServer;
let pg: PostgresServer;
let database: string;
/** The test's own connection to Redis, for INFO; it is open before and after every run. */
let observer: ReturnType<typeof createClient>;

before(async () => {
  [redis, pg] = await Promise.all([
    startRedis(),
    startPostgres({
      // Each log line starts with the session's application_name, so that a run's lines can be
      // told apart; debug1, because an idle session's unexpected EOF is logged at that level.
      settings: {
        log_connections: 'on',
        log_disconnections: 'on',
        log_line_prefix: '%a|',
        log_min_messages: 'debug1',
      },
    }),
  ]);
  database = await pg.createDatabase('connections');
  observer = createClient({ url: redis.url });
  observer.on('error', () => {});
  await observer.connect();
});

after(async () => {
  await observer?.close();
  await Promise.all([redis?.stop(), pg?.stop()]);
});

async function redisConnectionsReceived(): Promise<number> {
  const info = await observer.info('stats');
  return Number(/^total_connections_received:(\d+)/m.exec(info)?.[1]);
}

async function redisClientsConnected(): Promise<number> {
  const info = await observer.info('clients');
  return Number(/^connected_clients:(\d+)/m.exec(info)?.[1]);
}

interface ServerSide {
  redisConnections: number;
  /** Redis connections still open once the run has ended (the test's own one excluded). */
  redisLeftOpen: number;
  /** PostgreSQL sessions the run opened (and ended: the test waits for that). */
  postgresConnections: number;
  /** PostgreSQL log lines of the run's sessions. */
  postgresLog: string[];
}

/** Runs the CLI with its own application_name and counts what the servers saw of it. */
async function countConnections(command: string): Promise<ServerSide> {
  const applicationName = `bansho_test_${randomBytes(4).toString('hex')}`;
  const before = await redisConnectionsReceived();
  const result = await runCli([command, '--quiet'], {
    env: { REDIS_URL: redis.url, POSTGRES_DSN: `${pg.dsn(database)}?application_name=${applicationName}` },
  });
  assert.equal(result.code, 0, `${command} failed: ${result.stderr}`);
  const redisConnections = (await redisConnectionsReceived()) - before;
  const redisLeftOpen = (await redisClientsConnected()) - 1;
  // A backend logs its disconnection as it exits, which may be a moment after the client has.
  const lines = () =>
    pg
      .log()
      .split('\n')
      .filter((line) => line.startsWith(`${applicationName}|`));
  // Sessions are counted by their disconnection lines: the connection lines come before the
  // application_name is known. The client has exited, so its sessions are over; a backend
  // logs its end as it exits, which may be a moment later.
  const sessions = () => lines().filter((line) => line.includes('|LOG:  disconnection: ')).length;
  for (let waited = 0; waited < 3000 && sessions() === 0 && command !== 'ping-redis'; waited += 20) {
    await sleep(20);
  }
  await sleep(100);
  return { redisConnections, redisLeftOpen, postgresConnections: sessions(), postgresLog: lines() };
}

/** PostgreSQL's words for a client that went away without saying goodbye. */
const UNCLEAN_CLOSE = /unexpected EOF|could not receive data|connection reset|could not send data/i;

function assertPostgresClean(seen: ServerSide): void {
  assert.deepEqual(
    seen.postgresLog.filter((line) => UNCLEAN_CLOSE.test(line)),
    [],
    'no session ended without a Terminate message',
  );
}

describe('server-side cost of one run', () => {
  test('ping-redis opens exactly one Redis connection, and closes it', async () => {
    const seen = await countConnections('ping-redis');
    assert.equal(seen.redisConnections, 1);
    assert.equal(seen.redisLeftOpen, 0);
    assert.equal(seen.postgresConnections, 0);
  });

  test('ping-postgres opens exactly one PostgreSQL session and ends it cleanly', async () => {
    const seen = await countConnections('ping-postgres');
    assert.equal(seen.postgresConnections, 1, seen.postgresLog.join('\n'));
    assertPostgresClean(seen);
    assert.equal(seen.redisConnections, 0);
  });

  test('ensure-schema opens exactly one PostgreSQL session and ends it cleanly, with and without work', async () => {
    for (const run of ['creates the schema', 'finds nothing to do']) {
      const seen = await countConnections('ensure-schema');
      assert.equal(seen.postgresConnections, 1, `${run}:\n${seen.postgresLog.join('\n')}`);
      assertPostgresClean(seen);
      assert.equal(seen.redisConnections, 0);
    }
  });

  test('smoke opens exactly one Redis connection and one PostgreSQL session, and closes both cleanly', async () => {
    const seen = await countConnections('smoke');
    assert.equal(seen.redisConnections, 1);
    assert.equal(seen.redisLeftOpen, 0);
    assert.equal(seen.postgresConnections, 1, seen.postgresLog.join('\n'));
    assertPostgresClean(seen);
  });
});
