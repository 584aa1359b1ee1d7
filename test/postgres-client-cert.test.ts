/**
 * Mutual TLS with PostgreSQL: a server whose pg_hba requires a client certificate for one
 * role (`hostssl … cert`, the CN must be the role), and bansho's sslcert / sslkey.
 *
 * Needs `npm run build` first: the CLI under test is bin/bansho → dist/.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BanshoError, pingPostgres } from '../src/index.js';
import { assertExit, type CliResult, parseJson, runCli } from './support/cli.js';
import {
  type ClientCertificate,
  makeClientCertificate,
  makeOtherCaFiles,
  makeTlsFiles,
  type PostgresServer,
  startPostgres,
  type TlsFiles,
} from './support/servers.js';

const ROLE = 'gateway_cert';

let tls: TlsFiles;
let pg: PostgresServer;
let client: ClientCertificate;
let otherClient: ClientCertificate;
let untrusted: ClientCertificate;

before(async () => {
  tls = await makeTlsFiles();
  [pg, client, otherClient, untrusted] = await Promise.all([
    startPostgres({ ssl: tls, certUser: ROLE }),
    makeClientCertificate(tls, ROLE),
    makeClientCertificate(tls, 'someone_else'),
    makeOtherCaFiles().then((ca) => makeClientCertificate(ca, ROLE)),
  ]);
});
after(() => pg.stop());

function describeRun(result: CliResult): string {
  return `exit ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
}

function dsn(query: Record<string, string>): string {
  return `postgres://${ROLE}@127.0.0.1:${pg.port}/postgres?${new URLSearchParams(query).toString()}`;
}

async function ping(
  query: Record<string, string>,
): Promise<{ result: CliResult; code?: string; message: string }> {
  const result = await runCli(['ping-postgres', '--json', '--timeout', '3s', '--postgres-dsn', dsn(query)]);
  const error = parseJson(result).checks.postgres?.error;
  return { result, ...(error ? { code: error.code } : {}), message: error?.message ?? '' };
}

describe('with the client certificate', { concurrency: true }, () => {
  test('sslmode=require with sslcert and sslkey passes', async () => {
    const { result } = await ping({ sslmode: 'require', sslcert: client.cert, sslkey: client.key });
    assertExit(result, 0);
  });

  test('sslmode=verify-full with sslrootcert, sslcert and sslkey passes, and ensure-schema too', async () => {
    const query = {
      sslmode: 'verify-full',
      sslrootcert: tls.caCert,
      sslcert: client.cert,
      sslkey: client.key,
    };
    assertExit((await ping(query)).result, 0);
    const name = await pg.createDatabase('client_cert');
    const ensured = await runCli([
      'ensure-schema',
      '--postgres-dsn',
      `postgres://${ROLE}@127.0.0.1:${pg.port}/${name}?${new URLSearchParams(query).toString()}`,
    ]);
    assertExit(ensured, 0);
  });

  test('the library: pingPostgres reads sslcert and sslkey from the DSN', async () => {
    assert.equal(
      await pingPostgres({ dsn: dsn({ sslmode: 'require', sslcert: client.cert, sslkey: client.key }) }),
      true,
    );
  });
});

describe('failures', { concurrency: true }, () => {
  test('no client certificate: exit 1 with auth_failed, saying that the server requires one', async () => {
    const { result, code, message } = await ping({ sslmode: 'require' });
    assertExit(result, 1);
    assert.equal(code, 'auth_failed', describeRun(result));
    assert.match(message, /requires a valid client certificate/);
    assert.match(parseJson(result).checks.postgres?.error?.hint ?? '', /sslcert and sslkey/);
  });

  test("another role's certificate: exit 1 with auth_failed", async () => {
    const { result, code, message } = await ping({
      sslmode: 'require',
      sslcert: otherClient.cert,
      sslkey: otherClient.key,
    });
    assertExit(result, 1);
    assert.equal(code, 'auth_failed', describeRun(result));
    assert.match(message, /certificate authentication failed/);
  });

  test('a certificate from a CA the server does not trust: exit 1 with tls', async () => {
    const { result, code } = await ping({
      sslmode: 'require',
      sslcert: untrusted.cert,
      sslkey: untrusted.key,
    });
    assertExit(result, 1);
    assert.equal(code, 'tls', describeRun(result));
  });

  test('a key that is not the certificate’s: exit 1 with tls, naming sslcert and sslkey', async () => {
    const { result, code, message } = await ping({
      sslmode: 'require',
      sslcert: client.cert,
      sslkey: otherClient.key,
    });
    assertExit(result, 1);
    assert.equal(code, 'tls', describeRun(result));
    assert.match(message, /client certificate \(sslcert\) and key \(sslkey\) cannot be used/);
  });

  test('an unreadable sslkey: exit 2 with one line naming the parameter, not the DSN, and no connection', async () => {
    const result = await runCli([
      'ping-postgres',
      '--postgres-dsn',
      `postgres://${ROLE}:Hunter2-Secret@127.0.0.1:${pg.port}/postgres?sslmode=require&sslcert=${client.cert}&sslkey=/nonexistent/client.key`,
    ]);
    assertExit(result, 2);
    assert.equal(result.stdout, '');
    assert.equal(
      result.stderr,
      `bansho: POSTGRES_DSN's sslkey "/nonexistent/client.key" cannot be read (ENOENT)\n`,
      describeRun(result),
    );
  });

  test('a file that is no PEM certificate as sslcert: exit 2 naming sslcert', async () => {
    const notPem = join(tls.dir, 'not-a-cert.txt');
    await writeFile(notPem, 'hello\n');
    const result = await runCli([
      'ping-postgres',
      '--json',
      '--postgres-dsn',
      dsn({ sslmode: 'require', sslcert: notPem, sslkey: client.key }),
    ]);
    assertExit(result, 2);
    assert.match(
      parseJson(result).error?.message ?? '',
      /sslcert ".*not-a-cert\.txt" holds no PEM certificate/,
    );
  });

  test('with sslmode=disable the files are not read: an unreadable sslkey is no exit 2, the server refuses plain text', async () => {
    const { result, code } = await ping({
      sslmode: 'disable',
      sslcert: client.cert,
      sslkey: '/nonexistent/client.key',
    });
    assertExit(result, 1);
    assert.equal(code, 'auth_failed', describeRun(result));
  });

  test('the library: an unreadable sslkey rejects with a config BanshoError naming it', async () => {
    await assert.rejects(
      pingPostgres({
        dsn: dsn({ sslmode: 'require', sslcert: client.cert, sslkey: '/nonexistent/client.key' }),
      }),
      (error: unknown) =>
        error instanceof BanshoError &&
        error.code === 'config' &&
        /sslkey "\/nonexistent\/client\.key"/.test(error.message),
    );
  });
});
