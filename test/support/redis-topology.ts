/**
 * Redis beyond one server, for the tests: a Redis Cluster of throwaway masters made by
 * `redis-cli --cluster create`, and a Sentinel (`redis-server --sentinel`) watching a master.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOOPBACK, waitForPort, withFreePort } from './net.js';
import { cleanEnv, exec, spawnDaemon } from './process.js';
import { type RedisServer, startRedis } from './redis.js';
import { type ClientCertificate, makeClientCertificate, type TlsFiles } from './tls.js';

export interface RedisCluster {
  masters: RedisServer[];
  /** Comma-separated seed URLs, as REDIS_URL takes them. */
  seeds(count?: number): string;
  /** Runs redis-cli against one node and returns its stdout. */
  cli(node: RedisServer, ...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

/** redis-cli's flags for a TLS server whose certificate is signed by the CA of `tls`. */
function tlsCliArgs(tls: TlsFiles | undefined): string[] {
  return tls ? ['--tls', '--cacert', tls.caCert] : [];
}

async function redisCli(port: number, args: readonly string[], tls?: TlsFiles): Promise<string> {
  const result = await exec('redis-cli', ['-h', LOOPBACK, '-p', String(port), ...tlsCliArgs(tls), ...args]);
  if (result.code !== 0)
    throw new Error(`redis-cli ${args.join(' ')} failed: ${result.stderr}${result.stdout}`);
  return result.stdout;
}

/**
 * A redis-server in cluster mode, not yet part of any cluster; it fails over a silent peer
 * after 1 s. With `tls`, clients and the cluster bus speak TLS only, and the node presents
 * `busCertificate` to the others (the bus always asks for a client certificate).
 */
export function startClusterNode(tls?: TlsFiles, busCertificate?: ClientCertificate): Promise<RedisServer> {
  return startRedis({
    ...(tls ? { tls } : {}),
    args: [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      'nodes.conf',
      '--cluster-node-timeout',
      '1000',
      ...(tls ? ['--tls-cluster', 'yes'] : []),
      ...(busCertificate
        ? ['--tls-client-cert-file', busCertificate.cert, '--tls-client-key-file', busCertificate.key]
        : []),
    ],
  });
}

/**
 * A cluster of `masters` masters (no replicas), every slot assigned, cluster_state:ok on each
 * node; with `tls`, a cluster that speaks TLS only.
 */
export async function startRedisCluster(
  masters = 3,
  options: { tls?: TlsFiles } = {},
): Promise<RedisCluster> {
  const { tls } = options;
  const busCertificate = tls ? await makeClientCertificate(tls, 'cluster-bus') : undefined;
  const nodes = await Promise.all(
    Array.from({ length: masters }, () => startClusterNode(tls, busCertificate)),
  );
  const cluster: RedisCluster = {
    masters: nodes,
    seeds: (count = nodes.length) =>
      nodes
        .slice(0, count)
        .map((node) => node.url)
        .join(','),
    cli: (node, ...args) => redisCli(node.port, args, tls),
    stop: async () => {
      await Promise.all(nodes.map((node) => node.stop()));
    },
  };
  try {
    const result = await exec('redis-cli', [
      ...tlsCliArgs(tls),
      '--cluster',
      'create',
      ...nodes.map((node) => `${LOOPBACK}:${node.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    if (result.code !== 0)
      throw new Error(`redis-cli --cluster create failed: ${result.stdout}${result.stderr}`);
    await waitForClusterState(cluster, 'ok');
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  return cluster;
}

/** Waits until every node still running reports this cluster_state. */
export async function waitForClusterState(
  cluster: RedisCluster,
  state: 'ok' | 'fail',
  nodes: readonly RedisServer[] = cluster.masters,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const infos = await Promise.all(
      nodes.map((node) => cluster.cli(node, 'CLUSTER', 'INFO').catch(() => '')),
    );
    if (infos.every((info) => info.includes(`cluster_state:${state}`))) return;
    if (Date.now() > deadline) throw new Error(`cluster_state never became ${state}:\n${infos.join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export interface RedisSentinel {
  port: number;
  /** redis+sentinel:// URL for `masterName` through this sentinel. */
  url(masterName?: string, userinfo?: string): string;
  stop(): Promise<void>;
}

/**
 * A sentinel on a free port watching `master` under `name` (default mymaster), quorum 1. With
 * `tls`, it reaches a TLS-only master with TLS (its own port stays plain).
 */
export function startSentinel(
  master: { host: string; port: number },
  name = 'mymaster',
  /** The master's requirepass, which the sentinel needs to watch it. */
  masterPassword?: string,
  options: { tls?: TlsFiles } = {},
): Promise<RedisSentinel> {
  const { tls } = options;
  return withFreePort(async (port) => {
    const dir = await mkdtemp(join(tmpdir(), 'bansho-sentinel-'));
    const config = join(dir, 'sentinel.conf');
    // Sentinel rewrites its configuration file, so it must be a writable file of its own.
    await writeFile(
      config,
      [
        `port ${port}`,
        `bind ${LOOPBACK}`,
        `dir ${dir}`,
        `sentinel monitor ${name} ${master.host} ${master.port} 1`,
        `sentinel down-after-milliseconds ${name} 60000`,
        ...(masterPassword ? [`sentinel auth-pass ${name} ${masterPassword}`] : []),
        ...(tls
          ? [
              'tls-replication yes',
              `tls-cert-file ${tls.cert}`,
              `tls-key-file ${tls.key}`,
              `tls-ca-cert-file ${tls.caCert}`,
            ]
          : []),
        '',
      ].join('\n'),
    );
    const daemon = spawnDaemon('redis-server', [config, '--sentinel'], {
      env: cleanEnv(),
      cwd: dir,
      killSignal: 'SIGKILL',
      dir,
    });
    try {
      await daemon.waitForOutput(/\+monitor master/, 15_000);
      await waitForPort(port);
    } catch (error) {
      await daemon.stop();
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
    return {
      port,
      url: (masterName = name, userinfo = '') =>
        `redis+sentinel://${userinfo ? `${userinfo}@` : ''}${LOOPBACK}:${port}/${masterName}`,
      stop: daemon.stop,
    };
  });
}
