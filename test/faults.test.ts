/**
 * The fault matrix: real Redis and PostgreSQL servers put into each failure state (stopped,
 * frozen, password required, TLS only, too many connections, dropped or read-only database,
 * replica without master, shutting down), plus small fake peers for the states a real server
 * cannot be put into on demand. Every case runs the built CLI and asserts the exit code, the
 * classified error code in --json, the elapsed time, and that no password was printed.
 *
 * Needs `npm run build` first: the CLI under test is bin/bansho → dist/.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { type CliResult, emptyDir, LEAK_MESSAGE, parseJson, runCli } from './support/cli.js';
import {
  type FakePeer,
  freePort,
  makeOtherCa,
  makeTlsFiles,
  type PostgresServer,
  type RedisServer,
  rawExchange,
  startGarbagePeer,
  startPostgres,
  startPostgresErrorPeer,
  startRedis,
  startRedisErrorPeer,
  startSilentPeer,
  type TlsFiles,
} from './support/servers.js';

// ---------------------------------------------------------------------------
// Secrets: distinctive, and with a character that percent-encoding changes.

/** The one right password, used by every password-protected server in this file. */
const SECRET = 'S3cr3t-Pa55@w0rd';
/** A wrong password that is just as distinctive: printing it would leak a (mistyped) secret too. */
const WRONG = 'Wr0ng-Pa55@w0rd';
const enc = encodeURIComponent;
/** Every form in which a password could show up: as typed, percent-encoded, and its distinctive core. */
const SECRET_FORMS = [SECRET, enc(SECRET), 'S3cr3t-Pa55', WRONG, enc(WRONG), 'Wr0ng-Pa55'];

const PG_USER = 'app_user';
const REDIS_ACL_USER = 'app';
/** Non-timeout failures must come back long before the default 5 s timeout; generous for a busy machine. */
const FAST_MS = 4000;

function assertNoSecrets(result: CliResult, context = ''): void {
  for (const form of SECRET_FORMS) {
    assert.ok(
      !result.stdout.includes(form) && !result.stderr.includes(form),
      `${context}: the password form ${JSON.stringify(form)} was printed\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`,
    );
  }
}

