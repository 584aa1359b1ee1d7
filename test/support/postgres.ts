/**
 * Throwaway PostgreSQL clusters on loopback ports.
 *
 * initdb is the slow part (1-2 s), so it runs once per machine into a cached
 * template directory that each instance copies. PostgreSQL refuses to run as
 * root, so when we are root every server-side command runs as the `postgres`
 * OS user and the files it touches are chowned to it.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync } from 'node:fs';
import { chmod, chown, copyFile, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOOPBACK, withFreePort } from './net.js';
import { cleanEnv, type Daemon, type OsUser, run, spawnDaemon } from './process.js';
import type { TlsFiles } from './tls.js';

export interface PostgresOptions {
  /** ssl=on with this certificate and key (clients may still connect without TLS). */
  ssl?: TlsFiles;
  /**
   * max_connections. superuser_reserved_connections is then set to 0, so the
   * limit is exactly this for every role, including the postgres superuser that
   * query() uses.
   */
  maxConnections?: number;
  /** A role that must log in with scram-sha-256 over TCP; every other role is trusted. */
  passwordUser?: { name: string; password: string };
  /**
   * A role that must log in over TLS with a client certificate signed by `ssl`'s CA whose CN
   * is its name (pg_hba `hostssl … cert`); needs `ssl`. Every other role is trusted.
   */
  certUser?: string;
  /** Extra server settings, applied last (they override the defaults). */
  settings?: Record<string, string>;
  /**
   * Start as a hot standby in recovery (standby.signal, no primary to follow): it serves
   * read-only sessions and pg_is_in_recovery() is true, as on a real replica.
   */
  standby?: boolean;
}

/** Anything reachable as a postgres server: a throwaway one or the one in BANSHO_TEST_POSTGRES_DSN. */
export interface PostgresEndpoint {
  host: string;
  port: number;
  /** Connection URL for `database` (by default the server's default database). */
  dsn(database?: string): string;
  /** Creates a fresh, uniquely named database and returns its name. */
  createDatabase(prefix?: string): Promise<string>;
  /** Runs SQL with `psql -At` (one statement at a time) and returns its stdout. For test setup. */
  query(sql: string, database?: string): Promise<string>;
  stop(): Promise<void>;
}

export interface PostgresServer extends PostgresEndpoint {
  host: typeof LOOPBACK;
  /**
   * The directory of the server's Unix-domain socket (`.s.PGSQL.<port>`): the instance dir,
   * owned by the postgres OS user with mode 0700, so only root or that user can connect through it.
   */
  socketDir: string;
  /** The server's recent log output (its last 16,000 characters). */
  log(): string;
}

const READY_TIMEOUT_MS = 30_000;
/** Bump when the template's initdb options change, so stale templates are not reused. */
const TEMPLATE_FORMAT = 2;

export function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  validateOptions(options);
  return withFreePort((port) => startPostgresOn(port, options));
}

