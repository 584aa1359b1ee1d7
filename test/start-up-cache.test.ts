/**
 * The start-up cache (src/cli/start-up-cache.ts): V8 code caches that bin/bansho makes on a first run and
 * uses on the next, for the exact node binary that runs it. What matters to users: a cache never
 * makes a run fail or print anything, and no run uses a cache that is not its own. Each test
 * runs a copy of the built package (bin/, dist/, package.json) with a cache directory of its own;
 * BANSHO_CACHE_DEBUG=1 makes bin/bansho say on stderr which cache it used and what it wrote.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { before, describe, test } from 'node:test';
import { cacheDirs, parseCache, serializeCache } from '../src/cli/start-up-cache.js';
import { emptyDir } from './support/cli.js';
import { type RedisEndpoint, useRedis } from './support/servers.js';

const ROOT = resolve(import.meta.dirname, '..');
const NOBODY = { uid: 65534, gid: 65534 };

let redis: RedisEndpoint;
before(async () => {
  redis = await useRedis();
});

/** A directory anyone may read and enter, as a copy run by `nobody` needs. */
function openDir(): string {
  const dir = emptyDir();
  chmodSync(dir, 0o755);
  return dir;
}

/** A copy of the built package, as an install has it: bin/, dist/ (without its caches), package.json. */
function copyPackage(): string {
  const dir = openDir();
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'));
  cpSync(join(ROOT, 'bin'), join(dir, 'bin'), { recursive: true });
  cpSync(join(ROOT, 'dist'), join(dir, 'dist'), {
    recursive: true,
    filter: (source) => !source.startsWith(join(ROOT, 'dist', 'cache')),
  });
  return dir;
}

let nobodysNode: string | undefined;
/**
 * A directory with a node that `nobody` may run: the one running the tests may sit where only
 * root can go (CI keeps other Node lines under root's HOME), so a copy of it, made once.
 */
function nodeForNobody(): string {
  if (nobodysNode === undefined) {
    nobodysNode = openDir();
    copyFileSync(process.execPath, join(nobodysNode, 'node'));
    chmodSync(join(nobodysNode, 'node'), 0o755);
  }
  return nobodysNode;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  env?: Record<string, string>;
  user?: { uid: number; gid: number };
  /** The directory whose `node` comes first on PATH; default: the node running the tests. */
  nodeDir?: string;
}

