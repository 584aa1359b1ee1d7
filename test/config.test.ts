import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { readConfigFiles, readEnvFile } from '../src/config/files.js';
import {
  type CliOptions,
  type ConfigInput,
  DEFAULT_TIMEOUT_MS,
  type Env,
  loadConfig,
} from '../src/config/load.js';
import { BanshoError } from '../src/errors.js';

const both = { redis: true, postgres: true };

function load(options: CliOptions = {}, env: Env = {}, fileEnv: Env = {}, isTTY = false) {
  const input: ConfigInput = { options, env, fileEnv, isTTY };
  return loadConfig(input, both);
}

function configErrorOf(run: () => unknown): BanshoError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof BanshoError, `expected a BanshoError, got ${String(error)}`);
    assert.equal(error.code, 'config');
    return error;
  }
  assert.fail('expected a config error');
}

describe('loadConfig precedence', () => {
  test('uses documented defaults when nothing is set', () => {
    const config = load();
    assert.equal(config.redis?.display, 'redis://127.0.0.1:6379');
    assert.equal(config.postgres?.display, 'postgres://postgres@127.0.0.1:5432/postgres');
    assert.equal(config.timeoutMs, DEFAULT_TIMEOUT_MS);
    assert.equal(config.output, 'human');
    assert.equal(config.waitMs, undefined);
  });

  test('flags beat the environment, which beats .env', () => {
    const env = { REDIS_URL: 'redis://env-host:1', POSTGRES_DSN: 'postgres://u@env-host/db' };
    const fileEnv = { REDIS_URL: 'redis://file-host:2', POSTGRES_DSN: 'postgres://u@file-host/db' };
    assert.equal(load({}, {}, fileEnv).redis?.host, 'file-host');
    assert.equal(load({}, env, fileEnv).redis?.host, 'env-host');
    assert.equal(load({}, env, fileEnv).postgres?.host, 'env-host');
    assert.equal(load({ redisUrl: 'redis://flag-host' }, env, fileEnv).redis?.host, 'flag-host');
    assert.equal(load({ postgresDsn: 'postgres://flag-host' }, env, fileEnv).postgres?.host, 'flag-host');
  });

  test('an empty variable is an error naming it, not a fallback to .env', () => {
    const error = configErrorOf(() => load({}, { REDIS_URL: '' }, { REDIS_URL: 'redis://file-host' }));
    assert.match(error.message, /^REDIS_URL is empty/);
  });

  test('validates only what the command needs', () => {
    const input: ConfigInput = { options: {}, env: { POSTGRES_DSN: 'mysql://x' }, fileEnv: {}, isTTY: false };
    const config = loadConfig(input, { redis: true, postgres: false });
    assert.equal(config.postgres, undefined);
    configErrorOf(() => loadConfig(input, { redis: false, postgres: true }));
  });

  test('names the .env file as the source of a bad value', () => {
    const error = configErrorOf(() => load({}, {}, { POSTGRES_DSN: 'http://x' }));
    assert.match(error.message, /^POSTGRES_DSN \(from \.env\) has unsupported scheme "http"/);
  });
});

