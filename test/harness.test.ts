/**
 * Proves the test-support harness itself: the servers it starts are real,
 * configured as asked, reachable with the official CLIs, and cleaned up.
 */
import assert from 'node:assert/strict';
import { createConnection, createServer } from 'node:net';
import { after, test } from 'node:test';
import {
  exec,
  freePort,
  makeOtherCa,
  makeTlsFiles,
  pgBinary,
  postgresAt,
  rawExchange,
  redisAt,
  startGarbagePeer,
  startPostgres,
  startPostgresErrorPeer,
  startRedis,
  startRedisErrorPeer,
  startSilentPeer,
  type TlsFiles,
  usePostgres,
  useRedis,
} from './support/servers.js';

const tlsFiles: Promise<TlsFiles> = makeTlsFiles();
const otherCa: Promise<string> = makeOtherCa();

/** Everything a peer sends until it closes the connection. */
function readUntilClose(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    socket.on('end', () => resolve(received));
    socket.on('error', reject);
  });
}

async function psql(conninfo: string, sql: string, env: NodeJS.ProcessEnv = {}) {
  return exec(await pgBinary('psql'), ['-X', '-At', '-c', sql, conninfo], {
    env: { PATH: process.env.PATH, PGCONNECT_TIMEOUT: '5', ...env },
  });
}

test('freePort gives a bindable loopback port', async () => {
  const port = await freePort();
  assert.ok(port > 0 && port < 65536);
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test('redis starts and answers PING', async (t) => {
  const redis = await startRedis();
  t.after(() => redis.stop());
  assert.equal(redis.url, `redis://127.0.0.1:${redis.port}`);
  assert.equal(await rawExchange(redis.port, 'PING\r\n'), '+PONG\r\n');
});

test('redis stop() kills the server and frees its port', async () => {
  const redis = await startRedis();
  await redis.stop();
  await redis.stop(); // idempotent
  await assert.rejects(rawExchange(redis.port, 'PING\r\n'), { code: 'ECONNREFUSED' });
});

test('password redis rejects an unauthenticated PING with NOAUTH', async (t) => {
  const redis = await startRedis({ password: 's3cret' });
  t.after(() => redis.stop());
  assert.equal(redis.url, `redis://127.0.0.1:${redis.port}`, 'no password in the URL');
  assert.match(await rawExchange(redis.port, 'PING\r\n'), /^-NOAUTH /);
  assert.equal(await rawExchange(redis.port, 'AUTH s3cret\r\nPING\r\n', 2), '+OK\r\n+PONG\r\n');
});

test('redis options reach the server (maxclients, replicaof, replica-serve-stale-data)', async (t) => {
  const primary = await startRedis();
  t.after(() => primary.stop());
  const replica = await startRedis({
    maxclients: 7,
    replicaOf: { host: primary.host, port: primary.port },
    replicaServeStaleData: false,
  });
  t.after(() => replica.stop());
  const reply = await rawExchange(
    replica.port,
    'CONFIG GET maxclients\r\nCONFIG GET replica-serve-stale-data\r\n',
    10,
  );
  assert.match(reply, /maxclients\r\n\$1\r\n7\r\n/);
  assert.match(reply, /replica-serve-stale-data\r\n\$2\r\nno\r\n/);
  const role = await rawExchange(replica.port, 'ROLE\r\n', 4);
  assert.match(role, /^\*5\r\n\$5\r\nslave\r\n/);
});

test('TLS redis answers PING through redis-cli --tls, and only with the right CA', async (t) => {
  const tls = await tlsFiles;
  const redis = await startRedis({ tls });
  t.after(() => redis.stop());
  assert.equal(redis.url, `rediss://127.0.0.1:${redis.port}`);
  const cli = (caCert: string) =>
    exec('redis-cli', ['--tls', '--cacert', caCert, '-h', '127.0.0.1', '-p', String(redis.port), 'PING']);

  const ok = await cli(tls.caCert);
  assert.equal(ok.stdout.trim(), 'PONG', ok.stderr);
  const wrongCa = await cli(await otherCa);
  assert.doesNotMatch(wrongCa.stdout, /PONG/);
  assert.match(wrongCa.stdout + wrongCa.stderr, /certificate verify failed/i);
});

test('postgres starts; createDatabase and query work', async (t) => {
  const pg = await startPostgres();
  t.after(() => pg.stop());
  assert.equal(pg.dsn(), `postgres://postgres@127.0.0.1:${pg.port}/postgres`);
  const db = await pg.createDatabase('harness');
  assert.match(db, /^harness_[a-z0-9_]+$/);
  assert.notEqual(db, await pg.createDatabase('harness'), 'names are unique');
  assert.equal(await pg.query('select 1', db), '1\n');
  assert.equal(await pg.query('select current_database()', db), `${db}\n`);
  await assert.rejects(pg.query('select nope'), /column "nope" does not exist/);
});

test('postgres password user must use SCRAM; maxConnections and settings apply', async (t) => {
  const pg = await startPostgres({
    passwordUser: { name: 'app_user', password: "pa'ss word" },
    maxConnections: 7,
    settings: { statement_timeout: '4321' },
  });
  t.after(() => pg.stop());
  const conninfo = `host=127.0.0.1 port=${pg.port} user=app_user dbname=postgres`;

  const wrong = await psql(conninfo, 'select 1', { PGPASSWORD: 'wrong' });
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /password authentication failed for user "app_user"/);

  const right = await psql(conninfo, 'select current_user', { PGPASSWORD: "pa'ss word" });
  assert.equal(right.code, 0, right.stderr);
  assert.equal(right.stdout, 'app_user\n');

  const verifier = await pg.query("select left(rolpassword, 14) from pg_authid where rolname = 'app_user'");
  assert.equal(verifier, 'SCRAM-SHA-256$\n');
  assert.equal(await pg.query('show max_connections'), '7\n');
  assert.equal(await pg.query('show superuser_reserved_connections'), '0\n');
  assert.equal(await pg.query('show statement_timeout'), '4321ms\n');
});

test('ssl postgres verifies with sslmode=verify-full, and only with the right CA', async (t) => {
  const tls = await tlsFiles;
  const pg = await startPostgres({ ssl: tls });
  t.after(() => pg.stop());
  const conninfo = (ca: string) =>
    `sslmode=verify-full sslrootcert=${ca} host=127.0.0.1 port=${pg.port} user=postgres dbname=postgres`;

  const ok = await psql(conninfo(tls.caCert), 'select ssl from pg_stat_ssl where pid = pg_backend_pid()');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 't\n');

  const wrongCa = await psql(conninfo(await otherCa), 'select 1');
  assert.notEqual(wrongCa.code, 0);
  assert.match(wrongCa.stderr, /certificate verify failed/);
});

