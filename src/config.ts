import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseDotenv } from 'dotenv';
import { parseDuration } from './duration.js';
import { configError } from './errors.js';
import { MASK, quoteTyped } from './redact.js';

/** Used when neither a flag, the environment nor `.env` names a server. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
export const DEFAULT_POSTGRES_DSN = 'postgres://postgres@127.0.0.1:5432/postgres';
/** Each check's budget, from start to closed socket, when `--timeout` is not given. */
export const DEFAULT_TIMEOUT_MS = 5000;
/** First pause between `--wait` attempts when `--interval` is not given. */
export const DEFAULT_INTERVAL_MS = 250;

/** Flags as commander hands them over: no defaults, so that absence is visible here. */
export interface CliOptions {
  redisUrl?: string;
  postgresDsn?: string;
  envFile?: string;
  timeout?: string;
  wait?: string;
  interval?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  strict?: boolean;
  dryRun?: boolean;
  /** False with `--no-write-probe`; commander sets true otherwise. */
  writeProbe?: boolean;
}

export type Env = Readonly<Record<string, string | undefined>>;

export interface RedisTarget {
  /** The URL as shown to people: password masked. */
  display: string;
  /** With `path`: the socket path too, for messages. */
  host: string;
  /** With `path`: 0. */
  port: number;
  /** unix://: the Unix-domain socket to connect to instead of host and port. */
  path?: string;
  tls: boolean;
  /** rediss:// only: the TLS files the URL names (ssl_ca_certs, ssl_certfile, ssl_keyfile). */
  tlsFiles?: RedisTlsFiles;
  /** Their contents, read once before any connection by `readRedisTlsFiles`. */
  tlsPem?: { ca?: string; cert?: string; key?: string };
  username?: string;
  password?: string;
  /** Logical database selected after connect (the URL's path). */
  database: number;
  /**
   * Several comma-separated URLs: the seed nodes of a Redis Cluster, in order (the first is
   * `host`/`port`). A single URL may still turn out to be a cluster node; the check finds out.
   */
  seeds?: readonly RedisNode[];
  /** redis+sentinel://: the master to resolve through these sentinels (the first is `host`/`port`). */
  sentinel?: { masterName: string; sentinels: readonly RedisNode[] };
}

export interface RedisNode {
  host: string;
  port: number;
}

/** Paths of PEM files named by a rediss:// URL, as redis-py names its query parameters. */
export interface RedisTlsFiles {
  /** ssl_ca_certs: the CA certificates that verify the server's certificate, instead of Node's. */
  caCerts?: string;
  /** ssl_certfile: a client certificate, for servers that require one (tls-auth-clients yes). */
  certFile?: string;
  /** ssl_keyfile: the client certificate's private key, unencrypted. */
  keyFile?: string;
  /** Where the URL came from (`REDIS_URL`, `--redis-url`), for messages. */
  source: string;
}

export type SslMode = 'disable' | 'allow' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';

/** libpq's target_session_attrs, as postgres.js implements it. */
export type TargetSessionAttrs =
  | 'any'
  | 'read-write'
  | 'read-only'
  | 'primary'
  | 'standby'
  | 'prefer-standby';

export interface PostgresHost {
  /** A host name or IP address; for a Unix-domain socket, the directory that holds it. */
  host: string;
  port: number;
  /** Set when `host` is a socket directory (it starts with `/`): the socket, `<host>/.s.PGSQL.<port>`. */
  socketPath?: string;
}

export interface PostgresTarget {
  display: string;
  /** The first host of `hosts`. */
  host: string;
  port: number;
  /** Every host of the DSN, in order (`postgres://u@h1:5432,h2:5432/db`); tried in turn. */
  hosts: readonly PostgresHost[];
  /** The DSN's target_session_attrs; unset means read-write with several hosts, else any. */
  targetSessionAttrs?: TargetSessionAttrs;
  database: string;
  username: string;
  password?: string;
  sslMode: SslMode;
  /** Path of a PEM file with the CA certificates that verify-ca / verify-full trust. */
  sslRootCert?: string;
  /** The contents of `sslRootCert`, read once at start-up by `readConfigFiles`. */
  caPem?: string;
  /** Paths of the client certificate and its key (PEM) for mutual TLS; given together. */
  sslCert?: string;
  sslKey?: string;
  /** The contents of `sslCert` and `sslKey`, read at start-up when TLS may be used. */
  certPem?: string;
  keyPem?: string;
  applicationName: string;
}

export type OutputMode = 'human' | 'json' | 'quiet';

