/**
 * SIGINT and SIGTERM end any command promptly, close what is open, and exit 130 / 143
 * (an exit code, not death by the signal): while connecting to a peer that never answers,
 * and while sleeping between `--wait` attempts.
 *
 * Needs `npm run build` first: the CLI under test is bin/bansho → dist/.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, type TestContext, test } from 'node:test';
import { type CliResult, LEAK_MESSAGE, parseJson, runCli } from './support/cli.js';
import { type FakePeer, freePort, startSilentPeer } from './support/servers.js';

/**
 * Signal to exit, as a bound that tells behaviour apart, not a speed: the checks run under
 * --timeout 20s and --wait 30s, so an exit within 10 s was the signal's doing. How soon it comes
 * (well under a second on a quiet machine) is not asserted: machines running the suite are noisy.
 */
const PROMPT_MS = 10_000;
const EXPECTED_EXIT: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 130, SIGTERM: 143 };

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Resolves when the child's stderr has matched `pattern` (runCli keeps collecting it too). */
function stderrMatches(child: ChildProcess, pattern: RegExp): Promise<void> {
  return new Promise((resolve) => {
    let seen = '';
    child.stderr?.on('data', (chunk: string | Buffer) => {
      seen += chunk.toString();
      if (pattern.test(seen)) resolve();
    });
  });
}

interface SignalRun {
  result: CliResult;
  /** From the signal to the child's exit, in milliseconds. */
  signalToExitMs: number;
}

/**
 * Spawns the CLI, waits for `ready` (given the child), sends `signal`, and measures how long
 * the process takes to exit afterwards.
 */
async function runAndSignal(
  args: readonly string[],
  env: Record<string, string>,
  signal: 'SIGINT' | 'SIGTERM',
  ready: (child: ChildProcess) => Promise<unknown>,
): Promise<SignalRun> {
  let spawnedAt = 0;
  let signalledAt = 0;
  let readyPromise: Promise<unknown> = Promise.resolve();
  let signalled: Promise<void> = Promise.resolve();
  const resultPromise = runCli(args, {
    env,
    killAfterMs: 15_000,
    onSpawn: (child) => {
      spawnedAt = performance.now();
      readyPromise = withTimeout(ready(child), 8000, 'the command getting under way');
      signalled = readyPromise.then(() => {
        signalledAt = performance.now();
        child.kill(signal);
      });
    },
  });
  // Surface a readiness failure rather than waiting for the kill-after timeout.
  await Promise.race([signalled, resultPromise]);
  await signalled;
  const result = await resultPromise;
  const exitedAt = spawnedAt + result.elapsedMs;
  return { result, signalToExitMs: exitedAt - signalledAt };
}

