import { once } from 'node:events';
import { connect, isIP, type Socket } from 'node:net';
import {
  type ConnectionOptions,
  checkServerIdentity,
  type PeerCertificate,
  connect as tlsConnect,
} from 'node:tls';
import postgres, { type Options, type Sql } from 'postgres';
import type { CheckDetail } from '../checks.js';
import {
  DEFAULT_POSTGRES_DSN,
  displayPostgresHost,
  type Env,
  type PostgresHost,
  type PostgresTarget,
  parsePostgresDsn,
  readPostgresFiles,
  type TargetSessionAttrs,
} from '../config.js';
import { startDeadline } from '../deadline.js';
import { BanshoError, configError, type FailureCode } from '../errors.js';
import { scrubPassword } from '../redact.js';
import { throwOnFailedDetail } from '../sub-checks/detail.js';
import { probePostgres } from '../sub-checks/postgres.js';
import { classifyNetworkError, errorChain } from './network-errors.js';

export type { Sql } from 'postgres';

/** Options for a PostgreSQL pool. */
export interface PostgresPoolOptions {
  /** A postgres:// URL; default: `env.POSTGRES_DSN`, then `postgres://postgres@127.0.0.1:5432/postgres`. */
  dsn?: string;
  /** Where POSTGRES_DSN is read from when `dsn` is not given; default: `process.env`. */
  env?: Env;
  /** A target already parsed (and its TLS files read) by the CLI; wins over `dsn`. */
  target?: PostgresTarget;
  /** PEM text of the CA that verify-ca / verify-full trust; default: the DSN's sslrootcert file. */
  ca?: string;
  /** TCP + TLS + startup bound in milliseconds; default 5000. */
  connectTimeoutMs?: number;
  /** An idle connection is closed after this many milliseconds; default 30000. */
  idleTimeoutMs?: number;
  /** Server-side statement_timeout in milliseconds; default 30000. 0 disables it. */
  statementTimeoutMs?: number;
  /** Server-side lock_timeout in milliseconds; default 0 (the server's own, usually none). */
  lockTimeoutMs?: number;
  // Both are startup parameters, which PgBouncer refuses: behind it, set them to 0.
  /** Pool size; default 10. */
  max?: number;
}

/** postgres.js documents a `socket` factory option that its type definitions leave out. */
type SocketFactory = () => Promise<Socket>;

/**
 * Resolves the target a library caller means: an explicit DSN, else POSTGRES_DSN, else the
 * default; the TLS files it names are read here, as the CLI reads them at start-up.
 */
export function resolvePostgresTarget(
  options: Pick<PostgresPoolOptions, 'dsn' | 'env' | 'target'> = {},
): PostgresTarget {
  if (options.target) return options.target;
  const env = options.env ?? process.env;
  const target =
    options.dsn !== undefined
      ? parsePostgresDsn({ value: options.dsn, source: 'dsn' })
      : env.POSTGRES_DSN !== undefined
        ? parsePostgresDsn({ value: env.POSTGRES_DSN, source: 'POSTGRES_DSN' })
        : parsePostgresDsn({ value: DEFAULT_POSTGRES_DSN, source: 'the default POSTGRES_DSN' });
  readPostgresFiles(target);
  return target;
}

/**
 * What verifying the server means under each sslmode, as libpq interprets it, for a TLS
 * session with `hostName`; with the client certificate when the DSN names one.
 */
function verificationFor(
  target: PostgresTarget,
  ca: string | undefined,
  hostName: string,
): ConnectionOptions {
  const client = target.certPem && target.keyPem ? { cert: target.certPem, key: target.keyPem } : {};
  switch (target.sslMode) {
    case 'verify-ca':
      // The chain must lead to the CA, whatever name the certificate carries.
      return {
        ...client,
        rejectUnauthorized: true,
        checkServerIdentity: () => undefined,
        ...(ca ? { ca } : {}),
      };
    case 'verify-full':
      // Checked against the host dialled, named explicitly: on a socket it is handed, Node
      // would otherwise check against the SNI name, or "localhost" for an IP address.
      return {
        ...client,
        rejectUnauthorized: true,
        ...(ca ? { ca } : {}),
        checkServerIdentity: (_name: string, cert: PeerCertificate) => checkServerIdentity(hostName, cert),
      };
    default:
      return { ...client, rejectUnauthorized: false };
  }
}

/** sslmode values under which a server without TLS is refused. */
const TLS_REQUIRED = new Set(['require', 'verify-ca', 'verify-full']);

/** postgres.js's own TLS, for the library's pool: libpq's sslmode mapped onto its `ssl` option. */
function postgresJsSsl(target: PostgresTarget, ca: string | undefined): Options<never>['ssl'] {
  if (target.sslMode === 'disable' || target.hosts.every((host) => host.socketPath)) return false;
  // postgres.js falls back to plain text only for the string 'prefer', which carries no certificate.
  if (!TLS_REQUIRED.has(target.sslMode)) return 'prefer';
  return verificationFor(target, ca, target.host);
}

/**
 * Creates a postgres.js pool with every timeout chosen on purpose. Connections open
 * lazily, on the first query; `await sql.end()` closes them all.
 */
export function createPostgresPool(options: PostgresPoolOptions = {}): Sql {
  return createPool(options);
}

