import { randomUUID } from 'node:crypto';
import { createCluster, createSentinel } from '@redis/client';
import type { CheckDetail } from '../checks.js';
import { displayAddress, type RedisNode, type RedisTarget } from '../config.js';
import { startDeadline } from '../deadline.js';
import { BanshoError } from '../errors.js';
import { failed, passed, throwOnFailedDetail } from '../sub-checks/detail.js';
import { UNCACHED } from '../sub-checks/redis.js';
import {
  checkRedis,
  classifyRedisError,
  type RedisCheckOptions,
  type RedisClientOptions,
  type RedisClusterClient,
  type RedisProbe,
  resolveRedisTarget,
  socketOptions,
} from './redis.js';

/*
 * Health checks of Redis beyond one server, with node-redis's own clients for them:
 * createCluster (slot map discovery, per-node clients, routing by key) and createSentinel
 * (master resolution through the sentinels). bansho routes nothing itself.
 */

/**
 * Picks the check for what REDIS_URL names: a sentinel URL, a list of cluster seeds, or one
 * server, which is checked as a whole cluster when it turns out to be a cluster node (a
 * single node's write probe and sub-checks say little about a cluster).
 */
export async function checkRedisTarget(
  target: RedisTarget,
  options: RedisCheckOptions,
): Promise<RedisProbe | RedisTopologyProbe> {
  const { sentinel, seeds } = target;
  if (sentinel) return checkRedisSentinel(target, sentinel, options);
  if (seeds) return checkRedisCluster(target, seeds, options);
  const single = await checkRedis(target, options);
  if (single.mode === 'sentinel') {
    throw new BanshoError(
      'protocol',
      `${target.display} is a Redis Sentinel, not a server: use redis+sentinel://${target.host}:${target.port}/<master-name>`,
      { service: 'redis' },
    );
  }
  if (single.mode !== 'cluster') return single;
  return checkRedisCluster(target, [{ host: target.host, port: target.port }], options);
}

/**
 * Resolves true when REDIS_URL (or `options.url`) can serve the gateway: one server, a
 * cluster or a sentinel-managed master, checked as `ping-redis` checks it (no sub-check
 * failed: a replica, or a user the ACL denies the gateway's commands, throws); otherwise
 * throws a classified BanshoError.
 */
export async function pingRedis(
  options: RedisClientOptions & { timeoutMs?: number; signal?: AbortSignal | undefined } = {},
): Promise<true> {
  const probe = await checkRedisTarget(resolveRedisTarget(options), {
    timeoutMs: options.timeoutMs ?? options.connectTimeoutMs ?? 5000,
    signal: options.signal,
  });
  throwOnFailedDetail(probe.details, 'redis');
  return true;
}

/**
 * Creates a node-redis Redis Cluster client, not yet connected, seeded from `options.url`,
 * else REDIS_URL (comma-separated seed URLs, or one node's URL), with credentials and TLS for
 * every node. redisOps work on it; multi-key scripts need their keys in one slot.
 */
export function createRedisCluster(options: RedisClientOptions = {}): RedisClusterClient {
  const target = resolveRedisTarget(options);
  if (target.sentinel)
    throw new BanshoError(
      'config',
      'a redis+sentinel:// URL names no cluster: use createRedisClient on the master',
    );
  if (target.path !== undefined)
    throw new BanshoError('config', "a unix:// URL names no cluster: a cluster's nodes are host:port");
  const seeds = target.seeds ?? [{ host: target.host, port: target.port }];
  const defaults = nodeOptions(target, options.connectTimeoutMs ?? 5000);
  const cluster = createCluster({
    rootNodes: seeds.map((seed) => ({ socket: { host: seed.host, port: seed.port } })),
    defaults: {
      ...defaults,
      socket: {
        ...defaults.socket,
        reconnectStrategy: options.reconnect ? (retries: number) => Math.min(50 * 2 ** retries, 2000) : false,
      },
    },
  });
  // As with createRedisClient: every command's promise reports errors; without a listener node-redis would crash.
  cluster.on('error', () => {});
  return cluster;
}