function describeRun(result: CliResult): string {
  return `exit ${result.code} (signal ${result.signal}) after ${Math.round(result.elapsedMs)} ms\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
}

interface Expectation {
  /** The check in `checks.<name>` that must fail. */
  check: string;
  code: string;
  exit?: number;
  /** Elapsed wall time bounds, in milliseconds. */
  maxMs?: number;
  minMs?: number;
}

/**
 * Runs the CLI with --json --verbose (so the drivers' errors are in the output too) and asserts
 * exit code, classified error, elapsed time, no leaked handle and no printed password.
 */
async function expectFailure(
  args: readonly string[],
  env: Record<string, string>,
  expected: Expectation,
  cwd?: string,
): Promise<CliResult> {
  const result = await runCli([...args, '--json', '--verbose'], { env, ...(cwd ? { cwd } : {}) });
  const context = describeRun(result);
  assert.equal(result.code, expected.exit ?? 1, context);
  const report = parseJson(result);
  assert.equal(report.status, 'fail', context);
  const check = report.checks[expected.check];
  assert.ok(check, `no checks.${expected.check} in the report\n${context}`);
  assert.equal(check.status, 'fail', context);
  assert.ok(check.error, `checks.${expected.check} has no error\n${context}`);
  assert.equal(check.error.code, expected.code, context);
  assert.ok(check.error.message.length > 0, `empty message\n${context}`);
  assert.ok(check.error.hint.length > 0, `empty hint\n${context}`);
  assert.ok(result.elapsedMs <= (expected.maxMs ?? FAST_MS), `too slow: ${context}`);
  if (expected.minMs !== undefined) assert.ok(result.elapsedMs >= expected.minMs, `too fast: ${context}`);
  assert.ok(!result.stderr.includes(LEAK_MESSAGE), `leaked a handle: ${context}`);
  assertNoSecrets(result, context);
  return result;
}

async function expectPass(
  args: readonly string[],
  env: Record<string, string>,
  checkName: string,
): Promise<CliResult> {
  const result = await runCli([...args, '--json', '--verbose'], { env });
  const context = describeRun(result);
  assert.equal(result.code, 0, context);
  const report = parseJson(result);
  assert.equal(report.checks[checkName]?.status, 'pass', context);
  assert.ok(result.elapsedMs <= FAST_MS, `too slow: ${context}`);
  assert.ok(!result.stderr.includes(LEAK_MESSAGE), `leaked a handle: ${context}`);
  assertNoSecrets(result, context);
  return result;
}

// ---------------------------------------------------------------------------
// Small helpers around real servers

/** Sends one inline command and resolves with the raw reply once `until` matches. */
function redisRaw(port: number, command: string, until: RegExp): Promise<string> {
  return rawExchange(port, `${command}\r\n`, until, 5000);
}

/** The redis-server's pid, from INFO server. */
async function redisPid(port: number, password?: string): Promise<number> {
  const auth = password === undefined ? '' : `AUTH ${password}\r\n`;
  const info = await redisRaw(port, `${auth}INFO server`, /process_id:\d+\r\n/);
  const pid = Number(/process_id:(\d+)/.exec(info)?.[1]);
  assert.ok(pid > 0, `no process_id in ${info}`);
  return pid;
}

/** The postmaster's pid, from postmaster.pid in its data directory. */
async function postmasterPid(pg: PostgresServer): Promise<number> {
  const dataDir = (await pg.query('show data_directory')).trim();
  const pid = Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
  assert.ok(pid > 0, `no pid in ${dataDir}/postmaster.pid`);
  return pid;
}

/** A raw TCP connection held open (and proven registered by a PONG) to use up a Redis client slot. */
async function holdRedisConnection(port: number): Promise<Socket> {
  const socket = createConnection({ host: '127.0.0.1', port });
  socket.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    let received = '';
    socket.once('error', reject);
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (received.includes('+PONG')) resolve();
    });
    socket.write('PING\r\n');
  });
  socket.on('error', () => {});
  return socket;
}

/** A listener that counts the connections made to it, and never answers (or sends `reply` and hangs up). */
function startFakePeer(reply?: string): Promise<FakePeer> {
  return reply === undefined ? startSilentPeer() : startGarbagePeer(reply);
}

// ---------------------------------------------------------------------------
// The servers, started once for the whole file

let tls: TlsFiles;
let otherCa: string;
/** requirepass SECRET, plus an ACL user `app` with the same password. */
let redisAuth: RedisServer;
/** TLS only. */
let redisTls: RedisServer;
/** A replica of a closed port with replica-serve-stale-data no: answers MASTERDOWN. */
let redisMasterDown: RedisServer;
/** A replica of a closed port serving stale data: reads work, writes get READONLY. */
let redisStaleReplica: RedisServer;
/** maxclients 1, with the one slot held by `heldRedis`. */
let redisFull: RedisServer;
let heldRedis: Socket;
/** Started, then SIGSTOPped: accepts TCP (the kernel's backlog) and never answers. */
let redisFrozen: RedisServer;
let redisFrozenPid: number;
/** Started and stopped: its port refuses connections. */
let redisStoppedPort: number;

/** ssl off; role app_user must log in with SCRAM and SECRET; everyone else is trusted. */
let pgMain: PostgresServer;
/** ssl on with the test CA's certificate. */
let pgTls: PostgresServer;
/** max_connections 4, every slot held by `heldPg`. */
let pgFull: PostgresServer;
const heldPg: postgres.Sql[] = [];
/** Smart shutdown in progress (SIGTERM with a session still open): refuses new sessions with 57P03. */
let pgShuttingDown: PostgresServer;
let pgShutdownHolder: postgres.Sql;
/** Postmaster SIGSTOPped. */
let pgFrozen: PostgresServer;
let pgFrozenPid: number;
let pgStoppedPort: number;

const peers: FakePeer[] = [];
const servers: Array<{ stop(): Promise<void> }> = [];

function track<T extends { stop(): Promise<void> }>(server: T): T {
  servers.push(server);
  return server;
}

const pgClient = (port: number) =>
  postgres({
    host: '127.0.0.1',
    port,
    username: 'postgres',
    database: 'postgres',
    max: 1,
    idle_timeout: 0,
    connect_timeout: 10,
    onnotice: () => {},
  });

before(async () => {
  [tls, otherCa] = await Promise.all([makeTlsFiles(), makeOtherCa()]);
  const closedPort = await freePort();
  const acl = ['--user', REDIS_ACL_USER, 'on', `>${SECRET}`, '~*', '&*', '+@all'];
  let redisStopped: RedisServer;
  let pgStopped: PostgresServer;
  [
    redisAuth,
    redisTls,
    redisMasterDown,
    redisStaleReplica,
    redisFull,
    redisFrozen,
    redisStopped,
    pgMain,
    pgTls,
    pgFull,
    pgShuttingDown,
    pgFrozen,
    pgStopped,
  ] = await Promise.all([
    startRedis({ password: SECRET, args: acl }).then(track),
    startRedis({ tls }).then(track),
    startRedis({ replicaOf: { host: '127.0.0.1', port: closedPort }, replicaServeStaleData: false }).then(
      track,
    ),
    startRedis({ replicaOf: { host: '127.0.0.1', port: closedPort }, replicaServeStaleData: true }).then(
      track,
    ),
    startRedis({ maxclients: 1 }).then(track),
    startRedis().then(track),
    startRedis(),
    startPostgres({ passwordUser: { name: PG_USER, password: SECRET } }).then(track),
    startPostgres({ ssl: tls }).then(track),
    startPostgres({ maxConnections: 4 }).then(track),
    startPostgres().then(track),
    startPostgres().then(track),
    startPostgres(),
  ]);

  // Stopped servers: their ports refuse.
  redisStoppedPort = redisStopped.port;
  pgStoppedPort = pgStopped.port;
  await Promise.all([redisStopped.stop(), pgStopped.stop()]);

  // maxclients 1: one raw connection takes the only slot.
  heldRedis = await holdRedisConnection(redisFull.port);

  // max_connections 4 (none reserved): four idle sessions take every slot.
  for (let i = 0; i < 4; i++) {
    const sql = pgClient(pgFull.port);
    heldPg.push(sql);
    await sql`select 1`;
  }

  // Frozen servers: SIGSTOP, resumed in after() so that they can be stopped.
  redisFrozenPid = await redisPid(redisFrozen.port);
  pgFrozenPid = await postmasterPid(pgFrozen);
  process.kill(redisFrozenPid, 'SIGSTOP');
  process.kill(pgFrozenPid, 'SIGSTOP');

  // Smart shutdown: the postmaster waits for the open session and refuses new ones meanwhile.
  const shutdownPid = await postmasterPid(pgShuttingDown);
  pgShutdownHolder = pgClient(pgShuttingDown.port);
  await pgShutdownHolder`select 1`;
  process.kill(shutdownPid, 'SIGTERM');
});

after(async () => {
  for (const pid of [redisFrozenPid, pgFrozenPid]) {
    try {
      if (pid) process.kill(pid, 'SIGCONT');
    } catch {
      // Already gone.
    }
  }
  heldRedis?.destroy();
  await Promise.all([...heldPg, pgShutdownHolder].filter(Boolean).map((sql) => sql.end({ timeout: 0 })));
  await Promise.all([...servers.map((server) => server.stop()), ...peers.map((peer) => peer.close())]);
});

const redisUrl = (port: number, userinfo = '', path = '', scheme = 'redis') =>
  `${scheme}://${userinfo === '' ? '' : `${userinfo}@`}127.0.0.1:${port}${path}`;
const pgDsn = (port: number, userinfo = 'postgres', database = 'postgres', query = '') =>
  `postgres://${userinfo}@127.0.0.1:${port}/${database}${query}`;

// ---------------------------------------------------------------------------
// connection_refused

describe('connection_refused', () => {
  test('ping-redis exits 1 with connection_refused when the Redis server is stopped', async () => {
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisStoppedPort) },
      {
        check: 'redis',
        code: 'connection_refused',
      },
    );
  });

  test('ping-postgres exits 1 with connection_refused when the PostgreSQL server is stopped', async () => {
    await expectFailure(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(pgStoppedPort) },
      {
        check: 'postgres',
        code: 'connection_refused',
      },
    );
  });

  test('smoke exits 1 with connection_refused on every check when both servers are stopped', async () => {
    const env = {
      REDIS_URL: redisUrl(redisStoppedPort, `:${enc(SECRET)}`),
      POSTGRES_DSN: pgDsn(pgStoppedPort, `${PG_USER}:${enc(SECRET)}`),
    };
    const result = await expectFailure(['smoke'], env, { check: 'redis', code: 'connection_refused' });
    const report = parseJson(result);
    assert.equal(report.checks.postgres?.error?.code, 'connection_refused');
    assert.equal(report.checks.schema?.error?.code, 'connection_refused');
  });
});