function createPool(
  options: PostgresPoolOptions & {
    socket?: SocketFactory;
    targetSessionAttrs?: TargetSessionAttrs;
  },
): Sql {
  const target = resolvePostgresTarget(options);
  const statementTimeoutMs = options.statementTimeoutMs ?? 30_000;
  const [first] = target.hosts;
  if (!options.socket && target.hosts.length > 1 && target.hosts.some((host) => host.socketPath)) {
    throw configError(
      'createPostgresPool takes a Unix socket only as the one host of its DSN: list TCP hosts alone, or the socket alone',
    );
  }
  return postgres({
    ...(options.socket ? ({ socket: options.socket } as object) : {}),
    // postgres.js dials a Unix socket given its path; bansho's own socket factory does when it is given.
    ...(!options.socket && first?.socketPath ? { path: first.socketPath } : {}),
    // postgres.js takes lists of hosts and ports, which its type definitions leave out.
    host: target.hosts.map((entry) => entry.host) as unknown as string,
    port: target.hosts.map((entry) => entry.port) as unknown as number,
    ...(options.targetSessionAttrs && options.targetSessionAttrs !== 'any'
      ? { target_session_attrs: postgresJsSessionAttrs(options.targetSessionAttrs) }
      : {}),
    database: target.database,
    username: target.username,
    ...(target.password === undefined ? {} : { password: target.password }),
    // bansho's socket factory negotiates TLS itself, host by host.
    ssl: options.socket ? false : postgresJsSsl(target, options.ca ?? target.caPem),
    max: options.max ?? 10,
    // postgres.js counts these two in seconds.
    connect_timeout: (options.connectTimeoutMs ?? 5000) / 1000,
    idle_timeout: (options.idleTimeoutMs ?? 30_000) / 1000,
    connection: {
      application_name: target.applicationName,
      ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
      ...(options.lockTimeoutMs ? { lock_timeout: options.lockTimeoutMs } : {}),
    },
    // A health check must not print the server's NOTICEs ("relation already exists, skipping").
    onnotice: () => {},
    // Skips the array-type lookup at connect: one round trip less, and bansho sends no arrays of custom types.
    fetch_types: false,
    prepare: false,
  });
}

/**
 * libpq's read-write skips a hot standby; postgres.js's looks only at default_transaction_read_only,
 * which a standby leaves off, so it would settle on the standby. Its `primary` skips standbys;
 * a primary with default_transaction_read_only on is then reported as read_only, not skipped.
 */
function postgresJsSessionAttrs(
  attrs: Exclude<TargetSessionAttrs, 'any'>,
): Exclude<TargetSessionAttrs, 'any'> {
  return attrs === 'read-write' ? 'primary' : attrs;
}

/** Ends the pool: waits up to `graceMs` for running queries, then destroys the sockets. */
export async function closePostgres(sql: Sql, graceMs = 1000): Promise<void> {
  await sql.end({ timeout: graceMs / 1000 });
}

/** What one successful PostgreSQL check learned. */
export interface PostgresProbe {
  /** server_version, e.g. "15.20 (Debian 15.20-0+deb12u1)". */
  version: string;
  /** The sub-checks: version, primary, privileges, connections, timeouts, clock, encoding (see src/sub-checks/postgres.ts). */
  details: CheckDetail[];
  /** With several hosts in the DSN: the one that gave the session ("db2:5432"). */
  host?: string;
}

export interface PostgresCheckOptions {
  /** Hard bound for the whole check in milliseconds: resolve, connect, TLS, auth, work, close. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Overrides the DSN's target_session_attrs. */
  targetSessionAttrs?: TargetSessionAttrs | undefined;
}

/** What `work` learns about the session it runs on. */
export interface PostgresSession {
  /** The host that accepted the session ("db2:5432", or a socket file), of the DSN's list. */
  host(): string;
  /** Whether the server had started the session (sent ReadyForQuery) before anything failed. */
  started(): boolean;
  /** Whether the session's connection is TLS. */
  tls(): boolean;
  /** Whether the peer answered as PostgreSQL does, if only to the TLS request. */
  spoke(): boolean;
  /** The FATAL error the server sent before it closed the session, if it did. */
  fatal(): ServerError | undefined;
}

// ---------------------------------------------------------------------------
// The wire: bansho opens every socket of a check itself, so it sees what postgres.js does not
// tell: the key a cancel request names, and whether a statement is running.

/** What bansho learns of one session from the bytes on its own socket. */
interface SessionWire {
  /** The host dialled. */
  host: PostgresHost;
  /** Whether the session runs over TLS: its cancel request goes over TLS too. */
  tls: boolean;
  /** From BackendKeyData: what a CancelRequest for this session names. */
  key?: { pid: number; secret: number };
  /** The peer answered as PostgreSQL does (the TLS request, or a start-up message). */
  spoke: boolean;
  /** ReadyForQuery was seen: the server started the session. */
  started: boolean;
  /** Something was sent since the last ReadyForQuery: a statement may be running. */
  busy: boolean;
  /** The last FATAL error the server sent: why it closed the session, which postgres.js drops when it closes. */
  fatal?: ServerError;
}

/** An ErrorResponse's fields that bansho reports. */
export interface ServerError {
  severity: string;
  code: string;
  message: string;
}

/** The SSLRequest and CancelRequest codes of the startup phase (protocol 3.0). */
const SSL_REQUEST_CODE = 80877103;
const CANCEL_REQUEST_CODE = 80877102;
/**
 * How long a cancel request may take, from dialling to the server's close: a server (or a
 * firewall) that does not answer the cancel connection must not hold bansho's exit.
 */
export const CANCEL_TIMEOUT_MS = 500;

