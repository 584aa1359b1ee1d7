/**
 * Redis beyond one server (issue 6): a three-master Redis Cluster made by
 * `redis-cli --cluster create`, a cluster with unassigned slots, a cluster with a master
 * down, and a master watched by a real Sentinel. The CLI is spawned as users run it; the
 * library's helpers run against the real cluster.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  BanshoError,
  createRedisCluster,
  defineScript,
  pingRedis,
  type RedisClusterClient,
  redisOps,
} from '../src/index.js';
import { assertExit, type CliResult, parseJson, runCli } from './support/cli.js';
import {
  type RedisCluster,
  type RedisSentinel,
  startClusterNode,
  startRedisCluster,
  startSentinel,
  waitForClusterState,
} from './support/redis-topology.js';
import { exec, freePort, type RedisServer, startRedis } from './support/servers.js';

const SECRET = 'sentinel-master-s3cret';

type Topology = {
  kind: string;
  state?: string;
  slotsCovered?: number;
  nodes?: { node: string; status: string; slots: string; latencyMs?: number; error?: string }[];
  master?: { name: string; node?: string };
  sentinels?: string[];
};

function topologyOf(result: CliResult): Topology | undefined {
  return (parseJson(result).checks.redis as { topology?: Topology } | undefined)?.topology;
}

function detail(result: CliResult, name: string) {
  return parseJson(result).checks.redis?.details?.find((item) => item.name === name);
}

/** The sub-checks of that name, one per node, as `{ node: status }`. */
function perNode(result: CliResult, name: string): Record<string, string> {
  const details = (parseJson(result).checks.redis?.details ?? []) as {
    name: string;
    node?: string;
    status: string;
  }[];
  return Object.fromEntries(
    details.filter((item) => item.name === name).map((item) => [item.node ?? '(none)', item.status]),
  );
}

const address = (node: RedisServer | undefined) => `127.0.0.1:${node?.port}`;

/** Runs redis-cli against a node that is not (yet) part of a RedisCluster, and returns its stdout. */
async function cli(node: RedisServer, ...args: string[]): Promise<string> {
  const result = await exec('redis-cli', ['-p', String(node.port), ...args]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout;
}

describe('a healthy three-master Redis Cluster', () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await startRedisCluster(3);
  });
  after(async () => {
    await cluster?.stop();
  });

  test('REDIS_URL at one node: ping-redis sees a cluster, checks every master, and passes', async () => {
    const result = await runCli(['ping-redis', '--json', '--redis-url', cluster.masters[1]?.url ?? '']);
    assertExit(result, 0);
    const topology = topologyOf(result);
    assert.equal(topology?.kind, 'cluster');
    assert.equal(topology?.state, 'ok');
    assert.equal(topology?.slotsCovered, 16384);
    assert.deepEqual(
      topology?.nodes?.map((node) => node.node).sort(),
      cluster.masters.map((node) => `127.0.0.1:${node.port}`).sort(),
    );
    assert.ok(topology?.nodes?.every((node) => node.status === 'pass' && node.slots !== ''));
    for (const name of ['slots', 'masters', 'state', 'write'])
      assert.equal(detail(result, name)?.status, 'pass', name);
    // The single-server sub-checks, once per master, each naming its node.
    const everyMaster = Object.fromEntries(cluster.masters.map((node) => [address(node), 'pass']));
    for (const name of ['eviction', 'memory', 'commands', 'clock'])
      assert.deepEqual(perNode(result, name), everyMaster, name);
  });

  test('comma-separated seeds, the first one down: smoke passes from the next seed', async () => {
    const closed = await freePort();
    const seeds = `redis://127.0.0.1:${closed},${cluster.seeds(2)}`;
    const result = await runCli(['ping-redis', '--json', '--redis-url', seeds]);
    assertExit(result, 0);
    assert.equal(topologyOf(result)?.nodes?.length, 3);
    assert.equal(
      parseJson(result).checks.redis?.target,
      `redis://127.0.0.1:${closed},127.0.0.1:${cluster.masters[0]?.port},127.0.0.1:${cluster.masters[1]?.port}`,
    );
  });

  test('human output says it is a cluster, with a line per sub-check', async () => {
    const result = await runCli(['ping-redis', '--redis-url', cluster.masters[0]?.url ?? '']);
    assertExit(result, 0);
    assert.match(result.stdout, /^PASS\s+redis\s/m);
    assert.match(result.stdout, /slots.*all 16384 slots have a master/);
    assert.match(result.stdout, /masters.*3 of 3 answer PING/);
    assert.match(result.stdout, /state.*cluster_state:ok/);
  });

  test('the library: pingRedis checks the cluster too, from one node or from seeds', async () => {
    assert.equal(await pingRedis({ url: cluster.masters[2]?.url }), true);
    assert.equal(await pingRedis({ env: { REDIS_URL: cluster.seeds() } }), true);
  });

  test('the library: redisOps and a one-slot Lua script work through createRedisCluster', async () => {
    const client: RedisClusterClient = createRedisCluster({ url: cluster.seeds() });
    await client.connect();
    try {
      // Keys spread over the three masters' slots.
      for (const key of ['alpha', 'bravo', 'charlie', 'delta']) {
        await redisOps.set(client, `bansho-test:${key}`, 'v', 60_000);
        assert.equal(await redisOps.get(client, `bansho-test:${key}`), 'v');
      }
      assert.equal(await redisOps.incr(client, 'bansho-test:hits'), 1);
      assert.equal(await redisOps.expire(client, 'bansho-test:hits', 60_000), true);
      // A hash tag keeps both keys in one slot, as a multi-key script on a cluster needs.
      const script = defineScript("return redis.call('INCR', KEYS[1]) + redis.call('INCR', KEYS[2])");
      for (const master of cluster.masters) await cluster.cli(master, 'SCRIPT', 'FLUSH');
      const keys = ['{tenant:42}:minute', '{tenant:42}:hour'];
      assert.equal(await redisOps.runScript(client, script, keys, []), 2);
      assert.equal(await redisOps.runScript(client, script, keys, []), 4);
      await assert.rejects(redisOps.runScript(client, script, ['a', 'b'], []), /CROSSSLOT/);
    } finally {
      await client.close().catch(() => client.destroy());
    }
  });
});

