/**
 * Hostile passwords (issue 12, item 2): quotes, spaces, backslashes, common words, one character
 * and URL syntax, through every output mode and every usage error, against real Redis and
 * PostgreSQL servers. No form of a password is ever printed, and nothing but a password is ever
 * masked: the JSON parses with exactly the keys and values the README documents, and a target
 * is rendered from its parsed URL ("postgres://postgres:***@127.0.0.1:5432/postgres").
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { type CliOptions, type CliResult, runCli, runCliInProcess } from './support/cli.js';
import {
  freePort,
  type PostgresServer,
  type RedisServer,
  rawExchange,
  startPostgres,
  startRedis,
} from './support/servers.js';

const HOSTILE = [
  // quotes (encodeURIComponent leaves ' as it is), spaces, backslashes
  "it's",
  'say "hi"',
  'two words',
  'back\\slash',
  // common words, and the JSON document's own keys and values
  'postgres',
  'fail',
  'pass',
  'status',
  'redis',
  'true',
  'null',
  // one character
  '.',
  ':',
  'a',
  // URL syntax
  'p@ss',
  'p/ss',
  'p?ss',
  'p#ss',
  'p%ss',
  '%41',
] as const;

/**
 * Through the built bin, spawned as users run it: one of each kind. The others run the same CLI
 * in this process (runCliInProcess), which is the same code but for the bin and the bundle.
 */
const SPAWNED = new Set<string>(["it's", 'back\\slash', 'postgres', '.', 'p/ss', '%41']);
const cli = (password: string) => (SPAWNED.has(password) ? runCli : runCliInProcess);

const MASK = '***';
const MODES = [[], ['--json'], ['--quiet'], ['--verbose']] as const;
type Mode = (typeof MODES)[number];

/**
 * Every form in which a password could be printed: as typed, percent-encoded, decoded, and
 * escaped in a JSON string. Only the forms that cannot occur in bansho's own words are searched
 * for in the whole output; short or plain-word passwords are pinned by exact expectations instead.
 */
function searchableForms(password: string): string[] {
  const forms = new Set([password, encodeURIComponent(password), JSON.stringify(password).slice(1, -1)]);
  try {
    forms.add(decodeURIComponent(password));
  } catch {
    // Not valid percent-encoding: nothing decodes.
  }
  return [...forms].filter((form) => form.length >= 3 && !/^[a-z]+$/i.test(form));
}