export interface Config {
  redis?: RedisTarget;
  postgres?: PostgresTarget;
  /** Hard bound for each check, in milliseconds. */
  timeoutMs: number;
  /** With `--wait`: keep retrying for this many milliseconds. */
  waitMs?: number;
  /** With `--wait`: the first pause between attempts, in milliseconds; it doubles up to a cap. */
  intervalMs: number;
  output: OutputMode;
  verbose: boolean;
  strict: boolean;
  /** `ensure-schema --dry-run`: plan and print, change nothing. */
  dryRun: boolean;
  /** Whether the Redis check writes (and deletes) a short-lived key; off with `--no-write-probe`. */
  writeProbe: boolean;
  /** Whether the report on stdout is coloured (see decideColor); stderr's lines never are. */
  color: boolean;
  /** Whether `--wait` redraws one progress line in place: stderr is a terminal that is not TERM=dumb. */
  redrawProgress: boolean;
}

export interface ConfigInput {
  options: CliOptions;
  /** The real environment (process.env). */
  env: Env;
  /** Variables read from the `.env` file; they never override `env`. */
  fileEnv: Env;
  /** Whether stdout is a terminal: colour is only for people. */
  isTTY: boolean;
  /** Whether stderr is a terminal, where `--wait` may redraw its progress line; default false. */
  isStderrTTY?: boolean;
}

export interface Needs {
  redis: boolean;
  postgres: boolean;
}

interface Setting {
  value: string;
  /** Names the source in error messages: `--redis-url`, `REDIS_URL` or `REDIS_URL (from .env)`. */
  source: string;
}

/**
 * Resolves every source of configuration, strongest first: flags, the real environment,
 * the `.env` file, defaults. Pure: it reads nothing but its arguments, so it is tested
 * without touching `process.env`. Only what `needs` names is validated, so that a broken
 * POSTGRES_DSN does not fail `ping-redis`. Throws a `config` BanshoError on bad input.
 */
export function loadConfig(input: ConfigInput, needs: Needs): Config {
  const { options, env, fileEnv } = input;
  const pick = (flagValue: string | undefined, flag: string, variable: string, fallback: string): Setting => {
    if (flagValue !== undefined) return { value: flagValue, source: flag };
    if (env[variable] !== undefined) return { value: env[variable], source: variable };
    if (fileEnv[variable] !== undefined)
      return { value: fileEnv[variable], source: `${variable} (from .env)` };
    return { value: fallback, source: `the default ${variable}` };
  };

  if (options.json && options.quiet) throw configError('--json and --quiet cannot be used together');

  const config: Config = {
    timeoutMs:
      options.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(options.timeout, '--timeout'),
    intervalMs:
      options.interval === undefined ? DEFAULT_INTERVAL_MS : parseDuration(options.interval, '--interval'),
    output: options.json ? 'json' : options.quiet ? 'quiet' : 'human',
    verbose: options.verbose === true,
    strict: options.strict === true,
    dryRun: options.dryRun === true,
    writeProbe: options.writeProbe !== false,
    color: decideColor(env, input.isTTY),
    redrawProgress: input.isStderrTTY === true && env.TERM !== 'dumb',
  };
  if (options.wait !== undefined) config.waitMs = parseDuration(options.wait, '--wait');
  else if (options.interval !== undefined) throw configError('--interval only makes sense with --wait');

  if (needs.redis) {
    config.redis = parseRedisTarget(pick(options.redisUrl, '--redis-url', 'REDIS_URL', DEFAULT_REDIS_URL));
  }
  if (needs.postgres) {
    config.postgres = parsePostgresDsn(
      pick(options.postgresDsn, '--postgres-dsn', 'POSTGRES_DSN', DEFAULT_POSTGRES_DSN),
    );
  }
  return config;
}

function isSet(value: string | undefined): boolean {
  return value !== undefined && value !== '';
}

/**
 * Colour as chalk decides it, with NO_COLOR first: NO_COLOR set (not empty) turns it off;
 * FORCE_COLOR `0` or `false` turns it off, and `1`-`3`, `true` or empty turns it on, on a pipe
 * too; otherwise colour is for a terminal that is not TERM=dumb.
 */
function decideColor(env: Env, isTTY: boolean): boolean {
  if (isSet(env.NO_COLOR)) return false;
  const force = env.FORCE_COLOR;
  if (force === '0' || force === 'false') return false;
  if (force === '' || force === 'true' || /^[1-9]\d*$/.test(force ?? '')) return true;
  return isTTY && env.TERM !== 'dumb';
}

