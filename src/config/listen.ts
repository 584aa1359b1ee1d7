import { isIP } from 'node:net';
import { configError } from '../errors.js';
import { quoteTyped } from '../redact.js';

/** Where `bansho serve` listens when `--listen` is not given: loopback only. */
export const DEFAULT_LISTEN = { host: '127.0.0.1', port: 9840 } as const;

export interface ListenAddress {
  /** An IP address ("0.0.0.0" and "::" for every interface) or a host name. */
  host: string;
  /** 1-65535, or 0 for any free port (the server says which it got). */
  port: number;
}

/**
 * `--listen`: `host:port`, `[v6]:port`, or a port alone (on loopback). Anything else is exit 2,
 * naming the flag; a typed value is quoted only through quoteTyped.
 */
export function parseListen(text: string): ListenAddress {
  const value = text.trim();
  const shape = 'expected host:port, [ipv6]:port or a port, such as 127.0.0.1:9840 or 0.0.0.0:9840';
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]+)\]:(\d+)$/.exec(value);
  if (bracketed) {
    [, host = '', portText = ''] = bracketed;
    if (isIP(host) !== 6) throw configError(`--listen has ${quoteTyped(host)} in brackets: ${shape}`);
  } else if (/^\d+$/.test(value)) {
    host = DEFAULT_LISTEN.host;
    portText = value;
  } else {
    const colon = value.lastIndexOf(':');
    if (colon <= 0 || value.indexOf(':') !== colon)
      throw configError(`--listen is ${quoteTyped(value)}: ${shape}`);
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (!/^[a-z0-9.-]+$/i.test(host)) throw configError(`--listen has host ${quoteTyped(host)}: ${shape}`);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) {
    throw configError(`--listen has port ${quoteTyped(portText)}: expected 0-65535`);
  }
  return { host, port };
}

/** "127.0.0.1:9840", "[::1]:9840": an address as a URL's authority has it. */
export function formatListen(address: ListenAddress): string {
  return `${isIP(address.host) === 6 ? `[${address.host}]` : address.host}:${address.port}`;
}
