/**
 * Throwaway certificates made with the openssl CLI: a self-signed CA and a
 * server certificate for 127.0.0.1 / ::1 / localhost signed by it.
 *
 * EC P-256 keys rather than RSA: key generation takes milliseconds instead of
 * a noticeable fraction of a second, and Redis, PostgreSQL and Node accept them.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, run } from './process.js';

export interface TlsFiles {
  /** Directory holding all the files below (mode 0755, files 0644). */
  dir: string;
  /** CA certificate (PEM) to trust on the client side. */
  caCert: string;
  /** CA private key, for tests that want to sign client certificates. */
  caKey: string;
  /** Server certificate (PEM) signed by the CA. */
  cert: string;
  /** Server private key (PEM, unencrypted). */
  key: string;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const DAYS = '825';

/** Server certificate extensions: the SAN is what clients verify the host against. */
const DEFAULT_SUBJECT_ALT_NAME = 'IP:127.0.0.1, IP:::1, DNS:localhost';

function serverExtensions(subjectAltName: string): string {
  return [
    'basicConstraints = critical, CA:FALSE',
    'keyUsage = critical, digitalSignature, keyEncipherment',
    'extendedKeyUsage = serverAuth',
    `subjectAltName = ${subjectAltName}`,
  ].join('\n');
}

/**
 * Creates a new CA and a server certificate signed by it. Each call makes an
 * independent CA, so two calls give a "wrong CA" for each other.
 *
 * Without `dir` the files go to a temp dir that is removed when the process exits.
 * `subjectAltName` (default: 127.0.0.1, ::1 and localhost) is what clients verify the host against.
 */
export async function makeTlsFiles(
  dir?: string,
  options: { subjectAltName?: string } = {},
): Promise<TlsFiles> {
  const target = await prepareDir(dir, 'bansho-tls-');
  const { caCert, caKey } = await makeCa(target);
  const cert = join(target, 'server.crt');
  const key = join(target, 'server.key');
  const csr = join(target, 'server.csr');
  const extFile = join(target, 'server.ext');

  await openssl(['req', '-new', ...EC_KEY], ['-keyout', key, '-out', csr], ['-subj', '/CN=localhost']);
  await writeFile(extFile, `${serverExtensions(options.subjectAltName ?? DEFAULT_SUBJECT_ALT_NAME)}\n`);
  await openssl(
    ['x509', '-req', '-in', csr, '-out', cert],
    ['-CA', caCert, '-CAkey', caKey, '-set_serial', randomSerial()],
    ['-days', DAYS, '-sha256', '-extfile', extFile],
  );
  await Promise.all([rm(csr), rm(extFile)]);
  await makeWorldReadable([caCert, caKey, cert, key]);
  return { dir: target, caCert, caKey, cert, key };
}

/** A client certificate and its key, for servers that require one (mutual TLS). */
export interface ClientCertificate {
  /** Client certificate (PEM) signed by the CA, for `commonName`. */
  cert: string;
  /** Its private key (PEM, unencrypted, mode 0600 as libpq wants it). */
  key: string;
}

/**
 * A client certificate for mutual TLS, signed by the CA of `tls` (or by `ca`): its CN is the
 * user name, which PostgreSQL's `cert` authentication compares with the role logging in.
 */
export async function makeClientCertificate(
  tls: Pick<TlsFiles, 'dir' | 'caCert' | 'caKey'>,
  commonName = 'client',
): Promise<ClientCertificate> {
  const stem = join(tls.dir, `client-${commonName}-${randomBytes(3).toString('hex')}`);
  const cert = `${stem}.crt`;
  const key = `${stem}.key`;
  const csr = `${stem}.csr`;
  const extFile = `${stem}.ext`;
  await openssl(['req', '-new', ...EC_KEY], ['-keyout', key, '-out', csr], ['-subj', `/CN=${commonName}`]);
  await writeFile(
    extFile,
    [
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      'extendedKeyUsage = clientAuth',
      '',
    ].join('\n'),
  );
  await openssl(
    ['x509', '-req', '-in', csr, '-out', cert],
    ['-CA', tls.caCert, '-CAkey', tls.caKey, '-set_serial', randomSerial()],
    ['-days', DAYS, '-sha256', '-extfile', extFile],
  );
  await Promise.all([rm(csr), rm(extFile)]);
  await chmod(cert, 0o644);
  await chmod(key, 0o600);
  return { cert, key };
}

/** A CA unrelated to any other, with its key, to sign certificates a server does not trust. */
export async function makeOtherCaFiles(dir?: string): Promise<Pick<TlsFiles, 'dir' | 'caCert' | 'caKey'>> {
  const target = await prepareDir(dir, 'bansho-other-ca-');
  const { caCert, caKey } = await makeCa(target);
  await makeWorldReadable([caCert, caKey]);
  return { dir: target, caCert, caKey };
}

/** The certificate path of a brand-new CA unrelated to any other: for "wrong CA" tests. */
export async function makeOtherCa(dir?: string): Promise<string> {
  return (await makeOtherCaFiles(dir)).caCert;
}

async function makeCa(dir: string): Promise<{ caCert: string; caKey: string }> {
  const caCert = join(dir, 'ca.crt');
  const caKey = join(dir, 'ca.key');
  await openssl(
    ['req', '-x509', '-new', ...EC_KEY],
    ['-keyout', caKey, '-out', caCert, '-days', DAYS],
    // A random CN keeps independent CAs distinguishable in verification errors.
    ['-subj', `/CN=bansho test CA ${randomBytes(4).toString('hex')}`],
    ['-addext', 'basicConstraints = critical, CA:TRUE'],
    ['-addext', 'keyUsage = critical, keyCertSign, cRLSign'],
  );
  return { caCert, caKey };
}

/** The dir must be traversable by the postgres OS user, which reads the server files. */
async function prepareDir(dir: string | undefined, prefix: string): Promise<string> {
  const target = dir ?? (await makeTempDir(prefix));
  await mkdir(target, { recursive: true });
  await chmod(target, 0o755);
  return target;
}

/** Test-only material: readable by every OS user (PostgreSQL copies the key and tightens it). */
async function makeWorldReadable(files: string[]): Promise<void> {
  await Promise.all(files.map((file) => chmod(file, 0o644)));
}

/** Runs openssl with arguments given in readable groups (flag + value pairs). */
async function openssl(...groups: string[][]): Promise<void> {
  await run('openssl', groups.flat());
}

function randomSerial(): string {
  // Positive 63-bit serial: clear the top bit so it is never read as negative.
  const bytes = randomBytes(8);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return `0x${bytes.toString('hex')}`;
}
