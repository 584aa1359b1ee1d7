import { once } from 'node:events';
import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { displayPostgresHost, type PostgresHost, type PostgresTarget } from '../config/postgres-dsn.js';
import { BanshoError } from '../errors.js';

import { TLS_REQUIRED, verificationFor } from './client.js';

/** What bansho learns of one session from the bytes on its own socket. */
export interface SessionWire {
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
export async function dialHost(
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
export function watchSession(socket: Socket, wire: SessionWire, answered: () => void): void {
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
export async function cancelSession(
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
