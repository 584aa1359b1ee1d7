import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import {
  createClient,
  createCluster,
  ErrorReply,
  type RedisClientOptions as NodeRedisOptions,
  type RedisClientType,
  type RedisClusterType,
  RedisClient as RedisConnection,
} from '@redis/client';
import { readRedisTlsFiles } from '../config/files.js';
import { DEFAULT_REDIS_URL, type Env } from '../config/load.js';
import { parseRedisTarget, type RedisNode, type RedisTarget } from '../config/redis-url.js';
import { BanshoError } from '../errors.js';

// biome-ignore lint/complexity/noBannedTypes: node-redis spells "no modules, functions or scripts" as {}.
type None = {};

/** A node-redis client without modules, speaking RESP3 (node-redis 6's default). */
export type RedisClient = RedisClientType<None, None, None, 3, None>;

/** A node-redis Redis Cluster client, as createRedisCluster makes it. */
export type RedisClusterClient = RedisClusterType<None, None, None, 3, None>;

function isCluster(client: RedisClient | RedisClusterClient): client is RedisClusterClient {
  return 'masters' in client;
}

/**
 * node-redis's client class itself, without the command methods createClient attaches: a
 * health check sends its few commands with sendCommand (see createCheckClient for why).
 */
export type CheckClient = RedisConnection<None, None, None, 3, None>;

/** Options for a Redis client. */
export interface RedisClientOptions {
  /** A redis://, rediss:// or unix:// URL; default: `env.REDIS_URL`, then `redis://127.0.0.1:6379`. */
  url?: string;
  /** Where REDIS_URL is read from when `url` is not given; default: `process.env`. */
  env?: Env;
  /** TCP + TLS connect bound in milliseconds; default 5000. */
  connectTimeoutMs?: number;
  /**
   * Whether a dropped connection is re-established with capped backoff. Default false:
   * right for one-shot checks, which must fail rather than loop. A long-lived gateway sets true.
   */
  reconnect?: boolean;
}

/**
 * Resolves the target a library caller means: an explicit URL, else REDIS_URL, else the
 * default, with the TLS files it names read (a `config` BanshoError when one is unreadable).
 */
export function resolveRedisTarget(options: Pick<RedisClientOptions, 'url' | 'env'> = {}): RedisTarget {
  const env = options.env ?? process.env;
  const target =
    options.url !== undefined
      ? parseRedisTarget({ value: options.url, source: 'url' })
      : env.REDIS_URL !== undefined
        ? parseRedisTarget({ value: env.REDIS_URL, source: 'REDIS_URL' })
        : parseRedisTarget({ value: DEFAULT_REDIS_URL, source: 'the default REDIS_URL' });
  readRedisTlsFiles(target);
  return target;
}

/**
 * How a client reaches `host`: a Unix socket, plain TCP, or TLS with the URL's CA (instead of
 * Node's) and client certificate. The TLS server name is the host, unless it is an IP address.
 */
export function socketOptions(target: RedisTarget, node: RedisNode = target) {
  if (target.path !== undefined) return { tls: false as const, path: target.path };
  const { host, port } = node;
  if (!target.tls) return { host, port };
  const pem = target.tlsPem ?? {};
  return {
    host,
    port,
    tls: true as const,
    servername: isIP(host) !== 0 ? '' : host,
    ...(pem.ca === undefined ? {} : { ca: pem.ca }),
    ...(pem.cert === undefined ? {} : { cert: pem.cert, key: pem.key }),
  };
}

/**
 * Creates a node-redis client, not yet connected, for `options.url`, else REDIS_URL, else
 * the default. Errors the client emits between commands are swallowed here because every
 * command's promise reports them too; without a listener node-redis would crash the process.
 */
export function createRedisClient(options: RedisClientOptions & { target?: RedisTarget } = {}): RedisClient {
  const target = options.target ?? resolveRedisTarget(options);
  if (target.seeds || target.sentinel) {
    throw new BanshoError(
      'config',
      `${target.display} names several servers: use createRedisCluster for a cluster`,
    );
  }
  const client = createClient(clientOptions(target, options.connectTimeoutMs ?? 5000, options.reconnect));
  client.on('error', () => {});
  return client;
}