test('silent peer accepts and never answers', async (t) => {
  const peer = await startSilentPeer();
  t.after(() => peer.close());
  assert.equal(peer.url('redis'), `redis://127.0.0.1:${peer.port}`);
  await assert.rejects(rawExchange(peer.port, 'PING\r\n', 1, 200), /no complete reply within 200 ms, got ""/);
});

test('redis error peer answers each pipelined command with the error', async (t) => {
  const peer = await startRedisErrorPeer('LOADING Redis is loading the dataset in memory');
  t.after(() => peer.close());
  // Two RESP arrays and an inline command, split mid-command across writes by the parser's point of view.
  const payload = '*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n*1\r\n$4\r\nPING\r\nPING\r\n';
  const reply = await rawExchange(peer.port, payload, 3);
  assert.equal(reply, '-LOADING Redis is loading the dataset in memory\r\n'.repeat(3));

  const cli = await exec('redis-cli', ['-h', '127.0.0.1', '-p', String(peer.port), 'PING']);
  assert.match(cli.stdout + cli.stderr, /LOADING Redis is loading/);
});

test('postgres error peer rejects the startup with an ErrorResponse', async (t) => {
  const peer = await startPostgresErrorPeer({
    severity: 'FATAL',
    code: '57P03',
    message: 'the database system is starting up',
  });
  t.after(() => peer.close());
  // sslmode=prefer makes psql send an SSLRequest first, exercising the 'N' answer.
  const result = await psql(`${peer.url('postgres')}/postgres?sslmode=prefer&user=postgres`, 'select 1');
  assert.notEqual(result.code, 0);
  assert.match(result.stderr, /FATAL: {2}the database system is starting up/);
});

test('garbage peer sends its bytes and hangs up', async (t) => {
  const peer = await startGarbagePeer('HTTP/1.1 400 Bad Request\r\n\r\n');
  t.after(() => peer.close());
  assert.equal(await readUntilClose(peer.port), 'HTTP/1.1 400 Bad Request\r\n\r\n');
});

test('useRedis / usePostgres share one server per process; stop() leaves it running', async () => {
  const [redis, again] = await Promise.all([useRedis(), useRedis()]);
  assert.equal(redis, again);
  await redis.stop();
  assert.match(await rawExchange(redis.port, 'PING\r\n'), /^\+PONG|^-NOAUTH/);

  const pg = await usePostgres();
  assert.equal(pg, await usePostgres());
  await pg.stop();
  const db = await pg.createDatabase('shared');
  assert.equal(await pg.query('select current_database()', db), `${db}\n`);
});

test('redisAt / postgresAt wrap an existing server through its URL and credentials', async (t) => {
  const wrappedRedis = redisAt('rediss://:pw@[::1]:6390');
  assert.deepEqual([wrappedRedis.host, wrappedRedis.port], ['::1', 6390]);

  const pg = await startPostgres({ passwordUser: { name: 'owner', password: 'pw' } });
  t.after(() => pg.stop());
  await pg.query('ALTER ROLE owner CREATEDB');
  const external = postgresAt(`postgres://owner:pw@127.0.0.1:${pg.port}/postgres?sslmode=disable`);
  assert.equal(external.port, pg.port);
  assert.equal(external.dsn('x y'), `postgres://owner:pw@127.0.0.1:${pg.port}/x%20y?sslmode=disable`);
  const db = await external.createDatabase('ext');
  assert.equal(await external.query('select current_user, current_database()', db), `owner|${db}\n`);
  await external.stop(); // no-op: the server must still answer
  assert.equal(await pg.query('select 1'), '1\n');
});

after(async () => {
  // The TLS dirs are removed by the exit hook; awaiting here surfaces creation errors.
  await Promise.all([tlsFiles, otherCa]);
});