// ---------------------------------------------------------------------------
// dns

describe('dns', () => {
  test('ping-redis exits 1 with dns when the host does not resolve', async () => {
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: `redis://:${enc(SECRET)}@nonexistent.invalid:6379` },
      { check: 'redis', code: 'dns' },
    );
  });

  test('ping-postgres exits 1 with dns when the host does not resolve', async () => {
    await expectFailure(
      ['ping-postgres'],
      { POSTGRES_DSN: `postgres://${PG_USER}:${enc(SECRET)}@nonexistent.invalid:5432/postgres` },
      { check: 'postgres', code: 'dns' },
    );
  });
});

// ---------------------------------------------------------------------------
// auth_failed

describe('auth_failed', () => {
  test('ping-redis exits 1 with auth_failed when REDIS_URL has no password for a server that requires one', async () => {
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisAuth.port) },
      {
        check: 'redis',
        code: 'auth_failed',
      },
    );
  });

  test('ping-redis exits 1 with auth_failed when REDIS_URL has the wrong password', async () => {
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisAuth.port, `:${enc(WRONG)}`) },
      {
        check: 'redis',
        code: 'auth_failed',
      },
    );
  });

  test('ping-redis exits 1 with auth_failed when an ACL user has the wrong password', async () => {
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisAuth.port, `${REDIS_ACL_USER}:${enc(WRONG)}`) },
      { check: 'redis', code: 'auth_failed' },
    );
  });

  test('ping-redis exits 1 with auth_failed for an unknown ACL user', async () => {
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisAuth.port, `nobody:${enc(SECRET)}`) },
      { check: 'redis', code: 'auth_failed' },
    );
  });

  test('ping-redis passes with the right password for the default user and for an ACL user', async () => {
    await expectPass(['ping-redis'], { REDIS_URL: redisUrl(redisAuth.port, `:${enc(SECRET)}`) }, 'redis');
    await expectPass(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisAuth.port, `${REDIS_ACL_USER}:${enc(SECRET)}`) },
      'redis',
    );
  });

  test('ping-postgres exits 1 with auth_failed when POSTGRES_DSN has the wrong password', async () => {
    await expectFailure(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(pgMain.port, `${PG_USER}:${enc(WRONG)}`) },
      {
        check: 'postgres',
        code: 'auth_failed',
      },
    );
  });

  test('ping-postgres exits 1 with auth_failed when POSTGRES_DSN has no password for a password role', async () => {
    await expectFailure(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(pgMain.port, PG_USER) },
      {
        check: 'postgres',
        code: 'auth_failed',
      },
    );
  });

  test('ping-postgres exits 1 with auth_failed for a role that does not exist', async () => {
    await expectFailure(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(pgMain.port, `nobody:${enc(SECRET)}`) },
      {
        check: 'postgres',
        code: 'auth_failed',
      },
    );
  });

  test('ping-postgres passes with the right password', async () => {
    await expectPass(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(pgMain.port, `${PG_USER}:${enc(SECRET)}`) },
      'postgres',
    );
  });
});

// ---------------------------------------------------------------------------
// tls