/**
 * Opens a connection to `host` ready for postgres.js's StartupMessage: a TCP or Unix-domain
 * socket, upgraded to TLS as sslmode asks (never over a Unix socket, as in libpq). `track`
 * is given every socket made, so that the caller can destroy them; `answered` is called on
 * the server's first byte. `tls` overrides sslmode's negotiation (for a cancel request).
 */
async function dialHost(
  target: PostgresTarget,
  host: PostgresHost,
  ca: string | undefined,
  track: (socket: Socket) => void,
  answered: () => void,
  tls?: boolean,
): Promise<{ socket: Socket; tls: boolean; negotiated: boolean }> {
  const raw = host.socketPath
    ? connect({ path: host.socketPath })
    : connect({ host: host.host, port: host.port });
  // postgres.js names the host in its connection errors after `socket.host` and `socket.port`.
  Object.assign(raw, { host: host.socketPath ?? host.host, port: host.port });
  track(raw);
  await once(raw, 'connect');
  const wantTls = tls ?? (host.socketPath === undefined && target.sslMode !== 'disable');
  if (!wantTls) return { socket: raw, tls: false, negotiated: false };
  raw.write(startupPacket(SSL_REQUEST_CODE));
  const reply = await readSslReply(raw);
  answered();
  const where = displayPostgresHost(host);
  // One byte, nothing after it: bytes sent before the handshake could be injected (CVE-2021-23222).
  if (reply.length !== 1 || (reply[0] !== 0x53 && reply[0] !== 0x4e)) {
    throw new BanshoError('protocol', `${where} did not answer the TLS request as PostgreSQL does`, {
      service: 'postgres',
    });
  }
  if (reply[0] === 0x4e) {
    if (TLS_REQUIRED.has(target.sslMode) || tls) {
      throw new BanshoError(
        'tls',
        `${where} does not accept TLS, but sslmode=${target.sslMode} requires it`,
        {
          service: 'postgres',
        },
      );
    }
    raw.resume();
    return { socket: raw, tls: false, negotiated: true };
  }
  let secure: Socket;
  try {
    secure = tlsConnect({
      socket: raw,
      ...(isIP(host.host) ? {} : { servername: host.host }),
      ...verificationFor(target, ca, host.host),
    });
  } catch (error) {
    // Node builds the TLS context here: a key that does not belong to the certificate fails now.
    throw new BanshoError(
      'tls',
      `the client certificate (sslcert) and key (sslkey) cannot be used: ${(error as Error).message}`,
      { service: 'postgres', cause: error },
    );
  }
  Object.assign(secure, { host: host.host, port: host.port });
  track(secure);
  await once(secure, 'secureConnect');
  return { socket: secure, tls: true, negotiated: true };
}

/** A startup-phase packet without a body: int32 length, int32 code. */
function startupPacket(code: number, ...words: number[]): Buffer {
  const packet = Buffer.alloc(8 + 4 * words.length);
  packet.writeInt32BE(packet.length, 0);
  packet.writeInt32BE(code, 4);
  for (const [index, word] of words.entries()) packet.writeUInt32BE(word, 8 + 4 * index);
  return packet;
}

/** The server's answer to SSLRequest; the socket is paused on it, so that nothing is lost. */
function readSslReply(socket: Socket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const settle = (settlement: () => void) => {
      socket.off('data', onData).off('error', onError).off('close', onClose);
      settlement();
    };
    const onData = (chunk: Buffer) => {
      socket.pause();
      settle(() => resolve(chunk));
    };
    const onError = (error: Error) => settle(() => reject(error));
    const onClose = () =>
      settle(() =>
        reject(Object.assign(new Error('closed before answering'), { code: 'CONNECTION_CLOSED' })),
      );
    socket.on('data', onData).on('error', onError).on('close', onClose);
  });
}

/** An ErrorResponse body: fields of a type byte and a NUL-terminated string, then a NUL. */
function parseErrorFields(body: Buffer): ServerError {
  const fields = new Map<string, string>();
  let offset = 0;
  while (offset < body.length && body[offset] !== 0) {
    const end = body.indexOf(0, offset + 1);
    if (end === -1) break;
    fields.set(String.fromCharCode(body[offset] ?? 0), body.toString('utf8', offset + 1, end));
    offset = end + 1;
  }
  return {
    // V is the severity that translation leaves alone (9.6+); S the one shown.
    severity: fields.get('V') ?? fields.get('S') ?? 'ERROR',
    code: fields.get('C') ?? '',
    message: fields.get('M') ?? '',
  };
}

/** The messages a server may open its answer to a StartupMessage with: R, E, S, K, Z, N, v. */
const STARTUP_REPLIES = new Set([0x52, 0x45, 0x53, 0x4b, 0x5a, 0x4e, 0x76]);

/**
 * Follows the server's messages on a session's socket (type byte, int32 length, body) to
 * learn its cancel key and whether it is between statements, and notes every write as a
 * statement under way. Bodies are skipped, not buffered, but for the two it reads.
 */
