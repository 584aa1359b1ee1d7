/**
 * Fake servers that misbehave on purpose, for protocol-level tests: one that
 * never answers, one that answers every redis command with an error, one that
 * rejects every postgres startup with an ErrorResponse, and one that speaks
 * something else entirely.
 */
import { createConnection, createServer, type Socket } from 'node:net';
import { LOOPBACK } from './net.js';

export interface FakePeer {
  port: number;
  /** `${scheme}://127.0.0.1:${port}` */
  url(scheme: string): string;
  /** Connections accepted so far: "nothing was attempted" is zero. */
  connections(): number;
  /** Connections still open. */
  openSockets(): number;
  /** Resolves on the next connection accepted after the call. */
  nextConnection(): Promise<Socket>;
  /** Stops listening and destroys every open connection. */
  close(): Promise<void>;
}

/** Listens on a free loopback port, tracking sockets so close() never waits on a client. */
function listenPeer(onConnection: (socket: Socket) => void): Promise<FakePeer> {
  const sockets = new Set<Socket>();
  let count = 0;
  let waiters: Array<(socket: Socket) => void> = [];
  const server = createServer((socket) => {
    count++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // Clients hanging up abruptly is expected here, not a test failure.
    socket.on('error', () => {});
    onConnection(socket);
    const current = waiters;
    waiters = [];
    for (const waiter of current) waiter(socket);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new Error(`unexpected listen address: ${String(address)}`));
        return;
      }
      const { port } = address;
      resolve({
        port,
        url: (scheme) => `${scheme}://${LOOPBACK}:${port}`,
        connections: () => count,
        openSockets: () => sockets.size,
        nextConnection: () => new Promise((done) => waiters.push(done)),
        close: () =>
          new Promise<void>((done) => {
            for (const socket of sockets) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/** Accepts connections and never sends a byte: for connect/command timeout tests. */
export function startSilentPeer(): Promise<FakePeer> {
  return listenPeer((socket) => {
    // Read and drop whatever the client sends, so its writes never back up.
    socket.resume();
  });
}

/** Writes `bytes` as soon as a client connects, then closes: "not the protocol you expected". */
export function startGarbagePeer(bytes: string | Uint8Array): Promise<FakePeer> {
  return listenPeer((socket) => {
    socket.end(bytes);
  });
}

// ---------------------------------------------------------------------------
// Redis

/**
 * Answers every RESP command with `-${errorLine}\r\n`. Clients pipeline
 * (node-redis sends HELLO / CLIENT SETINFO / PING in one write), so the
 * stream is parsed and each complete command gets its own reply.
 */
export function startRedisErrorPeer(errorLine: string): Promise<FakePeer> {
  // A CR or LF inside would end the error early and desynchronise the client.
  const reply = `-${errorLine.replace(/[\r\n]+/g, ' ')}\r\n`;
  return startRedisScriptedPeer(() => reply);
}

/**
 * Answers each RESP command with what `answer` returns for it (raw RESP, e.g. "+PONG\r\n"),
 * parsing the pipelined stream, so that each complete command gets its own reply; the command's name comes
 * upper-cased, its arguments as sent. For servers a real redis-server cannot play, such as
 * one that predates HELLO.
 */
export function startRedisScriptedPeer(answer: (command: string[]) => string): Promise<FakePeer> {
  return listenPeer((socket) => {
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      let consumed: number | undefined = takeRespCommand(pending);
      while (consumed !== undefined) {
        const command = respArguments(pending.subarray(0, consumed));
        pending = pending.subarray(consumed);
        command[0] = (command[0] ?? '').toUpperCase();
        socket.write(answer(command));
        consumed = takeRespCommand(pending);
      }
    });
  });
}

/** The arguments of one complete command, as takeRespCommand measured it. */
function respArguments(command: Buffer): string[] {
  if (command[0] !== 0x2a /* '*' */) return command.toString('latin1').trim().split(/\s+/);
  const args: string[] = [];
  const header = readLine(command, 0);
  let offset = header?.next ?? command.length;
  for (let i = 0; i < Number(header?.text.slice(1) ?? 0); i++) {
    const lengthLine = readLine(command, offset);
    if (!lengthLine) break;
    const length = Number(lengthLine.text.slice(1));
    args.push(command.toString('utf8', lengthLine.next, lengthLine.next + length));
    offset = lengthLine.next + length + 2;
  }
  return args;
}

/**
 * Byte length of the first complete command in `buffer`, or undefined if it
 * is incomplete. Handles RESP arrays of bulk strings (what clients send) and
 * inline commands (what `telnet`/`nc` users type).
 */
function takeRespCommand(buffer: Buffer): number | undefined {
  if (buffer.length === 0) return undefined;
  if (buffer[0] !== 0x2a /* '*' */) {
    const newline = buffer.indexOf('\n');
    return newline === -1 ? undefined : newline + 1;
  }
  const header = readLine(buffer, 0);
  if (!header) return undefined;
  const count = Number(header.text.slice(1));
  let offset = header.next;
  for (let i = 0; i < count; i++) {
    const lengthLine = readLine(buffer, offset);
    if (!lengthLine) return undefined;
    const length = Number(lengthLine.text.slice(1));
    offset = lengthLine.next + length + 2; // payload + CRLF
    if (offset > buffer.length) return undefined;
  }
  return offset;
}

function readLine(buffer: Buffer, start: number): { text: string; next: number } | undefined {
  const end = buffer.indexOf('\r\n', start);
  if (end === -1) return undefined;
  return { text: buffer.toString('latin1', start, end), next: end + 2 };
}

/**
 * A TCP proxy to a real server on 127.0.0.1:`port` that lets each client's first request
 * and its replies through, then, when the client writes again, calls `beforeNext` with the
 * local port of its connection to the server (to CLIENT KILL it there, say) before passing
 * the bytes on. When the server closes a connection the proxy closes the client's.
 */
export function startInterceptingProxy(
  port: number,
  beforeNext: (upstreamLocalPort: number) => Promise<void>,
): Promise<FakePeer> {
  return listenPeer((client) => {
    client.pause();
    const upstream = createConnection({ host: LOOPBACK, port }, () => client.resume());
    let answered = false;
    let intercepted: Promise<void> | undefined;
    upstream.on('error', () => client.destroy());
    upstream.on('data', (chunk: Buffer) => {
      answered = true;
      client.write(chunk);
    });
    upstream.on('end', () => client.end());
    upstream.on('close', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.on('data', (chunk: Buffer) => {
      if (!answered) {
        upstream.write(chunk);
        return;
      }
      intercepted ??= beforeNext(upstream.localPort ?? 0);
      void intercepted.then(
        () => upstream.writable && upstream.write(chunk),
        () => client.destroy(),
      );
    });
  });
}

// ---------------------------------------------------------------------------
// PostgreSQL

export interface PostgresErrorFields {
  /** e.g. FATAL */
  severity: string;
  /** SQLSTATE, e.g. 53300 (too_many_connections) or 57P03 (cannot_connect_now) */
  code: string;
  message: string;
}

// Magic "protocol versions" of the special first packets (see protocol-message-formats).
const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

/**
 * Rejects every connection the way a real server rejects a startup: refuses
 * SSL/GSS encryption with 'N', reads the StartupMessage, sends an
 * ErrorResponse with the given fields and closes.
 */
export function startPostgresErrorPeer(fields: PostgresErrorFields): Promise<FakePeer> {
  const errorResponse = encodeErrorResponse(fields);
  return listenPeer((socket) => {
    let pending = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      pending = Buffer.concat([pending, chunk]);
      // Startup-phase packets have no type byte: int32 length (including itself), int32 code, body.
      while (pending.length >= 8) {
        const length = pending.readInt32BE(0);
        if (pending.length < length) return;
        const code = pending.readInt32BE(4);
        pending = pending.subarray(length);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          socket.write('N'); // "not supported": the client continues in plain text
          continue;
        }
        socket.off('data', onData);
        if (code === CANCEL_REQUEST) socket.end();
        else socket.end(errorResponse);
        return;
      }
    };
    socket.on('data', onData);
  });
}

function encodeErrorResponse({ severity, code, message }: PostgresErrorFields): Buffer {
  // S = localized severity, V = non-localized severity (9.6+), C = SQLSTATE, M = message.
  const body = Buffer.concat([
    ...[
      ['S', severity],
      ['V', severity],
      ['C', code],
      ['M', message],
    ].map(([type, value]) => Buffer.from(`${type}${value}\0`, 'utf8')),
    Buffer.from([0]),
  ]);
  const header = Buffer.alloc(5);
  header.write('E', 0, 'latin1');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

// ---------------------------------------------------------------------------
// A forwarding proxy

export interface ForwardingProxy {
  port: number;
  /** Every client connection accepted, in order. */
  clients(): readonly Socket[];
  /** Resets every connection through it (RST), as a load balancer or firewall timing one out would. */
  resetAll(): void;
  close(): Promise<void>;
}

/**
 * Forwards connections to `port` on 127.0.0.1; `forward(index)` (default: all) says which to
 * forward by their order, the others are accepted and never answered.
 */
export async function startProxy(
  port: number,
  forward: (index: number) => boolean = () => true,
): Promise<ForwardingProxy> {
  const clients: Socket[] = [];
  const peer = await listenPeer((client) => {
    const index = clients.length;
    clients.push(client);
    if (!forward(index)) return;
    const upstream = createConnection({ host: LOOPBACK, port });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  });
  return {
    port: peer.port,
    clients: () => clients,
    resetAll: () => {
      for (const client of clients) client.resetAndDestroy();
    },
    close: peer.close,
  };
}