describe('tls', () => {
  test('ping-redis exits 1 with tls when the rediss:// server certificate is not trusted', async () => {
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisTls.port, '', '', 'rediss') },
      { check: 'redis', code: 'tls' },
    );
  });

  test('ping-redis exits 1 with tls when NODE_EXTRA_CA_CERTS holds another CA', async () => {
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisTls.port, '', '', 'rediss'), NODE_EXTRA_CA_CERTS: otherCa },
      { check: 'redis', code: 'tls' },
    );
  });

  test('ping-redis passes over rediss:// when NODE_EXTRA_CA_CERTS trusts the test CA', async () => {
    const result = await expectPass(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisTls.port, '', '', 'rediss'), NODE_EXTRA_CA_CERTS: tls.caCert },
      'redis',
    );
    assert.match(parseJson(result).checks.redis?.version ?? '', /^Redis \d/);
  });

  test('ping-postgres exits 1 with tls for sslmode=verify-full when sslrootcert is another CA', async () => {
    await expectFailure(
      ['ping-postgres'],
      {
        POSTGRES_DSN: pgDsn(
          pgTls.port,
          'postgres',
          'postgres',
          `?sslmode=verify-full&sslrootcert=${otherCa}`,
        ),
      },
      { check: 'postgres', code: 'tls' },
    );
  });

  test('ping-postgres exits 1 with tls for sslmode=verify-full without sslrootcert (self-signed CA not trusted)', async () => {
    await expectFailure(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(pgTls.port, 'postgres', 'postgres', '?sslmode=verify-full') },
      { check: 'postgres', code: 'tls' },
    );
  });

  test('ping-postgres exits 1 with tls for sslmode=require against a server with ssl off', async () => {
    await expectFailure(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(pgMain.port, `${PG_USER}:${enc(SECRET)}`, 'postgres', '?sslmode=require') },
      { check: 'postgres', code: 'tls' },
    );
  });

  for (const [mode, query] of [
    ['require', '?sslmode=require'],
    ['verify-ca', '?sslmode=verify-ca&sslrootcert=CA'],
    ['verify-full', '?sslmode=verify-full&sslrootcert=CA'],
  ] as const) {
    test(`ping-postgres passes with sslmode=${mode} against a TLS server${mode === 'require' ? '' : ' whose CA is sslrootcert'}`, async () => {
      await expectPass(
        ['ping-postgres'],
        { POSTGRES_DSN: pgDsn(pgTls.port, 'postgres', 'postgres', query.replace('CA', tls.caCert)) },
        'postgres',
      );
    });
  }

  test('ping-postgres passes with sslmode=verify-full for host name localhost (in the certificate)', async () => {
    await expectPass(
      ['ping-postgres'],
      {
        POSTGRES_DSN: `postgres://postgres@localhost:${pgTls.port}/postgres?sslmode=verify-full&sslrootcert=${tls.caCert}`,
      },
      'postgres',
    );
  });
});

// ---------------------------------------------------------------------------
// not_ready

describe('not_ready', () => {
  test('ping-redis exits 1 with not_ready for a replica whose master is down (MASTERDOWN)', async () => {
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisMasterDown.port) },
      {
        check: 'redis',
        code: 'not_ready',
      },
    );
  });

  test('ping-postgres exits 1 with not_ready while the server is shutting down', async () => {
    await expectFailure(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(pgShuttingDown.port) },
      {
        check: 'postgres',
        code: 'not_ready',
      },
    );
  });

  test('ping-redis exits 1 with not_ready when the server is loading its dataset (fake -LOADING peer)', async () => {
    const peer = await startRedisErrorPeer('LOADING Redis is loading the dataset in memory');
    peers.push(peer);
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: `redis://:${enc(SECRET)}@127.0.0.1:${peer.port}` },
      {
        check: 'redis',
        code: 'not_ready',
      },
    );
  });

  test('ping-postgres exits 1 with not_ready when the server is starting up (fake 57P03 peer)', async () => {
    const peer = await startPostgresErrorPeer({
      severity: 'FATAL',
      code: '57P03',
      message: 'the database system is starting up',
    });
    peers.push(peer);
    await expectFailure(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(peer.port, `${PG_USER}:${enc(SECRET)}`) },
      { check: 'postgres', code: 'not_ready' },
    );
  });
});

// ---------------------------------------------------------------------------
// unknown_database

describe('unknown_database', () => {
  test('ping-postgres exits 1 with unknown_database when the database was dropped', async () => {
    const database = await pgMain.createDatabase('dropped');
    await pgMain.query(`DROP DATABASE ${database}`);
    await expectFailure(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(pgMain.port, `${PG_USER}:${enc(SECRET)}`, database) },
      { check: 'postgres', code: 'unknown_database' },
    );
  });

  test('ensure-schema exits 1 with unknown_database when the database does not exist', async () => {
    await expectFailure(
      ['ensure-schema'],
      { POSTGRES_DSN: pgDsn(pgMain.port, 'postgres', 'no_such_db') },
      {
        check: 'schema',
        code: 'unknown_database',
      },
    );
  });

  test('ping-redis exits 1 with unknown_database for a database index beyond `databases` (/99)', async () => {
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisAuth.port, `:${enc(SECRET)}`, '/99') },
      {
        check: 'redis',
        code: 'unknown_database',
      },
    );
  });
});

// ---------------------------------------------------------------------------
// read_only