function watchSession(socket: Socket, wire: SessionWire, answered: () => void): void {
  const header = Buffer.alloc(5);
  let headerBytes = 0;
  let remaining = 0;
  let type = 0;
  let body: Buffer[] = [];
  const onMessage = (content: Buffer) => {
    if (type === 0x4b && content.length >= 8) {
      // BackendKeyData
      wire.key = { pid: content.readUInt32BE(0), secret: content.readUInt32BE(4) };
    } else if (type === 0x5a) {
      // ReadyForQuery
      wire.started = true;
      wire.busy = false;
    } else if (type === 0x45) {
      const error = parseErrorFields(content);
      if (error.severity === 'FATAL' || error.severity === 'PANIC') wire.fatal = error;
    }
  };
  socket.on('data', (chunk: Buffer) => {
    answered();
    let offset = 0;
    while (offset < chunk.length) {
      if (headerBytes < 5) {
        const take = Math.min(5 - headerBytes, chunk.length - offset);
        chunk.copy(header, headerBytes, offset, offset + take);
        headerBytes += take;
        offset += take;
        if (headerBytes < 5) break;
        type = header[0] ?? 0;
        remaining = Math.max(0, header.readUInt32BE(1) - 4);
        body = [];
        if (STARTUP_REPLIES.has(type) && remaining < 1 << 20) wire.spoke = true;
      }
      const take = Math.min(remaining, chunk.length - offset);
      if (type === 0x4b || type === 0x5a || type === 0x45) body.push(chunk.subarray(offset, offset + take));
      remaining -= take;
      offset += take;
      if (remaining === 0) {
        onMessage(Buffer.concat(body));
        headerBytes = 0;
      }
    }
  });
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = ((...args: unknown[]) => {
    wire.busy = true;
    return write(...args);
  }) as Socket['write'];
}

/**
 * Sends PostgreSQL's CancelRequest for the session, as libpq's PQcancel does: on a new
 * connection to the host that gave the session, over TLS when the session is, and waits for
 * the server to close it (it does once the backend is told). Bounded by CANCEL_TIMEOUT_MS;
 * never throws: a failed cancel leaves the server's own bounds (statement_timeout) to end it.
 */
async function cancelSession(
  target: PostgresTarget,
  wire: SessionWire,
  ca: string | undefined,
): Promise<void> {
  const key = wire.key;
  if (!key) return;
  const sockets = new Set<Socket>();
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, CANCEL_TIMEOUT_MS);
  });
  const cancel = (async () => {
    const { socket } = await dialHost(
      target,
      wire.host,
      ca,
      (made) => sockets.add(made),
      () => {},
      wire.tls,
    );
    const closed = once(socket, 'close');
    socket.resume();
    // Written, not ended: PgBouncer drops a queued cancel whose client has hung up (EOF).
    socket.write(startupPacket(CANCEL_REQUEST_CODE, key.pid, key.secret));
    await closed;
  })();
  try {
    await Promise.race([cancel, expired]);
  } catch {
    // Best effort, as libpq's: the statement then runs into its own statement_timeout.
  } finally {
    clearTimeout(timer);
    for (const socket of sockets) socket.destroy();
  }
}

/**
 * Runs `work` on a one-connection pool under a hard deadline, then closes the pool, and
 * turns anything thrown into a classified BanshoError. Every PostgreSQL check goes through here.
 * With several hosts, postgres.js moves from one to the next (a host that refuses, or does
 * not match target_session_attrs); bansho hands it one socket per host, in order.
 * When the check is cut short (its deadline, the caller's signal, any failure while a
 * statement runs), the statement is cancelled on the server before the sockets close.
 */