/** A cluster master as the check saw it; `checks.redis.topology.nodes[]` in --json. */
export interface ClusterNodeReport {
  /** "host:port". */
  node: string;
  role: 'master';
  status: 'pass' | 'fail';
  /** Its slot ranges: "0-5460". */
  slots: string;
  latencyMs?: number;
  /** Why it failed: a failure code and message. */
  error?: string;
}

/** What a topology check saw; `checks.redis.topology` in --json. */
export type RedisTopology =
  | {
      kind: 'cluster';
      /** cluster_state as the first master that answered reports it: "ok" or "fail". */
      state?: string;
      /** How many of the 16384 slots have a master in the slot map. */
      slotsCovered: number;
      nodes: ClusterNodeReport[];
    }
  | {
      kind: 'sentinel';
      /** The master's name, and the address the sentinels gave for it. */
      master: { name: string; node?: string };
      sentinels: string[];
    };

export interface RedisTopologyProbe extends RedisProbe {
  topology: RedisTopology;
}

const SLOTS = 16384;

/** What every node of a topology gets: credentials, TLS, a bounded connect, no retry loop. */
function nodeOptions(target: RedisTarget, timeoutMs: number) {
  // Each node's own host and port come from the slot map or the sentinels.
  const { host: _, port: __, ...tls } = socketOptions(target);
  return {
    socket: {
      connectTimeout: timeoutMs,
      reconnectStrategy: false as const,
      ...(target.tls ? tls : {}),
    },
    ...(target.username === undefined ? {} : { username: target.username }),
    ...(target.password === undefined ? {} : { password: target.password }),
    disableClientInfo: true,
  };
}

/** Contiguous ranges of the slots `owned` marks: "0-99,200-299". */
export function slotRanges(owned: (slot: number) => boolean): string {
  const ranges: string[] = [];
  for (let slot = 0; slot < SLOTS; slot++) {
    if (!owned(slot)) continue;
    const from = slot;
    while (slot + 1 < SLOTS && owned(slot + 1)) slot++;
    ranges.push(from === slot ? `${from}` : `${from}-${slot}`);
  }
  return ranges.join(',');
}

/**
 * Checks a Redis Cluster as a whole, from whichever seed answers first: the slot map covers
 * all 16384 slots, every master answers PING, and cluster_state is ok; with `write`, a
 * short-lived key is written through the cluster client (routed to its slot's master). What
 * is wrong becomes failed sub-checks (`not_ready`) naming the nodes; `topology` has them all.
 */
