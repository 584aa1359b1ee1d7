/**
 * The sub-checks of the redis and postgres checks, against real servers put into each state:
 * maxmemory with an LRU policy, memory nearly full, memory full under noeviction (OOM), writes
 * stopped after a failed background save (MISCONF), a replica of a real master, ACL users
 * without write rights / scripting / MULTI / the probe's keys; a PostgreSQL role without a
 * privilege, almost every connection slot taken, a LATIN1 database, a read-only database.
 * Each case runs the built CLI as users do (`npm run build` first).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import postgres from 'postgres';
import { BanshoError, pingRedis } from '../src/index.js';
import { runPostgresSubChecks } from '../src/postgres/sub-checks.js';
import { type CliResult, LEAK_MESSAGE, runCli } from './support/cli.js';
import { type PostgresServer, type RedisServer, run, startPostgres, startRedis } from './support/servers.js';

/** The ACL users' password: distinctive, so that printing it anywhere would be caught. */
const PASSWORD = 'Sub-Ch3ck-Pa55';

interface Detail {
  name: string;
  status: string;
  observed: string;
  hint?: string;
  code?: string;
}

interface Check {
  status: string;
  version?: string;
  details?: Detail[];
  error?: { code: string; message: string; hint: string };
}

interface Run {
  result: CliResult;
  status: string;
  checks: Record<string, Check>;
}

