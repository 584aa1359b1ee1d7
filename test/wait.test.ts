/**
 * `--wait <duration>`: retries with capped exponential backoff and jitter until the check
 * passes or the time is up; one line per failed attempt on stderr (not a TTY here); the
 * final report exactly as without --wait; `--interval` sets the first pause.
 *
 * Needs `npm run build` first: the CLI under test is bin/bansho → dist/.
 */
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type CliResult, LEAK_MESSAGE, parseJson, runCli } from './support/cli.js';
import { type Daemon, spawnDaemon } from './support/process.js';
import {
  freePort,
  type PostgresServer,
  type RedisServer,
  startPostgres,
  startRedis,
  waitForPort,
} from './support/servers.js';

function describeRun(result: CliResult): string {
  return `exit ${result.code} (signal ${result.signal}) after ${Math.round(result.elapsedMs)} ms\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
}

/** Parses "500ms", "1.2s", "2m" as printed by bansho. */
function parsePrinted(text: string): number {
  const match = /^([\d.]+)(ms|s|m)$/.exec(text);
  assert.ok(match, `not a printed duration: ${text}`);
  const unit = { ms: 1, s: 1000, m: 60_000 }[match[2] as 'ms' | 's' | 'm'];
  return Number(match[1]) * unit;
}

interface Attempt {
  number: number;
  text: string;
  delayMs: number;
  leftMs: number;
}

/** The "attempt N: …; retrying in X (Y left)" lines on stderr, parsed; every stderr line must be one. */
function attempts(result: CliResult): Attempt[] {
  const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
  return lines.map((line) => {
    const match = /^attempt (\d+): (.+); retrying in (\S+) \((\S+) left\)$/.exec(line);
    assert.ok(match, `unexpected stderr line ${JSON.stringify(line)}\n${describeRun(result)}`);
    return {
      number: Number(match[1]),
      text: match[2] as string,
      delayMs: parsePrinted(match[3] as string),
      leftMs: parsePrinted(match[4] as string),
    };
  });
}

function assertNumberedFromOne(list: Attempt[], result: CliResult): void {
  list.forEach((attempt, index) => {
    assert.equal(attempt.number, index + 1, `attempts out of order\n${describeRun(result)}`);
  });
}

/** A redis-server on a port chosen by the test (the harness's startRedis picks its own port). */
async function startRedisOn(port: number): Promise<Daemon> {
  const dir = await mkdtemp(join(tmpdir(), 'bansho-wait-redis-'));
  const daemon = spawnDaemon(
    process.env.BANSHO_REDIS_SERVER ?? 'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
    { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, cwd: dir, killSignal: 'SIGKILL', dir },
  );
  await daemon.waitForOutput(/Ready to accept connections/, 15_000);
  await waitForPort(port);
  return daemon;
}

const stops: Array<() => Promise<void>> = [];
let redis: RedisServer;
let closedPort: number;

before(async () => {
  [redis, closedPort] = await Promise.all([startRedis(), freePort()]);
});

after(async () => {
  await Promise.all([redis.stop(), ...stops.map((stop) => stop())]);
});

test('ping-redis --wait passes once a Redis server comes up on the port ~1 s later, after logging each failed attempt', async () => {
  const port = await freePort();
  const cli = runCli(['ping-redis', '--wait', '10s', '--interval', '100ms'], {
    env: { REDIS_URL: `redis://127.0.0.1:${port}` },
  });
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const server = await startRedisOn(port);
  stops.push(() => server.stop());
  const result = await cli;
  const context = describeRun(result);
  assert.equal(result.code, 0, context);
  assert.match(result.stdout, /^PASS {2}redis {2}redis:\/\/127\.0\.0\.1:\d+ /m, context);
  const list = attempts(result);
  assert.ok(list.length >= 1, `no attempt lines\n${context}`);
  assertNumberedFromOne(list, result);
  for (const attempt of list) assert.match(attempt.text, /^redis fail \(connection_refused\)$/, context);
  // It retried soon after the server was up: the pause never exceeds the 5 s cap, usually far less.
  assert.ok(result.elapsedMs < 8000, context);
  assert.ok(!result.stderr.includes(LEAK_MESSAGE), context);
});