async function startPostgresOn(port: number, options: PostgresOptions): Promise<PostgresServer> {
  const [bin, user, template] = await Promise.all([pgBinDir(), postgresOsUser(), pgTemplate()]);
  // The instance dir holds the data dir and the unix socket; both belong to postgres.
  const dir = await mkdtemp(join(instanceRoot(), 'bansho-pg-'));
  let daemon: Daemon;
  try {
    await chownTo(user, dir);
    const data = join(dir, 'data');
    // cp -a keeps the template's owner (postgres) and its 0700 mode, which postgres insists on.
    await run('cp', ['-a', template, data]);
    await writeFile(join(data, 'pg_hba.conf'), hbaConf(options.passwordUser, options.certUser));
    if (options.ssl) await installServerCert(options.ssl, data, user);
    if (options.standby) {
      await writeFile(join(data, 'standby.signal'), '');
      await chownTo(user, join(data, 'standby.signal'));
    }
    daemon = spawnDaemon(join(bin, 'postgres'), ['-D', data, ...settingArgs(port, dir, options)], {
      env: cleanEnv(),
      cwd: dir,
      ...(user ? { user } : {}),
      // SIGQUIT is what `pg_ctl stop -m immediate` sends: no checkpoint, exits at once.
      killSignal: 'SIGQUIT',
      dir,
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  const server: PostgresServer = {
    host: LOOPBACK,
    port,
    socketDir: dir,
    ...psqlClient(
      (database = 'postgres') => `postgres://postgres@${LOOPBACK}:${port}/${encodeURIComponent(database)}`,
      cleanEnv(),
    ),
    log: daemon.output,
    stop: daemon.stop,
  };
  try {
    await daemon.waitForOutput(
      /database system is ready to accept (read-only )?connections/,
      READY_TIMEOUT_MS,
    );
    if (options.passwordUser) {
      const { name, password } = options.passwordUser;
      // password_encryption=scram-sha-256 makes this store a SCRAM verifier.
      await server.query(`CREATE ROLE ${quoteIdent(name)} LOGIN PASSWORD ${quoteLiteral(password)}`);
    }
    if (options.certUser) await server.query(`CREATE ROLE ${quoteIdent(options.certUser)} LOGIN SUPERUSER`);
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  return server;
}

/**
 * Where instance data dirs go: tmpfs when there is one. Copying the ~30 MB
 * template and every CREATE DATABASE write real files, and on this machine's
 * ext4 /tmp that copy alone took ~0.8 s versus ~0.05 s on /dev/shm.
 */
function instanceRoot(): string {
  const fromEnv = process.env.BANSHO_TEST_TMPDIR;
  if (fromEnv) return fromEnv;
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

function validateOptions(options: PostgresOptions): void {
  // Kept simple so the names need no quoting in pg_hba.conf.
  for (const name of [options.passwordUser?.name, options.certUser]) {
    if (name !== undefined && !/^[a-z_][a-z0-9_]*$/.test(name)) {
      throw new Error(`role names must be plain lower-case identifiers, got ${JSON.stringify(name)}`);
    }
  }
  if (options.certUser && !options.ssl) throw new Error('certUser needs ssl');
}

function settingArgs(port: number, socketDir: string, options: PostgresOptions): string[] {
  const settings: Record<string, string> = {
    listen_addresses: LOOPBACK,
    port: String(port),
    unix_socket_directories: socketDir,
    // Durability is pointless for throwaway clusters; these make writes and CREATE DATABASE cheap.
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    shared_buffers: '16MB',
    password_encryption: 'scram-sha-256',
    // Readiness is detected from the English log line.
    lc_messages: 'C',
    log_min_messages: 'warning',
  };
  if (options.maxConnections !== undefined) {
    settings.max_connections = String(options.maxConnections);
    settings.superuser_reserved_connections = '0';
  }
  if (options.ssl) {
    settings.ssl = 'on';
    settings.ssl_cert_file = 'server.crt';
    settings.ssl_key_file = 'server.key';
    // The CA that client certificates must chain to.
    settings.ssl_ca_file = 'root.crt';
  }
  Object.assign(settings, options.settings);
  return Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]);
}

/**
 * Trust everyone over loopback, except the password role, which must use SCRAM, and the
 * certificate role, which must present a client certificate over TLS (lines match top-down).
 */
function hbaConf(passwordUser: PostgresOptions['passwordUser'], certUser: string | undefined): string {
  const lines = ['# TYPE  DATABASE  USER  ADDRESS  METHOD', 'local all all trust'];
  if (passwordUser) {
    lines.push(`host all ${passwordUser.name} 127.0.0.1/32 scram-sha-256`);
    lines.push(`host all ${passwordUser.name} ::1/128 scram-sha-256`);
  }
  if (certUser) {
    lines.push(`hostssl all ${certUser} 127.0.0.1/32 cert`, `hostssl all ${certUser} ::1/128 cert`);
    lines.push(`host all ${certUser} 127.0.0.1/32 reject`, `host all ${certUser} ::1/128 reject`);
  }
  lines.push('host all all 127.0.0.1/32 trust', 'host all all ::1/128 trust');
  return `${lines.join('\n')}\n`;
}

/** PostgreSQL refuses a key that is readable by others or not owned by the server's user. */
async function installServerCert(tls: TlsFiles, data: string, user: OsUser | undefined): Promise<void> {
  const cert = join(data, 'server.crt');
  const key = join(data, 'server.key');
  const ca = join(data, 'root.crt');
  await copyFile(tls.cert, cert);
  await copyFile(tls.key, key);
  await copyFile(tls.caCert, ca);
  await chmod(key, 0o600);
  await chownTo(user, cert, key, ca);
}

// ---------------------------------------------------------------------------
// Template cluster

let templatePromise: Promise<string> | undefined;

/** Path of the machine-wide initdb template, creating it on first use. */
function pgTemplate(): Promise<string> {
  templatePromise ??= createTemplate();
  return templatePromise;
}

async function createTemplate(): Promise<string> {
  const [bin, user, major] = await Promise.all([pgBinDir(), postgresOsUser(), pgMajorVersion()]);
  const template = join(tmpdir(), `bansho-test-pg-template-${major}-v${TEMPLATE_FORMAT}`);
  if (existsSync(join(template, 'PG_VERSION'))) return template;

  // initdb into a private staging dir and rename it into place: the rename is
  // atomic, so concurrent test files never see a half-written template.
  const staging = await mkdtemp(`${template}.staging-`);
  try {
    await chownTo(user, staging);
    const data = join(staging, 'data');
    await run(
      join(bin, 'initdb'),
      // 1 MB WAL segments instead of 16 MB: less to copy per instance.
      [
        '-D',
        data,
        '-U',
        'postgres',
        '--auth=trust',
        '--encoding=UTF8',
        '--no-locale',
        '--no-sync',
        '--wal-segsize=1',
      ],
      { env: cleanEnv(), cwd: staging, ...(user ? { user } : {}), timeoutMs: 120_000 },
    );
    try {
      await rename(data, template);
    } catch (error) {
      // Another process won the race; its template is as good as ours.
      if (!isErrno(error, 'ENOTEMPTY') && !isErrno(error, 'EEXIST')) throw error;
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return template;
}

// ---------------------------------------------------------------------------
// Installation and OS user

let binDirPromise: Promise<string> | undefined;

/** Directory with initdb/postgres/psql: $BANSHO_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin. */
export function pgBinDir(): Promise<string> {
  binDirPromise ??= findPgBinDir();
  return binDirPromise;
}

async function findPgBinDir(): Promise<string> {
  const fromEnv = process.env.BANSHO_PG_BINDIR;
  if (fromEnv) return fromEnv;
  const root = '/usr/lib/postgresql';
  const versions = (await readdir(root).catch(() => [])).filter((name) => /^\d+$/.test(name));
  versions.sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = join(root, version, 'bin');
    if (existsSync(join(bin, 'postgres'))) return bin;
  }
  // Other layouts (e.g. Homebrew, RPM) put pg_config on PATH.
  const { stdout } = await run('pg_config', ['--bindir']);
  return stdout.trim();
}

/** Path of a PostgreSQL client or server program (psql, pg_isready, ...). */
export async function pgBinary(name: string): Promise<string> {
  return join(await pgBinDir(), name);
}

async function pgMajorVersion(): Promise<string> {
  const { stdout } = await run(await pgBinary('postgres'), ['--version']);
  const match = /\(PostgreSQL\) (\d+)/.exec(stdout);
  if (!match?.[1]) throw new Error(`cannot parse postgres --version output: ${stdout}`);
  return match[1];
}

let osUserPromise: Promise<OsUser | undefined> | undefined;

/** The `postgres` OS user when we are root (postgres will not run as root), else undefined: run as ourselves. */
export function postgresOsUser(): Promise<OsUser | undefined> {
  osUserPromise ??= findPostgresOsUser();
  return osUserPromise;
}

async function findPostgresOsUser(): Promise<OsUser | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = await readFile('/etc/passwd', 'utf8');
  const fields = passwd
    .split('\n')
    .map((line) => line.split(':'))
    .find((entry) => entry[0] === 'postgres');
  if (!fields) throw new Error('running as root, but there is no "postgres" OS user to run PostgreSQL as');
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

async function chownTo(user: OsUser | undefined, ...paths: string[]): Promise<void> {
  if (!user) return;
  await Promise.all(paths.map((path) => chown(path, user.uid, user.gid)));
}

// ---------------------------------------------------------------------------
// psql-based client (setup only: the code under test brings its own driver)

/** createDatabase/query/dsn on top of psql, for any server reachable by URL. */
function psqlClient(
  dsn: (database?: string) => string,
  env: NodeJS.ProcessEnv,
): Pick<PostgresEndpoint, 'dsn' | 'createDatabase' | 'query'> {
  const query = async (sql: string, database?: string): Promise<string> => {
    // -f - (stdin) rather than -c: statements run one by one, so CREATE DATABASE
    // may follow other statements (it cannot run inside -c's implicit transaction).
    const { stdout } = await run(
      await psqlPath(),
      ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', dsn(database), '-f', '-'],
      { input: sql, env: { PGCONNECT_TIMEOUT: '10', ...env } },
    );
    return stdout;
  };
  const createDatabase = async (prefix = 'test'): Promise<string> => {
    const name = uniqueDatabaseName(prefix);
    await query(`CREATE DATABASE ${quoteIdent(name)}`);
    return name;
  };
  return { dsn, query, createDatabase };
}

async function psqlPath(): Promise<string> {
  try {
    const path = await pgBinary('psql');
    if (existsSync(path)) return path;
  } catch {
    // No local installation found: fall back to PATH.
  }
  return 'psql';
}

/** Wraps an existing server (BANSHO_TEST_POSTGRES_DSN) with its own credentials; stop() leaves it running. */
export function postgresAt(url: string): PostgresEndpoint {
  const parsed = new URL(url);
  const dsn = (database?: string): string => {
    if (database === undefined) return url;
    const withDatabase = new URL(url);
    withDatabase.pathname = `/${encodeURIComponent(database)}`;
    return withDatabase.toString();
  };
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(parsed.port || 5432),
    // The caller's PG* variables (PGPASSWORD, PGSSLROOTCERT, ...) may be needed to reach it.
    ...psqlClient(dsn, process.env),
    stop: async () => {},
  };
}

function uniqueDatabaseName(prefix: string): string {
  const base = prefix
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 40);
  return `${base}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
}

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Standard SQL literal; standard_conforming_strings (on by default) makes backslashes plain. */
export function quoteLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

function isErrno(error: unknown, code: string): boolean {
  return error instanceof Error && (error as NodeJS.ErrnoException).code === code;
}
