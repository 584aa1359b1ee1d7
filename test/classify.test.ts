import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConnectionTimeoutError, ErrorReply, SocketClosedUnexpectedlyError } from '@redis/client';
import postgres from 'postgres';
import { parsePostgresDsn } from '../src/config/postgres-dsn.js';
import { parseRedisUrl } from '../src/config/redis-url.js';
import type { FailureCode } from '../src/errors.js';
import { classifyPostgresError } from '../src/postgres/classify.js';
import { classifyRedisError } from '../src/redis/classify.js';
import { parseClusterMasters } from '../src/redis/topology.js';

// The drivers' own error classes, built as the drivers build them (shapes recorded from real
// servers in the fault tests); here only the mapping to stable codes is pinned down.
const redisTarget = parseRedisUrl({ value: 'redis://:pw@127.0.0.1:6379', source: 'REDIS_URL' });
const plainRedisTarget = parseRedisUrl({ value: 'redis://127.0.0.1:6379', source: 'REDIS_URL' });
const pgTarget = parsePostgresDsn({ value: 'postgres://u:pw@127.0.0.1/db', source: 'POSTGRES_DSN' });

function systemError(code: string, message = `connect ${code} 127.0.0.1:1`): Error {
  return Object.assign(new Error(message), { code });
}

function postgresError(code: string, message: string): Error {
  const PostgresError = (postgres as unknown as { PostgresError: new (fields: object) => Error })
    .PostgresError;
  return new PostgresError({ severity: 'FATAL', code, message });
}

describe('classifyRedisError', () => {
  const cases: Array<[string, unknown, FailureCode]> = [
    [
      'NOAUTH',
      new ErrorReply('NOAUTH HELLO must be called with the client already authenticated'),
      'auth_failed',
    ],
    [
      'WRONGPASS',
      new ErrorReply('WRONGPASS invalid username-password pair or user is disabled.'),
      'auth_failed',
    ],
    [
      'NOPERM',
      new ErrorReply("NOPERM this user has no permissions to run the 'ping' command"),
      'auth_failed',
    ],
    ['LOADING', new ErrorReply('LOADING Redis is loading the dataset in memory'), 'not_ready'],
    ['MASTERDOWN', new ErrorReply('MASTERDOWN Link with MASTER is down'), 'not_ready'],
    ['READONLY', new ErrorReply("READONLY You can't write against a read only replica."), 'read_only'],
    ['maxclients', new ErrorReply('ERR max number of clients reached'), 'too_many_connections'],
    ['DB index', new ErrorReply('ERR DB index is out of range'), 'unknown_database'],
    ['another error reply', new ErrorReply('ERR unknown command'), 'server_error'],
    [
      'HELLO unknown (Redis 5)',
      new ErrorReply('ERR unknown command `HELLO`, with args beginning with: `3`, '),
      'unsupported_version',
    ],
    ['HELLO unknown (Redis 4)', new ErrorReply("ERR unknown command 'HELLO'"), 'unsupported_version'],
    ['NOPROTO', new ErrorReply('NOPROTO unsupported protocol version'), 'unsupported_version'],
    ['ECONNREFUSED', systemError('ECONNREFUSED'), 'connection_refused'],
    ['ENOTFOUND', systemError('ENOTFOUND', 'getaddrinfo ENOTFOUND nonexistent.invalid'), 'dns'],
    ['EAI_AGAIN', systemError('EAI_AGAIN'), 'dns'],
    [
      'self-signed',
      systemError('SELF_SIGNED_CERT_IN_CHAIN', 'self-signed certificate in certificate chain'),
      'tls',
    ],
    ['wrong name', systemError('ERR_TLS_CERT_ALTNAME_INVALID', 'Hostname/IP does not match'), 'tls'],
    ['connect timeout', new ConnectionTimeoutError(), 'timeout'],
    ['socket closed', new SocketClosedUnexpectedlyError(), 'protocol'],
    ['reset', systemError('ECONNRESET', 'read ECONNRESET'), 'protocol'],
    ['anything else', new Error('something new'), 'unexpected'],
  ];
  for (const [name, error, code] of cases) {
    test(`${name} → ${code}`, () => {
      const classified = classifyRedisError(error, redisTarget);
      assert.equal(classified.code, code);
      assert.ok(classified.hint.length > 0);
      assert.equal(classified.cause, error);
      assert.ok(!classified.message.includes('pw@'), classified.message);
    });
  }
  test('a connection closed or reset after the server answered is connection_closed; garbage stays protocol', () => {
    for (const error of [new SocketClosedUnexpectedlyError(), systemError('ECONNRESET', 'read ECONNRESET')]) {
      assert.equal(classifyRedisError(error, plainRedisTarget, { answered: true }).code, 'connection_closed');
      assert.equal(classifyRedisError(error, plainRedisTarget).code, 'protocol');
    }
    assert.equal(
      classifyRedisError(new Error('Protocol error, got "H" as reply type byte'), plainRedisTarget, {
        answered: true,
      }).code,
      'protocol',
    );
  });

  test('a connection closed on a plain URL suggests rediss://', () => {
    assert.match(
      classifyRedisError(new SocketClosedUnexpectedlyError(), plainRedisTarget).message,
      /rediss:\/\//,
    );
  });
});

