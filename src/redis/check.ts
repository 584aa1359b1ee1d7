import { ErrorReply } from '@redis/client';
import { errorChain } from '../checks/network-errors.js';
import { throwOnFailedDetail } from '../checks/sub-check.js';
import { monotonicMs } from '../checks/time.js';
import type { RedisTarget } from '../config/redis-url.js';
import { displayAddress } from '../config/url.js';
import { BanshoError } from '../errors.js';
import { type RedisClientOptions, resolveRedisTarget } from './client.js';
import { checkRedis, type RedisCheckOptions, type RedisOutcome } from './server.js';

import {
  checkClusterFrom,
  checkRedisCluster,
  checkRedisSentinel,
  type RedisTopologyOutcome,
} from './topology.js';

/**
 * Picks the check for what REDIS_URL names: a sentinel URL, a list of cluster seeds, or one
 * server, which is checked as a whole cluster when it turns out to be a cluster node (a
 * single node's write probe and sub-checks say little about a cluster), all within
 * `options.timeoutMs`. A sentinel's port given as a server fails, naming the URL to use.
 */
export async function checkRedisTarget(
  target: RedisTarget,
  options: RedisCheckOptions,
): Promise<RedisOutcome | RedisTopologyOutcome> {
  const { sentinel, seeds } = target;
  if (sentinel) return checkRedisSentinel(target, sentinel, options);
  if (seeds) return checkRedisCluster(target, seeds, options);
  const start = monotonicMs();
  const remaining = () => Math.max(1, options.timeoutMs - (monotonicMs() - start));
  let single: RedisOutcome;
  try {
    single = await checkRedis(target, options);
  } catch (error) {
    throw (await sentinelBehindSelect(error, target, { ...options, timeoutMs: remaining() })) ?? error;
  }
  if (single.mode === 'sentinel') throw sentinelInstead(target, single.sentinelMasters);
  if (single.mode !== 'cluster') return single;
  return checkClusterFrom(target, [target], { ...options, timeoutMs: remaining() });
}

/**
 * A Sentinel refuses SELECT, so a URL with a database fails before INFO can tell what
 * answered: when that happens, one more connection without the database asks INFO.
 */
async function sentinelBehindSelect(
  error: unknown,
  target: RedisTarget,
  options: RedisCheckOptions,
): Promise<BanshoError | undefined> {
  const refused = errorChain(error).some(
    (layer) => layer instanceof ErrorReply && /^ERR unknown command [`']select[`']/i.test(layer.message),
  );
  if (!refused || target.database === 0) return undefined;
  const outcome = await checkRedis({ ...target, database: 0 }, { ...options, write: false }).catch(
    () => undefined,
  );
  return outcome?.mode === 'sentinel' ? sentinelInstead(target, outcome.sentinelMasters) : undefined;
}

/** What to say when REDIS_URL names a Sentinel as if it were a server: the URL to use instead. */
function sentinelInstead(target: RedisTarget, masterNames: readonly string[] | undefined): BanshoError {
  const sentinels = target.path === undefined ? displayAddress(target) : '<host>:<port>';
  const scheme = target.tls ? 'rediss+sentinel' : 'redis+sentinel';
  const names = masterNames && masterNames.length > 0 ? masterNames : ['<master-name>'];
  const urls = names.map((name) => `${scheme}://${sentinels}/${encodeURIComponent(name)}`);
  return new BanshoError(
    'protocol',
    `${target.display} is a Redis Sentinel, not a server: use ${urls.join(' or ')}`,
    {
      service: 'redis',
      hint: "a Sentinel only knows where the master is: give REDIS_URL as redis+sentinel://<sentinel host:port,…>/<master-name>, with the master's credentials, and bansho asks the sentinels for the master and checks it",
    },
  );
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
  const outcome = await checkRedisTarget(resolveRedisTarget(options), {
    timeoutMs: options.timeoutMs ?? options.connectTimeoutMs ?? 5000,
    signal: options.signal,
  });
  throwOnFailedDetail(outcome.details, 'redis');
  return true;
}
