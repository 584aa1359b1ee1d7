import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { HealthHandler } from './handler.js';

/*
 * `bansho serve`'s HTTP server: the health handler behind limits that keep slow or malformed
 * clients from holding it. Probes are small GETs on loopback or a pod network; anything that
 * takes longer than a few seconds to send its headers is not a probe.
 */

/** Limits on every client; each in milliseconds unless said otherwise. */
export const SERVER_LIMITS = {
  /** Headers must arrive within this (a slowloris client is cut off). */
  headersTimeoutMs: 5000,
  /** A whole request must arrive within this; a /readyz answer may take up to --timeout more. */
  requestTimeoutMs: 10_000,
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: 5000,
  /** Bytes of request headers at most (Node's default is 16 KiB; a probe sends a few hundred). */
  maxHeaderBytes: 8192,
  /** Open connections at most; more are refused until some close. */
  maxConnections: 512,
} as const;

export interface ListenAddress {
  host: string;
  port: number;
}

export interface HealthServer {
  /** The address actually bound (port 0 asks for a free one). */
  address: ListenAddress;
  /**
   * Stops accepting, lets requests in flight finish for up to `graceMs` (a check in flight is
   * aborted then, and its requests answered), then closes every connection.
   */
  close(graceMs: number): Promise<void>;
}

export async function startHealthServer(
  handler: HealthHandler,
  listen: ListenAddress,
): Promise<HealthServer> {
  const server: Server = createServer(
    {
      headersTimeout: SERVER_LIMITS.headersTimeoutMs,
      requestTimeout: SERVER_LIMITS.requestTimeoutMs,
      keepAliveTimeout: SERVER_LIMITS.keepAliveTimeoutMs,
      maxHeaderSize: SERVER_LIMITS.maxHeaderBytes,
      // The timeouts above are checked this often.
      connectionsCheckingInterval: 1000,
    },
    handler,
  );
  server.maxConnections = SERVER_LIMITS.maxConnections;
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    // Node answers malformed requests itself when it can (400, 408, 431); the rest are dropped.
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status =
      error.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
  server.listen(listen.port, listen.host);
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([error]) => Promise.reject(error)),
  ]);
  const bound = server.address();
  const address =
    typeof bound === 'object' && bound !== null ? { host: bound.address, port: bound.port } : listen;

  return {
    address,
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const grace = setTimeout(() => {
        handler.close();
        // The aborted check answers its requests at once; whatever still lingers is cut.
        setTimeout(() => server.closeAllConnections(), 200).unref();
      }, graceMs);
      grace.unref();
      await closed;
      clearTimeout(grace);
      handler.close();
    },
  };
}
