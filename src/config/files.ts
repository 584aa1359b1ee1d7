import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parse as parseDotenv } from 'dotenv';
import { configError } from '../errors.js';
import { quoteTyped } from '../redact.js';

import type { Config, Env } from './load.js';
import type { PostgresTarget } from './postgres-dsn.js';
import type { RedisTarget } from './redis-url.js';

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