function clientOptions(
  target: RedisTarget,
  connectTimeoutMs: number,
  reconnect = false,
): NodeRedisOptions<None, None, None, 3, None> {
  return {
    socket: {
      ...socketOptions(target),
      connectTimeout: connectTimeoutMs,
      reconnectStrategy: reconnect ? (retries) => Math.min(50 * 2 ** retries, 2000) : false,
    },
    ...(target.username === undefined ? {} : { username: target.username }),
    ...(target.password === undefined ? {} : { password: target.password }),
    database: target.database,
    // CLIENT SETINFO is one more round trip, and fails on proxies and older servers.
    disableClientInfo: true,
    // Asks the server for maintenance push messages: another round trip, useless to a check.
    maintNotifications: 'disabled',
  };
}

/**
 * A check's client: node-redis's own connection, handshake and protocol, but constructed
 * directly rather than through createClient, which first builds a class with a method for
 * each of its ~800 commands (~35 ms, most of a healthcheck's run) for the three a check sends.
 */
export function createCheckClient(target: RedisTarget, timeoutMs: number): CheckClient {
  const client = new RedisConnection<None, None, None, 3, None>(clientOptions(target, timeoutMs));
  client.on('error', () => {});
  return client;
}

/**
 * Closes gracefully (waiting for replies in flight) when the connection is healthy, for at
 * most `graceMs` milliseconds (default 1000), and always releases the socket: node-redis's
 * close() waits forever for a server that stopped answering.
 */
export async function closeRedis(client: RedisClient | CheckClient, graceMs = 1000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    if (client.isReady) {
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, graceMs);
      });
      await Promise.race([client.close(), grace]);
    }
  } catch {
    // A failed QUIT leaves nothing to save: destroy below frees the socket either way.
  } finally {
    clearTimeout(timer);
    // Unconditional: close() marks the client closed before its socket is, and destroy() is idempotent.
    client.destroy();
  }
}

/** A Lua script with its SHA1 computed once, as EVALSHA wants it. */
export interface RedisScript {
  source: string;
  sha: string;
}

export function defineScript(source: string): RedisScript {
  return { source, sha: createHash('sha1').update(source).digest('hex') };
}

/**
 * The rate limiter's Redis operations, over a client the caller owns. Kept small on
 * purpose: expiry always in milliseconds, scripts by SHA with a reload on NOSCRIPT.
 * The commands sub-check asks the ACL about exactly these (GATEWAY_COMMANDS in src/sub-checks/redis.ts).
 */
export const redisOps = {
  get(client: RedisClient | RedisClusterClient, key: string): Promise<string | null> {
    return client.get(key);
  },
  /** SET with an expiry in milliseconds, so that no limiter key lives forever. */
  async set(
    client: RedisClient | RedisClusterClient,
    key: string,
    value: string,
    ttlMs: number,
  ): Promise<void> {
    await client.set(key, value, { expiration: { type: 'PX', value: ttlMs } });
  },
  incr(client: RedisClient | RedisClusterClient, key: string): Promise<number> {
    return client.incr(key);
  },
  /** Resolves false when the key does not exist. */
  async expire(client: RedisClient | RedisClusterClient, key: string, ttlMs: number): Promise<boolean> {
    return (await client.pExpire(key, ttlMs)) === 1;
  },
  /**
   * Runs a script by SHA, loading it when the server answers NOSCRIPT (after a restart,
   * a failover or SCRIPT FLUSH), so callers never ship the source on the hot path. On a
   * cluster every key must hash to one slot (give them one {hash tag}); the script is then
   * run on that slot's master, and on NOSCRIPT sent there with EVAL, which also caches it
   * (SCRIPT LOAD has no key, so a cluster client would send it to any node).
   */
  async runScript(
    client: RedisClient | RedisClusterClient,
    script: RedisScript,
    keys: string[],
    args: string[],
  ): Promise<unknown> {
    try {
      return await client.evalSha(script.sha, { keys, arguments: args });
    } catch (error) {
      if (!(error instanceof ErrorReply) || !error.message.startsWith('NOSCRIPT')) throw error;
      if (isCluster(client)) return client.eval(script.source, { keys, arguments: args });
      const loaded = await client.scriptLoad(script.source);
      if (loaded !== script.sha) throw new Error(`SCRIPT LOAD returned ${loaded}, expected ${script.sha}`);
      return client.evalSha(script.sha, { keys, arguments: args });
    }
  },
};

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

/** What every node of a topology gets: credentials, TLS, a bounded connect, no retry loop. */
export function nodeOptions(target: RedisTarget, timeoutMs: number) {
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
    // As for a single check's client: no round trip asking for maintenance push messages.
    maintNotifications: 'disabled' as const,
  };
}