describe('classifyPostgresError', () => {
  const cases: Array<[string, unknown, FailureCode]> = [
    [
      '28P01 wrong password',
      postgresError('28P01', 'password authentication failed for user "u"'),
      'auth_failed',
    ],
    ['28000 unknown role', postgresError('28000', 'role "u" does not exist'), 'auth_failed'],
    ['3D000', postgresError('3D000', 'database "db" does not exist'), 'unknown_database'],
    ['53300', postgresError('53300', 'sorry, too many clients already'), 'too_many_connections'],
    ['57P03', postgresError('57P03', 'the database system is starting up'), 'not_ready'],
    [
      '57P01 (pg_terminate_backend, a fast shutdown)',
      postgresError('57P01', 'terminating connection due to administrator command'),
      'connection_closed',
    ],
    [
      '57P05',
      postgresError('57P05', 'terminating connection due to idle-session timeout'),
      'connection_closed',
    ],
    ['25006', postgresError('25006', 'cannot execute CREATE TABLE in a read-only transaction'), 'read_only'],
    ['57014', postgresError('57014', 'canceling statement due to statement timeout'), 'timeout'],
    ['08P01', postgresError('08P01', 'invalid startup packet'), 'protocol'],
    ['lock_not_available', postgresError('55P03', 'canceling statement due to lock timeout'), 'locked'],
    [
      'insufficient_privilege',
      postgresError('42501', 'permission denied for schema public'),
      'permission_denied',
    ],
    ['another SQLSTATE', postgresError('42P01', 'relation "api_keys" does not exist'), 'server_error'],
    ['ECONNREFUSED', systemError('ECONNREFUSED'), 'connection_refused'],
    ['ENOTFOUND', systemError('ENOTFOUND'), 'dns'],
    ['CONNECT_TIMEOUT', systemError('CONNECT_TIMEOUT', 'write CONNECT_TIMEOUT 127.0.0.1:5432'), 'timeout'],
    [
      'TLS to a server without it',
      systemError(
        'ECONNRESET',
        'Client network socket disconnected before secure TLS connection was established',
      ),
      'tls',
    ],
    [
      'leaf not verified',
      systemError('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'),
      'tls',
    ],
    [
      'closed during startup',
      systemError('CONNECTION_CLOSED', 'write CONNECTION_CLOSED 127.0.0.1:5432'),
      'protocol',
    ],
    ['anything else', new Error('something new'), 'unexpected'],
  ];
  for (const [name, error, code] of cases) {
    test(`${name} → ${code}`, () => {
      const classified = classifyPostgresError(error, pgTarget);
      assert.equal(classified.code, code);
      assert.ok(classified.hint.length > 0);
      assert.ok(!classified.message.includes(':pw@'), classified.message);
    });
  }
  test('a closed connection: protocol from a peer that never spoke PostgreSQL, connection_closed once it did', () => {
    const closed = systemError('CONNECTION_CLOSED', 'write CONNECTION_CLOSED 127.0.0.1:5432');
    const session = (facts: { started?: boolean; spoke?: boolean; tls?: boolean }) => ({
      started: () => facts.started === true,
      spoke: () => facts.spoke === true,
      tls: () => facts.tls === true,
      fatal: () => undefined,
    });
    assert.equal(classifyPostgresError(closed, pgTarget, session({})).code, 'protocol');
    assert.equal(classifyPostgresError(closed, pgTarget, session({ spoke: true })).code, 'connection_closed');
    assert.equal(
      classifyPostgresError(closed, pgTarget, session({ spoke: true, started: true })).code,
      'connection_closed',
    );
    assert.equal(classifyPostgresError(closed, pgTarget, session({ spoke: true, tls: true })).code, 'tls');
    const fatal = classifyPostgresError(closed, pgTarget, {
      ...session({ started: true }),
      fatal: () => ({
        severity: 'FATAL',
        code: '57P05',
        message: 'terminating connection due to idle-session timeout',
      }),
    });
    assert.equal(fatal.code, 'connection_closed');
    assert.equal(fatal.message, 'FATAL 57P05: terminating connection due to idle-session timeout');
    assert.match(fatal.hint, /idle_session_timeout/);
  });

  const hinted: Array<[string, string, string, FailureCode, RegExp]> = [
    [
      '53300',
      'too many connections for role "gw"',
      'role',
      'too_many_connections',
      /ALTER ROLE gw CONNECTION LIMIT/,
    ],
    [
      '53300',
      'too many connections for database "db"',
      'database',
      'too_many_connections',
      /ALTER DATABASE db CONNECTION LIMIT/,
    ],
    [
      '53300',
      'remaining connection slots are reserved for non-replication superuser connections',
      'reserved',
      'too_many_connections',
      /reserved for superusers/,
    ],
    ['53300', 'sorry, too many clients already', 'server', 'too_many_connections', /max_connections/],
    [
      '08P01',
      'no more connections allowed (max_client_conn)',
      'PgBouncer max_client_conn',
      'too_many_connections',
      /PgBouncer.*max_client_conn/,
    ],
    [
      '08P01',
      'query_wait_timeout',
      'PgBouncer query_wait_timeout',
      'timeout',
      /PgBouncer.*default_pool_size/,
    ],
    [
      '08P01',
      'pgbouncer cannot connect to server',
      'PgBouncer without a server',
      'connection_refused',
      /PgBouncer.*\[databases\]/,
    ],
    ['08P01', 'SSL required', 'PgBouncer requiring TLS', 'tls', /client_tls_sslmode/],
    [
      '08P01',
      'unsupported startup parameter: search_path',
      'PgBouncer refusing a parameter',
      'server_error',
      /ignore_startup_parameters/,
    ],
    ['08P01', 'database does not allow connections: db', 'PgBouncer DISABLE', 'not_ready', /RESUME/],
    ['08P01', 'invalid startup packet layout', 'PostgreSQL itself', 'protocol', /refused bansho's messages/],
    [
      '57014',
      'canceling statement due to user request',
      'pg_cancel_backend',
      'server_error',
      /pg_cancel_backend/,
    ],
    [
      '57014',
      'canceling statement due to statement timeout',
      "bansho's own bound",
      'timeout',
      /raise --timeout/,
    ],
  ];
  for (const [sqlstate, message, name, code, hint] of hinted) {
    test(`${sqlstate} from ${name}: ${code}, with a hint that says so`, () => {
      const classified = classifyPostgresError(postgresError(sqlstate, message), pgTarget);
      assert.equal(classified.code, code);
      assert.match(classified.hint, hint);
      assert.doesNotMatch(classified.hint, /does not speak PostgreSQL/);
    });
  }

  test('the SQLSTATE and severity stay in the message', () => {
    const classified = classifyPostgresError(
      postgresError('3D000', 'database "db" does not exist'),
      pgTarget,
    );
    assert.equal(classified.message, 'FATAL 3D000: database "db" does not exist');
  });
});

describe('parseClusterMasters', () => {
  test('every master of CLUSTER NODES, slotless ones too; replicas, handshakes and migrating slots left out', () => {
    const text = [
      'a1 10.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [5461->-b2]',
      'b2 10.0.0.2:7000@17000,cache-b master - 0 1 2 connected 5461-10922 16000',
      'c3 10.0.0.3:7000@17000 master,fail - 0 1 3 disconnected 10923-15999 16001-16383',
      'd4 10.0.0.4:7000@17000 master - 0 1 4 connected',
      'e5 10.0.0.5:7000@17000 slave a1 0 1 1 connected',
      'f6 10.0.0.6:7000@17000 handshake - 0 0 0 connected',
      'g7 :0@0 master,noaddr - 0 0 0 disconnected',
      'h8 [::1]:7001@17001 master - 0 1 5 connected',
      '',
    ].join('\n');
    assert.deepEqual(parseClusterMasters(text, 'seed'), [
      { host: '10.0.0.1', port: 7000, address: '10.0.0.1:7000', slots: '0-5460', myself: true },
      { host: '10.0.0.2', port: 7000, address: '10.0.0.2:7000', slots: '5461-10922,16000', myself: false },
      {
        host: '10.0.0.3',
        port: 7000,
        address: '10.0.0.3:7000',
        slots: '10923-15999,16001-16383',
        myself: false,
      },
      { host: '10.0.0.4', port: 7000, address: '10.0.0.4:7000', slots: '', myself: false },
      { host: '::1', port: 7001, address: '[::1]:7001', slots: '', myself: false },
    ]);
  });

  test('a node that has met no other leaves its own address empty: the seed host stands in', () => {
    assert.deepEqual(
      parseClusterMasters('a1 :7000@17000 myself,master - 0 0 0 connected 0-16383\n', 'seed'),
      [{ host: 'seed', port: 7000, address: 'seed:7000', slots: '0-16383', myself: true }],
    );
  });
});
