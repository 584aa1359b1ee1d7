/** Loopback port helpers. */
import { createConnection, createServer } from 'node:net';

export const LOOPBACK = '127.0.0.1';

/**
 * A loopback TCP port that was free a moment ago. Another process may still
 * grab it before we bind it, so the server starters retry on "address in use".
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error(`unexpected listen address: ${String(address)}`));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/** Resolves true if a TCP connection to host:port succeeds. */
export function canConnect(port: number, host: string = LOOPBACK): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Polls until host:port accepts TCP connections. */
export async function waitForPort(port: number, timeoutMs = 10_000, host: string = LOOPBACK): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await canConnect(port, host))) {
    if (Date.now() > deadline)
      throw new Error(`${host}:${port} did not accept connections within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const MAX_START_ATTEMPTS = 3;

/**
 * Calls start(port) with fresh free ports until it does not fail with
 * "address already in use" (the race that freePort() cannot rule out).
 */
export async function withFreePort<T>(start: (port: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    try {
      return await start(port);
    } catch (error) {
      const inUse = error instanceof Error && /address already in use/i.test(error.message);
      if (!inUse || attempt >= MAX_START_ATTEMPTS) throw error;
    }
  }
}

/**
 * Sends raw bytes to a loopback port and resolves with the reply once it is complete:
 * `complete` is a number of CRLF-terminated lines, or a pattern the reply must match.
 */
export function rawExchange(
  port: number,
  payload: string,
  complete: number | RegExp = 1,
  timeoutMs = 2_000,
): Promise<string> {
  const isComplete = (text: string) =>
    typeof complete === 'number' ? text.split('\r\n').length - 1 >= complete : complete.test(text);
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: LOOPBACK, port });
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete reply within ${timeoutMs} ms, got ${JSON.stringify(received)}`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (isComplete(received)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(received);
      }
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(payload);
  });
}
