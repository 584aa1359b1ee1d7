import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { BIN, emptyDir, runCli } from './support/cli.js';
import { freePort } from './support/servers.js';

const run = promisify(execFile);
/** The escape character, spelled out: a literal one in a regex literal reads as a typo. */
const ESC = String.fromCharCode(27);

/** Runs bansho on a pseudo-terminal through util-linux `script`, as an operator at a terminal would. */
async function onTerminal(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ output: string; code: number }> {
  const command = [BIN, ...args].map((word) => `'${word}'`).join(' ');
  try {
    const { stdout } = await run('script', ['-qec', command, '/dev/null'], {
      cwd: emptyDir(),
      env: {
        PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
        HOME: process.env.HOME ?? '/root',
        TERM: 'xterm',
        ...env,
      },
      timeout: 20_000,
    });
    return { output: stdout, code: 0 };
  } catch (error) {
    const failed = error as { stdout?: string; code?: number };
    return { output: failed.stdout ?? '', code: failed.code ?? -1 };
  }
}

describe('on a terminal', () => {
  test('--wait redraws one progress line in place instead of printing a line per attempt', async () => {
    const port = await freePort();
    const { output, code } = await onTerminal([
      'ping-redis',
      '--redis-url',
      `redis://127.0.0.1:${port}`,
      '--wait',
      '1500ms',
    ]);
    assert.equal(code, 1, output);
    const progress = output.split('\n')[0] ?? '';
    // Every attempt starts with carriage return + erase-line, all on the first line of output.
    assert.ok(progress.split(`\r${ESC}[2Kattempt `).length - 1 >= 2, JSON.stringify(output));
    assert.match(output, /FAIL.*connection_refused/);
  });

  test('colours the status on a terminal, and not with NO_COLOR', async () => {
    const port = await freePort();
    const args = ['ping-redis', '--redis-url', `redis://127.0.0.1:${port}`];
    const coloured = await onTerminal(args);
    assert.ok(coloured.output.includes(`${ESC}[31mFAIL${ESC}[39m`), JSON.stringify(coloured.output));
    const plain = await onTerminal(args, { NO_COLOR: '1' });
    assert.equal(plain.code, 1);
    assert.ok(!plain.output.includes(ESC), JSON.stringify(plain.output));
    assert.match(plain.output, /^FAIL {2}redis/m);
  });

  test('FORCE_COLOR=0 or false turns colour off on a terminal', async () => {
    const port = await freePort();
    const args = ['ping-redis', '--redis-url', `redis://127.0.0.1:${port}`];
    for (const value of ['0', 'false']) {
      const plain = await onTerminal(args, { FORCE_COLOR: value });
      assert.equal(plain.code, 1, plain.output);
      assert.ok(!plain.output.includes(ESC), `FORCE_COLOR=${value}: ${JSON.stringify(plain.output)}`);
      assert.match(plain.output, /^FAIL {2}redis/m);
    }
  });

  test('under TERM=dumb, --wait writes one plain line per attempt, as in logs, and no colour', async () => {
    const port = await freePort();
    const { output, code } = await onTerminal(
      ['ping-redis', '--redis-url', `redis://127.0.0.1:${port}`, '--wait', '1500ms'],
      { TERM: 'dumb' },
    );
    assert.equal(code, 1, output);
    assert.ok(!output.includes(ESC), JSON.stringify(output));
    assert.ok(!output.includes('\r\r'), JSON.stringify(output));
    const attempts = output
      .split('\n')
      .filter((line) => /^attempt \d+: redis fail \(connection_refused\)/.test(line));
    assert.ok(attempts.length >= 2, JSON.stringify(output));
    assert.match(output, /^FAIL {2}redis/m);
  });
});

describe('on a pipe', () => {
  const failing = async () => ['ping-redis', '--redis-url', `redis://127.0.0.1:${await freePort()}`];

  test('FORCE_COLOR=1, 2, 3 or true colours the report; stderr stays plain', async () => {
    for (const value of ['1', '2', '3', 'true']) {
      const result = await runCli([...(await failing()), '--wait', '600ms', '--interval', '100ms'], {
        env: { FORCE_COLOR: value },
      });
      assert.equal(result.code, 1, result.stderr);
      assert.ok(
        result.stdout.includes(`${ESC}[31mFAIL${ESC}[39m`),
        `FORCE_COLOR=${value}: ${JSON.stringify(result.stdout)}`,
      );
      assert.match(result.stderr, /^attempt 1: /);
      assert.ok(!result.stderr.includes(ESC), JSON.stringify(result.stderr));
    }
  });

  test('NO_COLOR wins over FORCE_COLOR', async () => {
    const result = await runCli(await failing(), { env: { FORCE_COLOR: '1', NO_COLOR: '1' } });
    assert.equal(result.code, 1, result.stderr);
    assert.ok(!result.stdout.includes(ESC), JSON.stringify(result.stdout));
    assert.match(result.stdout, /^FAIL {2}redis/);
  });

  test('a usage error is plain, with FORCE_COLOR too', async () => {
    const result = await runCli(['ping-redis', '--timeout', 'soon'], { env: { FORCE_COLOR: '1' } });
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'bansho: --timeout must be a duration such as 500ms, 2s or 1m\n');
  });
});
