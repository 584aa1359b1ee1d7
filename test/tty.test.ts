import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { dirname } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { BIN, emptyDir } from './support/cli.js';
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
});