function describeRun(run: SignalRun): string {
  const { result } = run;
  return `exit ${result.code} (signal ${result.signal}), ${Math.round(run.signalToExitMs)} ms after the signal, ${Math.round(result.elapsedMs)} ms in all\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
}

function assertEndedBy(run: SignalRun, signal: 'SIGINT' | 'SIGTERM', t: TestContext): void {
  t.diagnostic(`exited ${Math.round(run.signalToExitMs)} ms after ${signal}`);
  const context = describeRun(run);
  assert.equal(run.result.signal, null, `the process died of the signal instead of exiting: ${context}`);
  assert.equal(run.result.code, EXPECTED_EXIT[signal], context);
  assert.ok(run.signalToExitMs < PROMPT_MS, `not ended by the signal: ${context}`);
  assert.ok(!run.result.stderr.includes(LEAK_MESSAGE), `leaked a handle: ${context}`);
}

/** After the exit: every connection to the peer is closed, and none was opened after the first `expected`. */
async function assertPeerReleased(
  connectionsBefore: number,
  expected: number,
  run: SignalRun,
): Promise<void> {
  // The process has exited; give the peer a moment to see the FIN / RST.
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(peer.openSockets(), 0, `a connection to the peer is still open: ${describeRun(run)}`);
  assert.equal(
    peer.connections() - connectionsBefore,
    expected,
    `expected ${expected} connection(s), none after the signal: ${describeRun(run)}`,
  );
}

let peer: FakePeer;
let closedPort: number;

before(async () => {
  peer = await startSilentPeer();
  closedPort = await freePort();
});

after(() => peer.close());

/** Waits until the CLI has connected to the peer, and a little more, so it is really mid-check. */
const connected = (_child: ChildProcess) =>
  peer.nextConnection().then(() => new Promise((resolve) => setTimeout(resolve, 300)));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  describe(`${signal} exits ${EXPECTED_EXIT[signal]} promptly`, () => {
    test(`ping-redis stuck on a silent peer (--timeout 20s) exits ${EXPECTED_EXIT[signal]} on ${signal} and closes its socket`, async (t) => {
      const connectionsBefore = peer.connections();
      const run = await runAndSignal(
        ['ping-redis', '--timeout', '20s'],
        { REDIS_URL: `redis://:S3cr3t-Pa55@127.0.0.1:${peer.port}` },
        signal,
        connected,
      );
      assertEndedBy(run, signal, t);
      await assertPeerReleased(connectionsBefore, 1, run);
    });

    test(`ping-postgres stuck on a silent peer (--timeout 20s) exits ${EXPECTED_EXIT[signal]} on ${signal} and closes its socket`, async (t) => {
      const connectionsBefore = peer.connections();
      const run = await runAndSignal(
        ['ping-postgres', '--timeout', '20s'],
        { POSTGRES_DSN: `postgres://postgres@127.0.0.1:${peer.port}/postgres` },
        signal,
        connected,
      );
      assertEndedBy(run, signal, t);
      await assertPeerReleased(connectionsBefore, 1, run);
    });

    test(`smoke --wait 30s against closed ports exits ${EXPECTED_EXIT[signal]} on ${signal} between attempts`, async (t) => {
      const run = await runAndSignal(
        ['smoke', '--wait', '30s', '--interval', '2s'],
        {
          REDIS_URL: `redis://127.0.0.1:${closedPort}`,
          POSTGRES_DSN: `postgres://postgres@127.0.0.1:${closedPort}/postgres`,
        },
        signal,
        // The first attempt has failed and the command is sleeping before the next one.
        (child) => stderrMatches(child, /attempt 1:/),
      );
      assertEndedBy(run, signal, t);
      assert.doesNotMatch(run.result.stderr, /attempt 2:/, describeRun(run));
    });
  });
}

test('ensure-schema stuck on a silent peer exits 143 on SIGTERM and closes its socket', async (t) => {
  const connectionsBefore = peer.connections();
  const run = await runAndSignal(
    ['ensure-schema', '--timeout', '20s'],
    { POSTGRES_DSN: `postgres://postgres@127.0.0.1:${peer.port}/postgres` },
    'SIGTERM',
    connected,
  );
  assertEndedBy(run, 'SIGTERM', t);
  await assertPeerReleased(connectionsBefore, 1, run);
});

test('smoke stuck on silent peers exits 130 on SIGINT with --json, still printing exactly one JSON document', async (t) => {
  const connectionsBefore = peer.connections();
  const run = await runAndSignal(
    ['smoke', '--timeout', '20s', '--json'],
    {
      REDIS_URL: `redis://127.0.0.1:${peer.port}`,
      POSTGRES_DSN: `postgres://postgres@127.0.0.1:${peer.port}/postgres`,
    },
    'SIGINT',
    connected,
  );
  assertEndedBy(run, 'SIGINT', t);
  const report = parseJson(run.result);
  assert.equal(report.status, 'fail', describeRun(run));
  for (const name of ['redis', 'postgres', 'schema']) {
    assert.equal(report.checks[name]?.error?.code, 'interrupted', describeRun(run));
  }
  // One Redis connection and one PostgreSQL connection: the schema check shares the latter.
  await assertPeerReleased(connectionsBefore, 2, run);
});
