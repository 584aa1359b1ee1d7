/** Throwaway redis-server instances on loopback ports. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOOPBACK, waitForPort, withFreePort } from './net.js';
import { cleanEnv, spawnDaemon } from './process.js';
import type { TlsFiles } from './tls.js';

export interface RedisOptions {
  /** Sets requirepass: commands without AUTH get -NOAUTH. */
  password?: string;
  /** TLS only: the plain port is disabled (port 0) and tls-port serves with these files. */
  tls?: TlsFiles;
  /** With `tls`: require a client certificate signed by its CA (tls-auth-clients yes). */
  tlsAuthClients?: boolean;
  /**
   * A Unix socket only: the TCP port is disabled (port 0) and the server listens on
   * `redis.sock` in its own directory (`socketPath`, mode 0700); `url` is its unix:// URL.
   */
  unixSocket?: boolean;
  maxclients?: number;
  /** Start as a replica of this server. */
  replicaOf?: { host: string; port: number };
  /** replica-serve-stale-data: with false, a replica that lost its master answers -MASTERDOWN. */
  replicaServeStaleData?: boolean;
  /** Extra redis-server arguments, appended last so they override the defaults. */
  args?: string[];
}

/** Anything reachable as a redis server: a throwaway one or the one in BANSHO_TEST_REDIS_URL. */
export interface RedisEndpoint {
  host: string;
  port: number;
  /** redis:// (or rediss:// for TLS) URL, without the password. */
  url: string;
  stop(): Promise<void>;
}

export interface RedisServer extends RedisEndpoint {
  host: typeof LOOPBACK;
  /** With `unixSocket`: the socket's path (and `port` is 0). */
  socketPath?: string;
}

const REDIS_SERVER = process.env.BANSHO_REDIS_SERVER ?? 'redis-server';
const READY_TIMEOUT_MS = 15_000;

export function startRedis(options: RedisOptions = {}): Promise<RedisServer> {
  if (options.unixSocket) return startRedisOn(0, options);
  return withFreePort((port) => startRedisOn(port, options));
}

async function startRedisOn(port: number, options: RedisOptions): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'bansho-redis-'));
  let daemon: ReturnType<typeof spawnDaemon>;
  try {
    daemon = spawnDaemon(REDIS_SERVER, redisArgs(port, dir, options), {
      env: cleanEnv(),
      cwd: dir,
      // SIGKILL, not SIGTERM: a master with replicas waits up to shutdown-timeout
      // (10 s) for them on SIGTERM, and there is no data worth saving.
      killSignal: 'SIGKILL',
      dir,
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  try {
    // The log line, not just an open port: if the port was taken meanwhile,
    // connecting would reach the other process while ours dies on bind().
    // "Ready to accept connections tcp", or "… ready to accept connections at <socket>" without TCP.
    await daemon.waitForOutput(/ready to accept connections/i, READY_TIMEOUT_MS);
    if (!options.unixSocket) await waitForPort(port);
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  if (options.unixSocket) {
    const socketPath = join(dir, 'redis.sock');
    return { host: LOOPBACK, port: 0, socketPath, url: `unix://${socketPath}`, stop: daemon.stop };
  }
  const scheme = options.tls ? 'rediss' : 'redis';
  return { host: LOOPBACK, port, url: `${scheme}://${LOOPBACK}:${port}`, stop: daemon.stop };
}

/** Arguments as redis.conf directives (`--name value...`); later ones override earlier ones. */
function redisArgs(port: number, dir: string, options: RedisOptions): string[] {
  const directives: string[][] = [
    ['bind', LOOPBACK],
    ['daemonize', 'no'],
    ['save', ''],
    ['appendonly', 'no'],
    ['dir', dir],
    ['logfile', ''],
    // Readiness is detected from the "Ready to accept connections" notice.
    ['loglevel', 'notice'],
  ];
  const { tls } = options;
  if (tls) {
    directives.push(
      ['port', '0'],
      ['tls-port', String(port)],
      ['tls-cert-file', tls.cert],
      ['tls-key-file', tls.key],
      ['tls-ca-cert-file', tls.caCert],
      // Redis asks for client certificates by default; health checks connect without one.
      ['tls-auth-clients', options.tlsAuthClients ? 'yes' : 'no'],
    );
  } else {
    directives.push(['port', String(port)]);
  }
  if (options.unixSocket) {
    directives.push(['unixsocket', join(dir, 'redis.sock')], ['unixsocketperm', '700']);
  }
  if (options.password !== undefined) directives.push(['requirepass', options.password]);
  if (options.maxclients !== undefined) directives.push(['maxclients', String(options.maxclients)]);
  if (options.replicaOf)
    directives.push(['replicaof', options.replicaOf.host, String(options.replicaOf.port)]);
  if (options.replicaServeStaleData !== undefined) {
    directives.push(['replica-serve-stale-data', options.replicaServeStaleData ? 'yes' : 'no']);
  }
  const args = directives.flatMap(([name, ...values]) => [`--${name}`, ...values]);
  return [...args, ...(options.args ?? [])];
}

/** Wraps an existing server (BANSHO_TEST_REDIS_URL); stop() leaves it running. */
export function redisAt(url: string): RedisEndpoint {
  const parsed = new URL(url);
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(parsed.port || 6379),
    url,
    stop: async () => {},
  };
}