export async function withPostgres<T>(
  target: PostgresTarget,
  options: PostgresCheckOptions,
  work: (sql: Sql, race: <R>(promise: Promise<R>) => Promise<R>, session: PostgresSession) => Promise<T>,
): Promise<T> {
  // postgres.js's end() only half-closes a socket, which keeps the process alive while a
  // silent peer or a long query holds the other half: bansho makes the sockets, so it can destroy them.
  // It also redials when a socket closes during startup; a check dials each host exactly once.
  const sockets = new Set<Socket>();
  const hosts = target.hosts;
  const ca = target.caPem;
  const outcomes: string[] = [];
  let dialled = 0;
  let finished = false;
  let closing = false;
  let wire: SessionWire | undefined;
  let cancelling: Promise<void> | undefined;
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const destroySockets = () => {
    finished = true;
    for (const socket of sockets) socket.destroy();
  };
  // Once: a statement under way on a session the server gave is cancelled there. The session
  // stays open until the cancel is through: PgBouncer passes a cancel on only for a client
  // still connected, and closes the server connection of one that left mid-transaction.
  const cancelRunning = (): Promise<void> => {
    if (!cancelling && !closing && wire?.busy && wire.key) cancelling = cancelSession(target, wire, ca);
    return cancelling ?? Promise.resolve();
  };
  const close = () => {
    finished = true;
    void cancelRunning().then(() => {
      void sql.end({ timeout: 0 }).catch(() => {});
      destroySockets();
    });
  };
  // postgres.js waits for another host after a failed one; when none is left, this ends the wait.
  let exhausted: (error: BanshoError) => void = () => {};
  const noHostLeft = new Promise<never>((_, reject) => {
    exhausted = reject;
  });
  noHostLeft.catch(() => {});
  const sessionAttrs =
    options.targetSessionAttrs ?? target.targetSessionAttrs ?? (hosts.length > 1 ? 'read-write' : undefined);
  const sql = createPool({
    target,
    max: 1,
    connectTimeoutMs: options.timeoutMs,
    // No timeouts as startup parameters: PgBouncer refuses them ("unsupported startup
    // parameter"). The hard deadline bounds the check; inBoundedTransaction bounds waits on the server.
    statementTimeoutMs: 0,
    ...(sessionAttrs ? { targetSessionAttrs: sessionAttrs } : {}),
    socket: async () => {
      if (finished)
        throw new BanshoError('interrupted', 'the check is over: not reconnecting', { service: 'postgres' });
      // A host that cannot be dialled is passed over here; one that closes the session later
      // (a standby, for target_session_attrs) brings postgres.js back for the next.
      while (dialled < hosts.length) {
        const next = hosts[dialled] as PostgresHost;
        dialled++;
        const name = displayPostgresHost(next);
        const answered =
          hosts.length > 1
            ? boundHostAnswer(next, Math.floor(options.timeoutMs / hosts.length), track)
            : { watch: track, clear: () => {} };
        try {
          const opened = await dialHost(target, next, ca, answered.watch, answered.clear);
          const session: SessionWire = {
            host: next,
            tls: opened.tls,
            spoke: opened.negotiated,
            started: false,
            busy: false,
          };
          watchSession(opened.socket, session, answered.clear);
          wire = session;
          opened.socket.once('error', (error: NodeJS.ErrnoException) =>
            outcomes.push(`${name}: ${error.code ?? scrubPassword(error.message, target)}`),
          );
          opened.socket.once('close', () => {
            if (outcomes.length < dialled) outcomes.push(`${name}: closed the session`);
          });
          return opened.socket;
        } catch (error) {
          answered.clear();
          outcomes.push(`${name}: ${describeDialFailure(error, target)}`);
          if (hosts.length === 1 || finished) throw error;
        }
      }
      const error =
        hosts.length > 1
          ? noHostError(target, sessionAttrs, outcomes)
          : wire?.spoke
            ? new BanshoError(
                'connection_closed',
                `${target.display} answered, then closed the connection during start-up`,
                { service: 'postgres' },
              )
            : new BanshoError(
                'protocol',
                `${target.display} closed the connection before the session started`,
                {
                  service: 'postgres',
                },
              );
      exhausted(error);
      throw error;
    },
  });
  const deadline = startDeadline({
    timeoutMs: options.timeoutMs,
    service: 'postgres',
    signal: options.signal,
    onExpire: close,
  });
  const race = <R>(promise: Promise<R>) => deadline.race(Promise.race([promise, noHostLeft]));
  const session: PostgresSession = {
    host: () => {
      const current = hosts[Math.max(0, dialled - 1)] ?? hosts[0];
      return current ? displayPostgresHost(current) : '';
    },
    started: () => wire?.started === true,
    tls: () => wire?.tls === true,
    spoke: () => wire?.spoke === true,
    fatal: () => wire?.fatal,
  };
  try {
    const result = await work(sql, race, session);
    deadline.phase = 'closing';
    closing = true;
    // The Terminate message is the clean goodbye; once it has left, waiting for the server to
    // close its side too only waits for the backend to exit (~4 ms), so the socket goes first.
    const terminated = Promise.all([...sockets].map((socket) => once(socket, 'finish')));
    await deadline.race(Promise.race([closePostgres(sql, options.timeoutMs), terminated]));
    destroySockets();
    return result;
  } catch (error) {
    void cancelRunning();
    throw classifyPostgresError(error, target, session);
  } finally {
    deadline.clear();
    await cancelRunning();
    await sql.end({ timeout: 0 }).catch(() => {});
    destroySockets();
  }
}

/** `{ host }` naming the host that gave the session, when the DSN lists several. */
export function answeringHost(target: PostgresTarget, session: PostgresSession): { host?: string } {
  return target.hosts.length > 1 ? { host: session.host() } : {};
}

/** Why a host could not be dialled, in a few words: its system error code, or bansho's message. */
function describeDialFailure(error: unknown, target: PostgresTarget): string {
  if (error instanceof BanshoError) return error.message;
  const { code, message } = error as NodeJS.ErrnoException;
  return code ?? scrubPassword(message, target);
}

/**
 * Gives one host of a list its share of the time to answer at all, as libpq's per-host
 * connect_timeout does: a host that drops packets or accepts and stays silent would otherwise
 * use up the whole --timeout, and postgres.js would never get to the next one. The server's
 * first byte (its answer to the TLS request or to the startup) ends the bound: `clear`.
 */
function boundHostAnswer(
  host: PostgresHost,
  shareMs: number,
  track: (socket: Socket) => void,
): { watch: (socket: Socket) => void; clear: () => void } {
  const watched = new Set<Socket>();
  const timer = setTimeout(() => {
    const error = Object.assign(
      new Error(`no answer from ${displayPostgresHost(host)} within ${shareMs} ms`),
      {
        code: 'ETIMEDOUT',
      },
    );
    for (const socket of watched) socket.destroy(error);
  }, shareMs);
  return {
    watch(socket: Socket) {
      watched.add(socket);
      track(socket);
    },
    clear() {
      clearTimeout(timer);
    },
  };
}

/** Every host of the list was tried: say why each was passed over. */
function noHostError(
  target: PostgresTarget,
  sessionAttrs: string | undefined,
  outcomes: string[],
): BanshoError {
  const tried = outcomes.join('; ');
  const unreachable = (outcome: string) =>
    /: (ECONNREFUSED|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOENT)$/.test(outcome);
  if (outcomes.every(unreachable) && outcomes.some((outcome) => outcome.endsWith('ETIMEDOUT'))) {
    return new BanshoError(
      'timeout',
      `no host of ${target.display} answered in its share of the time (${tried})`,
      {
        service: 'postgres',
      },
    );
  }
  if (outcomes.every((outcome) => /: (ECONNREFUSED|ENOENT)$/.test(outcome))) {
    return new BanshoError(
      'connection_refused',
      `no host of ${target.display} accepted a connection (${tried})`,
      {
        service: 'postgres',
      },
    );
  }
  const code = sessionAttrs === 'read-write' || sessionAttrs === 'primary' ? 'read_only' : 'not_ready';
  return new BanshoError(
    code,
    `no host of ${target.display} gave a session with target_session_attrs=${sessionAttrs ?? 'any'} (${tried})`,
    { service: 'postgres' },
  );
}