function runBin(bin: string, args: readonly string[], options: RunOptions = {}): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(bin, args, {
      cwd: '/',
      env: {
        PATH: `${options.nodeDir ?? (options.user ? nodeForNobody() : dirname(process.execPath))}:/usr/bin:/bin`,
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.user ?? {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(killer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** The cache files in a directory, by name; temporary files would show up here too. */
function cacheFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

/** What bin/bansho said of its cache (BANSHO_CACHE_DEBUG=1), and the rest of stderr. */
function cacheLine(run: Run): string {
  return run.stderr.split('\n').find((line) => line.startsWith('bansho: start-up cache')) ?? '';
}

describe('the start-up cache', () => {
  test('a first run writes the cache of its subcommand; the next run uses it and writes nothing', async () => {
    const pkg = copyPackage();
    const cache = join(openDir(), 'cache');
    const env = { BANSHO_CACHE_DIR: cache, BANSHO_CACHE_DEBUG: '1', REDIS_URL: redis.url };
    const first = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '--json'], { env });
    assert.equal(first.code, 0, first.stderr);
    assert.match(cacheLine(first), /: none found; wrote .*\/ping-redis-[0-9a-z]+\.v8$/);
    const [file] = cacheFiles(cache);
    assert.match(file ?? '', /^ping-redis-[0-9a-z]+\.v8$/);
    const written = statSync(join(cache, file as string));

    const second = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '--json'], { env });
    assert.equal(second.code, 0, second.stderr);
    assert.match(cacheLine(second), /: used .*\/ping-redis-[0-9a-z]+\.v8; kept /);
    assert.equal(second.stdout.length > 0, true);
    assert.deepEqual(cacheFiles(cache), [file]);
    assert.equal(statSync(join(cache, file as string)).mtimeMs, written.mtimeMs);
  });

  test('each subcommand has its own cache, and everything else (help, version, usage errors) shares one', async () => {
    const pkg = copyPackage();
    const cache = join(openDir(), 'cache');
    const env = { BANSHO_CACHE_DIR: cache, REDIS_URL: redis.url };
    for (const args of [
      ['ping-redis', '-q'],
      ['--help'],
      ['--version'],
      ['no-such-command'],
      ['ping-redis'],
    ]) {
      await runBin(join(pkg, 'bin/bansho'), args, { env });
    }
    assert.deepEqual(
      cacheFiles(cache).map((name) => name.replace(/-[0-9a-z]+\.v8$/, '')),
      ['default', 'ping-redis'],
    );
  });

  test('a run whose cache directory cannot be written passes as before and prints nothing about it', async () => {
    const pkg = copyPackage();
    // A read-only directory for nobody: owned by root, no write bits.
    const readOnly = openDir();
    chmodSync(readOnly, 0o555);
    for (const env of <Record<string, string>[]>[
      { BANSHO_CACHE_DIR: join(readOnly, 'cache') },
      { HOME: readOnly },
      { HOME: '/nonexistent' },
      { XDG_CACHE_HOME: readOnly, HOME: readOnly },
      { BANSHO_CACHE_DIR: '/dev/null/cache' },
    ]) {
      const result = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '--json'], {
        env: { ...env, REDIS_URL: redis.url },
        user: NOBODY,
      });
      assert.equal(result.code, 0, `${JSON.stringify(env)}: ${result.stderr}`);
      assert.equal(result.stderr, '', JSON.stringify(env));
      assert.equal(JSON.parse(result.stdout).status, 'pass');
    }
    assert.deepEqual(cacheFiles(readOnly), []);
  });

  test('with no HOME and no cache directory at all, a run still passes', async () => {
    const pkg = copyPackage();
    const result = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '--json'], {
      env: { REDIS_URL: redis.url, BANSHO_CACHE_DEBUG: '1' },
      user: NOBODY,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(cacheLine(result), /: none found;$/);
  });

  test('eight runs starting at once on an empty cache all pass, and leave one valid cache, no temporary file', async () => {
    const pkg = copyPackage();
    const cache = join(openDir(), 'cache');
    const env = { BANSHO_CACHE_DIR: cache, REDIS_URL: redis.url };
    const runs = await Promise.all(
      Array.from({ length: 8 }, () => runBin(join(pkg, 'bin/bansho'), ['ping-redis', '--json'], { env })),
    );
    for (const result of runs) {
      assert.equal(result.code, 0, result.stderr);
      assert.equal(JSON.parse(result.stdout).status, 'pass');
    }
    const files = cacheFiles(cache);
    assert.equal(files.length, 1, files.join(', '));
    const next = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '-q'], {
      env: { ...env, BANSHO_CACHE_DEBUG: '1' },
    });
    assert.match(cacheLine(next), /: used /);
  });

  test('a truncated cache file is not used: the run passes and writes a whole one', async () => {
    const pkg = copyPackage();
    const cache = join(openDir(), 'cache');
    const env = { BANSHO_CACHE_DIR: cache, BANSHO_CACHE_DEBUG: '1', REDIS_URL: redis.url };
    await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '-q'], { env });
    const [file] = cacheFiles(cache);
    const path = join(cache, file as string);
    truncateSync(path, Math.floor(statSync(path).size / 2));
    const result = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '--json'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.match(cacheLine(result), /: none found; wrote /);
    const again = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '-q'], { env });
    assert.match(cacheLine(again), /: used /);
  });

  test('data that V8 refuses is compiled from source and replaced', async () => {
    const pkg = copyPackage();
    const cache = join(openDir(), 'cache');
    const env = { BANSHO_CACHE_DIR: cache, BANSHO_CACHE_DEBUG: '1', REDIS_URL: redis.url };
    await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '-q'], { env });
    const [file] = cacheFiles(cache);
    const path = join(cache, file as string);
    // A header of ours that is right (key, length) over data V8 never made.
    const header = readFileSync(path);
    const headerEnd = header.indexOf(10, header.indexOf(10) + 1) + 1;
    const length = header.length - headerEnd;
    const key = (
      JSON.parse(header.toString('utf8', header.indexOf(10) + 1, headerEnd - 1)) as { key: string }
    ).key;
    writeFileSync(path, serializeCache(key, Buffer.alloc(length, 0x5a), true));
    const result = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '--json'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.match(cacheLine(result), /: rejected by V8: .*; wrote /);
    assert.equal(JSON.parse(result.stdout).status, 'pass');
  });

  test('a cache file that others could have written (group- or world-writable) is not used', async () => {
    const pkg = copyPackage();
    const cache = join(openDir(), 'cache');
    const env = { BANSHO_CACHE_DIR: cache, BANSHO_CACHE_DEBUG: '1', REDIS_URL: redis.url };
    await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '-q'], { env });
    const [file] = cacheFiles(cache);
    chmodSync(join(cache, file as string), 0o666);
    const result = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '-q'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.match(cacheLine(result), /: none found; wrote /);
    assert.equal(statSync(join(cache, file as string)).mode & 0o777, 0o644);
  });

  test('a node binary replaced or upgraded in place gets a cache of its own, never the old one', async () => {
    const pkg = copyPackage();
    const cache = join(openDir(), 'cache');
    const nodeDir = openDir();
    const node = join(nodeDir, 'node');
    copyFileSync(process.execPath, node);
    chmodSync(node, 0o755);
    const env = { BANSHO_CACHE_DIR: cache, BANSHO_CACHE_DEBUG: '1', REDIS_URL: redis.url };
    await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '-q'], { env, nodeDir });
    const [first] = cacheFiles(cache);
    // Upgraded in place: the same file, rewritten (a new modification time).
    utimesSync(node, new Date(), new Date(Date.now() + 60_000));
    const upgraded = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '--json'], { env, nodeDir });
    assert.equal(upgraded.code, 0, upgraded.stderr);
    assert.match(cacheLine(upgraded), /: none found; wrote /);
    // Replaced: a new file renamed over the old one (a new inode), as package managers do.
    copyFileSync(process.execPath, `${node}.new`);
    chmodSync(`${node}.new`, 0o755);
    renameSync(`${node}.new`, node);
    const replaced = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '--json'], { env, nodeDir });
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.match(cacheLine(replaced), /: none found; wrote /);
    const files = cacheFiles(cache);
    assert.equal(files.length, 3, files.join(', '));
    assert.ok(files.includes(first as string));
  });

  test('node flags (NODE_OPTIONS) get a cache of their own', async () => {
    const pkg = copyPackage();
    const cache = join(openDir(), 'cache');
    const env = { BANSHO_CACHE_DIR: cache, BANSHO_CACHE_DEBUG: '1', REDIS_URL: redis.url };
    await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '-q'], { env });
    const flagged = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '--json'], {
      env: { ...env, NODE_OPTIONS: '--max-old-space-size=256' },
    });
    assert.equal(flagged.code, 0, flagged.stderr);
    assert.match(cacheLine(flagged), /: none found; wrote /);
    assert.equal(cacheFiles(cache).length, 2);
  });

  test('a rebuilt bundle does not use the caches of the old one', async () => {
    const pkg = copyPackage();
    const cache = join(openDir(), 'cache');
    const env = { BANSHO_CACHE_DIR: cache, BANSHO_CACHE_DEBUG: '1', REDIS_URL: redis.url };
    await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '-q'], { env });
    const bundle = join(pkg, 'dist/bansho.cjs');
    writeFileSync(bundle, `${readFileSync(bundle, 'latin1')}\n`, 'latin1');
    const result = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '--json'], { env });
    assert.equal(result.code, 0, result.stderr);
    assert.match(cacheLine(result), /: none found; wrote /);
  });

  test('a cache made before any successful run is replaced once after the first one', async () => {
    const pkg = copyPackage();
    const cache = join(openDir(), 'cache');
    const env = { BANSHO_CACHE_DIR: cache, BANSHO_CACHE_DEBUG: '1' };
    const failed = await runBin(
      join(pkg, 'bin/bansho'),
      ['ping-redis', '-q', '--redis-url', 'redis://127.0.0.1:1'],
      {
        env,
      },
    );
    assert.equal(failed.code, 1);
    const path = join(cache, cacheFiles(cache)[0] as string);
    const incomplete = parseCacheFile(path);
    assert.equal(incomplete.complete, false);
    const passed = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '-q'], {
      env: { ...env, REDIS_URL: redis.url },
    });
    assert.equal(passed.code, 0, passed.stderr);
    assert.match(cacheLine(passed), /: used .*; wrote /);
    assert.equal(parseCacheFile(path).complete, true);
    const next = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '-q'], {
      env: { ...env, REDIS_URL: redis.url },
    });
    assert.match(cacheLine(next), /: used .*; kept /);
  });
});