describe('read_only', () => {
  let readOnlyDb: string;
  before(async () => {
    readOnlyDb = await pgMain.createDatabase('readonly');
    await pgMain.query(`ALTER DATABASE ${readOnlyDb} SET default_transaction_read_only = on`);
  });

  test('ping-postgres exits 1 with read_only when sessions are read-only (default_transaction_read_only)', async () => {
    await expectFailure(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(pgMain.port, `${PG_USER}:${enc(SECRET)}`, readOnlyDb) },
      { check: 'postgres', code: 'read_only' },
    );
  });

  test('ensure-schema exits 1 with read_only when it cannot create tables in a read-only database', async () => {
    await expectFailure(
      ['ensure-schema'],
      { POSTGRES_DSN: pgDsn(pgMain.port, 'postgres', readOnlyDb) },
      {
        check: 'schema',
        code: 'read_only',
      },
    );
  });

  test('smoke exits 1 with read_only for a Redis replica (its write probe gets READONLY) while PostgreSQL passes', async () => {
    const database = await pgMain.createDatabase('smoke_ro');
    const result = await expectFailure(
      ['smoke'],
      {
        REDIS_URL: redisUrl(redisStaleReplica.port),
        POSTGRES_DSN: pgDsn(pgMain.port, `${PG_USER}:${enc(SECRET)}`, database),
      },
      { check: 'redis', code: 'read_only' },
    );
    assert.equal(parseJson(result).checks.postgres?.status, 'pass', describeRun(result));
  });

  test('ping-redis --no-write-probe exits 1 with read_only for a replica serving stale data: its role tells', async () => {
    const result = await expectFailure(
      ['ping-redis', '--no-write-probe'],
      { REDIS_URL: redisUrl(redisStaleReplica.port) },
      { check: 'redis', code: 'read_only' },
    );
    assert.match(parseJson(result).checks.redis?.error?.message ?? '', /^role: replica of 127\.0\.0\.1:\d+/);
  });
});

// ---------------------------------------------------------------------------
// too_many_connections

describe('too_many_connections', () => {
  test('ping-redis exits 1 with too_many_connections when maxclients is reached', async () => {
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisFull.port) },
      {
        check: 'redis',
        code: 'too_many_connections',
      },
    );
  });

  test('ping-postgres exits 1 with too_many_connections when max_connections is reached', async () => {
    await expectFailure(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(pgFull.port) },
      {
        check: 'postgres',
        code: 'too_many_connections',
      },
    );
  });
});

// ---------------------------------------------------------------------------
// protocol

describe('protocol', () => {
  test('ping-redis exits 1 with protocol when REDIS_URL points at a PostgreSQL server', async () => {
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: redisUrl(pgMain.port, `:${enc(SECRET)}`) },
      {
        check: 'redis',
        code: 'protocol',
      },
    );
  });

  test('ping-postgres exits 1 with protocol, after one connection, when the peer answers with HTTP (fake peer)', async () => {
    const peer = await startFakePeer('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
    try {
      const result = await expectFailure(
        ['ping-postgres', '--timeout', '3s'],
        { POSTGRES_DSN: pgDsn(peer.port, `${PG_USER}:${enc(SECRET)}`) },
        { check: 'postgres', code: 'protocol', maxMs: 2500 },
      );
      // A peer that hangs up during start-up must not be redialled in a loop.
      assert.equal(peer.connections(), 1, `connections made: ${peer.connections()}\n${describeRun(result)}`);
    } finally {
      await peer.close();
    }
  });

  test('ping-redis exits 1 with protocol when the peer answers with HTTP (fake peer)', async () => {
    const peer = await startGarbagePeer('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
    peers.push(peer);
    await expectFailure(
      ['ping-redis'],
      { REDIS_URL: `redis://:${enc(SECRET)}@127.0.0.1:${peer.port}` },
      {
        check: 'redis',
        code: 'protocol',
      },
    );
  });
});

// ---------------------------------------------------------------------------
// timeout: a hard bound around the whole check

