import { createCluster, createSentinel } from '@redis/client';
import { startDeadline } from '../checks/deadline.js';
import type { CheckDetail, ClusterNodeReport, RedisTopology } from '../checks/model.js';
import { failed, passed, warned } from '../checks/sub-check.js';
import { monotonicMs } from '../checks/time.js';
import type { RedisNode, RedisTarget } from '../config/redis-url.js';
import { displayAddress } from '../config/url.js';
import { BanshoError } from '../errors.js';
import { classifyRedisError } from './classify.js';
import { nodeOptions, type RedisClusterClient } from './client.js';
import { checkRedis, type RedisCheckOptions, type RedisOutcome } from './server.js';
import { probeId } from './sub-checks.js';

/*
 * Health checks of Redis beyond one server: a cluster's masters as CLUSTER NODES lists them,
 * each checked as a single server, with node-redis's cluster client for the routed write
 * probe; and node-redis's sentinel client for master resolution. bansho routes nothing itself.
 */

export interface RedisTopologyOutcome extends RedisOutcome {
  topology: RedisTopology;
}

const SLOTS = 16384;

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

/** A master as CLUSTER NODES lists it. */
interface ClusterMaster extends RedisNode {
  /** "host:port", as shown. */
  address: string;
  /** Its slot ranges, "0-5460,5462"; empty when it holds none. */
  slots: string;
  /** The node that answered CLUSTER NODES ("myself"). */
  myself: boolean;
}

/**
 * The masters in a CLUSTER NODES reply, slotless ones included (CLUSTER SLOTS, and so
 * node-redis's slot map, leaves those out). `seedHost` stands in for the answering node's
 * address, which a node that has not yet met another leaves empty.
 */
export function parseClusterMasters(text: string, seedHost: string): ClusterMaster[] {
  const masters: ClusterMaster[] = [];
  for (const line of text.split(/\r?\n/)) {
    // <id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link> <slot>…
    const [, endpoint = '', flagList = '', , , , , , ...slotFields] = line.trim().split(' ');
    const flags = flagList.split(',');
    if (!flags.includes('master') || flags.includes('noaddr') || flags.includes('handshake')) continue;
    const match = /^(.*):(\d+)(@\d+)?(,.*)?$/.exec(endpoint);
    if (!match) continue;
    const myself = flags.includes('myself');
    const host = (match[1] || (myself ? seedHost : '')).replace(/^\[(.*)\]$/, '$1');
    if (host === '') continue;
    const port = Number(match[2]);
    // "[slot->-id]" and "[slot-<-id]" are slots being migrated, not held.
    const slots = slotFields.filter((field) => /^\d+(-\d+)?$/.test(field)).join(',');
    // A Unix socket path stands in as itself: it has no port to show.
    const address = host.startsWith('/') ? host : displayAddress({ host, port });
    masters.push({ host, port, address, slots, myself });
  }
  return masters;
}

/** The slots that `ranges` ("0-99,200") hold, marked in `held`. */
function markSlots(ranges: string, held: boolean[]): void {
  for (const range of ranges.split(',').filter(Boolean)) {
    const [from = 0, to = from] = range.split('-').map(Number);
    for (let slot = from; slot <= to && slot < SLOTS; slot++) held[slot] = true;
  }
}

/** The single-server sub-checks that are run on every master of a cluster, in this order. */
const PER_MASTER_SUB_CHECKS = ['eviction', 'memory', 'commands', 'clock'];

/**
 * Checks a Redis Cluster as a whole. The first seed that answers gives CLUSTER INFO and
 * CLUSTER NODES; every master it lists (slotless ones too) is then checked concurrently as a
 * single server, each within what is left of the timeout: it answers PING, and its
 * eviction, memory, commands and clock sub-checks run, labelled with its address (`node`).
 * The cluster's own sub-checks: all 16384 slots have a master, every master answers,
 * cluster_state is ok; with `write`, a short-lived key is written through node-redis's cluster
 * client (routed to its slot's master). `topology` lists every master.
 */
export async function checkRedisCluster(
  target: RedisTarget,
  seeds: readonly RedisNode[],
  options: RedisCheckOptions,
): Promise<RedisTopologyOutcome> {
  return checkClusterFrom(
    target,
    seeds.map((seed) => nodeTarget(target, seed)),
    options,
  );
}