/**
 * Runs `work` in a transaction whose waits the server bounds: statement_timeout and
 * lock_timeout end a wait with a clear error (`timeout`, `locked`) before bansho's hard
 * deadline cuts the connection, and idle_in_transaction_session_timeout ends a session bansho
 * left in the middle of it. SET LOCAL, transaction-scoped, because through PgBouncer in
 * transaction pooling a session-level SET would leak to other clients, and startup parameters
 * are refused. BEGIN and the SETs go in one message, pipelined with work's first statement:
 * a role's or database's own statement_timeout (even 1ms) then only bounds BEGIN and SET,
 * which take microseconds, and there is no idle gap before the bounds hold.
 * The pool must have one connection (withPostgres's), so that every statement runs in it,
 * and the session must end after a failure.
 */
export async function inBoundedTransaction<T>(
  sql: Sql,
  remainingMs: number,
  work: () => Promise<T>,
): Promise<T> {
  const statementMs = Math.max(1, Math.floor(remainingMs * 0.9));
  const lockMs = Math.max(1, Math.floor(remainingMs * 0.75));
  const idleMs = Math.max(1, Math.ceil(remainingMs));
  const begun = sql.unsafe(
    `begin; set local statement_timeout = ${statementMs}; set local lock_timeout = ${lockMs}; set local idle_in_transaction_session_timeout = ${idleMs}`,
  );
  begun.catch(() => {});
  // On failure there is no ROLLBACK to wait for: withPostgres ends the session, which rolls
  // the transaction back, and a session that never started would queue it forever.
  const [, result] = await Promise.all([begun, work()]);
  await sql.unsafe('commit');
  return result;
}

/** Runs `work` inside a savepoint of the current transaction: its failure does not abort the transaction. */
export async function inSavepoint<T>(sql: Sql, work: () => Promise<T>): Promise<T> {
  const saved = sql.unsafe('savepoint bansho');
  saved.catch(() => {});
  try {
    const [, result] = await Promise.all([saved, work()]);
    await sql.unsafe('release savepoint bansho');
    return result;
  } catch (error) {
    await sql.unsafe('rollback to savepoint bansho').catch(() => {});
    throw error;
  }
}

/**
 * Connects and runs the sub-checks: whether the session can serve the gateway (a primary,
 * writable, privileges), the version, and what to watch (connections, timeouts, clock, encoding).
 */
export function checkPostgres(target: PostgresTarget, options: PostgresCheckOptions): Promise<PostgresProbe> {
  const started = performance.now();
  return withPostgres(target, options, async (sql, race, session) => ({
    ...(await race(
      inBoundedTransaction(sql, options.timeoutMs - (performance.now() - started), () => probePostgres(sql)),
    )),
    ...answeringHost(target, session),
  }));
}

/**
 * Resolves true when the server accepts a session and no sub-check fails (a standby, a
 * read-only session, a missing privilege throw); otherwise throws a BanshoError.
 */
export async function pingPostgres(
  options: Pick<PostgresPoolOptions, 'dsn' | 'env' | 'target'> & {
    timeoutMs?: number;
    signal?: AbortSignal | undefined;
  } = {},
): Promise<true> {
  const probe = await checkPostgres(resolvePostgresTarget(options), {
    timeoutMs: options.timeoutMs ?? 5000,
    signal: options.signal,
  });
  throwOnFailedDetail(probe.details, 'postgres');
  return true;
}

/** SQLSTATE → failure code; the server's own classification, so it is checked first. */
const SQLSTATE_CODES: Record<string, FailureCode> = {
  '28P01': 'auth_failed', // invalid_password
  '28000': 'auth_failed', // invalid_authorization_specification: no pg_hba entry, unknown role
  '3D000': 'unknown_database', // invalid_catalog_name
  '53300': 'too_many_connections',
  '57P03': 'not_ready', // cannot_connect_now: starting up, shutting down, in recovery
  '57P01': 'not_ready', // admin_shutdown
  '57P02': 'not_ready', // crash_shutdown
  '25006': 'read_only', // read_only_sql_transaction
  '57014': 'timeout', // query_canceled: statement_timeout
  '08P01': 'protocol', // protocol_violation
  '55P03': 'locked', // lock_not_available: lock_timeout
  '42501': 'permission_denied', // insufficient_privilege
};

/**
 * What an error's message tells beyond its SQLSTATE, which several conditions share: a
 * better code, or a hint that sends the operator the right way. Undefined when it tells nothing more.
 */
function classifyServerMessage(
  sqlstate: string,
  message: string,
): { code?: FailureCode; hint: string } | undefined {
  for (const rule of SERVER_MESSAGES) {
    if ((rule.sqlstate === undefined || rule.sqlstate === sqlstate) && rule.pattern.test(message)) {
      return { ...(rule.code ? { code: rule.code } : {}), hint: rule.hint(message) };
    }
  }
  return undefined;
}

interface ServerMessageRule {
  sqlstate?: string;
  pattern: RegExp;
  code?: FailureCode;
  hint: (message: string) => string;
}

/** PgBouncer's name for a hint, and where its own settings live. */
const PGBOUNCER = 'PgBouncer (the pooler in front of PostgreSQL)';