describe('timeout', () => {
  const bounds = { minMs: 450, maxMs: 3000 };

  test('ping-redis exits 1 with timeout close to --timeout when the Redis server is frozen (SIGSTOP)', async () => {
    const result = await expectFailure(
      ['ping-redis', '--timeout', '500ms'],
      { REDIS_URL: redisUrl(redisFrozen.port, `:${enc(SECRET)}`) },
      { check: 'redis', code: 'timeout', ...bounds },
    );
    const latency = parseJson(result).checks.redis?.latencyMs ?? 0;
    assert.ok(latency >= 450 && latency < 1500, `latencyMs ${latency}`);
  });

  test('ping-postgres exits 1 with timeout close to --timeout when the postmaster is frozen (SIGSTOP)', async () => {
    const result = await expectFailure(
      ['ping-postgres', '--timeout', '500ms'],
      { POSTGRES_DSN: pgDsn(pgFrozen.port, `${PG_USER}:${enc(SECRET)}`) },
      { check: 'postgres', code: 'timeout', ...bounds },
    );
    const latency = parseJson(result).checks.postgres?.latencyMs ?? 0;
    assert.ok(latency >= 450 && latency < 1500, `latencyMs ${latency}`);
  });

  for (const [command, env] of [
    ['ping-redis', (port: number) => ({ REDIS_URL: `redis://:${enc(SECRET)}@127.0.0.1:${port}` })],
    ['ping-postgres', (port: number) => ({ POSTGRES_DSN: pgDsn(port, `${PG_USER}:${enc(SECRET)}`) })],
    ['ensure-schema', (port: number) => ({ POSTGRES_DSN: pgDsn(port, `${PG_USER}:${enc(SECRET)}`) })],
  ] as const) {
    test(`${command} exits 1 with timeout when a peer accepts TCP and says nothing, having connected once (fake silent peer)`, async () => {
      const peer = await startFakePeer();
      try {
        const result = await expectFailure([command, '--timeout', '500ms'], env(peer.port), {
          check: command === 'ensure-schema' ? 'schema' : command.replace('ping-', ''),
          code: 'timeout',
          ...bounds,
        });
        // A check that gave up must not open another connection on its way out.
        assert.equal(
          peer.connections(),
          1,
          `connections made: ${peer.connections()}\n${describeRun(result)}`,
        );
      } finally {
        await peer.close();
      }
    });
  }

  test('ping-postgres on a silent peer exits right after its --timeout 1500ms report, with no handle left open', async () => {
    const peer = await startFakePeer();
    try {
      const result = await expectFailure(
        ['ping-postgres', '--timeout', '1500ms'],
        { POSTGRES_DSN: pgDsn(peer.port, `${PG_USER}:${enc(SECRET)}`) },
        { check: 'postgres', code: 'timeout', minMs: 1450, maxMs: 4000 },
      );
      const latency = parseJson(result).checks.postgres?.latencyMs ?? 0;
      // Start-up plus exit: a few hundred milliseconds, not another timeout's worth.
      assert.ok(result.elapsedMs - latency < 1200, `lingered after the report: ${describeRun(result)}`);
      assert.equal(peer.connections(), 1, `connections made: ${peer.connections()}\n${describeRun(result)}`);
    } finally {
      await peer.close();
    }
  });

  test('smoke bounds every check by --timeout, concurrently, when both peers are silent', async () => {
    const peer = await startFakePeer();
    try {
      const result = await expectFailure(
        ['smoke', '--timeout', '500ms'],
        {
          REDIS_URL: `redis://:${enc(SECRET)}@127.0.0.1:${peer.port}`,
          POSTGRES_DSN: pgDsn(peer.port, `${PG_USER}:${enc(SECRET)}`),
        },
        { check: 'redis', code: 'timeout', ...bounds },
      );
      const report = parseJson(result);
      assert.equal(report.checks.postgres?.error?.code, 'timeout');
      assert.equal(report.checks.schema?.error?.code, 'timeout');
      // One per server: the schema check runs on the PostgreSQL check's connection.
      assert.equal(peer.connections(), 2, `connections made: ${peer.connections()}\n${describeRun(result)}`);
    } finally {
      await peer.close();
    }
  });

  test('ping-postgres exits 1 with timeout when pointed at a Redis server (which waits for a newline forever)', async () => {
    await expectFailure(
      ['ping-postgres', '--timeout', '500ms'],
      { POSTGRES_DSN: pgDsn(redisAuth.port) },
      {
        check: 'postgres',
        code: 'timeout',
        ...bounds,
      },
    );
  });
});

// ---------------------------------------------------------------------------
// Secrets: no password appears anywhere, in any mode

const MODES: ReadonlyArray<readonly string[]> = [[], ['--json'], ['--verbose'], ['--json', '--verbose']];

async function expectNoLeakInAnyMode(
  args: readonly string[],
  env: Record<string, string>,
  exit: number,
  cwd?: string,
): Promise<void> {
  const results = await Promise.all(
    MODES.map((mode) => runCli([...args, ...mode], { env, ...(cwd ? { cwd } : {}) })),
  );
  results.forEach((result, index) => {
    const context = `mode ${JSON.stringify(MODES[index])}: ${describeRun(result)}`;
    assert.equal(result.code, exit, context);
    assert.ok(result.stdout.length + result.stderr.length > 0, `printed nothing: ${context}`);
    assertNoSecrets(result, context);
  });
}

