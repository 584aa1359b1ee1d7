/**
 * `bansho <check> -- <command>`: the command runs only once the checks pass, with bansho's
 * stdio and environment and no shell, and bansho exits with its exit code (128 + the signal's
 * number when a signal ended it). By default as bansho's child, which forwards SIGTERM, SIGINT
 * and SIGHUP; with BANSHO_RUN_AFTER=exec, on a node with process.execve, in bansho's place (the
 * same PID). Both ways are run on every node that has both.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { assertExit, BIN, emptyDir, runCli } from './support/cli.js';
import { freePort, type RedisEndpoint, useRedis } from './support/servers.js';

const HAS_EXECVE = typeof (process as { execve?: unknown }).execve === 'function';
const WAYS = HAS_EXECVE ? (["in bansho's place", 'as a child'] as const) : (['as a child'] as const);
const NODE = process.execPath;

let redis: RedisEndpoint;
before(async () => {
  redis = await useRedis();
});

for (const way of WAYS) {
  const wayEnv: Record<string, string> = way === 'as a child' ? {} : { BANSHO_RUN_AFTER: 'exec' };

  describe(`run after the checks, ${way}`, () => {
    test('runs once the checks pass, with their output first, and exits with its exit code', async () => {
      const result = await runCli(
        [
          'ping-redis',
          '--redis-url',
          redis.url,
          '--',
          NODE,
          '-e',
          'console.log("gateway up", process.env.MARK); process.exit(7)',
        ],
        { env: { ...wayEnv, MARK: 'seen' } },
      );
      assertExit(result, 7);
      assert.match(result.stdout, /^PASS {2}redis .*\n[\s\S]*gateway up seen\n$/);
    });

    test("a command ended by a signal gives 128 + its number; in bansho's place, the process ends by it", async () => {
      const result = await runCli(
        [
          'ping-redis',
          '--redis-url',
          redis.url,
          '--quiet',
          '--',
          NODE,
          '-e',
          'process.kill(process.pid, "SIGKILL")',
        ],
        { env: wayEnv },
      );
      // A shell or a container runtime reports that death as 137 too.
      if (way === 'as a child') assertExit(result, 128 + 9);
      else assert.equal(result.signal, 'SIGKILL', `exit ${result.code}, signal ${result.signal}`);
    });

    test('checks that never pass: the command never runs, and bansho exits 1', async () => {
      const marker = join(emptyDir(), 'ran');
      const closed = await freePort();
      const result = await runCli(
        [
          'ping-redis',
          '--redis-url',
          `redis://127.0.0.1:${closed}`,
          '--wait',
          '700ms',
          '--quiet',
          '--',
          NODE,
          '-e',
          `require("node:fs").writeFileSync(${JSON.stringify(marker)}, "x")`,
        ],
        { env: wayEnv },
      );
      assertExit(result, 1);
      assert.equal(existsSync(marker), false);
    });

    test('no shell: arguments reach the command as they are', async () => {
      const result = await runCli(
        [
          'ping-redis',
          '--redis-url',
          redis.url,
          '--quiet',
          '--',
          'printf',
          '%s|',
          'a;b',
          '$HOME',
          '*',
          "it's",
        ],
        { env: wayEnv },
      );
      assertExit(result, 0);
      assert.equal(result.stdout, "a;b|$HOME|*|it's|");
    });

    test('SIGTERM reaches the command, which decides how it ends', async () => {
      const dir = emptyDir();
      const ready = join(dir, 'ready');
      const got = join(dir, 'got');
      const script = `
        const fs = require("node:fs");
        process.on("SIGTERM", () => { fs.writeFileSync(${JSON.stringify(got)}, "SIGTERM"); process.exit(3); });
        fs.writeFileSync(${JSON.stringify(ready)}, String(process.pid));
        setInterval(() => {}, 1000);`;
      const child = spawn(
        BIN,
        ['ping-redis', '--redis-url', redis.url, '--quiet', '--', NODE, '-e', script],
        {
          env: { PATH: `${process.env.PATH}`, ...wayEnv },
          stdio: 'ignore',
        },
      );
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      await waitFor(() => existsSync(ready));
      child.kill('SIGTERM');
      assert.equal(await exited, 3);
      assert.equal(readFileSync(got, 'utf8'), 'SIGTERM');
      const pid = Number(readFileSync(ready, 'utf8'));
      if (way === 'as a child') assert.notEqual(pid, child.pid);
      else assert.equal(pid, child.pid, "execve: the command has bansho's PID");
    });
  });
}

describe('run after the checks: what cannot be run', () => {
  test('a command that is not found is exit 127, with one line', async () => {
    const result = await runCli([
      'ping-redis',
      '--redis-url',
      redis.url,
      '--quiet',
      '--',
      'no-such-command-bansho',
    ]);
    assertExit(result, 127);
    assert.equal(result.stderr, 'bansho: no-such-command-bansho: command not found\n');
  });

  const ways: Record<string, string>[] = HAS_EXECVE ? [{}, { BANSHO_RUN_AFTER: 'exec' }] : [{}];
  for (const env of ways) {
    test(`a file that is not executable is exit 126 ${JSON.stringify(env)}`, async () => {
      const file = join(emptyDir(), 'not-executable');
      writeFileSync(file, '#!/bin/sh\necho should not run\n', { mode: 0o644 });
      const result = await runCli(['ping-redis', '--redis-url', redis.url, '--quiet', '--', file], { env });
      assertExit(result, 126);
      assert.equal(result.stderr, `bansho: ${file}: cannot be run (EACCES)\n`);
    });

    test(`an executable without #! runs as sh would run it, never aborting node ${JSON.stringify(env)}`, async () => {
      // The kernel refuses it (ENOEXEC): execve would abort node, so bansho runs it as a child,
      // and the C library's execvp runs it with /bin/sh, as a shell does.
      const script = join(emptyDir(), 'plain-script');
      writeFileSync(script, 'echo ran as sh would run it\n', { mode: 0o755 });
      const result = await runCli(['ping-redis', '--redis-url', redis.url, '--quiet', '--', script], { env });
      assertExit(result, 0);
      assert.equal(result.stdout, 'ran as sh would run it\n');
    });
  }

  test('nothing after --, or -- after serve or warm-cache, is exit 2 with nothing attempted', async () => {
    const closed = await freePort();
    for (const args of [
      ['ping-redis', '--redis-url', `redis://127.0.0.1:${closed}`, '--'],
      ['warm-cache', '--', 'true'],
      ['serve', '--', 'true'],
    ]) {
      const result = await runCli(args);
      assertExit(result, 2);
      assert.match(result.stderr, /^bansho: [^\n]+\n$/, args.join(' '));
    }
  });
});

async function waitFor(condition: () => boolean, boundMs = 15_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > boundMs) assert.fail('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
