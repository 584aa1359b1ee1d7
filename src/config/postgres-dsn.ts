import { configError } from '../errors.js';
import { MASK, quoteTyped } from '../redact.js';
import { decodePart, displayAddress, parseHost, parseUrl, type Setting } from './url.js';

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
