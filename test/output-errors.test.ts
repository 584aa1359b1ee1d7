/**
 * A failed write on stdout or stderr (here: /dev/full, which fails every write with ENOSPC)
 * never crashes bansho: no stack trace, the exit code is still the verdict, and one line on
 * stderr says that the output was lost, when stderr can still be written.
 *
 * Needs `npm run build` first: the CLI under test is bin/bansho → dist/.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { before, describe, test } from 'node:test';
import { BIN, emptyDir } from './support/cli.js';
import {
  freePort,
  type PostgresEndpoint,
  type RedisEndpoint,
  usePostgres,
  useRedis,
} from './support/servers.js';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What reached whichever of stdout / stderr was a pipe. */
  stdout: string;
  stderr: string;
}

/** Spawns the CLI with stdout and/or stderr on /dev/full (the others piped), as `bansho … >/dev/full` does. */
function runOnFullDevice(
  args: readonly string[],
  full: { stdout?: boolean; stderr?: boolean },
): Promise<Run> {
  const device = openSync('/dev/full', 'w');
  const child = spawn(BIN, [...args], {
    cwd: emptyDir(),
    env: { PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`, HOME: '/root' },
    stdio: ['ignore', full.stdout ? device : 'pipe', full.stderr ? device : 'pipe'],
  });
  closeSync(device);
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function describeRun(run: Run): string {
  return `exit ${run.code} (signal ${run.signal})\n--- stdout ---\n${run.stdout}\n--- stderr ---\n${run.stderr}`;
}

/** The one line bansho writes when stdout failed; nothing that looks like a crash. */
function assertOneLineAboutStdout(run: Run): void {
  const lines = run.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, describeRun(run));
  assert.match(lines[0] ?? '', /^bansho: could not write to stdout \(ENOSPC\)/, describeRun(run));
  assert.doesNotMatch(run.stderr, /\n\s+at |Error:|node:internal|Node\.js v/, describeRun(run));
}

let redis: RedisEndpoint;
let pg: PostgresEndpoint;
let closedPort: number;
before(async () => {
  [redis, pg, closedPort] = await Promise.all([useRedis(), usePostgres(), freePort()]);
});

const smoke = (...flags: string[]) => [
  'smoke',
  '--redis-url',
  redis.url,
  '--postgres-dsn',
  pg.dsn(),
  ...flags,
];

describe('stdout on /dev/full', { concurrency: true }, () => {
  test('smoke against healthy servers exits 0 with one line on stderr, no stack trace', async () => {
    const run = await runOnFullDevice(smoke(), { stdout: true });
    assert.equal(run.code, 0, describeRun(run));
    assertOneLineAboutStdout(run);
  });

  test('smoke --json against healthy servers exits 0 with one line on stderr', async () => {
    const run = await runOnFullDevice(smoke('--json'), { stdout: true });
    assert.equal(run.code, 0, describeRun(run));
    assertOneLineAboutStdout(run);
  });

  test('a failing check keeps its exit 1: the verdict, not the lost output', async () => {
    const run = await runOnFullDevice(
      ['smoke', '--redis-url', `redis://127.0.0.1:${closedPort}`, '--postgres-dsn', pg.dsn()],
      { stdout: true },
    );
    assert.equal(run.code, 1, describeRun(run));
    assertOneLineAboutStdout(run);
  });

  test('a usage error with --json keeps its exit 2, and its line on stderr', async () => {
    const run = await runOnFullDevice(['smoke', '--json', '--timeout', '5'], { stdout: true });
    assert.equal(run.code, 2, describeRun(run));
    assert.match(run.stderr, /^bansho: --timeout/m, describeRun(run));
    assert.match(run.stderr, /^bansho: could not write to stdout \(ENOSPC\)/m, describeRun(run));
    assert.doesNotMatch(run.stderr, /\n\s+at |node:internal/, describeRun(run));
  });

  test('--help exits 0', async () => {
    const run = await runOnFullDevice(['--help'], { stdout: true });
    assert.equal(run.code, 0, describeRun(run));
    assertOneLineAboutStdout(run);
  });
});

describe('stderr on /dev/full', { concurrency: true }, () => {
  test('a usage error exits 2 without a crash; stdout still gets the JSON document', async () => {
    const run = await runOnFullDevice(['smoke', '--json', '--timeout', '5'], { stderr: true });
    assert.equal(run.code, 2, describeRun(run));
    assert.equal(JSON.parse(run.stdout).error.code, 'config', describeRun(run));
  });

  test('smoke --wait writing its progress to stderr still exits 1 at the end of the wait, with the report on stdout', async () => {
    const run = await runOnFullDevice(
      [
        'smoke',
        '--json',
        '--wait',
        '600ms',
        '--redis-url',
        `redis://127.0.0.1:${closedPort}`,
        '--postgres-dsn',
        pg.dsn(),
      ],
      { stderr: true },
    );
    assert.equal(run.code, 1, describeRun(run));
    assert.equal(JSON.parse(run.stdout).checks.redis.error.code, 'connection_refused', describeRun(run));
  });

  test('smoke against healthy servers exits 0 with its report on stdout', async () => {
    const run = await runOnFullDevice(smoke(), { stderr: true });
    assert.equal(run.code, 0, describeRun(run));
    assert.match(run.stdout, /^PASS {2}redis/m, describeRun(run));
  });
});

test('stdout and stderr both on /dev/full: the exit code alone tells, 0 for healthy, 1 for a failure', async () => {
  const [healthy, failing] = await Promise.all([
    runOnFullDevice(smoke('--json'), { stdout: true, stderr: true }),
    runOnFullDevice(['ping-redis', '--redis-url', `redis://127.0.0.1:${closedPort}`], {
      stdout: true,
      stderr: true,
    }),
  ]);
  assert.equal(healthy.code, 0, describeRun(healthy));
  assert.equal(healthy.signal, null, describeRun(healthy));
  assert.equal(failing.code, 1, describeRun(failing));
});