function describeRun(args: readonly string[], result: CliResult): string {
  return `bansho ${JSON.stringify(args)}\nexit ${result.code}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
}

function assertNoPassword(password: string, result: CliResult, context: string): void {
  for (const form of searchableForms(password)) {
    assert.ok(
      !result.stdout.includes(form) && !result.stderr.includes(form),
      `the password form ${JSON.stringify(form)} was printed\n${context}`,
    );
  }
}

function count(text: string, part: string): number {
  return text.split(part).length - 1;
}

// ---------------------------------------------------------------------------
// What the README documents of the JSON document

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
/** The failure codes of the README's table, which scripts may match on. */
const FAILURE_CODES = [
  ...README.slice(README.indexOf('## Failure codes'), README.indexOf('## Configuration')).matchAll(
    /^\| `([a-z_]+)` \|/gm,
  ),
].map((match) => match[1]);
const STATUSES = ['pass', 'warn', 'fail'];
const CHECK_KEYS = [
  'status',
  'target',
  'latencyMs',
  'version',
  'host',
  'topology',
  'message',
  'pending',
  'drift',
  'details',
  'error',
];
const DETAIL_NAMES: Record<string, readonly string[]> = {
  redis: ['role', 'write', 'commands', 'eviction', 'memory', 'clock'],
  postgres: ['version', 'primary', 'privileges', 'connections', 'timeouts', 'clock', 'encoding'],
};

function assertKeys(value: unknown, allowed: readonly string[], where: string): Record<string, unknown> {
  assert.ok(
    value !== null && typeof value === 'object' && !Array.isArray(value),
    `${where} is not an object`,
  );
  for (const key of Object.keys(value))
    assert.ok(allowed.includes(key), `${where} has undocumented key ${key}`);
  return value as Record<string, unknown>;
}

function assertError(value: unknown, where: string): { code: string; message: string; hint: string } {
  const error = assertKeys(value, ['code', 'message', 'hint', 'detail'], where);
  assert.ok(
    FAILURE_CODES.includes(error.code as string),
    `${where}.code ${String(error.code)} is undocumented`,
  );
  assert.equal(typeof error.message, 'string');
  assert.equal(typeof error.hint, 'string');
  return error as { code: string; message: string; hint: string };
}

type Report = {
  status: string;
  checks: Record<
    string,
    { status: string; target: string; host?: string; error?: { code: string; message: string } }
  >;
  changes?: { action: string }[];
};

/** Parses stdout as one JSON report with exactly the documented keys, checks named `names`. */
function parseReport(result: CliResult, names: readonly string[], context: string): Report {
  const lines = result.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 1, `not one line of JSON\n${context}`);
  const doc = assertKeys(
    JSON.parse(lines[0] as string),
    ['status', 'checks', 'changes', 'drift', 'dryRun'],
    'the document',
  );
  assert.ok(STATUSES.includes(doc.status as string), `status ${String(doc.status)}\n${context}`);
  const checks = assertKeys(doc.checks, names, 'checks');
  assert.deepEqual(Object.keys(checks), names, context);
  for (const [name, value] of Object.entries(checks)) {
    const check = assertKeys(value, CHECK_KEYS, `checks.${name}`);
    assert.ok(STATUSES.includes(check.status as string), `checks.${name}.status ${String(check.status)}`);
    assert.equal(typeof check.target, 'string');
    assert.equal(typeof check.latencyMs, 'number');
    if (check.error !== undefined) assertError(check.error, `checks.${name}.error`);
    for (const detail of (check.details as unknown[] | undefined) ?? []) {
      const item = assertKeys(
        detail,
        ['name', 'status', 'observed', 'hint', 'code'],
        `checks.${name}.details[]`,
      );
      assert.ok(
        DETAIL_NAMES[name]?.includes(item.name as string),
        `sub-check ${String(item.name)} of ${name}`,
      );
      assert.ok(STATUSES.includes(item.status as string), `sub-check status ${String(item.status)}`);
      if (item.code !== undefined) assert.ok(FAILURE_CODES.includes(item.code as string));
    }
  }
  for (const change of (doc.changes as unknown[] | undefined) ?? []) {
    const item = assertKeys(change, ['object', 'action', 'sql'], 'changes[]');
    assert.ok(['create', 'add', 'record'].includes(item.action as string), `action ${String(item.action)}`);
  }
  return doc as unknown as Report;
}

// ---------------------------------------------------------------------------
// Usage errors: nothing typed that may hold a credential is echoed

interface UsageCase {
  name: string;
  args: (typed: string, mode: Mode) => string[];
  env?: (typed: string) => Record<string, string>;
  /** The one line, exactly, or its shape. */
  message: string | RegExp;
  modes: readonly Mode[];
}

const SUGGEST_REDIS = "unknown option '--redis-urll' (Did you mean --redis-url?)";
const USAGE_CASES: UsageCase[] = [
  {
    name: 'an unknown option with =value',
    args: (typed, mode) => ['ping-redis', `--redis-urll=redis://:${typed}@127.0.0.1:1`, ...mode],
    message: SUGGEST_REDIS,
    modes: MODES,
  },
  {
    name: 'an unknown option with =value, percent-encoded',
    args: (typed, mode) => [
      'ping-redis',
      `--redis-urll=redis://:${encodeURIComponent(typed)}@127.0.0.1:1`,
      ...mode,
    ],
    message: SUGGEST_REDIS,
    modes: MODES,
  },
  {
    name: 'an unknown option with =value (PostgreSQL)',
    args: (typed, mode) => ['ping-postgres', `--postgres-dsnn=postgres://u:${typed}@127.0.0.1:1/db`, ...mode],
    message: "unknown option '--postgres-dsnn' (Did you mean --postgres-dsn?)",
    modes: MODES,
  },
  {
    name: 'a URL where a duration belongs (arguments shifted)',
    args: (typed, mode) => ['ping-redis', '--timeout', `redis://:${typed}@127.0.0.1:1`, ...mode],
    message: '--timeout must be a duration such as 500ms, 2s or 1m',
    modes: MODES,
  },
  {
    name: 'a malformed Redis URL',
    args: (typed, mode) => ['ping-redis', '--redis-url', `redis://:${typed}@[bad`, ...mode],
    // bansho's own format hint, whole: "password" is not a password.
    message: /^--redis-url is not a valid URL: expected redis:\/\/\[\[user\]:password@\]host\[:port\]/,
    modes: MODES,
  },
  {
    name: 'a malformed PostgreSQL DSN',
    args: (typed, mode) => ['ping-postgres', '--postgres-dsn', `postgres://u:${typed}@[bad/db`, ...mode],
    // A "/", "?" or "#" in the password puts its "@" after the host: that is what is said then.
    message:
      /^--postgres-dsn (is not a valid URL: expected postgres:\/\/\[user\[:password\]@\]\[host\]\[:port\]|has an "@" after its host: in a password, percent-encode)/,
    modes: MODES,
  },
  {
    name: 'a malformed REDIS_URL',
    args: (_typed, mode) => ['smoke', ...mode],
    env: (typed) => ({ REDIS_URL: `redis://:${typed}@[bad` }),
    message: /^REDIS_URL is not a valid URL: expected redis:\/\//,
    modes: [['--json'], ['--quiet']],
  },
  {
    name: "a password's '/' unencoded after a numeric prefix (the rest would be a path)",
    args: (typed, mode) => [
      'ping-postgres',
      '--postgres-dsn',
      `postgres://u:12/${typed}@127.0.0.1/db`,
      ...mode,
    ],
    message: /^--postgres-dsn has an "@" after its host: in a password, percent-encode/,
    modes: [['--json'], ['--quiet']],
  },
  {
    name: 'a URL where a command belongs',
    args: (typed, mode) => [`redis://:${typed}@127.0.0.1:1`, 'ping-redis', ...mode],
    message:
      /^the first argument is not a command \(not shown: it may hold a password\); commands: ping-redis, /,
    modes: [['--json'], ['--quiet']],
  },
  {
    name: 'an unknown command followed by a URL',
    args: (typed, mode) => ['ping-rediss', '--redis-url', `redis://:${typed}@127.0.0.1:1`, ...mode],
    message: "unknown command 'ping-rediss' (Did you mean ping-redis?)",
    modes: [['--json'], ['--quiet']],
  },
  {
    name: 'an excess argument (a URL without its flag)',
    args: (typed, mode) => ['ping-redis', `redis://:${typed}@127.0.0.1:1`, ...mode],
    message: "too many arguments for 'ping-redis'. Expected 0 arguments but got 1.",
    modes: [['--json'], ['--quiet']],
  },
  {
    name: 'an option missing its argument, after a DSN',
    args: (typed, mode) => [
      'ping-postgres',
      ...mode,
      '--postgres-dsn',
      `postgres://u:${typed}@127.0.0.1/db`,
      '--timeout',
    ],
    message: "option '--timeout <duration>' argument missing",
    modes: [['--json'], ['--quiet']],
  },
];

