import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Env } from '../config/load.js';
import { CACHED_COMMANDS } from './command-names.js';
import { cacheFileName, cacheKey, WARM_ENV } from './start-up-cache.js';

/** What `bansho warm-cache` reports: where the caches went, and which could not be made. */
export interface WarmCacheResult {
  dir: string;
  written: string[];
  missing: string[];
}

/**
 * Makes the start-up caches (src/cli/start-up-cache.ts) for the node binary that runs this, one per
 * subcommand plus the default, in the package's dist/cache/ (or BANSHO_CACHE_DIR): what an image
 * build runs, so that a non-root user on a read-only root filesystem starts fast from the first
 * run. Each subcommand runs once, as bin/bansho runs it, against a loopback port nothing listens
 * on: that compiles its path through the CLI and its driver up to the connection attempt.
 */
export async function warmCache(packageDir: string, env: Env): Promise<WarmCacheResult> {
  const dir = env.BANSHO_CACHE_DIR || join(packageDir, 'dist', 'cache');
  const bin = join(packageDir, 'bin', 'bansho');
  const bundle = join(packageDir, 'dist', 'bansho.cjs');
  const port = await closedPort();
  const redisUrl = `redis://127.0.0.1:${port}`;
  const postgresDsn = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const runs: Record<string, string[]> = {
    default: ['--help'],
    'ping-redis': ['ping-redis', '--redis-url', redisUrl],
    'ping-postgres': ['ping-postgres', '--postgres-dsn', postgresDsn],
    'ensure-schema': ['ensure-schema', '--postgres-dsn', postgresDsn],
    smoke: ['smoke', '--redis-url', redisUrl, '--postgres-dsn', postgresDsn],
  };
  const written: string[] = [];
  const missing: string[] = [];
  for (const name of ['default', ...CACHED_COMMANDS]) {
    const args = [...(runs[name] ?? []), ...(name === 'default' ? [] : ['--timeout', '2s', '--quiet'])];
    // The same node, node flags and environment as a real run: each is part of the cache's key.
    const childEnv = { ...env, BANSHO_CACHE_DIR: dir, [WARM_ENV]: '1', NO_COLOR: '1' };
    await runQuietly(process.execPath, [...process.execArgv, '--', bin, ...args], childEnv, packageDir);
    const file = cacheFileName(name, cacheKey(name, bundle, childEnv));
    (existsSync(join(dir, file)) ? written : missing).push(file);
  }
  return { dir, written, missing };
}

function runQuietly(command: string, args: string[], env: Env, cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, cwd, stdio: 'ignore' });
    child.once('error', reject);
    child.once('close', () => resolve());
  });
}

/** A loopback port that was free a moment ago: connections to it are refused at once. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject()));
    });
    server.once('error', reject);
  });
}