describe('a cluster with unassigned slots', () => {
  let nodes: RedisServer[];
  before(async () => {
    nodes = await Promise.all([0, 1, 2].map(() => startClusterNode()));
    const [a, b, c] = nodes as [RedisServer, RedisServer, RedisServer];
    await cli(a, 'CLUSTER', 'ADDSLOTSRANGE', '0', '5460');
    await cli(b, 'CLUSTER', 'ADDSLOTSRANGE', '5461', '10922');
    // 16284-16383 stay unassigned.
    await cli(c, 'CLUSTER', 'ADDSLOTSRANGE', '10923', '16283');
    await cli(a, 'CLUSTER', 'MEET', '127.0.0.1', String(b.port));
    await cli(a, 'CLUSTER', 'MEET', '127.0.0.1', String(c.port));
    for (let attempt = 0; attempt < 100; attempt++) {
      const slots = await cli(a, 'CLUSTER', 'SLOTS');
      if (slots.includes(String(b.port)) && slots.includes(String(c.port))) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('the nodes never learned of each other');
  });
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });

  test('ping-redis exits 1 with not_ready, naming the slots no master holds', async () => {
    const result = await runCli(['ping-redis', '--json', '--redis-url', nodes[0]?.url ?? '']);
    assertExit(result, 1);
    const check = parseJson(result).checks.redis;
    assert.equal(check?.error?.code, 'not_ready');
    assert.match(check?.error?.message ?? '', /slots: slots 16284-16383 have no master \(100 of 16384\)/);
    assert.equal(topologyOf(result)?.slotsCovered, 16284);
    assert.equal(detail(result, 'state')?.status, 'fail');
  });
});

