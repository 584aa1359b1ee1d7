import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import {
  ConnectionTimeoutError,
  createClient,
  ErrorReply,
  type RedisClientOptions as NodeRedisOptions,
  type RedisClientType,
  type RedisClusterType,
  RedisClient as RedisConnection,
  SocketClosedUnexpectedlyError,
} from '@redis/client';
import type { CheckDetail } from '../checks.js';
import {
  DEFAULT_REDIS_URL,
  type Env,
  parseRedisTarget,
  type RedisNode,
  type RedisTarget,
  readRedisTlsFiles,
} from '../config.js';
import { startDeadline } from '../deadline.js';
import { BanshoError } from '../errors.js';
import { scrubPassword } from '../redact.js';
import { MISCONF_HINT, probeRedis } from '../sub-checks/redis.js';
import { classifyNetworkError, errorChain } from './network-errors.js';

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
function createCheckClient(target: RedisTarget, timeoutMs: number): CheckClient {
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

/** What one successful Redis check learned. */
export interface RedisProbe {
  /** From connect to closed socket, in milliseconds. */
  latencyMs: number;
  /** `redis_version` from INFO, when the server lets us read it. */
  version?: string;
  /** The sub-checks: role, write, commands, eviction, memory, clock (see src/sub-checks/redis.ts). */
  details: CheckDetail[];
  /** INFO's redis_mode, when INFO was readable: a "cluster" node is then checked as a cluster. */
  mode?: string;
  /** A Redis Sentinel (mode "sentinel"): the names of the masters it watches, from INFO. */
  sentinelMasters?: string[];
  /** With the `cluster` option: CLUSTER INFO and CLUSTER NODES as the node answered them. */
  cluster?: { info: string; nodes: string };
}

export interface RedisCheckOptions {
  /** Hard bound for the whole check in milliseconds: resolve, connect, TLS, auth, probe, close. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Also prove the server takes writes: set, read back and delete a short-lived key. Default false. */
  write?: boolean;
  /** Also ask a cluster node for CLUSTER INFO and CLUSTER NODES, in the same round trip. Default false. */
  cluster?: boolean;
}

/**
 * One bounded health check: connect, PING (any reply but PONG fails), the sub-checks
 * (version among them), close. Throws a classified BanshoError when the server cannot be
 * checked at all; what the sub-checks find is returned. Never reconnects.
 */
export async function checkRedis(target: RedisTarget, options: RedisCheckOptions): Promise<RedisProbe> {
  const client = createCheckClient(target, options.timeoutMs);
  const deadline = startDeadline({
    timeoutMs: options.timeoutMs,
    service: 'redis',
    signal: options.signal,
    onExpire: () => client.destroy(),
  });
  const start = performance.now();
  // Once the handshake is answered, a closed connection is the server hanging up, not another protocol.
  let answered = false;
  try {
    await deadline.race(client.connect());
    answered = true;
    deadline.phase = 'waiting for PONG';
    // The sub-checks' first batch goes out with PING, in one round trip; it is judged only after a PONG.
    const ping = client.sendCommand<unknown>(['PING']);
    // Before the sub-checks' batch, which ends with MULTI: anything sent after it would be queued.
    const clusterFacts = options.cluster
      ? Promise.all([client.sendCommand(['CLUSTER', 'INFO']), client.sendCommand(['CLUSTER', 'NODES'])])
      : undefined;
    const probe = probeRedis(client, { write: options.write ?? false });
    // Without a PONG the sub-checks are abandoned with the connection: their failure is no news.
    probe.catch(() => {});
    clusterFacts?.catch(() => {});
    const reply = await deadline.race(ping);
    if (reply !== 'PONG') {
      const shown = scrubPassword(typeof reply === 'string' ? reply : String(JSON.stringify(reply)), target);
      throw new BanshoError(
        'protocol',
        `expected PONG from ${target.display}, got ${JSON.stringify(shown)}`,
        {
          service: 'redis',
        },
      );
    }
    deadline.phase = 'running the sub-checks';
    const { version, mode, details, sentinelMasters } = await deadline.race(probe);
    const cluster = clusterFacts
      ? await deadline
          .race(clusterFacts)
          .then(([info, nodes]) => ({ info: String(info), nodes: String(nodes) }))
      : undefined;
    deadline.phase = 'closing';
    await deadline.race(closeRedis(client));
    return {
      latencyMs: performance.now() - start,
      ...(version === undefined ? {} : { version }),
      ...(mode === undefined ? {} : { mode }),
      ...(sentinelMasters === undefined ? {} : { sentinelMasters }),
      ...(cluster === undefined ? {} : { cluster }),
      details,
    };
  } catch (error) {
    throw classifyRedisError(error, target, { answered });
  } finally {
    deadline.clear();
    client.destroy();
  }
}

/** Error replies by their first word; checked before anything else, as they are the server's own word. */
const REPLY_CODES: Array<[RegExp, ConstructorParameters<typeof BanshoError>[0], string, string?]> = [
  [/^(NOAUTH|WRONGPASS|NOPERM)\b/, 'auth_failed', 'authentication failed'],
  [/^ERR (AUTH|invalid password|Client sent AUTH)/i, 'auth_failed', 'authentication failed'],
  [/^(LOADING|MASTERDOWN|BUSY|TRYAGAIN|CLUSTERDOWN)\b/, 'not_ready', 'the server is not serving yet'],
  [/^READONLY\b/, 'read_only', 'the server is read-only'],
  // Redis refuses PING too while writes are stopped, so that health checks notice.
  [/^MISCONF\b/, 'read_only', 'writes are stopped after a failed background save', MISCONF_HINT],
  [/^ERR max(imum)? number of clients reached/i, 'too_many_connections', 'too many connections'],
  [/^ERR (DB index is out of range|invalid DB index)/i, 'unknown_database', 'no such database'],
  // Only the handshake sends HELLO: Redis before 6, and proxies that do not speak RESP3, refuse it.
  [
    /^((ERR )?(unknown|unsupported) command [`']?hello\b|NOPROTO\b)/i,
    'unsupported_version',
    'the server refused HELLO 3, so it does not speak RESP3',
  ],
];

/**
 * Maps anything a Redis check threw to a BanshoError with a stable code; `answered` says
 * whether the server had already given a valid reply on this connection.
 */
export function classifyRedisError(
  error: unknown,
  target: RedisTarget,
  context: { answered?: boolean } = {},
): BanshoError {
  if (error instanceof BanshoError) return error;
  const where = target.display;
  for (const layer of errorChain(error)) {
    if (layer instanceof ErrorReply) {
      // The server's words: an error reply may quote the command it refused, password and all.
      const reply = scrubPassword(layer.message, target);
      for (const [pattern, code, summary, hint] of REPLY_CODES) {
        if (pattern.test(reply))
          return new BanshoError(code, `${summary}: ${reply}`, { cause: error, service: 'redis', hint });
      }
      return new BanshoError('server_error', `${where} answered with an error: ${reply}`, {
        cause: error,
        service: 'redis',
      });
    }
  }
  const network = classifyNetworkError(error, 'redis', where, target);
  if (network?.code === 'connection_refused' && target.path !== undefined) {
    return new BanshoError(network.code, network.message, {
      cause: error,
      hint: `is Redis running with unixsocket ${target.path}, and is that the path in REDIS_URL?`,
    });
  }
  if (network?.code === 'tls') return clientCertificateFailure(error, target) ?? network;
  if (network) return network;
  const layers = errorChain(error);
  // node-redis leaves `name` as "Error" on its own classes: only instanceof tells them apart.
  if (layers.some((layer) => layer instanceof ConnectionTimeoutError)) {
    return new BanshoError('timeout', `connecting to ${where} timed out`, { cause: error, service: 'redis' });
  }
  const messages = layers.map((layer) => String(layer.message ?? ''));
  if (
    layers.some((layer) => layer instanceof SocketClosedUnexpectedlyError) ||
    messages.some((message) => /protocol error|parse|ECONNRESET|socket hang up/i.test(message))
  ) {
    if (context.answered && !messages.some((message) => /protocol error|parse/i.test(message))) {
      return new BanshoError(
        'connection_closed',
        `${where} closed the connection in the middle of the check, after it had answered`,
        { cause: error, service: 'redis' },
      );
    }
    const tlsHint = target.tls ? '' : ' (if the server expects TLS, use rediss://)';
    return new BanshoError('protocol', `${where} closed the connection without a Redis reply${tlsHint}`, {
      cause: error,
      service: 'redis',
    });
  }
  const text = scrubPassword(messages[0] || String(error), target);
  return new BanshoError('unexpected', `Redis check failed: ${text}`, {
    cause: error,
    service: 'redis',
  });
}

/**
 * The TLS alerts a server sends about the client's certificate, which OpenSSL reports in
 * words no operator should have to decode; undefined for any other TLS failure.
 */
function clientCertificateFailure(error: unknown, target: RedisTarget): BanshoError | undefined {
  const codes = errorChain(error).map((layer) => String(layer.code ?? ''));
  if (codes.includes('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')) {
    return new BanshoError('tls', `${target.display} requires a client certificate, and none was given`, {
      cause: error,
      hint: 'give the client certificate and its key in REDIS_URL: rediss://…?ssl_certfile=/path/client.crt&ssl_keyfile=/path/client.key',
    });
  }
  const refused = codes.find((code) =>
    /^ERR_SSL_(TLSV1_ALERT_UNKNOWN_CA|SSLV3_ALERT_BAD_CERTIFICATE|SSLV3_ALERT_CERTIFICATE_UNKNOWN)$/.test(
      code,
    ),
  );
  if (refused === undefined) return undefined;
  return new BanshoError('tls', `${target.display} refused the client certificate (${refused})`, {
    cause: error,
    hint: "the server takes client certificates signed by the CA of its tls-ca-cert-file only: check REDIS_URL's ssl_certfile",
  });
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
