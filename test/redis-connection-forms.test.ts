/**
 * The connection forms deployments use for Redis (issue 12, item 4): a Unix-domain socket
 * (`unix://`, as redis-py and node-redis write it), and TLS material of its own for rediss://
 * (`ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile`, as redis-py names them) instead of
 * NODE_EXTRA_CA_CERTS, for a single server, a TLS cluster and a master behind a sentinel.
 * Throwaway real servers only; the CLI runs without NODE_EXTRA_CA_CERTS in its environment.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createRedisClient, pingRedis, redisOps } from '../src/index.js';
import { closeRedis } from '../src/redis/client.js';
import { assertExit, type CliResult, emptyDir, parseJson, runCli } from './support/cli.js';
import {
  type RedisCluster,
  type RedisSentinel,
  startClusterNode,
  startRedisCluster,
  startSentinel,
} from './support/redis-topology.js';
import {
  type ClientCertificate,
  freePort,
  makeClientCertificate,
  makeTlsFiles,
  type RedisServer,
  run,
  startRedis,
  type TlsFiles,
} from './support/servers.js';

const SECRET = 'S0cket-Pa55@w0rd';
const enc = encodeURIComponent;
const SECRET_FORMS = [SECRET, enc(SECRET), 'S0cket-Pa55'];

function assertNoSecret(result: CliResult): void {
  for (const form of SECRET_FORMS) {
    assert.ok(
      !result.stdout.includes(form) && !result.stderr.includes(form),
      `the password form ${form} was printed:\n${result.stdout}\n${result.stderr}`,
    );
  }
}

function errorOf(result: CliResult) {
  return parseJson(result).checks.redis?.error;
}

/** Exit 2, exactly one line on stderr, matching `pattern`, without `value` (the URL given) or its password. */
function assertUsageLine(result: CliResult, pattern: RegExp, value: string): void {
  const context = `exit ${result.code}\n${result.stdout}\n${result.stderr}`;
  assert.equal(result.code, 2, context);
  const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
  assert.equal(lines.length, 1, context);
  assert.match(lines[0] ?? '', pattern, context);
  // The URL's host or socket part: what an echo of the URL would show even with its password masked.
  const location = /^[a-z]+:\/\/(?:[^/?#]*@)?([^?#]*)/.exec(value)?.[1] ?? value;
  assert.ok(!(result.stdout + result.stderr).includes(location), `the URL was echoed: ${context}`);
  assertNoSecret(result);
}

describe('Redis over a Unix-domain socket', () => {
  let redis: RedisServer;
  let socket: string;
  before(async () => {
    // Four databases, so that ?db=3 is the last one and ?db=4 is refused by the server.
    redis = await startRedis({ unixSocket: true, password: SECRET, args: ['--databases', '4'] });
    socket = redis.socketPath ?? '';
  });
  after(async () => {
    await redis?.stop();
  });

  test('unix://:password@/path?db=3 passes in every mode, shown with the password masked', async () => {
    const url = `unix://:${enc(SECRET)}@${socket}?db=3`;
    for (const mode of [[], ['--json'], ['--verbose'], ['--json', '--verbose']]) {
      const result = await runCli(['ping-redis', ...mode, '--redis-url', url]);
      assertExit(result, 0);
      assertNoSecret(result);
      if (mode.includes('--json')) {
        const check = parseJson(result).checks.redis;
        assert.equal(check?.target, `unix://:***@${socket}?db=3`);
        assert.equal(check?.details?.find((detail) => detail.name === 'write')?.status, 'pass');
      } else {
        assert.match(
          result.stdout,
          new RegExp(`^PASS\\s+redis\\s+unix://:\\*\\*\\*@${socket}\\?db=3\\s`, 'm'),
        );
      }
    }
  });

  test("redis-py's form, unix:///path?db=3&password=…, and a user name in the userinfo pass too", async () => {
    for (const url of [
      `unix://${socket}?db=3&password=${enc(SECRET)}`,
      `unix://default:${enc(SECRET)}@${socket}`,
      `unix://default@${socket}?password=${enc(SECRET)}`,
    ]) {
      const result = await runCli(['ping-redis', '--json', '--redis-url', url]);
      assertExit(result, 0);
      assertNoSecret(result);
    }
  });

  test("?db=4, beyond the server's databases: exit 1 with unknown_database (the database is selected)", async () => {
    const result = await runCli([
      'ping-redis',
      '--json',
      '--redis-url',
      `unix://:${enc(SECRET)}@${socket}?db=4`,
    ]);
    assertExit(result, 1);
    assert.equal(errorOf(result)?.code, 'unknown_database');
  });

  test('a wrong password: exit 1 with auth_failed, the password never printed', async () => {
    const result = await runCli([
      'ping-redis',
      '--json',
      '--redis-url',
      `unix://:wrong-${enc(SECRET)}@${socket}`,
    ]);
    assertExit(result, 1);
    assert.equal(errorOf(result)?.code, 'auth_failed');
    assertNoSecret(result);
  });

  test('no socket at the path: exit 1 with connection_refused, naming the path', async () => {
    const missing = join(emptyDir(), 'redis.sock');
    const result = await runCli(['ping-redis', '--json', '--redis-url', `unix://${missing}`]);
    assertExit(result, 1);
    const error = errorOf(result);
    assert.equal(error?.code, 'connection_refused');
    assert.match(error?.message ?? '', new RegExp(`no socket at unix://${missing}`));
    assert.match(error?.hint ?? '', /unixsocket/);
  });

  test('a malformed unix:// URL: exit 2, one line naming what is wrong, never the URL or its password', async () => {
    for (const [url, pattern] of [
      [
        `unix://:${enc(SECRET)}@relative/redis.sock`,
        /^bansho: --redis-url is not a valid unix:\/\/ URL: expected unix:\/\//,
      ],
      [
        `unix://:${enc(SECRET)}@${socket}?db=three`,
        /has db "three": expected a database number such as \?db=0$/,
      ],
      [`unix://:${enc(SECRET)}@${socket}?password=${enc(SECRET)}`, /gives a password twice/],
      [
        `unix://:${enc(SECRET)}@${socket}?timeout=1`,
        /unsupported query parameter "timeout" \(supported: db, password\)$/,
      ],
    ] as const) {
      assertUsageLine(await runCli(['ping-redis', '--json', '--redis-url', url]), pattern, url);
    }
  });

  test('the library: pingRedis and createRedisClient take a unix:// URL', async () => {
    const url = `unix://:${enc(SECRET)}@${socket}?db=2`;
    assert.equal(await pingRedis({ url }), true);
    const client = createRedisClient({ url });
    await client.connect();
    try {
      await redisOps.set(client, 'bansho-test:unix', 'v', 60_000);
      assert.equal(await redisOps.get(client, 'bansho-test:unix'), 'v');
      // The key is in database 2, where the URL put the client.
      const info = await client.sendCommand(['INFO', 'keyspace']);
      assert.match(String(info), /^db2:keys=1/m);
    } finally {
      await closeRedis(client);
    }
  });
});

describe('rediss:// with its own CA and client certificate', () => {
  let tls: TlsFiles;
  let other: TlsFiles;
  let client: ClientCertificate;
  let wrongClient: ClientCertificate;
  /** TLS only, client certificates not asked for. */
  let redis: RedisServer;
  /** TLS only, tls-auth-clients yes: a client certificate signed by `tls`'s CA is required. */
  let mutual: RedisServer;
  before(async () => {
    [tls, other] = await Promise.all([makeTlsFiles(), makeTlsFiles()]);
    [client, wrongClient] = await Promise.all([
      makeClientCertificate(tls),
      makeClientCertificate(other, 'wrong-client'),
    ]);
    [redis, mutual] = await Promise.all([
      startRedis({ tls, password: SECRET }),
      startRedis({ tls, tlsAuthClients: true }),
    ]);
  });
  after(async () => {
    await Promise.all([redis?.stop(), mutual?.stop()]);
  });

  const caParam = () => `ssl_ca_certs=${tls.caCert}`;
  const certParams = (cert: ClientCertificate) => `ssl_certfile=${cert.cert}&ssl_keyfile=${cert.key}`;

  test('ssl_ca_certs trusts a private CA, without NODE_EXTRA_CA_CERTS; the target shows it', async () => {
    const url = `rediss://:${enc(SECRET)}@127.0.0.1:${redis.port}?${caParam()}`;
    const result = await runCli(['ping-redis', '--json', '--redis-url', url]);
    assertExit(result, 0);
    assertNoSecret(result);
    assert.equal(
      parseJson(result).checks.redis?.target,
      `rediss://:***@127.0.0.1:${redis.port}?ssl_ca_certs=${tls.caCert}`,
    );
  });

  test('without ssl_ca_certs, or with another CA: exit 1 with tls', async () => {
    for (const query of ['', `?ssl_ca_certs=${other.caCert}`]) {
      const result = await runCli([
        'ping-redis',
        '--json',
        '--redis-url',
        `rediss://:${enc(SECRET)}@127.0.0.1:${redis.port}${query}`,
      ]);
      assertExit(result, 1);
      assert.equal(errorOf(result)?.code, 'tls');
      assertNoSecret(result);
    }
  });

  test('a server that requires a client certificate: the right one passes', async () => {
    const url = `rediss://127.0.0.1:${mutual.port}?${caParam()}&${certParams(client)}`;
    const result = await runCli(['ping-redis', '--json', '--redis-url', url]);
    assertExit(result, 0);
  });

  test('a server that requires a client certificate: none is tls, saying one is required', async () => {
    const result = await runCli([
      'ping-redis',
      '--json',
      '--redis-url',
      `rediss://127.0.0.1:${mutual.port}?${caParam()}`,
    ]);
    assertExit(result, 1);
    const error = errorOf(result);
    assert.equal(error?.code, 'tls');
    assert.match(error?.message ?? '', /requires a client certificate/);
    assert.match(error?.hint ?? '', /ssl_certfile=.*ssl_keyfile=/);
  });

  test('a server that requires a client certificate: one of another CA is tls, saying it was refused', async () => {
    const url = `rediss://127.0.0.1:${mutual.port}?${caParam()}&${certParams(wrongClient)}`;
    const result = await runCli(['ping-redis', '--json', '--redis-url', url]);
    assertExit(result, 1);
    const error = errorOf(result);
    assert.equal(error?.code, 'tls');
    assert.match(error?.message ?? '', /refused the client certificate/);
  });

  test("the library: pingRedis and createRedisClient use the URL's CA and client certificate", async () => {
    const url = `rediss://127.0.0.1:${mutual.port}?${caParam()}&${certParams(client)}`;
    assert.equal(await pingRedis({ url }), true);
    const redisClient = createRedisClient({ url });
    await redisClient.connect();
    try {
      assert.equal(await redisOps.incr(redisClient, 'bansho-test:mtls'), 1);
    } finally {
      await closeRedis(redisClient);
    }
  });

  describe('bad TLS files: exit 2, one line naming the parameter, never the URL or its password', () => {
    const dir = emptyDir();
    const url = (query: string) => `rediss://:${enc(SECRET)}@127.0.0.1:${redis.port}?${query}`;
    const cases: Array<[string, () => Promise<string>, RegExp]> = [
      [
        'an ssl_ca_certs that does not exist',
        async () => url(`ssl_ca_certs=${join(dir, 'missing.pem')}`),
        /ssl_ca_certs ".*missing\.pem" cannot be read \(ENOENT\)$/,
      ],
      [
        'an ssl_ca_certs that holds no certificate',
        async () => {
          await writeFile(join(dir, 'notes.txt'), 'not a certificate\n');
          return url(`ssl_ca_certs=${join(dir, 'notes.txt')}`);
        },
        /ssl_ca_certs ".*notes\.txt" holds no PEM certificate$/,
      ],
      [
        'an ssl_keyfile that is not the key of ssl_certfile',
        async () => url(`ssl_certfile=${client.cert}&ssl_keyfile=${tls.key}`),
        /ssl_keyfile ".*server\.key" is not the key of ssl_certfile ".*client[^"]*\.crt"$/,
      ],
      [
        'an encrypted ssl_keyfile',
        async () => {
          const encrypted = join(dir, 'encrypted.key');
          await run('openssl', [
            'pkey',
            '-in',
            client.key,
            '-out',
            encrypted,
            '-aes256',
            '-passout',
            'pass:x',
          ]);
          return url(`ssl_certfile=${client.cert}&ssl_keyfile=${encrypted}`);
        },
        /ssl_keyfile ".*encrypted\.key" is encrypted/,
      ],
      [
        'an ssl_certfile without its ssl_keyfile',
        async () => url(`ssl_certfile=${client.cert}`),
        /has ssl_certfile without ssl_keyfile: a client certificate needs both$/,
      ],
      [
        'TLS files on a redis:// URL',
        async () => `redis://:${enc(SECRET)}@127.0.0.1:${redis.port}?ssl_ca_certs=${tls.caCert}`,
        /has ssl_ca_certs, which only a rediss:\/\/ URL takes$/,
      ],
    ];
    for (const [name, makeUrl, pattern] of cases) {
      test(name, async () => {
        const value = await makeUrl();
        for (const [source, args, env] of [
          ['--redis-url', ['ping-redis', '--redis-url', value], {}],
          ['REDIS_URL', ['smoke', '--json'], { REDIS_URL: value }],
        ] as const) {
          const result = await runCli(args, { env });
          assertUsageLine(result, pattern, value);
          assert.match(result.stderr, new RegExp(`^bansho: ${source}('s)? `));
        }
      });
    }
  });
});

describe('rediss:// with ssl_ca_certs on a TLS cluster and a TLS master behind a sentinel', () => {
  let tls: TlsFiles;
  let cluster: RedisCluster;
  let master: RedisServer;
  let sentinel: RedisSentinel;
  before(async () => {
    tls = await makeTlsFiles();
    [cluster, master] = await Promise.all([
      startRedisCluster(3, { tls }),
      startRedis({ tls, password: SECRET }),
    ]);
    sentinel = await startSentinel({ host: master.host, port: master.port }, 'mymaster', SECRET, { tls });
  });
  after(async () => {
    await Promise.all([cluster?.stop(), sentinel?.stop(), master?.stop()]);
  });

  test("a cluster node: every master is checked over TLS with the URL's CA", async () => {
    const node = cluster.masters[0];
    const result = await runCli([
      'ping-redis',
      '--json',
      '--redis-url',
      `rediss://127.0.0.1:${node?.port}?ssl_ca_certs=${tls.caCert}`,
    ]);
    assertExit(result, 0);
    const check = parseJson(result).checks.redis as
      | { topology?: { nodes?: { status: string }[] } }
      | undefined;
    const topology = check?.topology;
    assert.equal(topology?.nodes?.length, 3);
    assert.ok(topology?.nodes?.every((item) => item.status === 'pass'));
  });

  test("rediss+sentinel://: the master the sentinel names is checked over TLS with the URL's CA", async () => {
    const result = await runCli([
      'ping-redis',
      '--json',
      '--redis-url',
      `${sentinel.url('mymaster', `:${enc(SECRET)}`).replace(/^redis\+/, 'rediss+')}?ssl_ca_certs=${tls.caCert}`,
    ]);
    assertExit(result, 0);
    assertNoSecret(result);
    assert.equal(
      parseJson(result).checks.redis?.details?.find((detail) => detail.name === 'role')?.status,
      'pass',
    );
  });
});

describe('a cluster node reached by its Unix socket', () => {
  /** A cluster node on a Unix socket and a TCP port (cluster nodes need one), every slot its own. */
  let alone: RedisServer;
  /** Another such node, joined with `peer` (TCP only); the slots split between them. */
  let joined: RedisServer;
  let peer: RedisServer;
  // Cluster nodes need a TCP port, for their bus, even when clients use the socket.
  const socketClusterNode = async () =>
    startRedis({
      unixSocket: true,
      args: [
        '--port',
        String(await freePort()),
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        'nodes.conf',
      ],
    });
  const socketCli = async (server: RedisServer, ...args: string[]) =>
    (await run('redis-cli', ['-s', server.socketPath ?? '', ...args])).stdout;
  const waitForState = async (server: RedisServer) => {
    for (let attempt = 0; attempt < 150; attempt++) {
      const [info, nodes] = await Promise.all([
        socketCli(server, 'CLUSTER', 'INFO'),
        socketCli(server, 'CLUSTER', 'NODES'),
      ]);
      if (info.includes('cluster_state:ok') && !nodes.includes('handshake')) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('cluster_state never became ok');
  };
  before(async () => {
    [alone, joined, peer] = await Promise.all([socketClusterNode(), socketClusterNode(), startClusterNode()]);
    await socketCli(alone, 'CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    await socketCli(joined, 'CLUSTER', 'ADDSLOTSRANGE', '0', '8191');
    await run('redis-cli', ['-p', String(peer.port), 'CLUSTER', 'ADDSLOTSRANGE', '8192', '16383']);
    await socketCli(joined, 'CLUSTER', 'MEET', '127.0.0.1', String(peer.port));
    await Promise.all([waitForState(alone), waitForState(joined)]);
  });
  after(async () => {
    await Promise.all([alone?.stop(), joined?.stop(), peer?.stop()]);
  });

  test('joined with another: the cluster is checked through it, the write routed over TCP', async () => {
    const result = await runCli(['ping-redis', '--json', '--redis-url', joined.url]);
    assertExit(result, 0);
    const check = parseJson(result).checks.redis;
    assert.equal(check?.message, 'cluster of 2 masters');
    assert.equal(check?.details?.find((detail) => detail.name === 'write')?.status, 'pass');
  });

  test('alone, it knows no TCP address of its own: the write is not checked, and says why', async () => {
    const result = await runCli(['ping-redis', '--json', '--redis-url', alone.url]);
    assertExit(result, 0);
    const check = parseJson(result).checks.redis;
    assert.equal(check?.message, 'cluster of 1 master');
    const write = check?.details?.find((detail) => detail.name === 'write');
    assert.equal(write?.status, 'warn');
    assert.match(write?.observed ?? '', /no master has a TCP address/);
    const eviction = check?.details?.find((detail) => detail.name === 'eviction') as
      | { node?: string }
      | undefined;
    assert.equal(eviction?.node, alone.socketPath);
  });
});
