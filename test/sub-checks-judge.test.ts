/**
 * The sub-checks' judgement as pure functions, for what a real server cannot be put into on
 * demand: a skewed clock, a PostgreSQL older than 13, and the exact thresholds.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CLOCK_SKEW_LIMIT_MS, clockSkewMs, judgeClock } from '../src/checks/clock.js';
import { judgePostgres, MIN_SESSION_TIMEOUT_MS, type PostgresFacts } from '../src/postgres/sub-checks.js';
import { judgeEviction, judgeMemory, parseInfo } from '../src/redis/sub-checks.js';
import { UNLIMITED_SESSION } from './support/facts.js';

describe('clockSkewMs', () => {
  test('a reading taken between sending and receiving is no skew, however slow the round trip', () => {
    assert.equal(clockSkewMs(1500, 1000, 2000), 0);
    assert.equal(clockSkewMs(1000, 1000, 9000), 0);
    assert.equal(clockSkewMs(9000, 1000, 9000), 0);
  });
  test('a server ahead counts from the reply, a server behind from the request', () => {
    assert.equal(clockSkewMs(3500, 1000, 2000), 1500);
    assert.equal(clockSkewMs(200, 1000, 2000), -800);
  });
});

describe('judgeClock', () => {
  const at = (serverMs: number) => ({ serverMs, sentAtMs: 10_000, receivedAtMs: 10_010 });
  test(`passes up to ${CLOCK_SKEW_LIMIT_MS} ms either way`, () => {
    assert.equal(judgeClock(at(10_010 + CLOCK_SKEW_LIMIT_MS), 'why').status, 'pass');
    assert.equal(judgeClock(at(10_000 - CLOCK_SKEW_LIMIT_MS), 'why').status, 'pass');
  });
  test('warns beyond it, saying how far and which way, and why it matters', () => {
    const ahead = judgeClock(at(12_510), 'audit rows are stamped by the server');
    assert.deepEqual(
      { status: ahead.status, observed: ahead.observed },
      { status: 'warn', observed: '2.5s ahead of the local clock' },
    );
    assert.match(ahead.hint ?? '', /^audit rows are stamped by the server: synchronise/);
    assert.equal(judgeClock(at(8_000), 'why').observed, '2.0s behind the local clock');
  });
});

const HEALTHY: PostgresFacts = {
  version: '15.20',
  versionNum: 150020,
  inRecovery: false,
  readOnly: false,
  user: 'gateway',
  schema: 'public',
  canCreate: false,
  privileges: [
    { table: 'audit_events', privilege: 'INSERT', granted: true },
    { table: 'api_keys', privilege: 'SELECT', granted: true },
    { table: 'api_keys', privilege: 'INSERT', granted: true },
    { table: 'api_keys', privilege: 'UPDATE', granted: true },
  ],
  maxConnections: 100,
  reservedConnections: 3,
  connectionsInUse: 5,
  ...UNLIMITED_SESSION,
  encoding: 'UTF8',
  serverMs: 10_005,
};

function judge(facts: Partial<PostgresFacts>, create = false) {
  const details = judgePostgres({ ...HEALTHY, ...facts }, { sentAtMs: 10_000, receivedAtMs: 10_010, create });
  return Object.fromEntries(details.map((detail) => [detail.name, detail]));
}

describe('judgePostgres', () => {
  test('healthy facts pass every sub-check', () => {
    for (const detail of Object.values(judge({})))
      assert.equal(detail.status, 'pass', JSON.stringify(detail));
  });
  test('PostgreSQL 12 fails version with unsupported_version; 13.0 passes', () => {
    const old = judge({ version: '12.18', versionNum: 120018 }).version;
    assert.deepEqual(
      { status: old?.status, code: old?.code, observed: old?.observed },
      { status: 'fail', code: 'unsupported_version', observed: 'PostgreSQL 12.18' },
    );
    assert.match(old?.hint ?? '', /13 or newer/);
    assert.equal(judge({ version: '13.0', versionNum: 130000 }).version?.status, 'pass');
  });
  test('a server clock 3 s ahead warns', () => {
    assert.equal(judge({ serverMs: 13_010 }).clock?.status, 'warn');
  });
  test('connections: exactly 90% of the open slots passes, one more warns', () => {
    const open = { maxConnections: 23, reservedConnections: 3 };
    assert.equal(judge({ ...open, connectionsInUse: 18 }).connections?.status, 'pass');
    assert.equal(judge({ ...open, connectionsInUse: 19 }).connections?.status, 'warn');
  });
  test("connections: a role's CONNECTION LIMIT tighter than the server's is named first, and warns above 90%", () => {
    const role = { roleConnectionLimit: 10, roleConnections: 9 };
    const passing = judge(role).connections;
    assert.equal(passing?.status, 'pass');
    assert.equal(
      passing?.observed,
      '9 of 10 for role gateway (its CONNECTION LIMIT); 5 of 97 in use (max_connections 100, 3 reserved)',
    );
    const full = judge({ ...role, roleConnections: 10 }).connections;
    assert.equal(full?.status, 'warn');
    assert.match(
      full?.hint ?? '',
      /role gateway's CONNECTION LIMIT.*ALTER ROLE gateway CONNECTION LIMIT <n>/,
    );
    assert.doesNotMatch(full?.hint ?? '', /max_connections/);
  });
  test("connections: a database's CONNECTION LIMIT is judged too, with ALTER DATABASE in the hint", () => {
    const full = judge({ databaseConnectionLimit: 4, databaseConnections: 4 }).connections;
    assert.equal(full?.status, 'warn');
    assert.match(full?.observed ?? '', /^4 of 4 in database bansho \(its CONNECTION LIMIT\); 5 of 97 in use/);
    assert.match(full?.hint ?? '', /ALTER DATABASE bansho CONNECTION LIMIT <n>/);
  });
  test('connections: a superuser is held back by no role or database limit, so only the server counts', () => {
    const detail = judge({ superuser: true, roleConnectionLimit: 1, roleConnections: 3 }).connections;
    assert.equal(detail?.status, 'pass');
    assert.equal(detail?.observed, '5 of 97 in use (max_connections 100, 3 reserved)');
  });
  test('connections: the server nearly full warns with its own hint even when a role limit has more room', () => {
    const detail = judge({ connectionsInUse: 95, roleConnectionLimit: 200, roleConnections: 95 }).connections;
    assert.equal(detail?.status, 'warn');
    assert.match(detail?.observed ?? '', /^95 of 97 in use/);
    assert.match(detail?.hint ?? '', /raise max_connections/);
  });
  test(`timeouts: a default below ${MIN_SESSION_TIMEOUT_MS}ms warns with the RESET for where it is set; off and ${MIN_SESSION_TIMEOUT_MS}ms pass`, () => {
    const timeouts = (entries: PostgresFacts['timeouts']) => judge({ timeouts: entries }).timeouts;
    assert.equal(timeouts(HEALTHY.timeouts)?.status, 'pass');
    assert.equal(
      timeouts(HEALTHY.timeouts)?.observed,
      'all off (statement_timeout, lock_timeout, idle_in_transaction_session_timeout, idle_session_timeout)',
    );
    assert.equal(timeouts([{ name: 'statement_timeout', ms: MIN_SESSION_TIMEOUT_MS }])?.status, 'pass');
    const byRole = timeouts([{ name: 'statement_timeout', ms: 1, setBy: 'role' }]);
    assert.equal(byRole?.status, 'warn');
    assert.equal(byRole?.observed, 'statement_timeout 1ms (ALTER ROLE)');
    const someSet = timeouts([
      { name: 'statement_timeout', ms: 30_000, setBy: 'database' },
      { name: 'lock_timeout', ms: 0 },
    ]);
    assert.equal(someSet?.observed, 'statement_timeout 30s (ALTER DATABASE); the others off');
    assert.match(byRole?.hint ?? '', /ALTER ROLE gateway RESET statement_timeout/);
    const byDatabase = timeouts([{ name: 'lock_timeout', ms: 5, setBy: 'database' }]);
    assert.match(byDatabase?.hint ?? '', /ALTER DATABASE bansho RESET lock_timeout/);
    const both = timeouts([
      { name: 'idle_in_transaction_session_timeout', ms: 2, setBy: 'role in database' },
    ]);
    assert.match(
      both?.hint ?? '',
      /ALTER ROLE gateway IN DATABASE bansho RESET idle_in_transaction_session_timeout/,
    );
    const server = timeouts([{ name: 'statement_timeout', ms: 10 }]);
    assert.match(server?.hint ?? '', /postgresql\.conf, ALTER SYSTEM/);
  });
  test('missing privileges are named per table, with one GRANT per table', () => {
    const privileges = judge({
      privileges: HEALTHY.privileges.map((entry) => ({ ...entry, granted: entry.privilege === 'SELECT' })),
    }).privileges;
    assert.equal(privileges?.code, 'permission_denied');
    assert.equal(
      privileges?.observed,
      'role gateway lacks INSERT on audit_events; INSERT, UPDATE on api_keys',
    );
    assert.equal(
      privileges?.hint,
      'GRANT INSERT ON audit_events TO gateway; GRANT INSERT, UPDATE ON api_keys TO gateway (as the owner)',
    );
  });
  test('CREATE on the schema is asked for only with create, and only while a table is missing', () => {
    const missing = { privileges: HEALTHY.privileges.filter((entry) => entry.table === 'api_keys') };
    assert.equal(judge(missing).privileges?.status, 'pass');
    assert.equal(judge(missing, true).privileges?.observed, 'role gateway lacks CREATE on schema public');
    assert.equal(judge({}, true).privileges?.status, 'pass');
  });
});

describe('Redis INFO judgement', () => {
  const info = (fields: Record<string, string>) =>
    parseInfo(
      `# Memory\r\n${Object.entries(fields)
        .map(([k, v]) => `${k}:${v}`)
        .join('\r\n')}\r\n`,
    );
  const noInfo = { value: '' };
  test('parseInfo skips section headers and keeps values with colons', () => {
    const fields = parseInfo(
      '# Server\r\nredis_version:7.0.15\r\nexecutable:/usr/bin/redis-server\r\n\r\nx:a:b\r\n',
    );
    assert.equal(fields.get('redis_version'), '7.0.15');
    assert.equal(fields.get('x'), 'a:b');
    assert.equal(fields.size, 3);
  });
  test('every policy but noeviction warns once maxmemory is set, volatile ones included', () => {
    for (const policy of ['allkeys-lru', 'volatile-lru', 'volatile-ttl', 'allkeys-random', 'allkeys-lfu']) {
      const detail = judgeEviction(info({ maxmemory: '1000', maxmemory_policy: policy }), noInfo);
      assert.equal(detail.status, 'warn', policy);
    }
    assert.equal(
      judgeEviction(info({ maxmemory: '1000', maxmemory_policy: 'noeviction' }), noInfo).status,
      'pass',
    );
  });
  test('memory: 90% of maxmemory passes, above it warns; replication buffers do not count', () => {
    const at = (used: number, extra = 0) =>
      judgeMemory(
        info({
          maxmemory: '1000',
          used_memory: String(used + extra),
          mem_not_counted_for_evict: String(extra),
        }),
        noInfo,
      ).status;
    assert.equal(at(900), 'pass');
    assert.equal(at(901), 'warn');
    assert.equal(at(800, 500), 'pass');
  });
});