describe('loadConfig flags', () => {
  test('parses durations for --timeout, --wait and --interval', () => {
    const config = load({ timeout: '500ms', wait: '1m', interval: '2s' });
    assert.equal(config.timeoutMs, 500);
    assert.equal(config.waitMs, 60_000);
    assert.equal(config.intervalMs, 2000);
  });

  test('refuses --interval without --wait, and --json with --quiet', () => {
    assert.match(
      configErrorOf(() => load({ interval: '1s' })).message,
      /--interval only makes sense with --wait/,
    );
    assert.match(configErrorOf(() => load({ json: true, quiet: true })).message, /cannot be used together/);
  });

  test('colour only on a terminal, and never with NO_COLOR or TERM=dumb', () => {
    assert.equal(load({}, {}, {}, true).color, true);
    assert.equal(load({}, {}, {}, false).color, false);
    assert.equal(load({}, { NO_COLOR: '1' }, {}, true).color, false);
    assert.equal(load({}, { TERM: 'dumb' }, {}, true).color, false);
  });

  test("FORCE_COLOR as chalk reads it: 1, 2, 3, true or empty colour a pipe; 0 or false turn a terminal's off", () => {
    for (const value of ['1', '2', '3', 'true', '']) {
      assert.equal(load({}, { FORCE_COLOR: value }, {}, false).color, true, `FORCE_COLOR=${value}`);
      assert.equal(
        load({}, { FORCE_COLOR: value, TERM: 'dumb' }, {}, false).color,
        true,
        `FORCE_COLOR=${value}`,
      );
    }
    for (const value of ['0', 'false']) {
      assert.equal(load({}, { FORCE_COLOR: value }, {}, true).color, false, `FORCE_COLOR=${value}`);
    }
    // Anything else is no decision: the terminal decides.
    assert.equal(load({}, { FORCE_COLOR: 'yes' }, {}, true).color, true);
    assert.equal(load({}, { FORCE_COLOR: 'yes' }, {}, false).color, false);
  });

  test('NO_COLOR wins over FORCE_COLOR; an empty NO_COLOR is unset', () => {
    assert.equal(load({}, { NO_COLOR: '1', FORCE_COLOR: '1' }, {}, true).color, false);
    assert.equal(load({}, { NO_COLOR: '1', FORCE_COLOR: '3' }, {}, false).color, false);
    assert.equal(load({}, { NO_COLOR: '', FORCE_COLOR: '1' }, {}, false).color, true);
  });

  test('--wait redraws its line only when stderr is a terminal that is not TERM=dumb', () => {
    const redraw = (env: Env, isStderrTTY: boolean) =>
      loadConfig({ options: {}, env, fileEnv: {}, isTTY: false, isStderrTTY }, both).redrawProgress;
    assert.equal(redraw({}, true), true);
    assert.equal(redraw({ TERM: 'dumb' }, true), false);
    assert.equal(redraw({}, false), false);
    assert.equal(load().redrawProgress, false);
  });
});

