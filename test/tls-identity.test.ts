import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseJson, runCli } from './support/cli.js';
import {
  makeTlsFiles,
  type PostgresServer,
  type RedisServer,
  startPostgres,
  startRedis,
  type TlsFiles,
} from './support/servers.js';

// A certificate issued to the name "localhost" only: connecting to 127.0.0.1 must not
// accept it where the host name is verified, and must where only the chain is.
let tls: TlsFiles;
let pg: PostgresServer;
let redis: RedisServer;

before(async () => {
  tls = await makeTlsFiles(undefined, { subjectAltName: 'DNS:localhost' });
  [pg, redis] = await Promise.all([startPostgres({ ssl: tls }), startRedis({ tls })]);
});
after(async () => {
  await Promise.all([pg?.stop(), redis?.stop()]);
});

function pgDsn(host: string, sslmode: string): string {
  return `postgres://postgres@${host}:${pg.port}/postgres?sslmode=${sslmode}&sslrootcert=${tls.caCert}`;
}

describe('TLS host name verification', () => {
  test('sslmode=verify-full refuses a certificate issued to another name than the DSN host', async () => {
    const result = await runCli([
      'ping-postgres',
      '--json',
      '--postgres-dsn',
      pgDsn('127.0.0.1', 'verify-full'),
    ]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.equal(parseJson(result).checks.postgres?.error?.code, 'tls');
  });

  test('sslmode=verify-full accepts it when the DSN names the certificate host', async () => {
    const result = await runCli([
      'ping-postgres',
      '--json',
      '--postgres-dsn',
      pgDsn('localhost', 'verify-full'),
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
  });

  test('sslmode=verify-ca checks the chain only, so the name does not matter', async () => {
    const result = await runCli([
      'ping-postgres',
      '--json',
      '--postgres-dsn',
      pgDsn('127.0.0.1', 'verify-ca'),
    ]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
  });

  test('rediss:// refuses a certificate issued to another name than the URL host', async () => {
    const env = { NODE_EXTRA_CA_CERTS: tls.caCert };
    const wrong = await runCli(['ping-redis', '--json', '--redis-url', `rediss://127.0.0.1:${redis.port}`], {
      env,
    });
    assert.equal(wrong.code, 1, wrong.stdout + wrong.stderr);
    assert.equal(parseJson(wrong).checks.redis?.error?.code, 'tls');
    const right = await runCli(['ping-redis', '--json', '--redis-url', `rediss://localhost:${redis.port}`], {
      env,
    });
    assert.equal(right.code, 0, right.stdout + right.stderr);
  });
});
