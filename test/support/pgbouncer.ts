/**
 * A throwaway PgBouncer in front of a test PostgreSQL, on a free loopback port. It runs as
 * the `postgres` OS user when we are root (PgBouncer refuses to run as root), with trust
 * authentication and a wildcard database entry, so every database of the server is reachable
 * through it. Its configuration is left as a packaged PgBouncer's would be where bansho is
 * concerned: no ignore_startup_parameters.
 */
import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOOPBACK, withFreePort } from './net.js';
import { postgresOsUser } from './postgres.js';
import { cleanEnv, exec, spawnDaemon } from './process.js';

export interface PgBouncerOptions {
  /** The server it pools. */
  backend: { host: string; port: number };
  /** Default 'transaction': the mode that breaks session state and named prepared statements. */
  poolMode?: 'session' | 'transaction' | 'statement';
  /** Server connections per database and user; default 2, so that clients share them. */
  poolSize?: number;
  /**
   * The [databases] entries, each `name = connection string` (the backend's host and port are
   * prepended to each); default one wildcard entry, `* =`, that reaches every database.
   */
  databases?: Record<string, string>;
  /** Default 'trust' (the user must be in the auth file); 'any' needs `user=` in each database entry. */
  authType?: 'trust' | 'any';
  /** Users of the auth file besides postgres. */
  users?: readonly string[];
}

export interface PgBouncer {
  port: number;
  /** A DSN for `database` through the pooler. */
  dsn(database?: string): string;
  stop(): Promise<void>;
}

/** Whether the pgbouncer binary is installed (the Debian package `pgbouncer`). */
export async function hasPgBouncer(): Promise<boolean> {
  const result = await exec('pgbouncer', ['--version']).catch(() => undefined);
  return result?.code === 0;
}

export function startPgBouncer(options: PgBouncerOptions): Promise<PgBouncer> {
  return withFreePort((port) => startOn(port, options));
}

async function startOn(port: number, options: PgBouncerOptions): Promise<PgBouncer> {
  const user = await postgresOsUser();
  const dir = await mkdtemp(join(tmpdir(), 'bansho-pgbouncer-'));
  const ini = join(dir, 'pgbouncer.ini');
  const users = join(dir, 'users.txt');
  await writeFile(users, ['postgres', ...(options.users ?? [])].map((name) => `"${name}" ""\n`).join(''));
  const backend = `host=${options.backend.host} port=${options.backend.port}`;
  const databases = Object.entries(options.databases ?? { '*': '' }).map(([name, connection]) =>
    `${name} = ${backend} ${connection}`.trimEnd(),
  );
  await writeFile(
    ini,
    [
      '[databases]',
      ...databases,
      '[pgbouncer]',
      `listen_addr = ${LOOPBACK}`,
      `listen_port = ${port}`,
      'unix_socket_dir =',
      `auth_type = ${options.authType ?? 'trust'}`,
      `auth_file = ${users}`,
      `pool_mode = ${options.poolMode ?? 'transaction'}`,
      `default_pool_size = ${options.poolSize ?? 2}`,
      'max_client_conn = 200',
      '',
    ].join('\n'),
  );
  if (user) await Promise.all([dir, ini, users].map((path) => chown(path, user.uid, user.gid)));
  const daemon = spawnDaemon('pgbouncer', [ini], {
    env: cleanEnv(),
    cwd: dir,
    ...(user ? { user } : {}),
    killSignal: 'SIGKILL',
    dir,
  });
  try {
    await daemon.waitForOutput(/process up/, 10_000);
  } catch (error) {
    await daemon.stop();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    port,
    dsn: (database = 'postgres') => `postgres://postgres@${LOOPBACK}:${port}/${encodeURIComponent(database)}`,
    stop: daemon.stop,
  };
}