export async function checkRedisCluster(
  target: RedisTarget,
  seeds: readonly RedisNode[],
  options: RedisCheckOptions,
): Promise<RedisTopologyProbe> {
  const errors: unknown[] = [];
  const cluster = createCluster({
    rootNodes: seeds.map((seed) => ({ socket: { host: seed.host, port: seed.port } })),
    defaults: nodeOptions(target, options.timeoutMs),
    // The masters are connected one by one below, so that each one's failure is its own.
    minimizeConnections: true,
  });
  cluster.on('error', (error: unknown) => errors.push(error));
  const deadline = startDeadline({
    timeoutMs: options.timeoutMs,
    service: 'redis',
    signal: options.signal,
    onExpire: () => cluster.destroy(),
  });
  const start = performance.now();
  try {
    try {
      await deadline.race(cluster.connect());
    } catch (error) {
      // "None of the root nodes is available" hides why; the seeds' own errors say it.
      throw classifyRedisError(errors.at(-1) ?? error, target);
    }
    deadline.phase = 'checking the masters';
    const slots = cluster.slots as ({ master: { address: string } } | undefined)[];
    const nodes: ClusterNodeReport[] = [];
    let state: string | undefined;
    let version: string | undefined;
    for (const master of cluster.masters) {
      const report: ClusterNodeReport = {
        node: displayAddress(master),
        role: 'master',
        status: 'pass',
        slots: slotRanges((slot) => slots[slot]?.master.address === master.address),
      };
      nodes.push(report);
      const began = performance.now();
      try {
        const client = await deadline.race(cluster.nodeClient(master));
        await deadline.race(client.sendCommand(['PING']));
        report.latencyMs = Math.round((performance.now() - began) * 10) / 10;
        if (state === undefined) {
          const info = String(await deadline.race(client.sendCommand(['CLUSTER', 'INFO'])));
          state = /^cluster_state:(\w+)/m.exec(info)?.[1];
          const server = String(await deadline.race(client.sendCommand(['INFO', 'server'])).catch(() => ''));
          version = /^redis_version:(.+)$/m.exec(server)?.[1]?.trim();
        }
      } catch (error) {
        // The deadline ends the whole check; any other failure is this node's.
        if (error instanceof BanshoError && (error.code === 'timeout' || error.code === 'interrupted'))
          throw error;
        const classified = classifyRedisError(error, { ...target, display: report.node });
        report.status = 'fail';
        report.error = `${classified.code}: ${classified.message}`;
      }
    }
    const covered = slots.filter(Boolean).length;
    const details: CheckDetail[] = [
      covered === SLOTS
        ? passed('slots', `all ${SLOTS} slots have a master`)
        : failed(
            'slots',
            'not_ready',
            `slots ${slotRanges((slot) => slots[slot] === undefined)} have no master (${SLOTS - covered} of ${SLOTS})`,
            'assign them (redis-cli --cluster fix), or bring back the master that held them',
          ),
      judgeMasters(nodes),
      state === 'ok'
        ? passed('state', 'cluster_state:ok')
        : failed(
            'state',
            'not_ready',
            `cluster_state:${state ?? 'unknown'}`,
            'the cluster refuses commands until every slot is served: see CLUSTER INFO and CLUSTER NODES on a node',
          ),
    ];
    if (options.write && details.every((detail) => detail.status === 'pass')) {
      deadline.phase = 'writing a probe key';
      const key = `bansho:probe:${randomUUID(UNCACHED)}`;
      await deadline.race(cluster.sendCommand(key, false, ['SET', key, '1', 'PX', '1000']));
      details.push(passed('write', 'set a key expiring in 1s through the cluster client'));
    }
    deadline.phase = 'closing';
    await deadline.race(cluster.close());
    return {
      latencyMs: performance.now() - start,
      ...(version ? { version } : {}),
      details,
      topology: { kind: 'cluster', ...(state ? { state } : {}), slotsCovered: covered, nodes },
    };
  } catch (error) {
    throw classifyRedisError(error, target);
  } finally {
    deadline.clear();
    cluster.destroy();
  }
}

function judgeMasters(nodes: readonly ClusterNodeReport[]): CheckDetail {
  const down = nodes.filter((node) => node.status === 'fail');
  if (down.length === 0) return passed('masters', `${nodes.length} of ${nodes.length} answer PING`);
  return failed(
    'masters',
    'not_ready',
    `${down.length} of ${nodes.length} do not answer: ${down.map((node) => `${node.node} (slots ${node.slots}; ${node.error})`).join('; ')}`,
    'their slots are unserved until they return or a replica takes over: check those nodes',
  );
}

/**
 * Resolves the master named in a redis+sentinel:// URL through the sentinels, with node-redis's
 * sentinel client, then checks that master as a single server (every sub-check, the role
 * among them: a sentinel naming a replica mid-failover is caught). No reachable sentinel, or
 * a name the sentinels do not know, fails with a message that says which.
 */
