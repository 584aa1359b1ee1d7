/**
 * bin/bansho, what npm links: it runs the build's V8 startup snapshot only when that is safe,
 * and bin/bansho.js otherwise. Needs `npm run build` first. A copy of bin/ and dist/ lets each
 * test break the snapshot in its own way.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { promisify } from 'node:util';
import { assertExit, BIN, emptyDir, parseJson, runCli } from './support/cli.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');

/** A copy of the built package (bin/, dist/, package.json) where a test may remove or relink files. */
function copyPackage(): string {
  const dir = emptyDir();
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true, verbatimSymlinks: true });
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), { recursive: true, verbatimSymlinks: true });
  return dir;
}

/** Runs a bin under `sh -x`, whose trace on stderr shows the command it execs. */
async function traced(bin: string, args: string[], env: Record<string, string> = {}) {
  const { stdout, stderr } = await run('sh', ['-x', bin, ...args], {
    cwd: emptyDir(),
    env: { PATH: `${dirname(process.execPath)}:${process.env.PATH}`, ...env },
  });
  const exec = stderr.split('\n').find((line) => line.startsWith('+ exec ')) ?? '';
  return { stdout, exec };
}

describe('bin/bansho', () => {
  test('runs the startup snapshot when node is the binary that built it', async () => {
    const { stdout, exec } = await traced(BIN, ['--version']);
    assert.match(exec, /--snapshot-blob \S+\/dist\/snapshot\/bansho\.blob -- --version$/);
    assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
  });

  test('resolves its own location through the symlink that npm makes', async () => {
    const link = join(emptyDir(), 'bansho');
    symlinkSync(BIN, link);
    const { stdout, exec } = await traced(link, ['--version']);
    assert.match(exec, /--snapshot-blob /);
    assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
  });

  test('falls back to bin/bansho.js when the blob is missing', async () => {
    const dir = copyPackage();
    rmSync(join(dir, 'dist/snapshot/bansho.blob'));
    const { stdout, exec } = await traced(join(dir, 'bin/bansho'), ['--version']);
    assert.match(exec, /^\+ exec node -- \S+\/bin\/bansho\.js --version$/);
    assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
  });

  test('falls back to bin/bansho.js when another node built the blob', async () => {
    const dir = copyPackage();
    rmSync(join(dir, 'dist/snapshot/node'));
    symlinkSync('/bin/sh', join(dir, 'dist/snapshot/node'));
    const { stdout, exec } = await traced(join(dir, 'bin/bansho'), ['--version']);
    assert.match(exec, /^\+ exec node -- \S+\/bin\/bansho\.js --version$/);
    assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
  });

  test('falls back to bin/bansho.js when NODE_OPTIONS is set (V8 flags make node refuse the blob)', async () => {
    const { stdout, exec } = await traced(BIN, ['--version'], { NODE_OPTIONS: '--max-old-space-size=200' });
    assert.match(exec, /^\+ exec node -- \S+\/bin\/bansho\.js --version$/);
    assert.match(stdout, /^\d+\.\d+\.\d+\n$/);
  });

  test('leaves --version and --env-file to bansho, not to node', async () => {
    const version = await runCli(['--version']);
    assertExit(version, 0);
    assert.equal(version.stdout, `${JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version}\n`);
    const envFile = await runCli(['ping-redis', '--env-file', '/nonexistent/.env', '--json']);
    assertExit(envFile, 2);
    assert.equal(parseJson(envFile).error?.code, 'config');
  });

  test('reads the environment and working directory of the run, not of the build', async () => {
    const cwd = emptyDir();
    writeFileSync(join(cwd, '.env'), 'REDIS_URL=redis://127.0.0.1:1/5\n');
    const fromFile = parseJson(await runCli(['ping-redis', '--json'], { cwd }));
    assert.equal(fromFile.checks.redis?.target, 'redis://127.0.0.1:1/5');
    const fromEnv = parseJson(
      await runCli(['ping-redis', '--json'], { env: { REDIS_URL: 'redis://127.0.0.1:2/6' } }),
    );
    assert.equal(fromEnv.checks.redis?.target, 'redis://127.0.0.1:2/6');
  });
});