/**
 * Parses a URL with one of `schemes` (without the colon) without ever echoing it: a
 * malformed URL may still hold a password.
 */
function parseUrl(setting: Setting, shape: string, schemes: readonly string[]): URL {
  if (setting.value.trim() === '') throw configError(`${setting.source} is empty: expected ${shape}`);
  let url: URL;
  try {
    url = new URL(setting.value.trim());
  } catch {
    throw configError(`${setting.source} is not a valid URL: expected ${shape}`);
  }
  const scheme = url.protocol.slice(0, -1);
  if (!schemes.includes(scheme)) {
    const expected = schemes.map((name) => `${name}://`).join(' or ');
    // Without `://` the "scheme" is whatever came before the first colon: a user name, or worse.
    if (!setting.value.trim().toLowerCase().startsWith(`${scheme}://`))
      throw configError(`${setting.source} does not start with ${expected}`);
    throw configError(`${setting.source} has unsupported scheme "${scheme}": use ${expected}`);
  }
  if (`${url.pathname}${url.search}${url.hash}`.includes('@')) throw atAfterHost(setting);
  return url;
}

/**
 * The userinfo ends at the first `/`, `?` or `#`: an `@` after the host means a password holding
 * one of them unencoded, the rest of which would be taken as a path or parameter, and shown.
 */
function atAfterHost(setting: Setting): Error {
  return configError(
    `${setting.source} has an "@" after its host: in a password, percent-encode "/", "?" and "#" (%2F, %3F, %23)`,
  );
}

function parsePort(url: URL, setting: Setting, fallback: number): number {
  // WHATWG URL has already refused ports outside 0-65535; 0 is the one left to refuse.
  if (url.port === '') return fallback;
  const port = Number(url.port);
  if (port < 1) throw configError(`${setting.source} has port ${url.port}: expected 1-65535`);
  return port;
}

function parseHost(url: URL, setting: Setting): string {
  // URL keeps IPv6 literals in brackets; sockets want them bare.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw configError(`${setting.source} has no host`);
  return host;
}

function decodePart(part: string, what: string, setting: Setting): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw configError(`${setting.source} has a ${what} with invalid percent-encoding`);
  }
}

function displayHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** "host:port" as people read it, an IPv6 literal in brackets: "[::1]:6379". */
export function displayAddress(node: { host: string; port: number }): string {
  return `${displayHost(node.host)}:${node.port}`;
}

const REDIS_SHAPE =
  'redis://[[user]:password@]host[:port][/db] or rediss://…, several of them comma-separated (cluster seeds), redis+sentinel://[[user]:password@]host:port[,host:port…]/master, or unix://[[user]:password@]/path/to/redis.sock[?db=N]';

/**
 * REDIS_URL in any of its forms: one URL; comma-separated URLs, the seeds of a Redis Cluster
 * (credentials and TLS from the first; database 0, the only one a cluster has); or
 * redis+sentinel://…/<master-name>, the master that the listed sentinels name.
 */