describe('a cluster with a master down', () => {
  let cluster: RedisCluster;
  before(async () => {
    cluster = await startRedisCluster(3);
    await cluster.masters[2]?.stop();
    await waitForClusterState(cluster, 'fail', cluster.masters.slice(0, 2));
  });
  after(async () => {
    await cluster?.stop();
  });

  test('ping-redis exits 1 with not_ready, naming the master and its slots; the others pass', async () => {
    const down = `127.0.0.1:${cluster.masters[2]?.port}`;
    const result = await runCli(['ping-redis', '--json', '--redis-url', cluster.masters[0]?.url ?? '']);
    assertExit(result, 1);
    const check = parseJson(result).checks.redis;
    assert.equal(check?.error?.code, 'not_ready');
    const masters = detail(result, 'masters');
    assert.equal(masters?.status, 'fail');
    assert.match(
      masters?.observed ?? '',
      new RegExp(
        `1 of 3 do not answer: ${down.replace(/\./g, '\\.')} \\(slots \\d+-\\d+; connection_refused`,
      ),
    );
    const nodes = topologyOf(result)?.nodes ?? [];
    assert.deepEqual(
      nodes.filter((node) => node.status === 'fail').map((node) => node.node),
      [down],
    );
    assert.equal(nodes.filter((node) => node.status === 'pass').length, 2);
    assert.equal(detail(result, 'state')?.observed, 'cluster_state:fail');
  });
});

describe('Redis Sentinel', () => {
  let master: RedisServer;
  let sentinel: RedisSentinel;
  before(async () => {
    master = await startRedis({ password: SECRET });
    // The sentinel logs in to the master it watches.
    sentinel = await startSentinel({ host: master.host, port: master.port }, 'mymaster', SECRET);
  });
  after(async () => {
    await Promise.all([sentinel?.stop(), master?.stop()]);
  });

  test('redis+sentinel:// resolves the master and checks it, password never printed', async () => {
    const url = sentinel.url('mymaster', `:${SECRET}`);
    for (const args of [['ping-redis', '--json'], ['ping-redis'], ['ping-redis', '--verbose']]) {
      const result = await runCli([...args, '--redis-url', url]);
      assertExit(result, 0);
      assert.ok(!(result.stdout + result.stderr).includes(SECRET), 'the password was printed');
    }
    const result = await runCli(['ping-redis', '--json', '--redis-url', url]);
    const topology = topologyOf(result);
    assert.equal(topology?.kind, 'sentinel');
    assert.deepEqual(topology?.master, { name: 'mymaster', node: `127.0.0.1:${master.port}` });
    assert.deepEqual(topology?.sentinels, [`127.0.0.1:${sentinel.port}`]);
    assert.equal(detail(result, 'role')?.status, 'pass');
    assert.equal(detail(result, 'write')?.status, 'pass');
    assert.equal(
      parseJson(result).checks.redis?.target,
      `redis+sentinel://:***@127.0.0.1:${sentinel.port}/mymaster`,
    );
    // Every sub-check is the master's, and says so.
    for (const name of ['role', 'write', 'commands', 'eviction', 'memory', 'clock'])
      assert.deepEqual(perNode(result, name), { [address(master)]: 'pass' }, name);
  });

  test('the library: pingRedis resolves the master through the sentinels, and throws for an unknown name', async () => {
    assert.equal(await pingRedis({ url: sentinel.url('mymaster', `:${SECRET}`) }), true);
    await assert.rejects(pingRedis({ url: sentinel.url('nosuchmaster', `:${SECRET}`) }), (error: unknown) => {
      assert.ok(error instanceof BanshoError);
      assert.equal(error.code, 'not_ready');
      return true;
    });
  });

  test('a master name the sentinels do not know: exit 1 with not_ready, saying so', async () => {
    const result = await runCli([
      'ping-redis',
      '--json',
      '--redis-url',
      sentinel.url('nosuchmaster', `:${SECRET}`),
    ]);
    assertExit(result, 1);
    const error = parseJson(result).checks.redis?.error;
    assert.equal(error?.code, 'not_ready');
    assert.match(error?.message ?? '', /know no master "nosuchmaster"/);
    assert.match(error?.hint ?? '', /SENTINEL MASTERS/);
  });

  test('no reachable sentinel: exit 1 with connection_refused, naming the sentinels', async () => {
    const closed = await freePort();
    const result = await runCli([
      'ping-redis',
      '--json',
      '--redis-url',
      `redis+sentinel://127.0.0.1:${closed}/mymaster`,
    ]);
    assertExit(result, 1);
    const error = parseJson(result).checks.redis?.error;
    assert.equal(error?.code, 'connection_refused');
    assert.match(error?.message ?? '', new RegExp(`no sentinel of 127\\.0\\.0\\.1:${closed} answered`));
  });

  test('REDIS_URL pointing at a sentinel as if it were a server: exit 1, with the URL to use', async () => {
    // With a database, the sentinel refuses SELECT before INFO could tell what it is; with a password, HELLO's AUTH.
    for (const url of [
      `redis://127.0.0.1:${sentinel.port}`,
      `redis://127.0.0.1:${sentinel.port}/2`,
      `redis://:${SECRET}@127.0.0.1:${sentinel.port}/1`,
    ]) {
      const result = await runCli(['ping-redis', '--json', '--redis-url', url]);
      assertExit(result, 1);
      const error = parseJson(result).checks.redis?.error;
      assert.equal(error?.code, 'protocol', url);
      assert.match(
        error?.message ?? '',
        new RegExp(
          `is a Redis Sentinel, not a server: use redis\\+sentinel://127\\.0\\.0\\.1:${sentinel.port}/mymaster$`,
        ),
        url,
      );
      assert.match(error?.hint ?? '', /redis\+sentinel:\/\/<sentinel host:port,…>\/<master-name>/, url);
      assert.doesNotMatch(error?.hint ?? '', /does not speak Redis/, url);
      assert.ok(!result.stdout.includes(SECRET), url);
    }
  });
});