describe('secrets are never printed', () => {
  test('a wrong password in REDIS_URL is not printed by ping-redis in any mode', async () => {
    await expectNoLeakInAnyMode(['ping-redis'], { REDIS_URL: redisUrl(redisAuth.port, `:${enc(WRONG)}`) }, 1);
  });

  test('the right password in REDIS_URL is not printed by a passing ping-redis in any mode', async () => {
    await expectNoLeakInAnyMode(
      ['ping-redis'],
      { REDIS_URL: redisUrl(redisAuth.port, `:${enc(SECRET)}`) },
      0,
    );
  });

  test('a password given with --redis-url / --postgres-dsn is not printed by smoke in any mode', async () => {
    await expectNoLeakInAnyMode(
      [
        'smoke',
        '--redis-url',
        redisUrl(redisAuth.port, `${REDIS_ACL_USER}:${enc(WRONG)}`),
        '--postgres-dsn',
        pgDsn(pgMain.port, `${PG_USER}:${enc(WRONG)}`),
      ],
      {},
      1,
    );
  });

  test('a password typed without percent-encoding is not printed in any mode', async () => {
    // `@` unencoded: URL parsing takes the last `@` as the end of the userinfo.
    await expectNoLeakInAnyMode(['ping-redis'], { REDIS_URL: redisUrl(redisAuth.port, `:${WRONG}`) }, 1);
    await expectNoLeakInAnyMode(
      ['ping-postgres'],
      { POSTGRES_DSN: pgDsn(pgMain.port, `${PG_USER}:${WRONG}`) },
      1,
    );
  });

  test('a wrong password in POSTGRES_DSN is not printed by ping-postgres and ensure-schema in any mode', async () => {
    const env = { POSTGRES_DSN: pgDsn(pgMain.port, `${PG_USER}:${enc(WRONG)}`) };
    await expectNoLeakInAnyMode(['ping-postgres'], env, 1);
    await expectNoLeakInAnyMode(['ensure-schema'], env, 1);
  });

  test('passwords read from .env are not printed in any mode', async () => {
    const cwd = emptyDir();
    await writeFile(
      join(cwd, '.env'),
      [
        `REDIS_URL=${redisUrl(redisAuth.port, `:${enc(WRONG)}`)}`,
        `POSTGRES_DSN=${pgDsn(pgMain.port, `${PG_USER}:${enc(SECRET)}`)}`,
        '',
      ].join('\n'),
    );
    await expectNoLeakInAnyMode(['smoke'], {}, 1, cwd);
  });

  for (const [name, env] of [
    ['REDIS_URL', { REDIS_URL: `redis://:${SECRET}@[bad` }],
    ['REDIS_URL with invalid percent-encoding', { REDIS_URL: 'redis://:S3cr3t-Pa55%zz@127.0.0.1:1' }],
    ['REDIS_URL with an unsupported scheme', { REDIS_URL: `http://:${enc(SECRET)}@127.0.0.1:1` }],
    ['POSTGRES_DSN', { POSTGRES_DSN: `postgres://${PG_USER}:${SECRET}@[bad/db` }],
    ['POSTGRES_DSN with an unsupported parameter', { POSTGRES_DSN: `postgres://u:${enc(SECRET)}@h/db?x=1` }],
  ] as const) {
    test(`a malformed ${name} holding a password exits 2 without printing it in any mode`, async () => {
      await expectNoLeakInAnyMode(['smoke'], env, 2);
    });
  }

  test('a malformed URL from .env or a flag exits 2 without printing its password in any mode', async () => {
    const cwd = emptyDir();
    await writeFile(join(cwd, '.env'), `POSTGRES_DSN=postgres://${PG_USER}:${SECRET}@[bad/db\n`);
    await expectNoLeakInAnyMode(['ping-postgres'], {}, 2, cwd);
    await expectNoLeakInAnyMode(['ping-redis', '--redis-url', `redis://:${SECRET}@[bad`], {}, 2);
  });

  test('a password in a flag the command does not take (--redis-url=… to ping-postgres) is not echoed', async () => {
    await expectNoLeakInAnyMode(['ping-postgres', `--redis-url=redis://:${enc(SECRET)}@127.0.0.1:1`], {}, 2);
  });
});

// ---------------------------------------------------------------------------
// Bad input: exit 2, one line naming the culprit, no connection attempted