/** A cache file's header, read as the loader reads it, under the key the file itself names. */
function parseCacheFile(path: string): { complete: boolean } {
  const bytes = readFileSync(path);
  const start = bytes.indexOf(10) + 1;
  const header = JSON.parse(bytes.toString('utf8', start, bytes.indexOf(10, start))) as { key: string };
  const parsed = parseCache(bytes, header.key);
  assert.ok(parsed, `${path} is not a whole cache file`);
  return parsed;
}

describe('bansho warm-cache', () => {
  test("makes every cache in the package's dist/cache, which a non-root user then uses from a read-only copy", async () => {
    const pkg = copyPackage();
    // The node that nobody runs below makes them: a cache belongs to one node binary.
    const made = await runBin(join(pkg, 'bin/bansho'), ['warm-cache'], {
      env: { HOME: openDir() },
      nodeDir: nodeForNobody(),
    });
    assert.equal(made.code, 0, made.stderr);
    assert.match(made.stdout, /^wrote 5 start-up caches for node v\d+\.\d+\.\d+ to .*\/dist\/cache\n$/);
    assert.deepEqual(
      cacheFiles(join(pkg, 'dist/cache')).map((name) => name.replace(/-[0-9a-z]+\.v8$/, '')),
      ['default', 'ensure-schema', 'ping-postgres', 'ping-redis', 'smoke'],
    );
    // Read-only for nobody: every file root's, no write bits anywhere, and a HOME it cannot write.
    chmodTree(pkg);
    const readOnlyHome = openDir();
    chmodSync(readOnlyHome, 0o555);
    const result = await runBin(join(pkg, 'bin/bansho'), ['ping-redis', '--json'], {
      env: { HOME: readOnlyHome, REDIS_URL: redis.url, BANSHO_CACHE_DEBUG: '1' },
      user: NOBODY,
    });
    assert.equal(result.code, 0, result.stderr);
    assert.match(cacheLine(result), /: used .*\/dist\/cache\/ping-redis-[0-9a-z]+\.v8; could not write /);
    assert.equal(result.stderr.split('\n').filter(Boolean).length, 1, result.stderr);
  });

  test('exits 1 with one line when the cache directory cannot be written', async () => {
    const pkg = copyPackage();
    const readOnly = openDir();
    chmodSync(readOnly, 0o555);
    const result = await runBin(join(pkg, 'bin/bansho'), ['warm-cache'], {
      env: { BANSHO_CACHE_DIR: join(readOnly, 'cache') },
      user: NOBODY,
    });
    assert.equal(result.code, 1);
    assert.equal(result.stdout, '');
    assert.match(
      result.stderr,
      /^bansho: could not write 5 start-up cache\(s\) to .*: is it writable by this user\?\n$/,
    );
  });
});