const SERVER_MESSAGES: readonly ServerMessageRule[] = [
  {
    sqlstate: '53300',
    pattern: /too many connections for role "([^"]*)"/,
    hint: (message) => {
      const role = /for role "([^"]*)"/.exec(message)?.[1] ?? '<role>';
      return `role ${role}'s own CONNECTION LIMIT is reached, not the server's max_connections: look for its idle or leaked sessions in pg_stat_activity, use a pooler, or raise it: ALTER ROLE ${role} CONNECTION LIMIT <n>`;
    },
  },
  {
    sqlstate: '53300',
    pattern: /too many connections for database "([^"]*)"/,
    hint: (message) => {
      const database = /for database "([^"]*)"/.exec(message)?.[1] ?? '<database>';
      return `database ${database}'s own CONNECTION LIMIT is reached, not the server's max_connections: look for idle or leaked sessions in it (pg_stat_activity), use a pooler, or raise it: ALTER DATABASE ${database} CONNECTION LIMIT <n>`;
    },
  },
  {
    sqlstate: '53300',
    pattern: /remaining connection slots are reserved/,
    hint: () =>
      'max_connections is reached for ordinary roles: only the slots reserved for superusers (superuser_reserved_connections, reserved_connections) are left; look for idle or leaked sessions in pg_stat_activity, use a pooler, or raise max_connections',
  },
  {
    sqlstate: '57014',
    pattern: /due to statement timeout/,
    hint: () =>
      'a statement ran into the statement_timeout bansho sets just under --timeout: the server is slow, or the statement waits for something (see pg_stat_activity); raise --timeout',
  },
  {
    // bansho's own statement_timeout is "due to statement timeout"; this one came from elsewhere.
    sqlstate: '57014',
    pattern: /due to user request/,
    code: 'server_error',
    hint: () =>
      "another session cancelled bansho's statement (pg_cancel_backend()), or a pooler in front of the server did: retry, and look for what cancels sessions",
  },
  {
    sqlstate: '57P01',
    pattern: /terminating connection due to administrator command/,
    code: 'connection_closed',
    hint: () =>
      "the server ended bansho's session: pg_terminate_backend() from another session, or a shutdown (pg_ctl stop -m fast); retry with --wait, and if it recurs look for what terminates sessions",
  },
  {
    sqlstate: '57P05',
    pattern: /idle-session timeout/,
    code: 'connection_closed',
    hint: () =>
      "idle_session_timeout ended the session between two of bansho's statements, and will end the gateway's pooled sessions: ALTER ROLE … RESET idle_session_timeout (or raise it above the pool's idle timeout)",
  },
  {
    sqlstate: '25P03',
    pattern: /idle-in-transaction timeout/,
    code: 'connection_closed',
    hint: () =>
      'idle_in_transaction_session_timeout ended the session inside a transaction: ALTER ROLE … RESET idle_in_transaction_session_timeout, or raise it',
  },
  // PgBouncer answers most of its own conditions with an ErrorResponse coded 08P01: the message tells which.
  {
    sqlstate: '08P01',
    pattern: /^no such database/i,
    code: 'unknown_database',
    hint: () =>
      `${PGBOUNCER} has no [databases] entry for this database (and no * fallback): add one to pgbouncer.ini, or fix the database in POSTGRES_DSN`,
  },
  {
    sqlstate: '08P01',
    pattern: /^bouncer config error/i,
    code: 'server_error',
    hint: () =>
      `${PGBOUNCER} cannot serve this database as configured ("bouncer config error"): e.g. auth_type=any without user= in the [databases] entry, or an auth_user / auth_dbname it cannot use; see PgBouncer's log`,
  },
  {
    sqlstate: '08P01',
    pattern: /^no such user/i,
    code: 'auth_failed',
    hint: () =>
      `${PGBOUNCER} does not know this user: add it to its auth_file, or set auth_user / auth_query`,
  },
  {
    sqlstate: '08P01',
    pattern: /^"?trust"? authentication failed/i,
    code: 'auth_failed',
    hint: () =>
      `${PGBOUNCER} refused the user: with auth_type=trust it must still be listed in PgBouncer's auth_file`,
  },
  {
    sqlstate: '08P01',
    pattern: /password authentication failed|server login failed|SASL authentication failed/i,
    code: 'auth_failed',
    hint: () =>
      `${PGBOUNCER} could not log this user in: check the password in POSTGRES_DSN and in PgBouncer's auth_file (it logs in to PostgreSQL with it), and the server's pg_hba.conf`,
  },
  {
    sqlstate: '08P01',
    pattern: /no more connections allowed \(max_client_conn\)/,
    code: 'too_many_connections',
    hint: () =>
      `${PGBOUNCER}'s max_client_conn is reached: look for leaked clients, or raise it in pgbouncer.ini`,
  },
  {
    sqlstate: '08P01',
    pattern: /query_wait_timeout|client_login_timeout/,
    code: 'timeout',
    hint: () =>
      `${PGBOUNCER} found no server connection in time (query_wait_timeout / client_login_timeout): its pool is busy with long transactions, too small (default_pool_size), or PostgreSQL is unreachable from it`,
  },
  {
    sqlstate: '08P01',
    pattern: /cannot connect to server/i,
    code: 'connection_refused',
    hint: () =>
      `${PGBOUNCER} is up but cannot reach PostgreSQL: check host and port of its [databases] entry, and that PostgreSQL is running`,
  },
  {
    sqlstate: '08P01',
    pattern: /^SSL required/i,
    code: 'tls',
    hint: () =>
      `${PGBOUNCER} requires TLS from its clients (client_tls_sslmode): use sslmode=require or stronger`,
  },
  {
    sqlstate: '08P01',
    pattern: /^unsupported startup parameter/i,
    code: 'server_error',
    hint: () =>
      `${PGBOUNCER} refuses a startup parameter of POSTGRES_DSN: remove it, or list it in PgBouncer's ignore_startup_parameters`,
  },
  {
    sqlstate: '08P01',
    pattern: /does not allow connections/i,
    code: 'not_ready',
    hint: () => `${PGBOUNCER} has this database disabled or paused (DISABLE / PAUSE): ENABLE / RESUME it`,
  },
  {
    // An ErrorResponse is PostgreSQL's protocol: whoever sent it speaks it.
    sqlstate: '08P01',
    pattern: /./,
    hint: () =>
      "the server, or a pooler such as PgBouncer in front of it, refused bansho's messages: read its message, and the log of whichever of them listens on POSTGRES_DSN's port",
  },
  {
    sqlstate: '28000',
    pattern: /requires a valid client certificate/,
    hint: () =>
      'the server requires a client certificate for this role (pg_hba cert, or clientcert=verify-full): give sslcert and sslkey in POSTGRES_DSN',
  },
  {
    sqlstate: '28000',
    pattern: /certificate authentication failed/,
    hint: () =>
      "the client certificate's CN (sslcert) must be the role in POSTGRES_DSN, or map to it in pg_ident.conf",
  },
];