/** A target for one node of `target`'s topology: its credentials and TLS, the node's address. */
function nodeTarget(target: RedisTarget, node: RedisNode): RedisTarget {
  const { sentinel: _, seeds: __, path: ___, ...single } = target;
  return { ...single, host: node.host, port: node.port, display: displayAddress(node), database: 0 };
}

export async function checkClusterFrom(
  target: RedisTarget,
  seedTargets: readonly RedisTarget[],
  options: RedisCheckOptions,
): Promise<RedisTopologyOutcome> {
  // What node-redis's cluster client emits, for a failed connect: "all the root nodes are unavailable" hides why.
  const clusterErrors: unknown[] = [];
  const makeCluster = (nodes: readonly RedisNode[], timeoutMs: number) => {
    const client = createCluster({
      rootNodes: nodes.map((node) => ({ socket: { host: node.host, port: node.port } })),
      defaults: nodeOptions(target, timeoutMs),
      minimizeConnections: true,
    });
    client.on('error', (error: unknown) => clusterErrors.push(error));
    return client;
  };
  // Built before the clock starts, as the drivers are loaded before it (src/engine/checks.ts): node-redis
  // builds a class with a method per command for it, CPU work that is not the cluster's latency.
  const tcpSeeds = seedTargets.filter((seed) => seed.path === undefined);
  let cluster: RedisClusterClient | undefined =
    options.write && tcpSeeds.length > 0 ? makeCluster(tcpSeeds, options.timeoutMs) : undefined;
  const start = monotonicMs();
  const remaining = () => Math.max(1, options.timeoutMs - (monotonicMs() - start));
  // Ends the nodes' own checks with the cluster's: they run under their own deadlines.
  const stop = new AbortController();
  const deadline = startDeadline({
    timeoutMs: options.timeoutMs,
    service: 'redis',
    signal: options.signal,
    onExpire: () => {
      stop.abort('the cluster check ended');
      cluster?.destroy();
    },
  });
  // A little less than what is left, so that a silent master is reported as that master's failure.
  const nodeCheck = (): RedisCheckOptions => {
    const left = remaining();
    return { timeoutMs: Math.max(1, left - Math.min(250, left / 5)), signal: stop.signal, write: false };
  };
  try {
    deadline.phase = 'asking a seed for the cluster nodes';
    let seed: { target: RedisTarget; outcome: RedisOutcome } | undefined;
    let seedError: unknown;
    for (const seedTarget of seedTargets) {
      try {
        seed = {
          target: seedTarget,
          outcome: await deadline.race(checkRedis(seedTarget, { ...nodeCheck(), cluster: true })),
        };
        break;
      } catch (error) {
        if (isDeadlineError(error)) throw error;
        seedError = error;
      }
    }
    if (!seed?.outcome.cluster) throw classifyRedisError(seedError, target);
    const { info, nodes: nodesText } = seed.outcome.cluster;
    const state = /^cluster_state:(\w+)/m.exec(info)?.[1];
    // In address order: CLUSTER NODES lists them by node id, which means nothing to a reader.
    const masters = parseClusterMasters(nodesText, seed.target.host).sort(
      (a, b) => a.host.localeCompare(b.host) || a.port - b.port,
    );
    deadline.phase = 'checking the masters';
    const results = await deadline.race(
      Promise.all(
        masters.map(async (master) => {
          if (master.myself) return { master, outcome: seed.outcome };
          try {
            return { master, outcome: await checkRedis(nodeTarget(target, master), nodeCheck()) };
          } catch (error) {
            return { master, error: classifyRedisError(error, nodeTarget(target, master)) };
          }
        }),
      ),
    );
    const reports: ClusterNodeReport[] = results.map(({ master, outcome, error }) => ({
      node: master.address,
      role: 'master',
      status: error ? 'fail' : 'pass',
      slots: master.slots,
      ...(outcome ? { latencyMs: Math.round(outcome.latencyMs * 10) / 10 } : {}),
      ...(error ? { error: `${error.code}: ${error.message}` } : {}),
    }));
    const held: boolean[] = new Array(SLOTS).fill(false);
    for (const master of masters) markSlots(master.slots, held);
    const covered = held.filter(Boolean).length;
    const details: CheckDetail[] = [
      covered === SLOTS
        ? passed('slots', `all ${SLOTS} slots have a master`)
        : failed(
            'slots',
            'not_ready',
            `slots ${slotRanges((slot) => !held[slot])} have no master (${SLOTS - covered} of ${SLOTS})`,
            'assign them (redis-cli --cluster fix), or bring back the master that held them',
          ),
      judgeMasters(reports),
      state === 'ok'
        ? passed('state', 'cluster_state:ok')
        : failed(
            'state',
            'not_ready',
            `cluster_state:${state ?? 'unknown'}`,
            'the cluster refuses commands until every slot is served: see CLUSTER INFO and CLUSTER NODES on a node',
          ),
    ];
    const perMaster = PER_MASTER_SUB_CHECKS.flatMap((name) =>
      results.flatMap(({ master, outcome }) =>
        (outcome?.details ?? [])
          .filter((detail) => detail.name === name)
          .map(({ name: detailName, ...rest }) => ({ name: detailName, node: master.address, ...rest })),
      ),
    );
    // A Unix-socket seed that has met no other node knows no TCP address of its own to route through.
    const routable = masters.filter((master) => !master.host.startsWith('/'));
    const writable = [...details, ...perMaster].every((detail) => detail.status !== 'fail');
    if (options.write && writable && !cluster && routable.length === 0) {
      details.push(
        warned(
          'write',
          'not checked: no master has a TCP address to route a write through',
          'a cluster node that has met no other has no address of its own in CLUSTER NODES: check it by its redis:// URL',
        ),
      );
    } else if (options.write && writable) {
      deadline.phase = 'writing a probe key';
      // Seeded from the masters CLUSTER NODES gave when the seed was a Unix socket.
      cluster ??= makeCluster(routable, remaining());
      await deadline.race(cluster.connect()).catch((error: unknown) => {
        throw isDeadlineError(error) ? error : classifyRedisError(clusterErrors.at(-1) ?? error, target);
      });
      const key = `bansho:probe:${probeId()}`;
      await deadline.race(cluster.sendCommand(key, false, ['SET', key, '1', 'PX', '1000']));
      details.push(passed('write', 'set a key expiring in 1s through the cluster client'));
      deadline.phase = 'closing';
      await deadline.race(cluster.close());
    }
    const { version } = seed.outcome;
    return {
      latencyMs: monotonicMs() - start,
      ...(version ? { version } : {}),
      details: [...details, ...perMaster],
      topology: { kind: 'cluster', ...(state ? { state } : {}), slotsCovered: covered, nodes: reports },
    };
  } catch (error) {
    throw classifyRedisError(error, target);
  } finally {
    deadline.clear();
    stop.abort('the cluster check ended');
    cluster?.destroy();
  }
}