function describeRun(result: CliResult): string {
  return `exit ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
}

/** Runs the CLI with --json, and asserts what holds for every run: one document, no leak, no password. */
async function bansho(args: readonly string[], expectedExit: number): Promise<Run> {
  const result = await runCli([...args, '--json']);
  const context = describeRun(result);
  assert.equal(result.code, expectedExit, context);
  assert.ok(!result.stderr.includes(LEAK_MESSAGE), context);
  assert.ok(
    !result.stdout.includes(PASSWORD) && !result.stderr.includes(PASSWORD),
    `password printed: ${context}`,
  );
  const doc = JSON.parse(result.stdout) as { status: string; checks: Record<string, Check> };
  return { result, status: doc.status, checks: doc.checks };
}

function detailOf(run: Run, check: string, name: string): Detail {
  const found = run.checks[check]?.details?.find((detail) => detail.name === name);
  assert.ok(found, `no ${check} sub-check "${name}" in\n${describeRun(run.result)}`);
  return found;
}

function namesOf(run: Run, check: string): string[] {
  return (run.checks[check]?.details ?? []).map((detail) => detail.name);
}

async function redisCli(server: RedisServer, ...args: string[]): Promise<string> {
  return (await run('redis-cli', ['-h', server.host, '-p', String(server.port), ...args])).stdout;
}

async function redisInfoField(server: RedisServer, section: string, field: string): Promise<string> {
  const info = await redisCli(server, 'INFO', section);
  const value = new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
  assert.ok(value !== undefined, `no ${field} in INFO ${section}`);
  return value;
}

const urlOf = (server: RedisServer, user?: string) =>
  user === undefined ? server.url : `redis://${user}:${PASSWORD}@${server.host}:${server.port}`;

// ---------------------------------------------------------------------------
// Servers, started once for the file

const servers: Array<{ stop(): Promise<void> }> = [];
function track<T extends { stop(): Promise<void> }>(server: T): T {
  servers.push(server);
  return server;
}
const held: postgres.Sql[] = [];

/** A user per ACL state, on one server: `+@all` minus what the name says. */
const ACL_USERS = {
  reader: ['-@write'],
  noscript: ['-evalsha', '-script'],
  nomulti: ['-multi'],
} as const;

let redisPlain: RedisServer;
let redisQuiet: RedisServer;
let redisLru: RedisServer;
let redisNearlyFull: RedisServer;
let redisOom: RedisServer;
let redisMisconf: RedisServer;
let redisMaster: RedisServer;
let redisReplica: RedisServer;
let redisAcl: RedisServer;
let pgMain: PostgresServer;
let pgBusy: PostgresServer;

before(async () => {
  const aclArgs = Object.entries(ACL_USERS).flatMap(([name, rules]) => [
    '--user',
    name,
    'on',
    `>${PASSWORD}`,
    '~*',
    '&*',
    '+@all',
    ...rules,
  ]);
  // Keys outside the probe's namespace only: the gateway's commands may run, but not on bansho:*.
  aclArgs.push('--user', 'otherkeys', 'on', `>${PASSWORD}`, '~ratelimit:*', '&*', '+@all');
  [
    redisPlain,
    redisQuiet,
    redisLru,
    redisNearlyFull,
    redisOom,
    redisMisconf,
    redisMaster,
    redisAcl,
    pgMain,
    pgBusy,
  ] = await Promise.all([
    startRedis().then(track),
    startRedis().then(track),
    startRedis({ args: ['--maxmemory', '100mb', '--maxmemory-policy', 'allkeys-lru'] }).then(track),
    startRedis().then(track),
    // One byte: every write is over the limit.
    startRedis({ args: ['--maxmemory', '1', '--maxmemory-policy', 'noeviction'] }).then(track),
    // A save point, and a dir where no file can be created: BGSAVE fails, then writes stop.
    startRedis({ args: ['--save', '3600 1', '--dir', '/proc'] }).then(track),
    startRedis().then(track),
    startRedis({ args: aclArgs }).then(track),
    startPostgres().then(track),
    // 8 slots open to ordinary roles, 2 reserved for superusers.
    startPostgres({ maxConnections: 10, settings: { superuser_reserved_connections: '2' } }).then(track),
  ]);
  redisReplica = track(await startRedis({ replicaOf: { host: redisMaster.host, port: redisMaster.port } }));

  // Memory nearly full: about 8 MB of data, then maxmemory so that it is 95% used (noeviction).
  for (let i = 0; i < 8; i++) {
    await redisCli(
      redisNearlyFull,
      'EVAL',
      "redis.call('SET', KEYS[1], string.rep('x', 1000000))",
      '1',
      `fill:${i}`,
    );
  }
  const used = Number(await redisInfoField(redisNearlyFull, 'memory', 'used_memory'));
  await redisCli(redisNearlyFull, 'CONFIG', 'SET', 'maxmemory', String(Math.floor(used / 0.95)));

  await redisCli(redisMisconf, 'BGSAVE');
  for (
    let attempt = 0;
    (await redisInfoField(redisMisconf, 'persistence', 'rdb_last_bgsave_status')) !== 'err';
    attempt++
  ) {
    assert.ok(attempt < 100, 'BGSAVE into /proc did not fail');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }

  // An ordinary role sees other roles' sessions without their details: it must count them all the same.
  await pgBusy.query('CREATE ROLE gateway LOGIN');
  // Seven of the eight open slots held; the check's own session makes eight, above 90%.
  for (let i = 0; i < 7; i++) {
    const sql = postgres({
      host: pgBusy.host,
      port: pgBusy.port,
      username: 'postgres',
      database: 'postgres',
      max: 1,
      idle_timeout: 0,
      onnotice: () => {},
    });
    held.push(sql);
    await sql`select 1`;
  }
});

after(async () => {
  await Promise.all(held.map((sql) => sql.end({ timeout: 0 })));
  await Promise.all(servers.map((server) => server.stop()));
});

// ---------------------------------------------------------------------------
// Redis

describe('redis sub-checks', { concurrency: true }, () => {
  test('a healthy master passes role, write, commands, eviction, memory and clock, in that order', async () => {
    const report = await bansho(['ping-redis', '--redis-url', redisPlain.url], 0);
    assert.equal(report.status, 'pass');
    assert.deepEqual(namesOf(report, 'redis'), ['role', 'write', 'commands', 'eviction', 'memory', 'clock']);
    for (const detail of report.checks.redis?.details ?? []) {
      assert.equal(detail.status, 'pass', JSON.stringify(detail));
      assert.ok(detail.observed.length > 0, JSON.stringify(detail));
      assert.deepEqual(
        Object.keys(detail).filter((key) => !['name', 'status', 'observed', 'hint'].includes(key)),
        [],
      );
    }
    assert.equal(detailOf(report, 'redis', 'role').observed, 'master');
    assert.match(
      detailOf(report, 'redis', 'commands').observed,
      /GET, SET, INCR, PEXPIRE, SCRIPT LOAD, EVALSHA/,
    );
    assert.match(detailOf(report, 'redis', 'clock').observed, /within 1s/);
    // No maxmemory is said as information: a hint, without a warning.
    const eviction = detailOf(report, 'redis', 'eviction');
    assert.match(eviction.observed, /no maxmemory/);
    assert.match(eviction.hint ?? '', /noeviction/);
  });

  test('human output shows each sub-check on its own line under the redis check', async () => {
    const result = await runCli(['smoke', '--redis-url', redisPlain.url, '--postgres-dsn', pgMain.dsn()]);
    assert.equal(result.code, 0, describeRun(result));
    const lines = result.stdout.split('\n');
    const redisLine = lines.findIndex((line) => /^PASS\s+redis\s/.test(line));
    const postgresLine = lines.findIndex((line) => /^PASS\s+postgres\s/.test(line));
    assert.ok(redisLine >= 0 && postgresLine > redisLine, result.stdout);
    const under = lines.slice(redisLine + 1, postgresLine).join('\n');
    for (const name of ['role', 'write', 'commands', 'eviction', 'memory', 'clock']) {
      assert.match(under, new RegExp(`^\\s+pass\\s+${name}\\s+\\S`, 'm'), result.stdout);
    }
  });

  test('--no-write-probe leaves the write sub-check out and runs no command that writes', async () => {
    const report = await bansho(
      ['smoke', '--no-write-probe', '--redis-url', redisQuiet.url, '--postgres-dsn', pgMain.dsn()],
      0,
    );
    assert.deepEqual(namesOf(report, 'redis'), ['role', 'commands', 'eviction', 'memory', 'clock']);
    assert.equal(detailOf(report, 'redis', 'commands').status, 'pass');
    // The gateway's commands were only queued inside a discarded MULTI: none of them ran.
    const stats = await redisCli(redisQuiet, 'INFO', 'commandstats');
    for (const command of ['set', 'get', 'del', 'incr', 'pexpire', 'evalsha', 'script|load']) {
      assert.ok(!stats.includes(`cmdstat_${command}:`), `${command} ran:\n${stats}`);
    }
    assert.match(stats, /cmdstat_discard:calls=1,/);
  });

  test('maxmemory with allkeys-lru warns, explaining eviction and suggesting noeviction; exit 0', async () => {
    const report = await bansho(['ping-redis', '--redis-url', redisLru.url], 0);
    assert.equal(report.status, 'warn');
    assert.equal(report.checks.redis?.status, 'warn');
    const eviction = detailOf(report, 'redis', 'eviction');
    assert.equal(eviction.status, 'warn');
    assert.match(eviction.observed, /^maxmemory 100\.00M, policy allkeys-lru$/);
    assert.match(eviction.hint ?? '', /rate-limit counters/);
    assert.match(eviction.hint ?? '', /maxmemory-policy noeviction/);
    // Memory has room: only eviction warns.
    assert.equal(detailOf(report, 'redis', 'memory').status, 'pass');
    assert.match(detailOf(report, 'redis', 'memory').observed, /of 100\.00M \(\d+%\)/);
  });

  test('the eviction warning fails with --strict: exit 1', async () => {
    const report = await bansho(['ping-redis', '--strict', '--redis-url', redisLru.url], 1);
    assert.equal(report.status, 'fail');
    assert.equal(report.checks.redis?.status, 'warn');
  });

  test('memory above 90% of maxmemory warns, naming the share used; noeviction with maxmemory passes eviction', async () => {
    const report = await bansho(['ping-redis', '--redis-url', redisNearlyFull.url], 0);
    const memory = detailOf(report, 'redis', 'memory');
    assert.equal(memory.status, 'warn', JSON.stringify(memory));
    assert.match(memory.observed, /used of .* \(9\d%\)/);
    assert.match(memory.hint ?? '', /maxmemory/);
    const eviction = detailOf(report, 'redis', 'eviction');
    assert.equal(eviction.status, 'pass');
    assert.match(eviction.observed, /policy noeviction/);
    assert.equal(detailOf(report, 'redis', 'write').status, 'pass');
  });

  test('full memory under noeviction fails the write probe with read_only, quoting OOM', async () => {
    const report = await bansho(['ping-redis', '--redis-url', redisOom.url], 1);
    const write = detailOf(report, 'redis', 'write');
    assert.equal(write.status, 'fail');
    assert.equal(write.code, 'read_only');
    assert.match(write.observed, /^SET refused: OOM /);
    assert.match(write.hint ?? '', /noeviction/);
    assert.equal(report.checks.redis?.error?.code, 'read_only');
    assert.match(report.checks.redis?.error?.message ?? '', /^write: SET refused: OOM/);
    // Queueing under MULTI is refused for memory too, which is no ACL matter.
    assert.equal(detailOf(report, 'redis', 'commands').status, 'pass');
  });

  test('writes stopped after a failed background save fail with read_only, quoting MISCONF (Redis refuses even PING)', async () => {
    const report = await bansho(['ping-redis', '--redis-url', redisMisconf.url], 1);
    const error = report.checks.redis?.error;
    assert.equal(error?.code, 'read_only');
    assert.match(error?.message ?? '', /MISCONF /);
    assert.match(error?.hint ?? '', /background save/);
  });

  test('a replica fails with read_only naming the master it follows, even with --no-write-probe', async () => {
    const master = `${redisMaster.host}:${redisMaster.port}`;
    const report = await bansho(['ping-redis', '--no-write-probe', '--redis-url', redisReplica.url], 1);
    const role = detailOf(report, 'redis', 'role');
    assert.equal(role.status, 'fail');
    assert.equal(role.code, 'read_only');
    assert.match(role.observed, new RegExp(`^replica of ${master} \\(link (up|down)\\)$`));
    assert.ok(role.hint?.includes(master), role.hint);
    assert.equal(report.checks.redis?.error?.code, 'read_only');
    assert.ok(report.checks.redis?.error?.message.includes(master));
  });

  test('human output of a failed sub-check: the check line names it, and its hint is shown once, under it', async () => {
    const result = await runCli(['ping-redis', '--no-write-probe', '--redis-url', redisReplica.url]);
    assert.equal(result.code, 1, describeRun(result));
    const lines = result.stdout.trimEnd().split('\n');
    assert.match(lines[0] ?? '', /^FAIL\s+redis\s.*read_only: role: replica of /);
    assert.match(lines[1] ?? '', /^\s+fail\s+role\s+replica of /);
    assert.match(lines[2] ?? '', /^\s+hint: the gateway's writes would fail on a replica/);
    assert.equal(
      lines.filter((line) => line.includes("the gateway's writes would fail")).length,
      1,
      result.stdout,
    );
  });

  test('smoke against a replica: role and write both fail, and the check reports the role', async () => {
    const report = await bansho(
      ['smoke', '--redis-url', redisReplica.url, '--postgres-dsn', pgMain.dsn()],
      1,
    );
    assert.equal(detailOf(report, 'redis', 'write').code, 'read_only');
    assert.match(detailOf(report, 'redis', 'write').observed, /READONLY/);
    assert.match(report.checks.redis?.error?.message ?? '', /^role: replica of /);
    assert.equal(report.checks.postgres?.status, 'pass');
  });

  test('an ACL user without write rights fails write and commands with permission_denied, naming SET, INCR, PEXPIRE', async () => {
    const report = await bansho(['ping-redis', '--redis-url', urlOf(redisAcl, 'reader')], 1);
    const write = detailOf(report, 'redis', 'write');
    assert.equal(write.code, 'permission_denied');
    assert.match(write.observed, /NOPERM/);
    const commands = detailOf(report, 'redis', 'commands');
    assert.equal(commands.code, 'permission_denied');
    assert.match(commands.observed, /^SET, INCR, PEXPIRE not permitted/);
    assert.match(commands.hint ?? '', /ACL SETUSER <user> \+set \+incr \+pexpire$/);
    assert.equal(report.checks.redis?.error?.code, 'permission_denied');
  });

  test('with --no-write-probe the user without write rights still fails: commands names SET', async () => {
    const report = await bansho(
      ['ping-redis', '--no-write-probe', '--redis-url', urlOf(redisAcl, 'reader')],
      1,
    );
    assert.match(report.checks.redis?.error?.message ?? '', /^commands: SET, INCR, PEXPIRE not permitted/);
  });

  test('an ACL user denied EVALSHA and SCRIPT fails commands naming SCRIPT LOAD and EVALSHA; writes pass', async () => {
    const report = await bansho(['ping-redis', '--redis-url', urlOf(redisAcl, 'noscript')], 1);
    assert.equal(detailOf(report, 'redis', 'write').status, 'pass');
    const commands = detailOf(report, 'redis', 'commands');
    assert.equal(commands.status, 'fail');
    assert.match(commands.observed, /^SCRIPT LOAD, EVALSHA not permitted \(NOPERM/);
    assert.match(commands.hint ?? '', /\+script\|load \+evalsha$/);
    assert.equal(report.checks.redis?.error?.code, 'permission_denied');
  });

  test('an ACL user denied MULTI: commands cannot be asked without running them, so it warns', async () => {
    const report = await bansho(['ping-redis', '--redis-url', urlOf(redisAcl, 'nomulti')], 0);
    const commands = detailOf(report, 'redis', 'commands');
    assert.equal(commands.status, 'warn');
    assert.match(commands.observed, /MULTI failed \(NOPERM/);
    assert.equal(report.status, 'warn');
  });

  test('an ACL user whose key patterns exclude bansho:* fails write with permission_denied', async () => {
    const report = await bansho(['ping-redis', '--redis-url', urlOf(redisAcl, 'otherkeys')], 1);
    const write = detailOf(report, 'redis', 'write');
    assert.equal(write.code, 'permission_denied');
    assert.match(write.hint ?? '', /bansho:\*/);
    assert.match(detailOf(report, 'redis', 'commands').hint ?? '', /~bansho:\*$/);
  });

  test('the library: pingRedis rejects a replica with read_only, and resolves despite a warning', async () => {
    await assert.rejects(
      pingRedis({ url: redisReplica.url }),
      (error: unknown) => error instanceof BanshoError && error.code === 'read_only',
    );
    assert.equal(await pingRedis({ url: redisLru.url }), true);
  });
});

// ---------------------------------------------------------------------------
// PostgreSQL

/** A database with bansho's schema, created by the CLI as the postgres superuser. */
async function bootstrappedDatabase(prefix: string): Promise<string> {
  const database = await pgMain.createDatabase(prefix);
  const result = await runCli(['ensure-schema', '--postgres-dsn', pgMain.dsn(database)]);
  assert.equal(result.code, 0, describeRun(result));
  return database;
}

const dsnAs = (server: PostgresServer, user: string, database: string) =>
  `postgres://${user}@${server.host}:${server.port}/${database}`;

describe('postgres sub-checks', { concurrency: true }, () => {
  let schemaDb: string;
  before(async () => {
    schemaDb = await bootstrappedDatabase('subchecks');
    await pgMain.query(
      [
        'CREATE ROLE gateway LOGIN',
        'GRANT SELECT, INSERT, UPDATE ON api_keys TO gateway',
        'GRANT INSERT ON audit_events TO gateway',
        'CREATE ROLE reporter LOGIN',
        'GRANT SELECT, INSERT, UPDATE ON api_keys TO reporter',
        'GRANT SELECT ON audit_events TO reporter',
      ].join(';\n'),
      schemaDb,
    );
  });

  test('a healthy primary passes version, primary, privileges, connections, timeouts, clock and encoding, in that order', async () => {
    const report = await bansho(['ping-postgres', '--postgres-dsn', pgMain.dsn(schemaDb)], 0);
    assert.equal(report.status, 'pass');
    assert.deepEqual(namesOf(report, 'postgres'), [
      'version',
      'primary',
      'privileges',
      'connections',
      'timeouts',
      'clock',
      'encoding',
    ]);
    for (const detail of report.checks.postgres?.details ?? [])
      assert.equal(detail.status, 'pass', JSON.stringify(detail));
    assert.match(detailOf(report, 'postgres', 'version').observed, /^PostgreSQL \d+/);
    assert.match(
      detailOf(report, 'postgres', 'connections').observed,
      /^\d+ of 97 in use \(max_connections 100, 3 reserved\)$/,
    );
    assert.match(detailOf(report, 'postgres', 'clock').observed, /within 1s/);
    assert.equal(detailOf(report, 'postgres', 'encoding').observed, 'UTF8');
  });

  test("a role with exactly the gateway's grants passes privileges", async () => {
    const report = await bansho(['ping-postgres', '--postgres-dsn', dsnAs(pgMain, 'gateway', schemaDb)], 0);
    assert.equal(
      detailOf(report, 'postgres', 'privileges').observed,
      'role gateway has INSERT on audit_events; SELECT, INSERT, UPDATE on api_keys',
    );
  });

  test('a role without INSERT on audit_events fails with permission_denied naming it', async () => {
    const report = await bansho(
      ['smoke', '--redis-url', redisPlain.url, '--postgres-dsn', dsnAs(pgMain, 'reporter', schemaDb)],
      1,
    );
    const privileges = detailOf(report, 'postgres', 'privileges');
    assert.equal(privileges.status, 'fail');
    assert.equal(privileges.code, 'permission_denied');
    assert.equal(privileges.observed, 'role reporter lacks INSERT on audit_events');
    assert.match(privileges.hint ?? '', /^GRANT INSERT ON audit_events TO reporter \(as the owner\)$/);
    assert.equal(report.checks.postgres?.error?.code, 'permission_denied');
    assert.equal(report.checks.redis?.status, 'pass');
  });

  test("tables not created yet are the schema check's business: privileges passes, saying so", async () => {
    const fresh = await pgMain.createDatabase('fresh');
    const report = await bansho(
      ['smoke', '--redis-url', redisPlain.url, '--postgres-dsn', dsnAs(pgMain, 'reporter', fresh)],
      0,
    );
    const privileges = detailOf(report, 'postgres', 'privileges');
    assert.equal(privileges.status, 'pass');
    assert.equal(privileges.observed, 'audit_events, api_keys not created yet');
    assert.match(privileges.hint ?? '', /ensure-schema/);
    assert.equal(report.checks.schema?.status, 'warn');
  });

  test('for ensure-schema (create: true) a missing table needs CREATE on the schema, named when lacking', async () => {
    const fresh = await pgMain.createDatabase('create');
    const probeAs = async (user: string) => {
      const sql = postgres({
        host: pgMain.host,
        port: pgMain.port,
        username: user,
        database: fresh,
        max: 1,
        onnotice: () => {},
      });
      try {
        return await runPostgresSubChecks(sql, { create: true });
      } finally {
        await sql.end({ timeout: 0 });
      }
    };
    const denied = (await probeAs('reporter')).details.find((detail) => detail.name === 'privileges');
    assert.equal(denied?.status, 'fail');
    assert.equal(denied?.observed, 'role reporter lacks CREATE on schema public');
    const granted = (await probeAs('postgres')).details.find((detail) => detail.name === 'privileges');
    assert.equal(granted?.status, 'pass');
  });

  test('connections above 90% of the open slots warn, counted as an ordinary role sees them; exit 0, 1 with --strict', async () => {
    const report = await bansho(['ping-postgres', '--postgres-dsn', dsnAs(pgBusy, 'gateway', 'postgres')], 0);
    const connections = detailOf(report, 'postgres', 'connections');
    assert.equal(connections.status, 'warn');
    assert.equal(connections.observed, '8 of 8 in use (max_connections 10, 2 reserved)');
    assert.match(connections.hint ?? '', /pg_stat_activity/);
    assert.equal(report.status, 'warn');
    await bansho(['ping-postgres', '--strict', '--postgres-dsn', pgBusy.dsn()], 1);
  });

  test('a LATIN1 database warns about encoding', async () => {
    const latin1 = `latin1_${Date.now().toString(36)}`;
    await pgMain.query(
      `CREATE DATABASE ${latin1} ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'`,
    );
    const report = await bansho(['ping-postgres', '--postgres-dsn', pgMain.dsn(latin1)], 0);
    const encoding = detailOf(report, 'postgres', 'encoding');
    assert.equal(encoding.status, 'warn');
    assert.equal(encoding.observed, 'LATIN1');
    assert.match(encoding.hint ?? '', /UTF8/);
  });

  test('a read-only database fails primary with read_only', async () => {
    const readOnly = await pgMain.createDatabase('readonly');
    await pgMain.query(`ALTER DATABASE ${readOnly} SET default_transaction_read_only = on`);
    const report = await bansho(['ping-postgres', '--postgres-dsn', pgMain.dsn(readOnly)], 1);
    const primary = detailOf(report, 'postgres', 'primary');
    assert.equal(primary.code, 'read_only');
    assert.match(primary.observed, /default_transaction_read_only/);
    assert.equal(report.checks.postgres?.error?.code, 'read_only');
  });
});