/** No write bits anywhere under `dir`: a read-only install as a non-root user sees it. */
function chmodTree(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) chmodTree(path);
    chmodSync(path, entry.isDirectory() ? 0o555 : statSync(path).mode & 0o555);
  }
  chmodSync(dir, 0o555);
}

describe('cacheDirs', () => {
  test('BANSHO_CACHE_DIR, else XDG_CACHE_HOME/bansho, else ~/.cache/bansho; the package after it', () => {
    const prebuilt = '/pkg/dist/cache';
    assert.deepEqual(cacheDirs({ BANSHO_CACHE_DIR: '/c', HOME: '/h' }, '/pkg'), {
      read: ['/c', prebuilt],
      write: '/c',
    });
    assert.deepEqual(cacheDirs({ XDG_CACHE_HOME: '/x', HOME: '/h' }, '/pkg'), {
      read: ['/x/bansho', prebuilt],
      write: '/x/bansho',
    });
    assert.deepEqual(cacheDirs({ HOME: '/h' }, '/pkg'), {
      read: ['/h/.cache/bansho', prebuilt],
      write: '/h/.cache/bansho',
    });
    // Relative paths are ignored, as the XDG spec says; no HOME: nothing to write to.
    assert.deepEqual(cacheDirs({ XDG_CACHE_HOME: 'x', HOME: 'h' }, '/pkg'), { read: [prebuilt] });
    assert.deepEqual(cacheDirs({}, '/pkg'), { read: [prebuilt] });
  });
});

describe('parseCache', () => {
  const data = Buffer.from('v8 data');
  const file = serializeCache('the key', data, true);

  test('gives back what serializeCache wrote, for the same key only', () => {
    assert.deepEqual(parseCache(file, 'the key'), { data, complete: true });
    assert.equal(parseCache(file, 'another key'), undefined);
  });

  test('refuses a truncated or extended file, and anything that is not ours', () => {
    assert.equal(parseCache(file.subarray(0, file.length - 1), 'the key'), undefined);
    assert.equal(parseCache(Buffer.concat([file, Buffer.from('x')]), 'the key'), undefined);
    assert.equal(parseCache(Buffer.from('not a cache'), 'the key'), undefined);
    assert.equal(parseCache(Buffer.from('bansho-code-cache 1\n{not json\nxx'), 'the key'), undefined);
    assert.equal(parseCache(Buffer.alloc(0), 'the key'), undefined);
  });
});