/** The timeout or interruption of a whole check, which ends it rather than one node's part. */
function isDeadlineError(error: unknown): boolean {
  return error instanceof BanshoError && (error.code === 'timeout' || error.code === 'interrupted');
}

function judgeMasters(nodes: readonly ClusterNodeReport[]): CheckDetail {
  const down = nodes.filter((node) => node.status === 'fail');
  const empty = nodes.filter((node) => node.slots === '').map((node) => node.node);
  const emptyText =
    empty.length === 0 ? '' : `; ${empty.join(', ')} ${empty.length === 1 ? 'holds' : 'hold'} no slots`;
  const emptyHint =
    'a master without slots serves no keys: give it some (redis-cli --cluster rebalance --cluster-use-empty-masters), or remove it (redis-cli --cluster del-node)';
  if (down.length === 0) {
    return passed(
      'masters',
      `${nodes.length} of ${nodes.length} answer PING${emptyText}`,
      ...(empty.length === 0 ? [] : [emptyHint]),
    );
  }
  return failed(
    'masters',
    'not_ready',
    `${down.length} of ${nodes.length} do not answer: ${down.map((node) => `${node.node} (${node.slots === '' ? 'no slots' : `slots ${node.slots}`}; ${node.error})`).join('; ')}${emptyText}`,
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
): Promise<RedisTopologyOutcome> {
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
  const start = monotonicMs();
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
  const remaining = Math.max(1, options.timeoutMs - (monotonicMs() - start));
  const { sentinel: _, seeds: __, ...single } = target;
  const outcome = await checkRedis(
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
  const node = displayAddress(master);
  return {
    ...outcome,
    details: outcome.details.map(({ name, ...rest }) => ({ name, node, ...rest })),
    latencyMs: monotonicMs() - start,
    topology,
  };
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