/** Runs `jobs` with at most `limit` at a time: the machine is shared. */
async function inTurn<T>(jobs: Array<() => Promise<T>>, limit = 4): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < jobs.length) {
        const index = next++;
        results[index] = await (jobs[index] as () => Promise<T>)();
      }
    }),
  );
  return results;
}

describe('usage errors name the flag, never the value typed', { concurrency: 2 }, () => {
  for (const password of HOSTILE) {
    test(`password ${JSON.stringify(password)}: every usage error, in every mode`, async () => {
      const runs = USAGE_CASES.flatMap((usage) =>
        usage.modes.map((mode) => async () => {
          const args = usage.args(password, mode);
          const result = await cli(password)(args, usage.env ? { env: usage.env(password) } : {});
          return { usage, mode, args, result };
        }),
      );
      for (const { usage, mode, args, result } of await inTurn(runs)) {
        const context = `${usage.name}\n${describeRun(args, result)}`;
        assert.equal(result.code, 2, context);
        assertNoPassword(password, result, context);
        // One line on stderr in every mode, --quiet and --json included.
        const stderr = result.stderr.split('\n');
        assert.equal(stderr.length, 2, context);
        const line = (stderr[0] ?? '').replace(/^bansho: /, '');
        if (typeof usage.message === 'string') assert.equal(line, usage.message, context);
        else assert.match(line, usage.message, context);
        if (mode[0] !== '--json') {
          assert.equal(result.stdout, '', context);
          continue;
        }
        const lines = result.stdout.trimEnd().split('\n');
        assert.equal(lines.length, 1, context);
        const doc = assertKeys(JSON.parse(lines[0] as string), ['status', 'error'], 'the document');
        assert.equal(doc.status, 'fail', context);
        const error = assertError(doc.error, 'error');
        assert.equal(error.code, 'config', context);
        assert.equal(error.message, line, context);
      }
    });
  }
});

// ---------------------------------------------------------------------------
// Real servers: targets rendered from the parsed URL, drivers' words scrubbed