describe('a cluster with a master that holds no slots', () => {
  let nodes: RedisServer[];
  before(async () => {
    nodes = await Promise.all([0, 1, 2].map(() => startClusterNode()));
    const [a, b, c] = nodes as [RedisServer, RedisServer, RedisServer];
    // Every slot on a and b; c joins as a master with none (a node added, not yet rebalanced).
    await cli(a, 'CLUSTER', 'ADDSLOTSRANGE', '0', '8191');
    await cli(b, 'CLUSTER', 'ADDSLOTSRANGE', '8192', '16383');
    await cli(a, 'CLUSTER', 'MEET', '127.0.0.1', String(b.port));
    await cli(a, 'CLUSTER', 'MEET', '127.0.0.1', String(c.port));
    for (let attempt = 0; attempt < 150; attempt++) {
      const [view, info] = await Promise.all([cli(a, 'CLUSTER', 'NODES'), cli(a, 'CLUSTER', 'INFO')]);
      const connected = view.split('\n').filter((line) => /\bmaster - .* connected/.test(line));
      if (connected.length === 3 && info.includes('cluster_state:ok')) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('the nodes never formed one cluster');
  });
  after(async () => {
    await Promise.all(nodes.map((node) => node.stop()));
  });

  test('ping-redis counts all three masters, says which holds no slots, and checks it too', async () => {
    const result = await runCli(['ping-redis', '--json', '--redis-url', nodes[0]?.url ?? '']);
    assertExit(result, 0);
    assert.equal(parseJson(result).checks.redis?.message, 'cluster of 3 masters');
    const topology = topologyOf(result);
    assert.deepEqual(
      topology?.nodes?.map((node) => [node.node, node.slots]).sort(),
      [
        [address(nodes[0]), '0-8191'],
        [address(nodes[1]), '8192-16383'],
        [address(nodes[2]), ''],
      ].sort(),
    );
    const masters = detail(result, 'masters');
    assert.equal(masters?.status, 'pass');
    assert.equal(masters?.observed, `3 of 3 answer PING; ${address(nodes[2])} holds no slots`);
    assert.match(masters?.hint ?? '', /serves no keys/);
    assert.equal(perNode(result, 'eviction')[address(nodes[2])], 'pass');
  });

  test('human output: "cluster of 3 masters", and the slotless master named', async () => {
    const result = await runCli(['ping-redis', '--redis-url', nodes[1]?.url ?? '']);
    assertExit(result, 0);
    assert.match(result.stdout, /^PASS\s+redis\s.*cluster of 3 masters$/m);
    assert.match(
      result.stdout,
      new RegExp(`masters\\s+3 of 3 answer PING; 127\\.0\\.0\\.1:${nodes[2]?.port} holds no slots`),
    );
  });
});

describe('a three-master cluster with one master set to maxmemory and allkeys-lru', () => {
  let cluster: RedisCluster;
  let lru: RedisServer;
  before(async () => {
    cluster = await startRedisCluster(3);
    lru = cluster.masters[1] as RedisServer;
    await cluster.cli(lru, 'CONFIG', 'SET', 'maxmemory', '100mb');
    await cluster.cli(lru, 'CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
  });
  after(async () => {
    await cluster?.stop();
  });

  test('ping-redis warns (exit 0) with the eviction sub-check naming that master; the others pass', async () => {
    const result = await runCli(['ping-redis', '--json', '--redis-url', cluster.masters[0]?.url ?? '']);
    assertExit(result, 0);
    assert.equal(parseJson(result).status, 'warn');
    const eviction = perNode(result, 'eviction');
    assert.deepEqual(eviction, {
      [address(cluster.masters[0])]: 'pass',
      [address(lru)]: 'warn',
      [address(cluster.masters[2])]: 'pass',
    });
    const warned = parseJson(result).checks.redis?.details?.find(
      (item) => item.name === 'eviction' && item.status === 'warn',
    );
    assert.equal(warned?.observed, 'maxmemory 100.00M, policy allkeys-lru');
    assert.match(warned?.hint ?? '', /maxmemory-policy noeviction/);
    // The write probe still runs: a warning is no reason to skip it.
    assert.equal(detail(result, 'write')?.status, 'pass');
  });

  test('human output names the node on the eviction line', async () => {
    const result = await runCli(['ping-redis', '--redis-url', cluster.masters[2]?.url ?? '']);
    assertExit(result, 0);
    assert.match(result.stdout, /^WARN\s+redis\s/m);
    assert.match(
      result.stdout,
      new RegExp(
        `warn\\s+eviction\\s+127\\.0\\.0\\.1:${lru.port}\\s+maxmemory 100\\.00M, policy allkeys-lru`,
      ),
    );
  });

  test('with --strict, ping-redis fails (exit 1) on that warning, from comma-separated seeds too', async () => {
    const result = await runCli(['ping-redis', '--strict', '--json', '--redis-url', cluster.seeds()]);
    assertExit(result, 1);
    assert.equal(parseJson(result).status, 'fail');
    assert.equal(perNode(result, 'eviction')[address(lru)], 'warn');
  });
});

describe('a cluster with a master that stopped answering', () => {
  let cluster: RedisCluster;
  let frozenPid: number;
  before(async () => {
    cluster = await startRedisCluster(3);
    const info = await cluster.cli(cluster.masters[2] as RedisServer, 'INFO', 'server');
    frozenPid = Number(/process_id:(\d+)/.exec(info)?.[1]);
    assert.ok(frozenPid > 0);
    process.kill(frozenPid, 'SIGSTOP');
  });
  after(async () => {
    if (frozenPid) process.kill(frozenPid, 'SIGCONT');
    await cluster?.stop();
  });

  test('within --timeout, the silent master fails on its own while the others are checked, concurrently', async () => {
    const result = await runCli([
      'ping-redis',
      '--json',
      '--timeout',
      '2s',
      '--redis-url',
      cluster.masters[0]?.url ?? '',
    ]);
    assertExit(result, 1);
    const nodes = topologyOf(result)?.nodes ?? [];
    const silent = nodes.find((node) => node.node === address(cluster.masters[2]));
    assert.equal(silent?.status, 'fail');
    assert.match(silent?.error ?? '', /^timeout: /);
    // The other masters were checked meanwhile, not after it.
    assert.deepEqual(perNode(result, 'eviction'), {
      [address(cluster.masters[0])]: 'pass',
      [address(cluster.masters[1])]: 'pass',
    });
    assert.equal(detail(result, 'masters')?.status, 'fail');
    assert.ok((parseJson(result).checks.redis?.latencyMs ?? Infinity) <= 2000, result.stdout);
  });
});
