/**
 * The library API (src/index.ts) as the gateway uses it, against real Redis and PostgreSQL servers.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import {
  BanshoError,
  closePostgres,
  closeRedis,
  createPostgresPool,
  createRedisClient,
  defineScript,
  ensureSchema,
  pingPostgres,
  pingRedis,
  type RedisClient,
  redisOps,
  storageSmokeCheck,
} from '../src/index.js';
import { ALL_CHANGES, described } from './support/schema.js';
import {
  freePort,
  type PostgresEndpoint,
  type RedisEndpoint,
  startRedis,
  startSilentPeer,
  usePostgres,
  useRedis,
} from './support/servers.js';

let redis: RedisEndpoint;
let pg: PostgresEndpoint;
/** A loopback port where nothing listens (taken once: nothing in this file binds it). */
let closedPort: number;

before(async () => {
  [redis, pg, closedPort] = await Promise.all([useRedis(), usePostgres(), freePort()]);
});

function isBanshoError(code: string) {
  return (error: unknown) => {
    assert.ok(error instanceof BanshoError, `expected a BanshoError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    return true;
  };
}

/**
 * A TCP proxy in front of a real server whose `blackhole()` silently stops forwarding while
 * keeping both connections open: a network partition, as seen by the client.
 */
async function startPartitionableProxy(target: { host: string; port: number }) {
  let forwarding = true;
  const clientSides = new Set<Socket>();
  const all = new Set<Socket>();
  const server = createServer((down) => {
    const up = connect(target.port, target.host);
    for (const socket of [down, up]) {
      all.add(socket);
      socket.on('error', () => {});
      socket.once('close', () => all.delete(socket));
    }
    clientSides.add(down);
    down.once('close', () => clientSides.delete(down));
    down.on('data', (chunk) => forwarding && up.write(chunk));
    up.on('data', (chunk) => forwarding && down.write(chunk));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return {
    url: `redis://127.0.0.1:${port}`,
    /** Sockets the client opened and has not closed yet. */
    clientSides,
    blackhole: () => {
      forwarding = false;
    },
    close: async () => {
      for (const socket of all) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function key(name: string): string {
  return `bansho:test:${name}:${randomUUID()}`;
}

// ---------------------------------------------------------------------------
// Redis

describe('pingRedis', () => {
  test('resolves true against a running server', async () => {
    assert.equal(await pingRedis({ url: redis.url }), true);
  });

  test('rejects with a BanshoError connection_refused for a closed port', async () => {
    await assert.rejects(
      pingRedis({ url: `redis://127.0.0.1:${closedPort}`, timeoutMs: 2000 }),
      isBanshoError('connection_refused'),
    );
  });

  test('reads REDIS_URL from the env it is given', async () => {
    assert.equal(await pingRedis({ env: { REDIS_URL: redis.url } }), true);
    await assert.rejects(
      pingRedis({ env: { REDIS_URL: `redis://127.0.0.1:${closedPort}` }, timeoutMs: 2000 }),
      isBanshoError('connection_refused'),
    );
  });
});

describe('createRedisClient and redisOps', () => {
  let client: RedisClient;
  before(async () => {
    client = createRedisClient({ url: redis.url });
    await client.connect();
  });
  after(async () => {
    await closeRedis(client);
  });

  test('set stores a value with a TTL in milliseconds, and get reads it back', async () => {
    const name = key('set');
    await redisOps.set(client, name, 'value', 5000);
    assert.equal(await redisOps.get(client, name), 'value');
    const ttl = await client.pTTL(name);
    assert.ok(ttl > 4000 && ttl <= 5000, `PTTL after set(..., 5000) was ${ttl}`);
  });

  test('get resolves null for a missing key', async () => {
    assert.equal(await redisOps.get(client, key('missing')), null);
  });

  test('incr counts from 1, and expire sets a TTL in milliseconds', async () => {
    const name = key('incr');
    assert.equal(await redisOps.incr(client, name), 1);
    assert.equal(await redisOps.incr(client, name), 2);
    assert.equal(await client.pTTL(name), -1, 'INCR must not invent an expiry');
    assert.equal(await redisOps.expire(client, name, 3000), true);
    const ttl = await client.pTTL(name);
    assert.ok(ttl > 2000 && ttl <= 3000, `PTTL after expire(..., 3000) was ${ttl}`);
    assert.equal(await redisOps.get(client, name), '2');
  });

  test('expire resolves false for a key that does not exist', async () => {
    assert.equal(await redisOps.expire(client, key('nothing'), 1000), false);
  });

  test('a set key really expires after its TTL', async () => {
    const name = key('short');
    await redisOps.set(client, name, 'x', 50);
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal(await redisOps.get(client, name), null);
  });

  test('runScript runs a script by SHA, and reloads it after SCRIPT FLUSH (NOSCRIPT)', async () => {
    const script = defineScript('return ARGV[1]');
    assert.match(script.sha, /^[0-9a-f]{40}$/);
    assert.equal(await redisOps.runScript(client, script, [], ['hello']), 'hello');
    assert.deepEqual(await client.scriptExists(script.sha), [1]);

    await client.scriptFlush();
    assert.deepEqual(await client.scriptExists(script.sha), [0], 'SCRIPT FLUSH should have dropped it');
    assert.equal(await redisOps.runScript(client, script, [], ['again']), 'again');
    assert.deepEqual(await client.scriptExists(script.sha), [1], 'runScript should have reloaded it');
  });

  test('runScript passes keys and arguments through', async () => {
    const script = defineScript("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    const name = key('script');
    assert.equal(await redisOps.runScript(client, script, [name], ['5']), 5);
    assert.equal(await redisOps.runScript(client, script, [name], ['2']), 7);
  });

  test('runScript rejects with the server error when the script itself fails (no reload loop)', async () => {
    const script = defineScript("return redis.error_reply('boom')");
    await assert.rejects(redisOps.runScript(client, script, [], []), /boom/);
  });
});

describe('createRedisClient configuration', () => {
  test('reads REDIS_URL from the env it is given', async () => {
    const client = createRedisClient({ env: { REDIS_URL: redis.url } });
    try {
      await client.connect();
      assert.equal(await client.ping(), 'PONG');
      const info = await client.info('server');
      assert.equal(/^tcp_port:(\d+)/m.exec(info)?.[1], String(redis.port));
    } finally {
      await closeRedis(client);
    }
  });

  test('a closed port in the given env REDIS_URL fails to connect (the env is not ignored)', async () => {
    const client = createRedisClient({ env: { REDIS_URL: `redis://127.0.0.1:${closedPort}` } });
    try {
      await assert.rejects(client.connect(), /ECONNREFUSED/);
    } finally {
      await closeRedis(client);
    }
    assert.equal(client.isOpen, false);
  });

  test('url wins over env.REDIS_URL', async () => {
    const client = createRedisClient({
      url: redis.url,
      env: { REDIS_URL: `redis://127.0.0.1:${closedPort}` },
    });
    try {
      await client.connect();
      assert.equal(await client.ping(), 'PONG');
    } finally {
      await closeRedis(client);
    }
  });
});

describe('closeRedis', () => {
  test('closes a healthy client', async () => {
    const client = createRedisClient({ url: redis.url });
    await client.connect();
    assert.equal(client.isOpen, true);
    await closeRedis(client);
    assert.equal(client.isOpen, false);
    assert.equal(client.isReady, false);
  });

  test('releases the socket when the server is gone', async () => {
    const own = await startRedis();
    const client = createRedisClient({ url: own.url });
    await client.connect();
    assert.equal(client.isReady, true);
    await own.stop();
    await closeRedis(client);
    assert.equal(client.isOpen, false);
  });

  test('releases the socket when the server stops answering with a command in flight (partition)', async () => {
    const proxy = await startPartitionableProxy(redis);
    const client = createRedisClient({ url: proxy.url });
    try {
      await client.connect();
      assert.equal(await client.ping(), 'PONG');
      assert.equal(proxy.clientSides.size, 1);
      proxy.blackhole();
      const inFlight = client.get(key('partition'));
      inFlight.catch(() => {});
      await within(closeRedis(client), 5000, 'closeRedis on a partitioned server');
      assert.equal(client.isOpen, false);
      // The proof that the socket is gone: the server side of it sees the close.
      await within(
        (async () => {
          while (proxy.clientSides.size > 0) await new Promise((resolve) => setTimeout(resolve, 10));
        })(),
        1000,
        'the client socket closing',
      );
      await assert.rejects(inFlight);
    } finally {
      client.destroy();
      await proxy.close();
    }
  });

  test('releases the socket of a client stuck connecting to a server that never answers', async () => {
    const peer = await startSilentPeer();
    try {
      const client = createRedisClient({ url: peer.url('redis'), connectTimeoutMs: 10_000 });
      const connecting = client.connect();
      connecting.catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(client.isOpen, true);
      await closeRedis(client);
      assert.equal(client.isOpen, false);
      await assert.rejects(connecting);
    } finally {
      await peer.close();
    }
  });
});

// ---------------------------------------------------------------------------
// PostgreSQL

describe('createPostgresPool and closePostgres', () => {
  test('runs a query on the database of the DSN, then closes', async () => {
    const name = await pg.createDatabase('lib_pool');
    const sql = createPostgresPool({ dsn: pg.dsn(name) });
    try {
      const [row] = await sql<{ one: number; db: string }[]>`select 1 as one, current_database() as db`;
      assert.deepEqual({ ...row }, { one: 1, db: name });
    } finally {
      await closePostgres(sql);
    }
    await assert.rejects(sql`select 1`, (error: unknown) => {
      assert.equal((error as { code?: string }).code, 'CONNECTION_ENDED');
      return true;
    });
  });

  test('reads POSTGRES_DSN from the env it is given', async () => {
    const name = await pg.createDatabase('lib_env');
    const sql = createPostgresPool({ env: { POSTGRES_DSN: pg.dsn(name) } });
    try {
      const [row] = await sql<{ db: string }[]>`select current_database() as db`;
      assert.equal(row?.db, name);
    } finally {
      await closePostgres(sql);
    }
  });

  test('sets application_name to bansho', async () => {
    const sql = createPostgresPool({ dsn: pg.dsn() });
    try {
      const [row] = await sql<{ name: string }[]>`select current_setting('application_name') as name`;
      assert.equal(row?.name, 'bansho');
    } finally {
      await closePostgres(sql);
    }
  });
});

describe('pingPostgres', () => {
  test('resolves true against a running server', async () => {
    assert.equal(await pingPostgres({ dsn: pg.dsn() }), true);
  });

  test('rejects with a BanshoError connection_refused for a closed port', async () => {
    await assert.rejects(
      pingPostgres({ dsn: `postgres://postgres@127.0.0.1:${closedPort}/postgres`, timeoutMs: 2000 }),
      isBanshoError('connection_refused'),
    );
  });

  test('rejects with unknown_database for a database that does not exist', async () => {
    await assert.rejects(
      pingPostgres({ dsn: pg.dsn(`missing_${randomUUID().slice(0, 8)}`) }),
      isBanshoError('unknown_database'),
    );
  });
});

describe('ensureSchema', () => {
  test('creates the schema and returns the changes with their SQL, then returns no changes the second time', async () => {
    const name = await pg.createDatabase('lib_ensure');
    const first = await ensureSchema({ dsn: pg.dsn(name) });
    assert.equal(first.dryRun, false);
    assert.deepEqual(described(first.changes), ALL_CHANGES);
    assert.equal(first.changes[2]?.sql, 'CREATE INDEX audit_events_ts_idx ON audit_events (ts)');
    assert.equal(
      (
        await pg.query("select count(*) from pg_tables where tablename in ('api_keys', 'audit_events')", name)
      ).trim(),
      '2',
    );
    assert.equal((await pg.query('select version from bansho_schema_version', name)).trim(), '1');
    assert.deepEqual(await ensureSchema({ dsn: pg.dsn(name) }), { changes: [], dryRun: false });
  });

  test('reads POSTGRES_DSN from the env it is given', async () => {
    const name = await pg.createDatabase('lib_ensure_env');
    const result = await ensureSchema({ env: { POSTGRES_DSN: pg.dsn(name) } });
    assert.equal(result.changes.length, 6);
  });

  test('dryRun returns the plan and creates nothing', async () => {
    const name = await pg.createDatabase('lib_ensure_dry');
    const result = await ensureSchema({ dsn: pg.dsn(name), dryRun: true });
    assert.equal(result.dryRun, true);
    assert.equal(result.changes.length, 6);
    assert.equal((await pg.query("select to_regclass('api_keys') is null", name)).trim(), 't');
  });

  test('throws schema_mismatch with every difference in drift, and changes nothing, when api_keys differs', async () => {
    const name = await pg.createDatabase('lib_ensure_drift');
    await pg.query('CREATE TABLE api_keys (id uuid PRIMARY KEY, key_hash integer NOT NULL)', name);
    await assert.rejects(ensureSchema({ dsn: pg.dsn(name) }), (error: unknown) => {
      isBanshoError('schema_mismatch')(error);
      assert.deepEqual((error as BanshoError).drift, [
        { object: 'column api_keys.id', expected: 'DEFAULT gen_random_uuid()', found: 'no default' },
        { object: 'column api_keys.key_hash', expected: 'text', found: 'integer' },
        { object: 'column api_keys.role', expected: 'text NOT NULL', found: 'missing' },
      ]);
      return true;
    });
    assert.equal((await pg.query("select to_regclass('audit_events') is null", name)).trim(), 't');
  });
});

describe('storageSmokeCheck', () => {
  test('both stores up: { redis: true, postgres: true }', async () => {
    assert.deepEqual(await storageSmokeCheck({ redisUrl: redis.url, postgresDsn: pg.dsn() }), {
      redis: true,
      postgres: true,
    });
  });

  test('reads REDIS_URL and POSTGRES_DSN from the env it is given', async () => {
    assert.deepEqual(await storageSmokeCheck({ env: { REDIS_URL: redis.url, POSTGRES_DSN: pg.dsn() } }), {
      redis: true,
      postgres: true,
    });
  });

  test('Redis on a closed port: redis false, postgres still true', async () => {
    assert.deepEqual(
      await storageSmokeCheck({
        redisUrl: `redis://127.0.0.1:${closedPort}`,
        postgresDsn: pg.dsn(),
        timeoutMs: 2000,
      }),
      { redis: false, postgres: true },
    );
  });

  test('PostgreSQL on a closed port: postgres false, redis still true', async () => {
    assert.deepEqual(
      await storageSmokeCheck({
        redisUrl: redis.url,
        postgresDsn: `postgres://postgres@127.0.0.1:${closedPort}/postgres`,
        timeoutMs: 2000,
      }),
      { redis: true, postgres: false },
    );
  });

  test('malformed URLs count as failed checks and never throw', async () => {
    assert.deepEqual(await storageSmokeCheck({ redisUrl: 'http://x', postgresDsn: pg.dsn() }), {
      redis: false,
      postgres: true,
    });
    assert.deepEqual(await storageSmokeCheck({ redisUrl: redis.url, postgresDsn: 'http://x' }), {
      redis: true,
      postgres: false,
    });
    assert.deepEqual(await storageSmokeCheck({ redisUrl: 'not a url', postgresDsn: '' }), {
      redis: false,
      postgres: false,
    });
  });

  test('a server that never answers makes its check false within the timeout', async () => {
    const peer = await startSilentPeer();
    try {
      const start = performance.now();
      const result = await storageSmokeCheck({
        redisUrl: peer.url('redis'),
        postgresDsn: peer.url('postgres'),
        timeoutMs: 500,
      });
      assert.deepEqual(result, { redis: false, postgres: false });
      assert.ok(performance.now() - start < 2500, 'both checks should time out concurrently, near 500ms');
    } finally {
      await peer.close();
    }
  });
});