let redis: RedisServer;
/** Redis with HELLO renamed away: it answers HELLO with an error that quotes its arguments. */
let helloless: RedisServer;
let pg: PostgresServer;
let closedPort: number;
/** The right password of the Redis user `victim` and the PostgreSQL role `app_user`. */
const RIGHT = 'Right-0ne';

/** A RESP command, so that a password with spaces or quotes reaches Redis as it is. */
function resp(...args: string[]): string {
  return `*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`;
}

/** An ACL user `u<index>` for each hostile password, and `victim` with the right one. */
async function addUsers(server: RedisServer): Promise<void> {
  const users = HOSTILE.map((password, index) =>
    resp('ACL', 'SETUSER', `u${index}`, 'on', `>${password}`, '~*', '&*', '+@all'),
  );
  users.push(resp('ACL', 'SETUSER', 'victim', 'on', `>${RIGHT}`, '~*', '&*', '+@all'));
  const reply = await rawExchange(server.port, users.join(''), users.length);
  assert.equal(reply, '+OK\r\n'.repeat(users.length));
}

before(async () => {
  [redis, helloless, pg, closedPort] = await Promise.all([
    startRedis(),
    startRedis({ args: ['--rename-command', 'HELLO', ''] }),
    startPostgres({ passwordUser: { name: 'app_user', password: RIGHT } }),
    freePort(),
  ]);
  await Promise.all([addUsers(redis), addUsers(helloless)]);
});
after(async () => {
  await Promise.all([redis?.stop(), helloless?.stop(), pg?.stop()]);
});

const enc = encodeURIComponent;

/** Runs `args` in every mode and checks what holds in each: exit code, no password, one target per check. */
async function inEveryMode(
  password: string,
  args: readonly string[],
  expect: { exit: number; checks: readonly string[]; targets: readonly string[] },
  options: CliOptions = {},
): Promise<Map<Mode, CliResult>> {
  const results = await inTurn(MODES.map((mode) => () => cli(password)([...args, ...mode], options)));
  const byMode = new Map<Mode, CliResult>();
  results.forEach((result, index) => {
    const mode = MODES[index] as Mode;
    byMode.set(mode, result);
    const context = `mode ${JSON.stringify(mode)}\n${describeRun([...args, ...mode], result)}`;
    assert.equal(result.code, expect.exit, context);
    assertNoPassword(password, result, context);
    assert.equal(result.stderr, '', context);
    if (mode[0] === '--quiet') {
      assert.equal(result.stdout, '', context);
      return;
    }
    // The mask shows once per target, and nowhere else: it replaced nothing but a password.
    assert.equal(count(result.stdout, MASK), expect.targets.length, context);
    if (mode[0] === '--json') {
      const doc = parseReport(result, expect.checks, context);
      assert.deepEqual(
        Object.values(doc.checks).map((check) => check.target),
        expect.targets,
        context,
      );
    } else {
      const lines = result.stdout.split('\n').filter((line) => /^(PASS|WARN|FAIL) /.test(line));
      assert.deepEqual(
        lines.map((line) => line.split(/ {2,}/).slice(1, 3)),
        expect.checks.map((name, index) => [name, expect.targets[index]]),
        context,
      );
    }
  });
  return byMode;
}

function jsonOf(results: Map<Mode, CliResult>): Report {
  return JSON.parse((results.get(MODES[1]) as CliResult).stdout) as Report;
}

