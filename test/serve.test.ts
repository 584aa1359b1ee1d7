/**
 * `bansho serve` and the library's createHealthHandler, against real Redis and PostgreSQL: each
 * endpoint's status codes and bodies, a probe storm's connection count, a dependency going down
 * and coming back, no secret in any answer, malformed and slow requests, SIGTERM with requests in
 * flight, and the handler mounted on http.createServer.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, request, type Server } from 'node:http';
import { type AddressInfo, connect, createServer as createTcpServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createHealthHandler } from '../src/index.js';
import { BIN, emptyDir } from './support/cli.js';
import { type Served, startServe as startServed } from './support/serve.js';
import {
  freePort,
  type PostgresServer,
  type RedisServer,
  startPostgres,
  startRedis,
  startSilentPeer,
} from './support/servers.js';

const SECRET = 'Serve-S3cret';
const enc = encodeURIComponent;

let redis: RedisServer;
let pg: PostgresServer;
let database: string;
/** Both servers' URLs with passwords, as a deployment would give them. */
let env: Record<string, string>;

before(async () => {
  [redis, pg] = await Promise.all([
    startRedis({ password: SECRET }),
    startPostgres({ passwordUser: { name: 'app_user', password: SECRET } }),
  ]);
  database = await pg.createDatabase('serve');
  await pg.query(`GRANT ALL ON DATABASE ${database} TO app_user`);
  await pg.query(`ALTER DATABASE ${database} OWNER TO app_user`);
  env = {
    REDIS_URL: `redis://:${enc(SECRET)}@127.0.0.1:${redis.port}`,
    POSTGRES_DSN: `postgres://app_user:${enc(SECRET)}@127.0.0.1:${pg.port}/${database}`,
  };
  // The schema in place: /readyz passes (a missing schema only warns, and warn is ready too).
  await runToEnd(['ensure-schema', '--quiet'], env);
});
after(async () => {
  await Promise.all([redis?.stop(), pg?.stop()]);
});

/** `bansho serve` with `args`, and the servers' URLs unless told otherwise; SIGKILLed after a minute. */
async function startServe(args: string[] = [], extraEnv: Record<string, string> = env): Promise<Served> {
  const served = await startServed(args, extraEnv);
  const killer = setTimeout(() => served.child.kill('SIGKILL'), 60_000);
  void served.exited.then(() => clearTimeout(killer));
  return served;
}