/** How postgres.js and Node report a connection that the other side closed or reset. */
const CLOSED_CODES = new Set(['CONNECTION_CLOSED', 'CONNECTION_ENDED', 'ECONNRESET', 'EPIPE']);

interface PostgresErrorLike {
  name?: unknown;
  code?: unknown;
  /** Node's system errors: the address dialled, a path for a Unix socket. */
  address?: unknown;
  message?: unknown;
  severity?: unknown;
}

/**
 * Maps anything a PostgreSQL check threw to a BanshoError with a stable code. `session`, when
 * known, tells a connection closed by a peer that never spoke PostgreSQL from one that the
 * server closed after starting the session.
 */
export function classifyPostgresError(
  error: unknown,
  target: PostgresTarget,
  session?: Pick<PostgresSession, 'started' | 'tls' | 'spoke' | 'fatal'>,
): BanshoError {
  if (error instanceof BanshoError) return error;
  const where = target.display;
  const make = (code: FailureCode, message: string) =>
    new BanshoError(code, message, { cause: error, service: 'postgres' });
  const layers = errorChain(error) as PostgresErrorLike[];
  const fromServer = (reply: ServerError) => {
    const known = classifyServerMessage(reply.code, reply.message);
    return new BanshoError(
      known?.code ?? SQLSTATE_CODES[reply.code] ?? 'server_error',
      `${reply.severity} ${reply.code}: ${scrubPassword(reply.message, target)}`,
      { cause: error, service: 'postgres', ...(known?.hint ? { hint: known.hint } : {}) },
    );
  };
  for (const layer of layers) {
    if (layer.name === 'PostgresError' && typeof layer.code === 'string') {
      return fromServer({
        severity: String(layer.severity ?? 'ERROR'),
        code: layer.code,
        message: String(layer.message),
      });
    }
  }
  const socketFailure = layers.find(
    (layer) => typeof layer.address === 'string' && layer.address.startsWith('/') && layer.code !== undefined,
  );
  if (socketFailure?.code === 'ENOENT') {
    return make(
      'connection_refused',
      `no socket at ${String(socketFailure.address)} (ENOENT): is PostgreSQL running, with this directory in unix_socket_directories and this port?`,
    );
  }
  if (socketFailure?.code === 'EACCES') {
    return new BanshoError(
      'connection_refused',
      `may not open the socket ${String(socketFailure.address)} (EACCES)`,
      {
        cause: error,
        service: 'postgres',
        hint: "the socket's directory or file does not let bansho's OS user in: check their owner and mode (unix_socket_group, unix_socket_permissions)",
      },
    );
  }
  const network = classifyNetworkError(error, 'postgres', where, target);
  if (network) return network;
  const codes = layers.map((layer) => (typeof layer.code === 'string' ? layer.code : ''));
  const first = scrubPassword(String(layers[0]?.message ?? error), target);
  if (codes.includes('CONNECT_TIMEOUT')) return make('timeout', `connecting to ${where} timed out`);
  if (codes.some((code) => CLOSED_CODES.has(code))) {
    // The server said why before it closed: postgres.js drops that when it closes.
    const fatal = session?.fatal();
    if (fatal) return fromServer(fatal);
    // A peer that started the session speaks PostgreSQL: it, or something between, ended it.
    if (session?.started()) return make('connection_closed', `${where} closed the session: ${first}`);
    // Under TLS 1.3 a server refuses a client certificate after the handshake, with a reset.
    if (session?.tls()) {
      return make(
        'tls',
        `${where} closed the TLS connection before the session started${target.sslCert ? ': does the server trust the CA of the client certificate (sslcert)?' : ''}: ${first}`,
      );
    }
    if (session?.spoke()) {
      return make(
        'connection_closed',
        `${where} answered, then closed the connection during start-up: ${first}`,
      );
    }
    return make('protocol', `${where} closed the connection before the session started: ${first}`);
  }
  return make('unexpected', `PostgreSQL check failed: ${first}`);
}