describe('REDIS_URL', () => {
  test('masks the password in the display and keeps it for the client', () => {
    const { redis } = load({ redisUrl: 'rediss://alice:s%40cret@cache.example:6380/3' });
    assert.equal(redis?.display, 'rediss://alice:***@cache.example:6380/3');
    assert.equal(redis?.password, 's@cret');
    assert.equal(redis?.username, 'alice');
    assert.equal(redis?.tls, true);
    assert.equal(redis?.database, 3);
  });

  test('a password without a user is shown as :***@', () => {
    assert.equal(load({ redisUrl: 'redis://:pw@127.0.0.1' }).redis?.display, 'redis://:***@127.0.0.1:6379');
  });

  test('accepts IPv6 literals', () => {
    const { redis } = load({ redisUrl: 'redis://[::1]:6390' });
    assert.equal(redis?.host, '::1');
    assert.equal(redis?.display, 'redis://[::1]:6390');
  });

  test('comma-separated URLs are cluster seeds: credentials from the first, shown once', () => {
    const { redis } = load({
      redisUrl: 'redis://:pw@10.0.0.1:7000,redis://10.0.0.2:7001, redis://[::1]:7002',
    });
    assert.deepEqual(redis?.seeds, [
      { host: '10.0.0.1', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
    assert.equal(redis?.password, 'pw');
    assert.equal(redis?.display, 'redis://:***@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002');
    assert.equal(redis?.sentinel, undefined);
  });

  test("redis+sentinel:// names the sentinels and the master; the credentials are the master's", () => {
    const { redis } = load({ redisUrl: 'redis+sentinel://app:pw@s1:26379,s2,[::1]:26380/my%20master' });
    assert.deepEqual(redis?.sentinel, {
      masterName: 'my master',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26379 },
        { host: '::1', port: 26380 },
      ],
    });
    assert.equal(redis?.username, 'app');
    assert.equal(redis?.password, 'pw');
    assert.equal(redis?.tls, false);
    assert.equal(redis?.display, 'redis+sentinel://app:***@s1:26379,s2:26379,[::1]:26380/my%20master');
    assert.equal(load({ redisUrl: 'rediss+sentinel://s1/m' }).redis?.tls, true);
  });

  for (const [url, pattern] of [
    ['redis://:hunter2@h1,,redis://h2', /empty URL in its list of cluster seeds/],
    ['redis://:hunter2@h1,rediss://h2', /mixes redis:\/\/ and rediss:\/\/ seeds/],
    ['redis://:hunter2@h1/2,redis://h2', /names database 2: a cluster has only database 0/],
    ['redis://:hunter2@h1,redis://:other@h2', /gives its seeds different credentials/],
    ['redis://:hunter2@h1,h2', /\(seed 2\) is not a valid URL/],
    ['redis+sentinel://:hunter2@s1:26379', /names no master/],
    ['redis+sentinel://:hunter2@s1,,s2/m', /empty host in its list of sentinels/],
    ['redis+sentinel://:hunter2@s1:0/m', /port 0/],
    ['http://127.0.0.1', /unsupported scheme "http": use redis:\/\/ or rediss:\/\//],
    ['redis://:hunter2@[bad', /^--redis-url is not a valid URL/],
    ['not a url', /^--redis-url is not a valid URL/],
    ['redis://127.0.0.1/abc', /path "\/abc": expected a database number/],
    ['redis://127.0.0.1:0', /port 0/],
    ['redis://127.0.0.1?protocol=3', /unsupported query parameter "protocol"/],
    ['redis://:%E0%A4%A@127.0.0.1', /invalid percent-encoding/],
  ] as const) {
    test(`refuses ${url} without echoing it`, () => {
      const error = configErrorOf(() => load({ redisUrl: url }));
      assert.match(error.message, pattern);
      assert.ok(!error.message.includes('hunter2'));
    });
  }
});

describe('targets are rendered from the parsed URL, whatever the password', () => {
  const hostile = [
    "it's",
    'say "hi"',
    'two words',
    'back\\slash',
    'postgres',
    'redis',
    'fail',
    '.',
    ':',
    'a',
    'p@ss',
    '%41',
  ];
  for (const password of hostile) {
    const pw = encodeURIComponent(password);
    test(`password ${JSON.stringify(password)}: one URL, cluster seeds, sentinels, several PostgreSQL hosts`, () => {
      const display = (redisUrl: string) => load({ redisUrl }).redis?.display;
      assert.equal(display(`redis://:${pw}@127.0.0.1:6379`), 'redis://:***@127.0.0.1:6379');
      assert.equal(display(`rediss://redis:${pw}@127.0.0.1/2`), 'rediss://redis:***@127.0.0.1:6379/2');
      assert.equal(
        display(`redis://:${pw}@127.0.0.1:7000,redis://127.0.0.1:7001`),
        'redis://:***@127.0.0.1:7000,127.0.0.1:7001',
      );
      assert.equal(
        display(`redis+sentinel://:${pw}@127.0.0.1:26379,127.0.0.1:26380/redis`),
        'redis+sentinel://:***@127.0.0.1:26379,127.0.0.1:26380/redis',
      );
      const postgres = (postgresDsn: string) => load({ postgresDsn }).postgres?.display;
      assert.equal(
        postgres(`postgres://postgres:${pw}@127.0.0.1:5432/postgres`),
        'postgres://postgres:***@127.0.0.1:5432/postgres',
      );
      assert.equal(
        postgres(`postgresql://postgres:${pw}@127.0.0.1:5433,127.0.0.1:5432/postgres?sslmode=disable`),
        'postgresql://postgres:***@127.0.0.1:5433,127.0.0.1:5432/postgres?sslmode=disable',
      );
    });
  }

  test('a user name is shown percent-encoded, as it is written in a URL', () => {
    assert.equal(load({ redisUrl: 'redis://a%40b:pw@h' }).redis?.display, 'redis://a%40b:***@h:6379');
    assert.equal(load({ redisUrl: 'redis://a%3Ab@h' }).redis?.display, 'redis://a%3Ab@h:6379');
  });
});

describe('a malformed URL is refused without echoing what may be a password', () => {
  for (const [flag, url] of [
    ['--redis-url', 'redis://u:12/hunter2@127.0.0.1'],
    ['--redis-url', 'redis://u:12?hunter2@127.0.0.1'],
    ['--redis-url', 'redis://u:12#hunter2@127.0.0.1'],
    ['--redis-url', 'redis+sentinel://u:12/hunter2@127.0.0.1'],
    ['--postgres-dsn', 'postgres://u:12/hunter2@127.0.0.1/db'],
    ['--postgres-dsn', 'postgres://u:12?hunter2@127.0.0.1/db'],
    ['--postgres-dsn', 'postgres://u:12#hunter2@127.0.0.1/db'],
  ] as const) {
    test(`${url}: an "@" after the host, the sign of an unencoded "/", "?" or "#" in the password`, () => {
      const options = flag === '--redis-url' ? { redisUrl: url } : { postgresDsn: url };
      const error = configErrorOf(() => load(options));
      assert.equal(
        error.message,
        `${flag} has an "@" after its host: in a password, percent-encode "/", "?" and "#" (%2F, %3F, %23)`,
      );
    });
  }

  test('a "scheme" typed without :// is not echoed: it is what came before the first colon', () => {
    for (const url of ['hunter2:x@127.0.0.1', 'localhost:6379']) {
      const error = configErrorOf(() => load({ redisUrl: url }));
      assert.equal(error.message, '--redis-url does not start with redis:// or rediss://');
    }
    const error = configErrorOf(() => load({ postgresDsn: 'hunter2:x@h/db' }));
    assert.equal(error.message, '--postgres-dsn does not start with postgres:// or postgresql://');
  });

  test('--env-file given a URL by mistake shows it with its credentials removed', () => {
    const error = configErrorOf(() => readEnvFile("redis://:it's@127.0.0.1", '/'));
    assert.equal(error.message, '--env-file "redis://***@127.0.0.1" cannot be read (ENOENT)');
  });
});

describe('POSTGRES_DSN', () => {
  test('fills libpq defaults: port 5432, database named after the user', () => {
    const { postgres } = load({ postgresDsn: 'postgresql://app:pw@db.internal' });
    assert.equal(postgres?.port, 5432);
    assert.equal(postgres?.database, 'app');
    assert.equal(postgres?.sslMode, 'prefer');
    assert.equal(postgres?.display, 'postgresql://app:***@db.internal:5432/app');
  });

  test('reads sslmode and sslrootcert; require with a root certificate verifies like verify-ca', () => {
    const full = load({ postgresDsn: 'postgres://u@h/d?sslmode=verify-full&sslrootcert=/ca.pem' }).postgres;
    assert.equal(full?.sslMode, 'verify-full');
    assert.equal(full?.sslRootCert, '/ca.pem');
    assert.equal(full?.display, 'postgres://u@h:5432/d?sslmode=verify-full&sslrootcert=/ca.pem');
    assert.equal(
      load({ postgresDsn: 'postgres://u@h/d?sslmode=require&sslrootcert=/ca.pem' }).postgres?.sslMode,
      'verify-ca',
    );
  });

  test('several hosts: each with its port, in order, shown in the display with the password masked', () => {
    const postgres = load({ postgresDsn: 'postgres://app:pw@db1:5433,db2,[::1]:6000/app' }).postgres;
    assert.deepEqual(postgres?.hosts, [
      { host: 'db1', port: 5433 },
      { host: 'db2', port: 5432 },
      { host: '::1', port: 6000 },
    ]);
    assert.equal(postgres?.host, 'db1');
    assert.equal(postgres?.port, 5433);
    assert.equal(postgres?.database, 'app');
    assert.equal(postgres?.password, 'pw');
    assert.equal(postgres?.display, 'postgres://app:***@db1:5433,db2:5432,[::1]:6000/app');
    assert.equal(postgres?.targetSessionAttrs, undefined);
  });

  test('one host: a list of one, and no target_session_attrs unless given', () => {
    const postgres = load({ postgresDsn: 'postgres://u@h:1/d?target_session_attrs=standby' }).postgres;
    assert.deepEqual(postgres?.hosts, [{ host: 'h', port: 1 }]);
    assert.equal(postgres?.targetSessionAttrs, 'standby');
    assert.equal(postgres?.display, 'postgres://u@h:1/d?target_session_attrs=standby');
  });

  test('a Unix socket directory in ?host=, with no host part: the socket file is <dir>/.s.PGSQL.<port>', () => {
    const postgres = load({ postgresDsn: 'postgres://app:pw@/bansho?host=/var/run/postgresql' }).postgres;
    assert.deepEqual(postgres?.hosts, [
      { host: '/var/run/postgresql', port: 5432, socketPath: '/var/run/postgresql/.s.PGSQL.5432' },
    ]);
    assert.equal(postgres?.database, 'bansho');
    assert.equal(postgres?.password, 'pw');
    assert.equal(postgres?.display, 'postgres://app:***@/bansho?host=/var/run/postgresql');
  });

  test('?host= overrides the host part, and the URI port chooses the socket file', () => {
    const postgres = load({ postgresDsn: 'postgres://app@localhost:5433/bansho?host=/tmp/pg/' }).postgres;
    assert.deepEqual(postgres?.hosts, [
      { host: '/tmp/pg/', port: 5433, socketPath: '/tmp/pg/.s.PGSQL.5433' },
    ]);
    assert.equal(postgres?.display, 'postgres://app@/bansho?host=/tmp/pg/&port=5433');
    const byParam = load({ postgresDsn: 'postgres://app@/bansho?host=/tmp/pg&port=6000' }).postgres;
    assert.equal(byParam?.hosts[0]?.socketPath, '/tmp/pg/.s.PGSQL.6000');
  });

  test('a percent-encoded socket directory as the host, with or without a port', () => {
    const postgres = load({ postgresDsn: 'postgresql://app:pw@%2Fvar%2Frun%2Fpostgresql/db' }).postgres;
    assert.deepEqual(postgres?.hosts, [
      { host: '/var/run/postgresql', port: 5432, socketPath: '/var/run/postgresql/.s.PGSQL.5432' },
    ]);
    assert.equal(postgres?.display, 'postgresql://app:***@/db?host=/var/run/postgresql');
    const withPort = load({ postgresDsn: 'postgres://app@%2Frun%2Fpg:5433/db' }).postgres;
    assert.equal(withPort?.hosts[0]?.socketPath, '/run/pg/.s.PGSQL.5433');
  });

  test('several hosts mixing a socket directory and TCP, each with its port, as libpq allows', () => {
    const postgres = load({ postgresDsn: 'postgres://app:pw@%2Frun%2Fpg:5433,db2:5434/db' }).postgres;
    assert.deepEqual(postgres?.hosts, [
      { host: '/run/pg', port: 5433, socketPath: '/run/pg/.s.PGSQL.5433' },
      { host: 'db2', port: 5434 },
    ]);
    assert.equal(postgres?.display, 'postgres://app:***@/db?host=/run/pg,db2&port=5433,5434');
    const byParam = load({ postgresDsn: 'postgres://app@/db?host=/run/pg,::1&port=5432' }).postgres;
    assert.deepEqual(byParam?.hosts, [
      { host: '/run/pg', port: 5432, socketPath: '/run/pg/.s.PGSQL.5432' },
      { host: '::1', port: 5432 },
    ]);
  });

  test('sslcert and sslkey are read together, and shown (they are paths, not secrets)', () => {
    const postgres = load({
      postgresDsn: 'postgres://u@h/d?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem',
    }).postgres;
    assert.equal(postgres?.sslCert, '/c.pem');
    assert.equal(postgres?.sslKey, '/k.pem');
    assert.equal(
      postgres?.display,
      'postgres://u@h:5432/d?sslmode=verify-full&sslrootcert=/ca.pem&sslcert=/c.pem&sslkey=/k.pem',
    );
  });

  for (const [dsn, pattern] of [
    ['postgres://u:hunter2@h1,,h2/d', /has an empty host in its host list/],
    ['postgres://u:hunter2@h1,h2:0/d', /has port 0/],
    ['postgres://u:hunter2@h1,h2:99999/d', /is not a valid URL/],
    [
      'postgres://u:hunter2@h/d?target_session_attrs=master',
      /target_session_attrs "master": expected one of any/,
    ],
    ['mysql://u:hunter2@h/d', /unsupported scheme "mysql"/],
    ['postgres://u:hunter2@h/d?sslmode=maybe', /sslmode "maybe": expected one of disable, allow/],
    ['postgres://u:hunter2@h/d?statement_timeout=1', /unsupported query parameter "statement_timeout"/],
    ['postgres://u:hunter2@/d', /has no host: name one, or a Unix socket directory with \?host=/],
    ['postgres://u:hunter2@/d?host=', /has an empty host in its \?host= list/],
    ['postgres://u:hunter2@/d?host=/run/pg&port=0', /has port 0: expected 1-65535/],
    ['postgres://u:hunter2@/d?host=/run/pg&port=x', /has port x: expected 1-65535/],
    ['postgres://u:hunter2@/d?host=/a,/b,/c&port=1,2', /has 3 host\(s\) but 2 ports/],
    ['postgres://u:hunter2@h1,h2/d?host=/run/pg', /has 1 host\(s\) but 2 ports/],
    ['postgres://u:hunter2@%2Frun%ZZ/d', /has a socket directory with invalid percent-encoding/],
    [
      'postgres://u:hunter2@h/d?sslcert=/c.pem',
      /has sslcert without sslkey: a client certificate needs both/,
    ],
    ['postgres://u:hunter2@h/d?sslkey=/k.pem', /has sslkey without sslcert/],
    ['postgres:///d', /has no host/],
    ['postgres://u:hunter2@h/a/b', /expected one database name/],
    ['host=localhost user=u password=hunter2', /is not a valid URL/],
  ] as const) {
    test(`refuses ${dsn.replace('hunter2', '***')} without echoing the password`, () => {
      const error = configErrorOf(() => load({ postgresDsn: dsn }));
      assert.match(error.message, pattern);
      assert.ok(!error.message.includes('hunter2'));
    });
  }
});

describe('files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bansho-config-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('.env in the working directory is optional, --env-file is not', () => {
    assert.deepEqual(readEnvFile(undefined, dir), {});
    const error = configErrorOf(() => readEnvFile(join(dir, 'missing.env'), dir));
    assert.match(error.message, /^--env-file ".*missing\.env" cannot be read \(ENOENT\)/);
  });

  test('parses .env with dotenv without touching process.env', () => {
    writeFileSync(join(dir, '.env'), '# comment\nREDIS_URL="redis://from-file:1"\nBANSHO_TEST_UNSET=1\n');
    assert.deepEqual(readEnvFile(undefined, dir), {
      REDIS_URL: 'redis://from-file:1',
      BANSHO_TEST_UNSET: '1',
    });
    assert.equal(process.env.BANSHO_TEST_UNSET, undefined);
  });

  test('an unreadable or non-PEM sslrootcert is a config error before any connection', () => {
    const notPem = join(dir, 'ca.txt');
    writeFileSync(notPem, 'hello');
    const config = load({ postgresDsn: `postgres://u@h/d?sslmode=verify-full&sslrootcert=${notPem}` });
    assert.match(configErrorOf(() => readConfigFiles(config)).message, /holds no PEM certificate/);
    const missing = load({
      postgresDsn: 'postgres://u@h/d?sslmode=verify-full&sslrootcert=/nonexistent.pem',
    });
    assert.match(configErrorOf(() => readConfigFiles(missing)).message, /cannot be read \(ENOENT\)/);
  });

  test('an unreadable or non-PEM sslcert or sslkey is a config error naming the parameter, never the DSN', () => {
    const cert = join(dir, 'client.crt');
    writeFileSync(cert, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const notKey = join(dir, 'client.txt');
    writeFileSync(notKey, 'hello');
    const dsn = (certPath: string, keyPath: string, mode = 'require') =>
      `postgres://u:hunter2@h/d?sslmode=${mode}&sslcert=${certPath}&sslkey=${keyPath}`;
    const missingKey = configErrorOf(() =>
      readConfigFiles(load({ postgresDsn: dsn(cert, '/nonexistent.key') })),
    );
    assert.equal(missingKey.message, `POSTGRES_DSN's sslkey "/nonexistent.key" cannot be read (ENOENT)`);
    const badKey = configErrorOf(() => readConfigFiles(load({ postgresDsn: dsn(cert, notKey) })));
    assert.equal(badKey.message, `POSTGRES_DSN's sslkey ${JSON.stringify(notKey)} holds no PEM private key`);
    const badCert = configErrorOf(() => readConfigFiles(load({ postgresDsn: dsn(notKey, notKey) })));
    assert.match(badCert.message, /^POSTGRES_DSN's sslcert ".*client\.txt" holds no PEM certificate$/);
    for (const error of [missingKey, badKey, badCert]) assert.ok(!error.message.includes('hunter2'));
  });

  test('TLS files are not read when TLS is never used: sslmode=disable, or only Unix sockets', () => {
    for (const dsn of [
      'postgres://u@h/d?sslmode=disable&sslrootcert=/nonexistent.pem&sslcert=/no.crt&sslkey=/no.key',
      'postgres://u@/d?host=/run/pg&sslmode=require&sslcert=/no.crt&sslkey=/no.key',
    ]) {
      const config = load({ postgresDsn: dsn });
      readConfigFiles(config);
      assert.equal(config.postgres?.certPem, undefined);
    }
  });
});

describe('REDIS_URL: unix:// and the TLS files of rediss://', () => {
  test('unix://: the socket path, credentials in the userinfo or ?password=, the database as ?db=N', () => {
    const forms: Array<
      [string, { username?: string; password?: string; database: number; display: string }]
    > = [
      ['unix:///run/redis/redis.sock', { database: 0, display: 'unix:///run/redis/redis.sock' }],
      [
        'unix://:hunter2@/run/redis/redis.sock?db=3',
        { password: 'hunter2', database: 3, display: 'unix://:***@/run/redis/redis.sock?db=3' },
      ],
      [
        'unix:///run/redis/redis.sock?db=0&password=hunter2',
        { password: 'hunter2', database: 0, display: 'unix://:***@/run/redis/redis.sock?db=0' },
      ],
      [
        'unix://app:hun%40ter2@/run/redis/redis.sock',
        {
          username: 'app',
          password: 'hun@ter2',
          database: 0,
          display: 'unix://app:***@/run/redis/redis.sock',
        },
      ],
      [
        'unix://app@/run/redis/redis.sock?password=hun%40ter2',
        {
          username: 'app',
          password: 'hun@ter2',
          database: 0,
          display: 'unix://app:***@/run/redis/redis.sock',
        },
      ],
      // An unencoded `@` in the password: the userinfo runs to the last `@` before the path.
      [
        'unix://:hun@ter2@/run/redis/redis.sock',
        { password: 'hun@ter2', database: 0, display: 'unix://:***@/run/redis/redis.sock' },
      ],
    ];
    for (const [url, expected] of forms) {
      const { redis } = load({ redisUrl: url });
      assert.equal(redis?.path, '/run/redis/redis.sock', url);
      assert.equal(redis?.tls, false, url);
      assert.equal(redis?.username, expected.username, url);
      assert.equal(redis?.password, expected.password, url);
      assert.equal(redis?.database, expected.database, url);
      assert.equal(redis?.display, expected.display, url);
    }
  });

  for (const [url, pattern] of [
    ['unix://', /is not a valid unix:\/\/ URL: expected unix:\/\/\[\[user\]:password@\]\/path/],
    ['unix://:hunter2@relative/redis.sock', /is not a valid unix:\/\/ URL/],
    ['unix:///run/redis/?password=hunter2', /names a directory, not a socket/],
    ['unix://:hunter2@/run/redis.sock?db=x', /has db "x": expected a database number/],
    ['unix://:hunter2@/run/redis.sock?db=1&db=2', /gives db more than once/],
    [
      'unix://:hunter2@/run/redis.sock?timeout=1',
      /unsupported query parameter "timeout" \(supported: db, password\)/,
    ],
    ['unix://:hunter2@/run/redis.sock?password=other', /gives a password twice/],
    ['unix://:hunter2@/run/redis.sock?ssl_ca_certs=/ca.pem', /unsupported query parameter "ssl_ca_certs"/],
    ['unix://:hunt%zz@/run/redis.sock', /has a password with invalid percent-encoding/],
    ['unix://:hunter2@/run/redis.sock#frag', /is not a valid unix:\/\/ URL/],
    ['unix:///run/redis.sock,redis://:hunter2@h2', /is a Unix socket: a cluster's seeds are redis:\/\//],
    ['redis://:hunter2@h1,unix:///run/redis.sock', /\(seed 2\) is a Unix socket/],
  ] as const) {
    test(`refuses ${url} without echoing it`, () => {
      const error = configErrorOf(() => load({ redisUrl: url }));
      assert.match(error.message, pattern);
      assert.ok(!error.message.includes('hunter2'), error.message);
      assert.ok(!error.message.includes('hunt%zz'), error.message);
    });
  }

  test("rediss:// takes redis-py's ssl_ca_certs, ssl_certfile, ssl_keyfile (and ssl_cert_reqs=required), shown in the target", () => {
    const { redis } = load({
      redisUrl:
        'rediss://:pw@cache:6380/2?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem&ssl_certfile=/etc/c.crt&ssl_keyfile=/etc/c.key',
    });
    assert.deepEqual(redis?.tlsFiles, {
      caCerts: '/etc/ca.pem',
      certFile: '/etc/c.crt',
      keyFile: '/etc/c.key',
      source: '--redis-url',
    });
    assert.equal(
      redis?.display,
      'rediss://:***@cache:6380/2?ssl_ca_certs=/etc/ca.pem&ssl_certfile=/etc/c.crt&ssl_keyfile=/etc/c.key',
    );
    assert.equal(load({ redisUrl: 'rediss://cache' }).redis?.tlsFiles, undefined);
  });

  test("the TLS files of cluster seeds come from the first; of a sentinel URL, they are the master's", () => {
    const seeds = load({ redisUrl: 'rediss://h1:7000?ssl_ca_certs=/ca.pem,rediss://h2:7000' }).redis;
    assert.equal(seeds?.tlsFiles?.caCerts, '/ca.pem');
    assert.equal(seeds?.display, 'rediss://h1:7000,h2:7000?ssl_ca_certs=/ca.pem');
    const sentinel = load({ redisUrl: 'rediss+sentinel://:pw@s1:26379/mymaster?ssl_ca_certs=/ca.pem' }).redis;
    assert.equal(sentinel?.tlsFiles?.caCerts, '/ca.pem');
    assert.equal(sentinel?.display, 'rediss+sentinel://:***@s1:26379/mymaster?ssl_ca_certs=/ca.pem');
  });

  for (const [url, pattern] of [
    ['redis://:hunter2@h?ssl_ca_certs=/ca.pem', /has ssl_ca_certs, which only a rediss:\/\/ URL takes/],
    [
      'redis+sentinel://:hunter2@s1/m?ssl_ca_certs=/ca.pem',
      /has ssl_ca_certs, which only a rediss:\/\/ URL takes/,
    ],
    [
      'rediss://:hunter2@h?ssl_certfile=/c.crt',
      /has ssl_certfile without ssl_keyfile: a client certificate needs both/,
    ],
    ['rediss://:hunter2@h?ssl_keyfile=/c.key', /has ssl_keyfile without ssl_certfile/],
    ['rediss://:hunter2@h?ssl_ca_certs=', /has an empty ssl_ca_certs/],
    ['rediss://:hunter2@h?ssl_ca_certs=/a&ssl_ca_certs=/b', /gives ssl_ca_certs more than once/],
    ['rediss://:hunter2@h?ssl_cert_reqs=none', /ssl_cert_reqs "none": bansho always verifies/],
    [
      'rediss://:hunter2@h?ssl_ca_path=/etc/ssl',
      /unsupported query parameter "ssl_ca_path" \(supported: ssl_ca_certs/,
    ],
    [
      'rediss://:hunter2@h1?ssl_ca_certs=/a,rediss://h2?ssl_ca_certs=/b',
      /gives its seeds different TLS files: a cluster has one set, give it on the first/,
    ],
  ] as const) {
    test(`refuses ${url.replace('hunter2', '***')} without echoing the password`, () => {
      const error = configErrorOf(() => load({ redisUrl: url }));
      assert.match(error.message, pattern);
      assert.ok(!error.message.includes('hunter2'), error.message);
    });
  }

  test('the TLS files are read only for a command that checks Redis, and then before any connection', () => {
    const input: ConfigInput = {
      options: {},
      env: { REDIS_URL: 'rediss://h?ssl_ca_certs=/nonexistent/ca.pem' },
      fileEnv: {},
      isTTY: false,
    };
    readConfigFiles(loadConfig(input, { redis: false, postgres: true }));
    const config = loadConfig(input, { redis: true, postgres: false });
    assert.equal(config.redis?.tlsPem, undefined);
    assert.match(
      configErrorOf(() => readConfigFiles(config)).message,
      /^REDIS_URL's ssl_ca_certs "\/nonexistent\/ca\.pem" cannot be read \(ENOENT\)$/,
    );
  });
});