export async function checkRedisSentinel(
  target: RedisTarget,
  sentinel: NonNullable<RedisTarget['sentinel']>,
  options: RedisCheckOptions,
): Promise<RedisTopologyProbe> {
  const errors: unknown[] = [];
  const sentinels = sentinel.sentinels.map(displayAddress);
  const client = createSentinel({
    name: sentinel.masterName,
    sentinelRootNodes: sentinel.sentinels.map((node) => ({ host: node.host, port: node.port })),
    nodeClientOptions: nodeOptions(target, options.timeoutMs),
    // Sentinels commonly have no password: the URL's credentials are the master's.
    sentinelClientOptions: { socket: { connectTimeout: options.timeoutMs, reconnectStrategy: false } },
    masterPoolSize: 1,
    // One pass over the sentinels: a check reports, it does not wait out a failover.
    maxCommandRediscovers: 0,
  });
  client.on('error', (error: unknown) => errors.push(error));
  const topology: RedisTopology = { kind: 'sentinel', master: { name: sentinel.masterName }, sentinels };
  const deadline = startDeadline({
    timeoutMs: options.timeoutMs,
    service: 'redis',
    signal: options.signal,
    onExpire: () => void client.destroy().catch(() => {}),
  });
  deadline.phase = 'asking the sentinels for the master';
  const start = performance.now();
  let master: RedisNode | undefined;
  try {
    await deadline.race(client.connect());
    master = client.getMasterNode();
  } catch (error) {
    throw sentinelFailure(error, errors, target, sentinel, topology);
  } finally {
    deadline.clear();
    await client.destroy().catch(() => {});
  }
  if (!master) {
    throw new BanshoError(
      'not_ready',
      `the sentinels (${sentinels.join(', ')}) gave no master for "${sentinel.masterName}"`,
      {
        service: 'redis',
        facts: { topology },
      },
    );
  }
  topology.master.node = displayAddress(master);
  const remaining = Math.max(1, options.timeoutMs - (performance.now() - start));
  const { sentinel: _, seeds: __, ...single } = target;
  const probe = await checkRedis(
    {
      ...single,
      host: master.host,
      port: master.port,
      display: `${target.display} (master ${displayAddress(master)})`,
    },
    { ...options, timeoutMs: remaining },
  ).catch((error: unknown) => {
    const classified = classifyRedisError(error, target);
    throw new BanshoError(
      classified.code,
      `master ${displayAddress(master as RedisNode)}: ${classified.message}`,
      {
        service: 'redis',
        hint: classified.hint,
        cause: error,
        facts: { topology },
      },
    );
  });
  return { ...probe, latencyMs: performance.now() - start, topology };
}

function sentinelFailure(
  error: unknown,
  seen: unknown[],
  target: RedisTarget,
  sentinel: NonNullable<RedisTarget['sentinel']>,
  topology: RedisTopology,
): BanshoError {
  if (error instanceof BanshoError && (error.code === 'timeout' || error.code === 'interrupted'))
    return error;
  const sentinels = sentinel.sentinels.map(displayAddress).join(', ');
  const causes = [...seen, error];
  const text = causes.map((cause) => (cause instanceof Error ? cause.message : String(cause))).join('; ');
  // node-redis says so when a sentinel answered but knows no master of that name.
  if (/master/i.test(text) && !/ECONNREFUSED|ENOTFOUND|ETIMEDOUT/.test(text)) {
    return new BanshoError(
      'not_ready',
      `the sentinels (${sentinels}) know no master "${sentinel.masterName}"`,
      {
        service: 'redis',
        hint: 'check the master name in REDIS_URL against SENTINEL MASTERS on a sentinel',
        cause: error,
        facts: { topology },
      },
    );
  }
  const network = classifyRedisError(causes.find((cause) => cause instanceof Error) ?? error, target);
  return new BanshoError(network.code, `no sentinel of ${sentinels} answered: ${network.message}`, {
    service: 'redis',
    hint: 'are the sentinels running, and do the hosts and ports in REDIS_URL point at them?',
    cause: error,
    facts: { topology },
  });
}