async function stopServe(served: Served): Promise<number | null> {
  served.child.kill('SIGTERM');
  return served.exited;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(
  port: number,
  path: string,
  options: { method?: string; body?: string; length?: number } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = options.length === undefined ? {} : { 'content-length': String(options.length) };
    const req = request(
      { host: '127.0.0.1', port, path, method: options.method ?? 'GET', agent: false, headers },
      (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

function runToEnd(args: string[], extraEnv: Record<string, string>): Promise<number | null> {
  const child = spawn(BIN, args, {
    cwd: emptyDir(),
    env: {
      PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
      HOME: process.env.HOME ?? '/root',
      ...extraEnv,
    },
    stdio: 'ignore',
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** No form of the password in any text bansho gave out. */
function assertNoSecret(text: string, where: string): void {
  for (const form of [SECRET, enc(SECRET), 'S3cret'])
    assert.ok(!text.includes(form), `${where}: ${form} was given out`);
}

/** A TCP proxy in front of a server that can be taken down (connections refused) and brought back on its port. */
async function switchableProxy(target: number) {
  const clients = new Set<Socket>();
  let server = createTcpServer();
  const port = await freePort();
  let opened = 0;
  const listen = async () => {
    server = createTcpServer((client) => {
      opened++;
      clients.add(client);
      client.on('error', () => {});
      client.on('close', () => clients.delete(client));
      const upstream = connect({ host: '127.0.0.1', port: target });
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      client.pipe(upstream).pipe(client);
    });
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
  };
  await listen();
  return {
    port,
    /** Connections accepted since start. */
    opened: () => opened,
    async down() {
      for (const client of clients) client.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
    up: listen,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Polls /readyz until it answers `status`; the bound is generous, and no timing is asserted. */
async function untilReady(port: number, status: number, boundMs = 20_000): Promise<Answer> {
  const started = Date.now();
  for (;;) {
    const answer = await get(port, '/readyz');
    if (answer.status === status) return answer;
    if (Date.now() - started > boundMs)
      assert.fail(`/readyz still ${answer.status} after ${boundMs} ms: ${answer.body}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

describe('bansho serve', () => {
  test('GET /livez is 200 "ok", and never touches the servers, even when both are down', async () => {
    const closed = await freePort();
    const served = await startServe([], {
      REDIS_URL: `redis://127.0.0.1:${closed}`,
      POSTGRES_DSN: `postgres://postgres@127.0.0.1:${closed}/x`,
    });
    try {
      const live = await get(served.port, '/livez');
      assert.equal(live.status, 200);
      assert.equal(live.body, 'ok\n');
      assert.equal(live.headers['cache-control'], 'no-store');
      const ready = await get(served.port, '/readyz');
      assert.equal(ready.status, 503);
      const head = await get(served.port, '/livez', { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.body, '');
    } finally {
      assert.equal(await stopServe(served), 143);
    }
  });

  test("GET /readyz is 200 with smoke's --json document and the report's age; its metrics follow it", async () => {
    const served = await startServe();
    try {
      const ready = await get(served.port, '/readyz');
      assert.equal(ready.status, 200, ready.body);
      assert.equal(ready.headers['content-type'], 'application/json; charset=utf-8');
      const doc = JSON.parse(ready.body) as {
        status: string;
        checks: Record<string, { status: string; target: string }>;
        checkedAt: string;
        ageMs: number;
      };
      assert.equal(doc.status, 'pass');
      assert.deepEqual(Object.keys(doc.checks), ['redis', 'postgres', 'schema']);
      assert.equal(doc.checks.redis?.target, `redis://:***@127.0.0.1:${redis.port}`);
      assert.ok(Number.isFinite(Date.parse(doc.checkedAt)), doc.checkedAt);
      assert.ok(doc.ageMs >= 0, String(doc.ageMs));
      assertNoSecret(ready.body, '/readyz');

      const metrics = await get(served.port, '/metrics');
      assert.equal(metrics.status, 200);
      assert.equal(metrics.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
      for (const line of [
        'bansho_ready 1',
        'bansho_check_status{check="redis",status="pass"} 1',
        'bansho_check_status{check="schema",status="pass"} 1',
        'bansho_sub_check_status{check="redis",name="eviction",status="pass"} 1',
        'bansho_sub_check_status{check="postgres",name="privileges",status="pass"} 1',
      ]) {
        assert.ok(metrics.body.split('\n').includes(line), `missing ${line}\n${metrics.body}`);
      }
      assert.match(metrics.body, /^bansho_checks_total [1-9]\d*$/m);
      assertNoSecret(metrics.body, '/metrics');
      assertNoSecret(served.stderr(), 'the log');
    } finally {
      await stopServe(served);
    }
  });

  test('a warning is ready unless --strict: then /readyz is 503', async () => {
    // A fresh database: the schema check warns "not bootstrapped yet".
    const fresh = await pg.createDatabase('serve_fresh');
    const freshEnv = { ...env, POSTGRES_DSN: `postgres://postgres@127.0.0.1:${pg.port}/${fresh}` };
    const lenient = await startServe([], freshEnv);
    const strict = await startServe(['--strict'], freshEnv);
    try {
      const warn = await get(lenient.port, '/readyz');
      assert.equal(warn.status, 200);
      assert.equal((JSON.parse(warn.body) as { status: string }).status, 'warn');
      const refused = await get(strict.port, '/readyz');
      assert.equal(refused.status, 503);
      assert.match((await get(strict.port, '/metrics')).body, /^bansho_ready 0$/m);
    } finally {
      await Promise.all([stopServe(lenient), stopServe(strict)]);
    }
  });

  test('unknown paths are 404, other methods 405 with Allow, a request with a body 413', async () => {
    const served = await startServe();
    try {
      assert.equal((await get(served.port, '/')).status, 404);
      assert.equal((await get(served.port, '/readyz/')).status, 404);
      assert.equal((await get(served.port, '/readyz?verbose=1')).status, 200);
      const post = await get(served.port, '/readyz', { method: 'POST' });
      assert.equal(post.status, 405);
      assert.equal(post.headers.allow, 'GET, HEAD');
      const withBody = await get(served.port, '/metrics', {
        method: 'GET',
        body: 'x'.repeat(100),
        length: 100,
      });
      assert.equal(withBody.status, 413);
    } finally {
      await stopServe(served);
    }
  });

  test('a storm of 1,000 probes, 100 at a time, opens one Redis connection and one PostgreSQL session per report', async () => {
    const [redisProxy, pgProxy] = await Promise.all([switchableProxy(redis.port), switchableProxy(pg.port)]);
    const served = await startServe(['--max-age', '1h'], {
      REDIS_URL: `redis://:${enc(SECRET)}@127.0.0.1:${redisProxy.port}`,
      POSTGRES_DSN: `postgres://app_user:${enc(SECRET)}@127.0.0.1:${pgProxy.port}/${database}`,
    });
    try {
      const statuses: number[] = [];
      for (let wave = 0; wave < 10; wave++) {
        const answers = await Promise.all(
          Array.from({ length: 100 }, (_, index) =>
            get(served.port, ['/readyz', '/metrics', '/livez'][index % 3] as string),
          ),
        );
        statuses.push(...answers.map((answer) => answer.status));
      }
      assert.ok(
        statuses.every((status) => status === 200),
        `not all 200: ${[...new Set(statuses)]}`,
      );
      // One report in an hour's max-age: one connection to each server, however many probes.
      assert.equal(redisProxy.opened(), 1, 'Redis connections');
      assert.equal(pgProxy.opened(), 1, 'PostgreSQL sessions');
    } finally {
      await stopServe(served);
      await Promise.all([redisProxy.close(), pgProxy.close()]);
    }
  });

  test('a dependency going down makes /readyz 503 within one max-age plus --timeout, and coming back makes it 200', async () => {
    const redisProxy = await switchableProxy(redis.port);
    const served = await startServe(['--max-age', '300ms', '--timeout', '2s'], {
      ...env,
      REDIS_URL: `redis://:${enc(SECRET)}@127.0.0.1:${redisProxy.port}`,
    });
    try {
      await untilReady(served.port, 200);
      await redisProxy.down();
      const down = await untilReady(served.port, 503);
      const doc = JSON.parse(down.body) as {
        checks: Record<string, { status: string; error?: { code: string } }>;
      };
      assert.equal(doc.checks.redis?.error?.code, 'connection_refused');
      assert.equal(doc.checks.postgres?.status, 'pass');
      await redisProxy.up();
      await untilReady(served.port, 200);
      assert.match(served.stderr(), /not ready: redis fail \(connection_refused\)/);
      assert.match(
        served.stderr(),
        /ready: every check passed[\s\S]*not ready[\s\S]*ready: every check passed/,
      );
    } finally {
      await stopServe(served);
      await redisProxy.close();
    }
  });

  test('malformed requests get 400, oversized headers 431, and a client too slow with its headers is cut off', async () => {
    const served = await startServe();
    try {
      const garbage = await rawRequest(served.port, 'NOT HTTP AT ALL\r\n\r\n');
      assert.match(garbage, /^HTTP\/1\.1 400 /);
      const big = await rawRequest(
        served.port,
        `GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      );
      assert.match(big, /^HTTP\/1\.1 431 /);
      // Half a request, then silence: the server closes the connection (after its headers timeout).
      const slow = connect({ host: '127.0.0.1', port: served.port });
      // Read what comes (a 408 or 400), or the socket never ends.
      slow.resume();
      slow.write('GET /livez HTTP/1.1\r\nHost: x\r\n');
      await Promise.race([
        once(slow, 'close'),
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error('a slow client held the connection')), 30_000),
        ),
      ]);
      // And the server still answers.
      assert.equal((await get(served.port, '/livez')).status, 200);
    } finally {
      await stopServe(served);
    }
  });

  test('SIGTERM with a request in flight: the request is answered, every connection closed, exit 143', async () => {
    const silent = await startSilentPeer();
    const served = await startServe(['--timeout', '10s'], {
      ...env,
      REDIS_URL: `redis://127.0.0.1:${silent.port}`,
    });
    try {
      // The startup check is in flight against the silent Redis; this request joins it.
      const pending = get(served.port, '/readyz');
      const idle = connect({ host: '127.0.0.1', port: served.port });
      idle.resume();
      // Listened for now: the server may close an idle connection at once (Node 26 does) or at
      // the end of its drain (Node 20), before or after the in-flight answer.
      const idleClosed = once(idle, 'close');
      await once(idle, 'connect');
      await new Promise((resolve) => setTimeout(resolve, 200));
      served.child.kill('SIGTERM');
      const answer = await pending;
      assert.equal(answer.status, 503);
      assert.equal(
        (JSON.parse(answer.body) as { checks: { redis: { error: { code: string } } } }).checks.redis.error
          .code,
        'interrupted',
      );
      await idleClosed;
      assert.equal(await served.exited, 143);
      // Nothing of bansho's is left on the silent peer.
      await waitUntil(() => silent.openSockets() === 0, 'the silent peer still has a connection');
    } finally {
      served.child.kill('SIGKILL');
      await silent.close();
    }
  });

  test('a port already taken is exit 1 with one line; a bad --listen is exit 2', async () => {
    const taken = createTcpServer().listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port } = taken.address() as AddressInfo;
    try {
      const child = spawn(BIN, ['serve', '--listen', `127.0.0.1:${port}`], {
        env: { PATH: `${dirname(process.execPath)}:${process.env.PATH}`, ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
        stderr += chunk;
      });
      const [code] = (await once(child, 'exit')) as [number];
      assert.equal(code, 1);
      assert.match(stderr, /^bansho: cannot listen on 127\.0\.0\.1:\d+ \(EADDRINUSE\)\n$/);
      for (const listen of ['localhost', '1.2.3.4:99999', 'a b:80', '[zz]:80']) {
        const bad = spawn(BIN, ['serve', '--listen', listen], {
          env: { PATH: `${dirname(process.execPath)}:${process.env.PATH}` },
          stdio: 'ignore',
        });
        const [badCode] = (await once(bad, 'exit')) as [number];
        assert.equal(badCode, 2, listen);
      }
    } finally {
      taken.close();
    }
  });
});

describe('createHealthHandler on http.createServer', () => {
  test('serves the same endpoints; the gateway closes it with its server', async () => {
    const handler = createHealthHandler({ env, timeoutMs: 3000, maxAgeMs: 60_000 });
    const server: Server = createServer(handler).listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    try {
      assert.equal((await get(port, '/livez')).status, 200);
      const [first, second] = await Promise.all([get(port, '/readyz'), get(port, '/readyz')]);
      assert.equal(first?.status, 200, first?.body);
      assert.equal(second?.body.replace(/"ageMs":\d+/, ''), first?.body.replace(/"ageMs":\d+/, ''));
      assert.equal(handler.metrics.checksTotal, 1);
      assert.match((await get(port, '/metrics')).body, /^bansho_ready 1$/m);
      assert.equal((await get(port, '/other')).status, 404);
    } finally {
      handler.close();
      server.close();
    }
  });

  test('a malformed URL throws a config BanshoError at once, naming the variable and not the password', () => {
    assert.throws(
      () =>
        createHealthHandler({
          env: { REDIS_URL: `redis://:${SECRET}@[bad`, POSTGRES_DSN: env.POSTGRES_DSN },
        }),
      (error: Error & { code?: string }) => {
        assert.equal(error.code, 'config');
        assert.match(error.message, /^REDIS_URL /);
        assertNoSecret(error.message, 'the error');
        return true;
      },
    );
  });
});

/** Sends raw bytes and resolves what the server answered before it closed the connection. */
function rawRequest(port: number, bytes: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(bytes));
    let answer = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => {
      answer += chunk;
    });
    socket.on('error', () => resolve(answer));
    socket.on('close', () => resolve(answer));
  });
}

async function waitUntil(condition: () => boolean, message: string, boundMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > boundMs) assert.fail(message);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
