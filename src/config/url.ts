import { configError } from '../errors.js';

export interface Setting {
  value: string;
  /** Names the source in error messages: `--redis-url`, `REDIS_URL` or `REDIS_URL (from .env)`. */
  source: string;
}

/**
 * Parses a URL with one of `schemes` (without the colon) without ever echoing it: a
 * malformed URL may still hold a password.
 */
export function parseUrl(setting: Setting, shape: string, schemes: readonly string[]): URL {
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
export function atAfterHost(setting: Setting): Error {
  return configError(
    `${setting.source} has an "@" after its host: in a password, percent-encode "/", "?" and "#" (%2F, %3F, %23)`,
  );
}

export function parsePort(url: URL, setting: Setting, fallback: number): number {
  // WHATWG URL has already refused ports outside 0-65535; 0 is the one left to refuse.
  if (url.port === '') return fallback;
  const port = Number(url.port);
  if (port < 1) throw configError(`${setting.source} has port ${url.port}: expected 1-65535`);
  return port;
}

export function parseHost(url: URL, setting: Setting): string {
  // URL keeps IPv6 literals in brackets; sockets want them bare.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw configError(`${setting.source} has no host`);
  return host;
}

export function decodePart(part: string, what: string, setting: Setting): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw configError(`${setting.source} has a ${what} with invalid percent-encoding`);
  }
}

export function displayHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** "host:port" as people read it, an IPv6 literal in brackets: "[::1]:6379". */
export function displayAddress(node: { host: string; port: number }): string {
  return `${displayHost(node.host)}:${node.port}`;
}