describe('bad input exits 2 with one line on stderr and connects to nothing', () => {
  let listener: FakePeer;
  before(async () => {
    listener = await startFakePeer();
  });
  after(() => listener.close());

  const good = () => ({
    REDIS_URL: `redis://127.0.0.1:${listener.port}`,
    POSTGRES_DSN: `postgres://postgres@127.0.0.1:${listener.port}/postgres`,
  });

  const cases: Array<{
    name: string;
    args: () => string[];
    env?: () => Record<string, string>;
    envFile?: () => string;
    nodeArgs?: string[];
    mentions: RegExp;
  }> = [
    {
      name: 'an unsupported scheme in REDIS_URL',
      args: () => ['ping-redis'],
      env: () => ({ ...good(), REDIS_URL: `http://127.0.0.1:${listener.port}` }),
      mentions: /REDIS_URL/,
    },
    {
      name: 'an unsupported scheme in POSTGRES_DSN',
      args: () => ['ping-postgres'],
      env: () => ({ ...good(), POSTGRES_DSN: `mysql://root@127.0.0.1:${listener.port}/db` }),
      mentions: /POSTGRES_DSN/,
    },
    {
      name: 'a malformed POSTGRES_DSN',
      args: () => ['smoke'],
      env: () => ({ ...good(), POSTGRES_DSN: 'postgres://u@[bad/db' }),
      mentions: /POSTGRES_DSN/,
    },
    {
      name: 'an unknown sslmode in POSTGRES_DSN',
      args: () => ['smoke'],
      env: () => ({ ...good(), POSTGRES_DSN: `${good().POSTGRES_DSN}?sslmode=bogus` }),
      mentions: /POSTGRES_DSN/,
    },
    {
      name: 'an unreadable sslrootcert in POSTGRES_DSN',
      args: () => ['ping-postgres'],
      env: () => ({
        ...good(),
        POSTGRES_DSN: `${good().POSTGRES_DSN}?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt`,
      }),
      mentions: /sslrootcert/,
    },
    {
      name: 'a non-numeric database in REDIS_URL',
      args: () => ['smoke'],
      env: () => ({ ...good(), REDIS_URL: `redis://127.0.0.1:${listener.port}/abc` }),
      mentions: /REDIS_URL/,
    },
    {
      name: 'an empty REDIS_URL',
      args: () => ['smoke'],
      env: () => ({ ...good(), REDIS_URL: '' }),
      mentions: /REDIS_URL/,
    },
    {
      name: 'an empty POSTGRES_DSN',
      args: () => ['smoke'],
      env: () => ({ ...good(), POSTGRES_DSN: '' }),
      mentions: /POSTGRES_DSN/,
    },
    {
      name: 'a bad REDIS_URL in .env',
      args: () => ['smoke'],
      env: () => ({ POSTGRES_DSN: good().POSTGRES_DSN }),
      envFile: () => `REDIS_URL=ftp://127.0.0.1:${listener.port}\n`,
      mentions: /REDIS_URL \(from \.env\)/,
    },
    {
      name: 'a bad --redis-url',
      args: () => ['smoke', '--redis-url', `ftp://127.0.0.1:${listener.port}`],
      env: good,
      mentions: /--redis-url/,
    },
    {
      name: 'a non-numeric --timeout',
      args: () => ['smoke', '--timeout', 'abc'],
      env: good,
      mentions: /--timeout/,
    },
    {
      name: 'a bare-number --timeout (unit missing)',
      args: () => ['ping-redis', '--timeout', '5'],
      env: good,
      mentions: /--timeout/,
    },
    {
      name: 'a negative --timeout',
      args: () => ['ping-redis', '--timeout', '-5s'],
      env: good,
      mentions: /--timeout/,
    },
    {
      name: 'a negative --timeout=…',
      args: () => ['ping-postgres', '--timeout=-1s'],
      env: good,
      mentions: /--timeout/,
    },
    {
      name: 'a zero --timeout',
      args: () => ['ping-redis', '--timeout', '0ms'],
      env: good,
      mentions: /--timeout/,
    },
    {
      name: 'a non-numeric --wait',
      args: () => ['ping-redis', '--wait', 'soon'],
      env: good,
      mentions: /--wait/,
    },
    {
      name: 'a negative --wait',
      args: () => ['smoke', '--wait', '-1s'],
      env: good,
      mentions: /--wait/,
    },
    {
      name: 'a non-numeric --interval',
      args: () => ['ping-redis', '--wait', '1s', '--interval', 'often'],
      env: good,
      mentions: /--interval/,
    },
    {
      name: '--interval without --wait',
      args: () => ['ping-redis', '--interval', '1s'],
      env: good,
      mentions: /--interval/,
    },
    {
      name: 'a --timeout without its value',
      args: () => ['ping-redis', '--timeout'],
      env: good,
      mentions: /--timeout/,
    },
    {
      name: 'an unknown flag',
      args: () => ['ping-redis', '--frobnicate'],
      env: good,
      mentions: /--frobnicate/,
    },
    {
      name: 'a flag of another command (--postgres-dsn to ping-redis)',
      args: () => ['ping-redis', '--postgres-dsn', good().POSTGRES_DSN],
      env: good,
      mentions: /--postgres-dsn/,
    },
    {
      name: 'an unknown subcommand',
      args: () => ['frobnicate'],
      env: good,
      mentions: /frobnicate/,
    },
    {
      name: '--json together with --quiet',
      args: () => ['ping-redis', '--json', '--quiet'],
      env: good,
      mentions: /--json|--quiet/,
    },
    {
      name: 'an --env-file that does not exist',
      args: () => ['ping-redis', '--env-file', '/nonexistent/bansho.env'],
      // `node --` hands the flag to bansho; run bare, Node 20 rejects the missing file itself.
      nodeArgs: ['--'],
      env: good,
      mentions: /--env-file/,
    },
  ];

  for (const spec of cases) {
    test(`${spec.name} exits 2 naming it, and nothing is connected to`, async () => {
      const connectionsBefore = listener.connections();
      const cwd = emptyDir();
      if (spec.envFile) await writeFile(join(cwd, '.env'), spec.envFile());
      const result = await runCli(spec.args(), {
        env: spec.env?.() ?? {},
        cwd,
        ...(spec.nodeArgs ? { nodeArgs: spec.nodeArgs } : {}),
      });
      const context = describeRun(result);
      assert.equal(result.code, 2, context);
      const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
      assert.equal(lines.length, 1, `expected exactly one line on stderr: ${context}`);
      assert.match(lines[0] ?? '', spec.mentions, context);
      assert.match(lines[0] ?? '', /^bansho: /, context);
      if (spec.args().includes('--json')) {
        // A CI step that asked for JSON still gets exactly one document.
        assert.equal(parseJson(result).error?.code, 'config', context);
      } else {
        assert.equal(result.stdout, '', context);
      }
      assert.ok(result.elapsedMs < FAST_MS, context);
      // Any connection would have been accepted before the process exited.
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(listener.connections(), connectionsBefore, `a connection was attempted: ${context}`);
    });
  }

  test('with --json a bad input still exits 2 with one line on stderr and one JSON document with code config', async () => {
    const connectionsBefore = listener.connections();
    const result = await runCli(['smoke', '--json', '--timeout', 'abc'], { env: good() });
    const context = describeRun(result);
    assert.equal(result.code, 2, context);
    assert.equal(result.stderr.trim().split('\n').length, 1, context);
    assert.match(result.stderr, /--timeout/);
    const document = parseJson(result);
    assert.equal(document.status, 'fail', context);
    assert.equal(document.error?.code, 'config', context);
    assert.equal(listener.connections(), connectionsBefore, context);
  });

  test('a valid configuration does connect to the counting listener (the control case)', async () => {
    const connectionsBefore = listener.connections();
    const result = await runCli(['ping-redis', '--timeout', '200ms', '--json'], { env: good() });
    assert.equal(result.code, 1, describeRun(result));
    assert.equal(parseJson(result).checks.redis?.error?.code, 'timeout');
    assert.ok(listener.connections() > connectionsBefore, 'the control run did not connect');
  });
});
