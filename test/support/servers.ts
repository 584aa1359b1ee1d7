/**
 * Test-support entry point: throwaway Redis/PostgreSQL servers, TLS material
 * and misbehaving fake peers. Node built-ins only.
 *
 *   const redis = await startRedis({ password: 'secret' });
 *   after(() => redis.stop());
 */
export { freePort, rawExchange, waitForPort } from './net.js';
export {
  type FakePeer,
  type ForwardingProxy,
  type PostgresErrorFields,
  startGarbagePeer,
  startInterceptingProxy,
  startPostgresErrorPeer,
  startProxy,
  startRedisErrorPeer,
  startRedisScriptedPeer,
  startSilentPeer,
} from './peers.js';
export {
  type PostgresEndpoint,
  type PostgresOptions,
  type PostgresServer,
  pgBinary,
  postgresAt,
  quoteIdent,
  quoteLiteral,
  startPostgres,
} from './postgres.js';
export { type ExecOptions, type ExecResult, exec, run } from './process.js';
export { type RedisEndpoint, type RedisOptions, type RedisServer, redisAt, startRedis } from './redis.js';
export { usePostgres, useRedis } from './shared.js';
export {
  type ClientCertificate,
  makeClientCertificate,
  makeOtherCa,
  makeOtherCaFiles,
  makeTlsFiles,
  type TlsFiles,
} from './tls.js';