export function parseRedisTarget(setting: Setting): RedisTarget {
  const value = setting.value.trim();
  if (/^rediss?\+sentinel:/i.test(value)) return parseSentinelUrl(setting);
  // A comma may be part of a socket path; a comma before another URL makes a list of seeds.
  if (/^unix:/i.test(value) && !/,\s*[a-z][a-z0-9+.-]*:\/\//i.test(value)) return parseUnixUrl(setting);
  if (!value.includes(',')) return parseRedisUrl(setting);
  const nodes = value.split(',').map((entry, index) => {
    const source = `${setting.source} (seed ${index + 1})`;
    if (entry.trim() === '')
      throw configError(`${setting.source} has an empty URL in its list of cluster seeds`);
    if (/^unix:/i.test(entry.trim()))
      throw configError(`${source} is a Unix socket: a cluster's seeds are redis:// or rediss:// URLs`);
    return parseRedisUrl({ value: entry.trim(), source });
  });
  const [first] = nodes as [RedisTarget, ...RedisTarget[]];
  for (const node of nodes) {
    if (node.tls !== first.tls) throw configError(`${setting.source} mixes redis:// and rediss:// seeds`);
    const credentials = node.username !== undefined || node.password !== undefined;
    if (credentials && (node.username !== first.username || node.password !== first.password)) {
      throw configError(
        `${setting.source} gives its seeds different credentials: a cluster has one set, give it on the first`,
      );
    }
    if (node.database !== 0)
      throw configError(`${setting.source} names database ${node.database}: a cluster has only database 0`);
    if (node.tlsFiles && !sameTlsFiles(node.tlsFiles, first.tlsFiles)) {
      throw configError(
        `${setting.source} gives its seeds different TLS files: a cluster has one set, give it on the first`,
      );
    }
  }
  const seeds = nodes.map((node) => ({ host: node.host, port: node.port }));
  const scheme = first.tls ? 'rediss' : 'redis';
  const userinfo = redisUserinfo(first.username, first.password);
  return {
    ...first,
    display: `${scheme}://${userinfo}${seeds.map(displayAddress).join(',')}${tlsQuery(first.tlsFiles)}`,
    seeds,
  };
}

function sameTlsFiles(a: RedisTlsFiles, b: RedisTlsFiles | undefined): boolean {
  return a.caCerts === b?.caCerts && a.certFile === b?.certFile && a.keyFile === b?.keyFile;
}

/** "user:***@", ":***@", "user@" or "": how a Redis URL's credentials are shown. */
function redisUserinfo(username: string | undefined, password: string | undefined): string {
  const user = encodeURIComponent(username ?? '');
  if (password !== undefined) return `${user}:${MASK}@`;
  return user ? `${user}@` : '';
}

const SENTINEL_SHAPE = 'redis+sentinel://[[user]:password@]host:port[,host:port…]/master-name';

function parseSentinelUrl(setting: Setting): RedisTarget {
  const match = /^(rediss?)\+sentinel:\/\/(?:([^/?#@]*)@)?([^/?#@]*)(\/[^?#]*)?(\?[^#]*)?$/i.exec(
    setting.value.trim(),
  );
  if (!match) throw configError(`${setting.source} is not a valid sentinel URL: expected ${SENTINEL_SHAPE}`);
  const [, scheme = 'redis', userinfo = '', list = '', path = '', query = ''] = match;
  if (path.includes('@') || query.includes('@')) throw atAfterHost(setting);
  const masterName = decodePart(path.replace(/^\//, ''), 'master name', setting);
  if (masterName === '' || masterName.includes('/')) {
    throw configError(`${setting.source} names no master: expected ${SENTINEL_SHAPE}`);
  }
  const sentinels = list.split(',').map((entry) => {
    if (entry === '') throw configError(`${setting.source} has an empty host in its list of sentinels`);
    const one = parseUrl({ value: `redis://${entry}`, source: setting.source }, SENTINEL_SHAPE, ['redis']);
    return { host: parseHost(one, setting), port: parsePort(one, setting, 26379) };
  });
  // The credentials and TLS files are the master's (and its replicas'): sentinels commonly have none.
  const credentials = parseRedisUrl({
    value: `${scheme.toLowerCase()}://${userinfo ? `${userinfo}@` : ''}placeholder${query}`,
    source: setting.source,
  });
  const [first] = sentinels as [RedisNode, ...RedisNode[]];
  const shownUser = redisUserinfo(credentials.username, credentials.password);
  return {
    display: `${scheme.toLowerCase()}+sentinel://${shownUser}${sentinels.map(displayAddress).join(',')}/${encodeURIComponent(masterName)}${tlsQuery(credentials.tlsFiles)}`,
    host: first.host,
    port: first.port,
    tls: credentials.tls,
    ...(credentials.tlsFiles ? { tlsFiles: credentials.tlsFiles } : {}),
    ...(credentials.username === undefined ? {} : { username: credentials.username }),
    ...(credentials.password === undefined ? {} : { password: credentials.password }),
    database: 0,
    sentinel: { masterName, sentinels },
  };
}

export function parseRedisUrl(setting: Setting): RedisTarget {
  const url = parseUrl(setting, REDIS_SHAPE, ['redis', 'rediss']);
  const host = parseHost(url, setting);
  const port = parsePort(url, setting, 6379);
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,9}$/.test(path)) {
    throw configError(
      `${setting.source} has path ${quoteTyped(`/${path}`)}: expected a database number such as /0`,
    );
  }
  const tls = url.protocol === 'rediss:';
  const tlsFiles = parseTlsParams(url.searchParams, tls, setting);
  const username = url.username === '' ? undefined : decodePart(url.username, 'user name', setting);
  const password = url.password === '' ? undefined : decodePart(url.password, 'password', setting);
  const database = path === '' ? 0 : Number(path);
  const userinfo = redisUserinfo(username, password);
  return {
    display: `${url.protocol}//${userinfo}${displayHost(host)}:${port}${path === '' ? '' : `/${database}`}${tlsQuery(tlsFiles)}`,
    host,
    port,
    tls,
    ...(tlsFiles ? { tlsFiles } : {}),
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    database,
  };
}

/** redis-py's names for the TLS files, and the field of RedisTlsFiles each fills. */
const TLS_PARAMS = [
  ['ssl_ca_certs', 'caCerts'],
  ['ssl_certfile', 'certFile'],
  ['ssl_keyfile', 'keyFile'],
] as const;
/** Also taken: ssl_cert_reqs=required, which Celery insists on; bansho always verifies. */
const REDIS_PARAMS = [...TLS_PARAMS.map(([param]) => param), 'ssl_cert_reqs'];

/** The TLS parameters of a redis:// or rediss:// URL; anything else in the query is refused. */
function parseTlsParams(params: URLSearchParams, tls: boolean, setting: Setting): RedisTlsFiles | undefined {
  for (const key of new Set(params.keys())) {
    if (!REDIS_PARAMS.includes(key)) {
      throw configError(
        `${setting.source} has unsupported query parameter ${quoteTyped(key)} (supported: ${REDIS_PARAMS.join(', ')})`,
      );
    }
    if (params.getAll(key).length > 1) throw configError(`${setting.source} gives ${key} more than once`);
    if (!tls) throw configError(`${setting.source} has ${key}, which only a rediss:// URL takes`);
  }
  const certReqs = params.get('ssl_cert_reqs');
  if (certReqs !== null && !/^(cert_)?required$/i.test(certReqs)) {
    throw configError(
      `${setting.source} has ssl_cert_reqs ${quoteTyped(certReqs)}: bansho always verifies the server's certificate (give its CA with ssl_ca_certs), so only "required" is taken`,
    );
  }
  const files: RedisTlsFiles = { source: setting.source };
  for (const [param, field] of TLS_PARAMS) {
    const value = params.get(param);
    if (value === '') throw configError(`${setting.source} has an empty ${param}`);
    if (value !== null) files[field] = value;
  }
  if ((files.certFile === undefined) !== (files.keyFile === undefined)) {
    throw configError(
      `${setting.source} has ${files.certFile === undefined ? 'ssl_keyfile without ssl_certfile' : 'ssl_certfile without ssl_keyfile'}: a client certificate needs both`,
    );
  }
  return files.caCerts === undefined && files.certFile === undefined ? undefined : files;
}

/** The TLS files as they are shown in a target: "?ssl_ca_certs=/etc/ca.pem". */
function tlsQuery(files: RedisTlsFiles | undefined): string {
  if (!files) return '';
  const shown = TLS_PARAMS.flatMap(([param, field]) =>
    files[field] === undefined ? [] : [`${param}=${files[field]}`],
  );
  return `?${shown.join('&')}`;
}

const UNIX_SHAPE = 'unix://[[user]:password@]/path/to/redis.sock[?db=N][&password=…]';
const UNIX_PARAMS = ['db', 'password'];

/**
 * unix://, as redis-py and node-redis write it: the socket's absolute path, credentials in
 * the userinfo (`unix://:password@/path`) or redis-py's `?password=`, the database as `?db=N`.
 */
function parseUnixUrl(setting: Setting): RedisTarget {
  // The userinfo runs to the last `@` before the path, so that an unencoded `@` in a password still parses.
  const match = /^unix:\/\/(?:([^/?#]*)@)?(\/[^?#]*)(?:\?([^#]*))?$/i.exec(setting.value.trim());
  if (!match) throw configError(`${setting.source} is not a valid unix:// URL: expected ${UNIX_SHAPE}`);
  const [, userinfo, rawPath = '', query = ''] = match;
  const path = decodePart(rawPath, 'socket path', setting);
  if (path === '/' || path.endsWith('/')) {
    throw configError(`${setting.source} names a directory, not a socket: expected ${UNIX_SHAPE}`);
  }
  const params = new URLSearchParams(query);
  for (const key of new Set(params.keys())) {
    if (!UNIX_PARAMS.includes(key)) {
      throw configError(
        `${setting.source} has unsupported query parameter ${quoteTyped(key)} (supported: ${UNIX_PARAMS.join(', ')})`,
      );
    }
    if (params.getAll(key).length > 1) throw configError(`${setting.source} gives ${key} more than once`);
  }
  const db = params.get('db');
  if (db !== null && !/^\d{1,9}$/.test(db)) {
    throw configError(`${setting.source} has db ${quoteTyped(db)}: expected a database number such as ?db=0`);
  }
  const colon = userinfo === undefined ? -1 : userinfo.indexOf(':');
  const rawUser = userinfo === undefined ? '' : colon === -1 ? userinfo : userinfo.slice(0, colon);
  const rawPassword = userinfo === undefined || colon === -1 ? '' : userinfo.slice(colon + 1);
  const username = rawUser === '' ? undefined : decodePart(rawUser, 'user name', setting);
  let password = rawPassword === '' ? undefined : decodePart(rawPassword, 'password', setting);
  const queryPassword = params.get('password');
  if (queryPassword !== null && password !== undefined) {
    throw configError(`${setting.source} gives a password twice, before the path and as ?password=`);
  }
  if (queryPassword) password = queryPassword;
  const database = db === null ? 0 : Number(db);
  return {
    display: `unix://${redisUserinfo(username, password)}${path}${db === null ? '' : `?db=${database}`}`,
    host: path,
    port: 0,
    path,
    tls: false,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    database,
  };
}

const POSTGRES_SHAPE =
  'postgres://[user[:password]@][host][:port][,host[:port]…][/database][?host=/socket/dir&sslmode=…]';
const SSL_MODES: readonly SslMode[] = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'];
const SESSION_ATTRS: readonly TargetSessionAttrs[] = [
  'any',
  'read-write',
  'read-only',
  'primary',
  'standby',
  'prefer-standby',
];
const POSTGRES_PARAMS = [
  'host',
  'port',
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslkey',
  'application_name',
  'connect_timeout',
  'target_session_attrs',
];
const DEFAULT_POSTGRES_PORT = 5432;

/** One entry of a host list before the ports are matched to it: the host, and its port as written. */
interface HostEntry {
  host: string;
  port: string;
}

/**
 * The DSN's hosts as libpq reads them: the URI's host list (`h1:5432,h2`, a socket directory
 * percent-encoded as `%2Fvar%2Frun%2Fpostgresql`, or nothing), which `?host=` and `?port=`
 * override; then one port for every host, or one per host.
 */
function parsePostgresHosts(setting: Setting, list: string, query: URLSearchParams): PostgresHost[] {
  const entries = list.split(',').map((entry) => {
    if (entry === '' && list.includes(','))
      throw configError(`${setting.source} has an empty host in its host list`);
    return parseHostEntry(entry, setting);
  });
  const hostParam = query.get('host');
  const portParam = query.get('port');
  const hosts =
    hostParam === null
      ? entries.map((entry) => entry.host)
      : hostParam.split(',').map((host) => {
          if (host === '') throw configError(`${setting.source} has an empty host in its ?host= list`);
          return host.startsWith('/') ? host : parseHostName(host, setting);
        });
  if (hosts.length === 1 && hosts[0] === '') {
    throw configError(
      `${setting.source} has no host: name one, or a Unix socket directory with ?host=/path/to/dir`,
    );
  }
  const ports = portParam === null ? entries.map((entry) => entry.port) : portParam.split(',');
  if (ports.length !== 1 && ports.length !== hosts.length) {
    throw configError(`${setting.source} has ${hosts.length} host(s) but ${ports.length} ports`);
  }
  return hosts.map((host, index) => {
    const port = parsePortText(ports.length === 1 ? (ports[0] ?? '') : (ports[index] ?? ''), setting);
    return host.startsWith('/')
      ? { host, port, socketPath: `${host.replace(/\/+$/, '')}/.s.PGSQL.${port}` }
      : { host, port };
  });
}

/** "host", "host:port", "[::1]:port", or a percent-encoded socket directory with an optional ":port". */
function parseHostEntry(entry: string, setting: Setting): HostEntry {
  if (/^%2F/i.test(entry)) {
    const [, encoded = '', port = ''] = /^([^:]*)(?::(.*))?$/.exec(entry) ?? [];
    return { host: decodePart(encoded, 'socket directory', setting), port };
  }
  if (entry === '' || entry.startsWith(':')) return { host: '', port: entry.slice(1) };
  const url = parseUrl({ value: `postgres://${entry}`, source: setting.source }, POSTGRES_SHAPE, [
    'postgres',
  ]);
  return { host: parseHost(url, setting), port: url.port };
}

/** A host name or IP address as libpq's ?host= takes it: IPv6 without brackets. */
function parseHostName(host: string, setting: Setting): string {
  const literal = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  const url = parseUrl({ value: `postgres://${literal}`, source: setting.source }, POSTGRES_SHAPE, [
    'postgres',
  ]);
  if (url.port !== '' || url.pathname !== '')
    throw configError(`${setting.source} has a ?host= entry that is not a host name or a directory`);
  return parseHost(url, setting);
}

function parsePortText(text: string, setting: Setting): number {
  if (text === '') return DEFAULT_POSTGRES_PORT;
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65535))
    throw configError(`${setting.source} has port ${text}: expected 1-65535`);
  return port;
}

/** A host as people read it: "db:5432", or the socket file "/var/run/postgresql/.s.PGSQL.5432". */
export function displayPostgresHost(host: PostgresHost): string {
  return host.socketPath ?? displayAddress(host);
}

export function parsePostgresDsn(setting: Setting): PostgresTarget {
  // libpq's host list, socket directories and an empty host are not URL syntax: WHATWG URL
  // reads everything else, from the DSN with a placeholder in place of its hosts.
  const match = /^([a-z]+:\/\/)([^/?#]*@)?([^/?#@]*)(.*)$/is.exec(setting.value.trim());
  const [, scheme = '', userinfo = '', list = '', rest = ''] = match ?? [];
  const url = parseUrl(
    match ? { ...setting, value: `${scheme}${userinfo}placeholder${rest}` } : setting,
    POSTGRES_SHAPE,
    ['postgres', 'postgresql'],
  );
  for (const key of url.searchParams.keys()) {
    if (!POSTGRES_PARAMS.includes(key)) {
      throw configError(
        `${setting.source} has unsupported query parameter ${quoteTyped(key)} (supported: ${POSTGRES_PARAMS.join(', ')})`,
      );
    }
  }
  const hosts = parsePostgresHosts(setting, list, url.searchParams);
  const [first] = hosts as [PostgresHost, ...PostgresHost[]];
  const requestedMode = url.searchParams.get('sslmode') ?? 'prefer';
  if (!SSL_MODES.includes(requestedMode as SslMode)) {
    throw configError(
      `${setting.source} has sslmode ${quoteTyped(requestedMode)}: expected one of ${SSL_MODES.join(', ')}`,
    );
  }
  const sslRootCert = url.searchParams.get('sslrootcert') || undefined;
  // As in libpq: `require` with a root certificate given verifies the chain like verify-ca.
  const sslMode = requestedMode === 'require' && sslRootCert ? 'verify-ca' : (requestedMode as SslMode);
  const sslCert = url.searchParams.get('sslcert') || undefined;
  const sslKey = url.searchParams.get('sslkey') || undefined;
  if ((sslCert === undefined) !== (sslKey === undefined)) {
    throw configError(
      `${setting.source} has ${sslCert ? 'sslcert without sslkey' : 'sslkey without sslcert'}: a client certificate needs both`,
    );
  }
  const username = url.username === '' ? 'postgres' : decodePart(url.username, 'user name', setting);
  const password = url.password === '' ? undefined : decodePart(url.password, 'password', setting);
  const path = decodePart(url.pathname.replace(/^\//, ''), 'database name', setting);
  if (path.includes('/'))
    throw configError(`${setting.source} has path ${quoteTyped(`/${path}`)}: expected one database name`);
  const database = path === '' ? username : path;
  const applicationName = url.searchParams.get('application_name') || 'bansho';
  const sessionAttrs = url.searchParams.get('target_session_attrs') ?? undefined;
  if (sessionAttrs !== undefined && !SESSION_ATTRS.includes(sessionAttrs as TargetSessionAttrs)) {
    throw configError(
      `${setting.source} has target_session_attrs ${quoteTyped(sessionAttrs)}: expected one of ${SESSION_ATTRS.join(', ')}`,
    );
  }

  const query: string[] = [];
  // A socket directory is shown as libpq's ?host= form, which reads better than percent-encoding.
  const sockets = hosts.some((host) => host.socketPath !== undefined);
  if (sockets) {
    query.push(`host=${hosts.map((host) => host.host).join(',')}`);
    if (hosts.some((host) => host.port !== DEFAULT_POSTGRES_PORT))
      query.push(`port=${hosts.map((host) => host.port).join(',')}`);
  }
  if (url.searchParams.has('sslmode')) query.push(`sslmode=${requestedMode}`);
  if (sslRootCert) query.push(`sslrootcert=${sslRootCert}`);
  if (sslCert && sslKey) query.push(`sslcert=${sslCert}`, `sslkey=${sslKey}`);
  if (sessionAttrs) query.push(`target_session_attrs=${sessionAttrs}`);
  const userinfoText = `${encodeURIComponent(username)}${password === undefined ? '' : `:${MASK}`}@`;
  const queryText = query.length > 0 ? `?${query.join('&')}` : '';
  const hostsText = sockets ? '' : hosts.map(displayAddress).join(',');
  return {
    display: `${url.protocol}//${userinfoText}${hostsText}/${encodeURIComponent(database)}${queryText}`,
    host: first.host,
    port: first.port,
    hosts,
    ...(sessionAttrs ? { targetSessionAttrs: sessionAttrs as TargetSessionAttrs } : {}),
    database,
    username,
    ...(password === undefined ? {} : { password }),
    sslMode,
    ...(sslRootCert ? { sslRootCert } : {}),
    ...(sslCert && sslKey ? { sslCert, sslKey } : {}),
    applicationName,
  };
}

/**
 * Reads the `.env` file: the one given by `--env-file` (which must exist), else `.env` in the
 * working directory when there is one. dotenv's parser only: it never touches process.env.
 */
export function readEnvFile(explicitPath: string | undefined, cwd: string): Env {
  const path = explicitPath ?? `${cwd}/.env`;
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if (explicitPath === undefined && (error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw configError(
      `--env-file ${quoteTyped(path)} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  return parseDotenv(text);
}

/** Reads the files the configuration names (TLS material for Redis and PostgreSQL), before any connection. */
export function readConfigFiles(config: Config): void {
  if (config.redis) readRedisTlsFiles(config.redis);
  if (config.postgres) readPostgresFiles(config.postgres);
}

/**
 * Reads and checks the PEM files a rediss:// target names (only such a target names any), so
 * that a missing or malformed file is a configuration error before any connection, naming its
 * parameter and path, never the URL. Fills `target.tlsPem`.
 */
export function readRedisTlsFiles(target: RedisTarget): void {
  const files = target.tlsFiles;
  if (!files || target.tlsPem) return;
  const named = (param: string, path: string) => `${files.source}'s ${param} ${quoteTyped(path)}`;
  const read = <T>(param: string, path: string, kind: string, parse: (pem: string) => T) => {
    let pem: string;
    try {
      pem = readFileSync(path, 'utf8');
    } catch (error) {
      throw configError(
        `${named(param, path)} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      );
    }
    if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem)) {
      throw configError(
        `${named(param, path)} is encrypted: bansho takes an unencrypted key (openssl pkey -in key.pem -out plain.pem)`,
      );
    }
    try {
      return { pem, parsed: parse(pem) };
    } catch {
      throw configError(`${named(param, path)} holds no PEM ${kind}`);
    }
  };
  const pem: NonNullable<RedisTarget['tlsPem']> = {};
  if (files.caCerts !== undefined) {
    pem.ca = read('ssl_ca_certs', files.caCerts, 'certificate', (text) => new X509Certificate(text)).pem;
  }
  if (files.certFile !== undefined && files.keyFile !== undefined) {
    const cert = read('ssl_certfile', files.certFile, 'certificate', (text) => new X509Certificate(text));
    const key = read('ssl_keyfile', files.keyFile, 'private key', (text) => createPrivateKey(text));
    if (!cert.parsed.checkPrivateKey(key.parsed)) {
      throw configError(
        `${named('ssl_keyfile', files.keyFile)} is not the key of ssl_certfile ${JSON.stringify(files.certFile)}`,
      );
    }
    pem.cert = cert.pem;
    pem.key = key.pem;
  }
  target.tlsPem = pem;
}

/**
 * Reads the PEM files the DSN names (sslrootcert, sslcert, sslkey) into the target, only when
 * TLS may be used: as libpq, bansho ignores them with sslmode=disable or Unix sockets only.
 */
export function readPostgresFiles(target: PostgresTarget): void {
  const tls = target.sslMode !== 'disable' && target.hosts.some((host) => host.socketPath === undefined);
  if (!tls) return;
  if (target.sslRootCert) target.caPem = readPem('sslrootcert', target.sslRootCert, 'CERTIFICATE');
  if (target.sslCert && target.sslKey) {
    target.certPem = readPem('sslcert', target.sslCert, 'CERTIFICATE');
    target.keyPem = readPem('sslkey', target.sslKey, 'PRIVATE KEY');
  }
}

/** The text of a PEM file that holds a `-----BEGIN …<label>-----` block, or a config error naming the parameter. */
function readPem(parameter: string, path: string, label: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw configError(
      `POSTGRES_DSN's ${parameter} ${quoteTyped(path)} cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  if (!new RegExp(`-----BEGIN [A-Z ]*${label}-----`).test(text)) {
    const what = label === 'CERTIFICATE' ? 'certificate' : 'private key';
    throw configError(`POSTGRES_DSN's ${parameter} ${quoteTyped(path)} holds no PEM ${what}`);
  }
  return text;
}