test('ping-postgres --wait passes once a PostgreSQL server starts on the port, through connection_refused and not_ready', async () => {
  const port = await freePort();
  const cli = runCli(['ping-postgres', '--wait', '20s', '--interval', '100ms', '--timeout', '2s'], {
    env: { POSTGRES_DSN: `postgres://postgres@127.0.0.1:${port}/postgres` },
  });
  await new Promise((resolve) => setTimeout(resolve, 500));
  // `settings` are applied last, so they may move the server to the port the CLI is polling.
  let pg: PostgresServer | undefined;
  try {
    pg = await startPostgres({ settings: { port: String(port) } });
  } finally {
    const started = pg;
    if (started) stops.push(() => started.stop());
  }
  const result = await cli;
  const context = describeRun(result);
  assert.equal(result.code, 0, context);
  assert.match(result.stdout, /^PASS {2}postgres /m, context);
  const list = attempts(result);
  assert.ok(list.length >= 1, `no attempt lines\n${context}`);
  assertNumberedFromOne(list, result);
  for (const attempt of list) {
    assert.match(attempt.text, /^postgres fail \((connection_refused|not_ready)\)$/, context);
  }
  assert.ok(!result.stderr.includes(LEAK_MESSAGE), context);
});

test('ping-redis --wait 1500ms against a closed port exits 1 in bounded time after several attempt lines', async () => {
  // The first attempt also loads the driver: on a busy machine that alone may take half a second.
  const result = await runCli(['ping-redis', '--wait', '1500ms', '--interval', '100ms'], {
    env: { REDIS_URL: `redis://127.0.0.1:${closedPort}` },
  });
  const context = describeRun(result);
  assert.equal(result.code, 1, context);
  assert.ok(result.elapsedMs < 4500, `overran --wait\n${context}`);
  const list = attempts(result);
  assert.ok(list.length >= 3, `expected several attempts\n${context}`);
  assertNumberedFromOne(list, result);
  // The final report is the one ping-redis prints without --wait.
  assert.match(
    result.stdout,
    /^FAIL {2}redis {2}redis:\/\/127\.0\.0\.1:\d+ .*connection_refused: /m,
    context,
  );
  assert.match(result.stdout, /hint: /, context);
  assert.ok(!result.stderr.includes(LEAK_MESSAGE), context);
});

test('--wait keeps trying until its deadline: a first pause longer than the time left is cut short for one last attempt', async (t) => {
  // A peer that hangs up at once: every attempt fails fast, and the peer sees when each starts.
  const starts: number[] = [];
  const sockets = new Set<Socket>();
  const peer = createServer((socket) => {
    starts.push(performance.now());
    sockets.add(socket);
    socket.on('error', () => {});
    socket.destroy();
  });
  await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', () => resolve()));
  const address = peer.address();
  assert.ok(address && typeof address === 'object');
  try {
    // --interval 5s: the first pause (2.5-5 s) is longer than the whole --wait 2s.
    const result = await runCli(['ping-redis', '--wait', '2s', '--interval', '5s'], {
      env: { REDIS_URL: `redis://127.0.0.1:${address.port}` },
    });
    const timeline = `attempts started at ${starts.map((at) => Math.round(at - (starts[0] ?? 0))).join(', ')} ms`;
    t.diagnostic(timeline);
    const context = `${describeRun(result)}\n${timeline}`;
    assert.equal(result.code, 1, context);
    assert.ok(starts.length >= 2, `gave up after one attempt with time left\n${context}`);
    const lastStart = (starts.at(-1) ?? 0) - (starts[0] ?? 0);
    // The wait starts just before the first connection; leaving ~100 ms for the last attempt puts it near 1.9 s.
    assert.ok(
      lastStart >= 1500,
      `gave up with time left: last attempt at ${Math.round(lastStart)} ms\n${context}`,
    );
    assert.ok(lastStart <= 2100, `attempted after the deadline\n${context}`);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => peer.close(() => resolve()));
  }
});

test('ping-redis --wait --json prints exactly one JSON document on stdout, the attempts on stderr', async () => {
  const result = await runCli(['ping-redis', '--wait', '1s', '--interval', '100ms', '--json'], {
    env: { REDIS_URL: `redis://127.0.0.1:${closedPort}` },
  });
  const context = describeRun(result);
  assert.equal(result.code, 1, context);
  const report = parseJson(result);
  assert.equal(report.status, 'fail', context);
  assert.equal(report.checks.redis?.error?.code, 'connection_refused', context);
  assert.ok(attempts(result).length >= 1, context);
});

test('smoke --wait --json on a healthy Redis and a closed PostgreSQL port: one JSON document, each attempt names the failing checks', async () => {
  const result = await runCli(['smoke', '--wait', '1500ms', '--interval', '100ms', '--json'], {
    env: {
      REDIS_URL: redis.url,
      POSTGRES_DSN: `postgres://postgres@127.0.0.1:${closedPort}/postgres`,
    },
  });
  const context = describeRun(result);
  assert.equal(result.code, 1, context);
  const report = parseJson(result);
  assert.equal(report.checks.redis?.status, 'pass', context);
  assert.equal(report.checks.postgres?.error?.code, 'connection_refused', context);
  const list = attempts(result);
  assert.ok(list.length >= 1, context);
  for (const attempt of list) {
    assert.match(attempt.text, /redis pass/, context);
    assert.match(attempt.text, /postgres fail \(connection_refused\)/, context);
  }
});

