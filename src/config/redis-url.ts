import { configError } from '../errors.js';
import { MASK, quoteTyped } from '../redact.js';
import {
  atAfterHost,
  decodePart,
  displayAddress,
  displayHost,
  parseHost,
  parsePort,
  parseUrl,
  type Setting,
} from './url.js';

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