describe('Redis: hostile passwords', { concurrency: 2 }, () => {
  HOSTILE.forEach((password, index) => {
    test(`password ${JSON.stringify(password)}: a passing ping-redis shows redis://u${index}:***@…`, async () => {
      const target = `redis://u${index}:${MASK}@127.0.0.1:${redis.port}`;
      const results = await inEveryMode(
        password,
        ['ping-redis', '--redis-url', `redis://u${index}:${enc(password)}@127.0.0.1:${redis.port}`],
        { exit: 0, checks: ['redis'], targets: [target] },
      );
      assert.equal(jsonOf(results).status, 'pass');
    });

    test(`password ${JSON.stringify(password)}: a wrong one fails with auth_failed, not printed`, async () => {
      const results = await inEveryMode(
        password,
        ['ping-redis', '--redis-url', `redis://victim:${enc(password)}@127.0.0.1:${redis.port}`],
        { exit: 1, checks: ['redis'], targets: [`redis://victim:${MASK}@127.0.0.1:${redis.port}`] },
      );
      const error = jsonOf(results).checks.redis?.error;
      assert.equal(error?.code, 'auth_failed');
      assert.equal(
        error?.message,
        'authentication failed: WRONGPASS invalid username-password pair or user is disabled.',
      );
    });

    test(`password ${JSON.stringify(password)}: a server quoting it back (HELLO refused) has it masked`, async () => {
      const args = [
        'ping-redis',
        '--redis-url',
        `redis://u${index}:${enc(password)}@127.0.0.1:${helloless.port}`,
        '--json',
        '--verbose',
      ];
      const result = await cli(password)(args);
      const context = describeRun(args, result);
      assertNoPassword(password, result, context);
      const check = parseReport(result, ['redis'], context).checks.redis;
      // Redis echoes the start of the refused command: HELLO 3 AUTH <user> <password>.
      const quoted = [
        check?.error?.message ?? '',
        ...((check?.error as { detail?: string[] })?.detail ?? []),
      ];
      for (const text of quoted.filter((line) => line.includes("'AUTH'"))) {
        assert.ok(text.includes(`'AUTH' 'u${index}' '${MASK}'`), context);
      }
    });
  });

  test('the password of the default user shows as :***@ whatever it is', async () => {
    const server = await startRedis({ password: 'redis' });
    try {
      const url = `redis://:redis@127.0.0.1:${server.port}`;
      await inEveryMode('redis', ['ping-redis', '--redis-url', url], {
        exit: 0,
        checks: ['redis'],
        targets: [`redis://:${MASK}@127.0.0.1:${server.port}`],
      });
    } finally {
      await server.stop();
    }
  });
});

describe('PostgreSQL: hostile passwords', { concurrency: 2 }, () => {
  for (const password of HOSTILE) {
    test(`password ${JSON.stringify(password)}: ping-postgres shows postgres://postgres:***@…/postgres`, async () => {
      // The postgres role is trusted: the server accepts any password, so the check passes.
      const target = `postgres://postgres:${MASK}@127.0.0.1:${pg.port}/postgres`;
      const results = await inEveryMode(
        password,
        [
          'ping-postgres',
          '--postgres-dsn',
          `postgres://postgres:${enc(password)}@127.0.0.1:${pg.port}/postgres`,
        ],
        { exit: 0, checks: ['postgres'], targets: [target] },
      );
      assert.equal(jsonOf(results).status, 'pass');
    });

    test(`password ${JSON.stringify(password)}: a wrong one fails with auth_failed, not printed`, async () => {
      const results = await inEveryMode(
        password,
        [
          'ping-postgres',
          '--postgres-dsn',
          `postgres://app_user:${enc(password)}@127.0.0.1:${pg.port}/postgres`,
        ],
        {
          exit: 1,
          checks: ['postgres'],
          targets: [`postgres://app_user:${MASK}@127.0.0.1:${pg.port}/postgres`],
        },
      );
      const error = jsonOf(results).checks.postgres?.error;
      assert.equal(error?.code, 'auth_failed');
      assert.equal(error?.message, 'FATAL 28P01: password authentication failed for user "app_user"');
    });

    test(`password ${JSON.stringify(password)}: smoke, several hosts and ensure-schema --dry-run keep the documented JSON`, async () => {
      const dsn = `postgres://postgres:${enc(password)}@127.0.0.1:${closedPort},127.0.0.1:${pg.port}/postgres`;
      const hosts = `postgres://postgres:${MASK}@127.0.0.1:${closedPort},127.0.0.1:${pg.port}/postgres`;
      const redisUrl = `redis://u${HOSTILE.indexOf(password)}:${enc(password)}@127.0.0.1:${redis.port}`;
      const runs = [
        {
          args: ['smoke', '--redis-url', redisUrl, '--postgres-dsn', dsn, '--json'],
          checks: ['redis', 'postgres', 'schema'],
        },
        { args: ['ensure-schema', '--postgres-dsn', dsn, '--dry-run', '--json'], checks: ['schema'] },
      ];
      for (const { args, checks } of runs) {
        const result = await cli(password)(args);
        const context = describeRun(args, result);
        assert.equal(result.code, 0, context);
        assertNoPassword(password, result, context);
        const doc = parseReport(result, checks, context);
        const expected = checks.map((name) =>
          name === 'redis' ? `redis://u${HOSTILE.indexOf(password)}:${MASK}@127.0.0.1:${redis.port}` : hosts,
        );
        assert.deepEqual(
          Object.values(doc.checks).map((check) => check.target),
          expected,
          context,
        );
        assert.equal(count(result.stdout, MASK), checks.length, context);
        assert.equal(doc.checks.schema?.host, `127.0.0.1:${pg.port}`, context);
      }
    });
  }
});