test('--wait backs off exponentially from --interval, with jitter, never beyond the time left', async () => {
  // Each pause n lies in [b/2, b] with b = interval × 2^(n-1) capped at 5 s; only the last
  // pause may be shorter, cut to fit the time left.
  const runs = [
    { interval: '100ms', intervalMs: 100, wait: '2s' },
    { interval: '400ms', intervalMs: 400, wait: '4s' },
  ];
  const results = await Promise.all(
    runs.map(({ interval, wait }) =>
      runCli(['ping-redis', '--wait', wait, '--interval', interval], {
        env: { REDIS_URL: `redis://127.0.0.1:${closedPort}` },
      }),
    ),
  );
  results.forEach((result, index) => {
    const { interval, intervalMs } = runs[index] as (typeof runs)[number];
    const context = `--interval ${interval}: ${describeRun(result)}`;
    assert.equal(result.code, 1, context);
    const list = attempts(result);
    assert.ok(list.length >= 3, context);
    assertNumberedFromOne(list, result);
    // Printed durations are rounded (to 1 ms, or 0.1 s above a second).
    const slack = (ms: number) => (ms >= 1000 ? 50 : 1);
    list.forEach((attempt, position) => {
      const base = Math.min(5000, intervalMs * 2 ** (attempt.number - 1));
      const where = `attempt ${attempt.number}: pause ${attempt.delayMs} ms, ${attempt.leftMs} ms left`;
      assert.ok(
        attempt.delayMs <= attempt.leftMs + slack(attempt.leftMs),
        `pause beyond the time left, ${where}\n${context}`,
      );
      assert.ok(
        attempt.delayMs <= base + slack(attempt.delayMs),
        `pause above ${base}, ${where}\n${context}`,
      );
      if (attempt.delayMs < base / 2 - slack(attempt.delayMs)) {
        assert.equal(
          position,
          list.length - 1,
          `pause below ${base / 2} before the last, ${where}\n${context}`,
        );
      }
    });
    // --interval sets the first pause.
    const first = list[0] as Attempt;
    assert.ok(first.delayMs >= intervalMs / 2 && first.delayMs <= intervalMs, context);
  });
});

test('--wait jitter: two runs started together do not pause in lockstep', async () => {
  const run = () =>
    runCli(['ping-redis', '--wait', '1500ms', '--interval', '200ms'], {
      env: { REDIS_URL: `redis://127.0.0.1:${closedPort}` },
    });
  const [one, two] = await Promise.all([run(), run()]);
  const pauses = (result: CliResult) => attempts(result).map((attempt) => attempt.delayMs);
  // Identical sequences of three or more random pauses would mean there is no jitter.
  assert.notDeepEqual(pauses(one), pauses(two), `${describeRun(one)}\n${describeRun(two)}`);
});

test('ping-redis --wait with a silent peer cuts each attempt to the time left: --wait 1s, --timeout 600ms ends within bounds', async () => {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.resume();
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
  const address = silent.address();
  assert.ok(address && typeof address === 'object');
  try {
    const result = await runCli(['ping-redis', '--wait', '1s', '--timeout', '600ms', '--json'], {
      env: { REDIS_URL: `redis://127.0.0.1:${address.port}` },
    });
    const context = describeRun(result);
    assert.equal(result.code, 1, context);
    assert.equal(parseJson(result).checks.redis?.error?.code, 'timeout', context);
    assert.ok(result.elapsedMs >= 900, context);
    assert.ok(result.elapsedMs < 3500, `the wait overran its bound\n${context}`);
    assert.ok(attempts(result).length >= 1, context);
    assert.ok(!result.stderr.includes(LEAK_MESSAGE), context);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});

test('--wait --quiet prints nothing at all, attempts included; the exit code tells', async () => {
  const result = await runCli(['ping-redis', '--wait', '500ms', '--interval', '100ms', '--quiet'], {
    env: { REDIS_URL: `redis://127.0.0.1:${closedPort}` },
  });
  assert.equal(result.code, 1, describeRun(result));
  assert.equal(result.stdout, '', describeRun(result));
  assert.equal(result.stderr, '', describeRun(result));
});

test('--wait against a healthy server passes on the first attempt, with no attempt lines', async () => {
  const result = await runCli(['ping-redis', '--wait', '10s'], { env: { REDIS_URL: redis.url } });
  const context = describeRun(result);
  assert.equal(result.code, 0, context);
  assert.equal(result.stderr, '', context);
  assert.match(result.stdout, /^PASS {2}redis /m, context);
  assert.ok(result.elapsedMs < 4000, context);
});
