import { ConnectionTimeoutError, ErrorReply, SocketClosedUnexpectedlyError } from '@redis/client';
import { classifyNetworkError, errorChain } from '../checks/network-errors.js';
import type { RedisTarget } from '../config/redis-url.js';
import { BanshoError } from '../errors.js';
import { scrubPassword } from '../redact.js';
import { MISCONF_HINT } from './sub-checks.js';

/** Error replies by their first word; checked before anything else, as they are the server's own word. */
const REPLY_CODES: Array<[RegExp, ConstructorParameters<typeof BanshoError>[0], string, string?]> = [
  [/^(NOAUTH|WRONGPASS|NOPERM)\b/, 'auth_failed', 'authentication failed'],
  [/^ERR (AUTH|invalid password|Client sent AUTH)/i, 'auth_failed', 'authentication failed'],
  [/^(LOADING|MASTERDOWN|BUSY|TRYAGAIN|CLUSTERDOWN)\b/, 'not_ready', 'the server is not serving yet'],
  [/^READONLY\b/, 'read_only', 'the server is read-only'],
  // Redis refuses PING too while writes are stopped, so that health checks notice.
  [/^MISCONF\b/, 'read_only', 'writes are stopped after a failed background save', MISCONF_HINT],
  [/^ERR max(imum)? number of clients reached/i, 'too_many_connections', 'too many connections'],
  [/^ERR (DB index is out of range|invalid DB index)/i, 'unknown_database', 'no such database'],
  // Only the handshake sends HELLO: Redis before 6, and proxies that do not speak RESP3, refuse it.
  [
    /^((ERR )?(unknown|unsupported) command [`']?hello\b|NOPROTO\b)/i,
    'unsupported_version',
    'the server refused HELLO 3, so it does not speak RESP3',
  ],
];

/**
 * Maps anything a Redis check threw to a BanshoError with a stable code; `answered` says
 * whether the server had already given a valid reply on this connection.
 */
export function classifyRedisError(
  error: unknown,
  target: RedisTarget,
  context: { answered?: boolean } = {},
): BanshoError {
  if (error instanceof BanshoError) return error;
  const where = target.display;
  for (const layer of errorChain(error)) {
    if (layer instanceof ErrorReply) {
      // The server's words: an error reply may quote the command it refused, password and all.
      const reply = scrubPassword(layer.message, target);
      for (const [pattern, code, summary, hint] of REPLY_CODES) {
        if (pattern.test(reply))
          return new BanshoError(code, `${summary}: ${reply}`, { cause: error, service: 'redis', hint });
      }
      return new BanshoError('server_error', `${where} answered with an error: ${reply}`, {
        cause: error,
        service: 'redis',
      });
    }
  }
  const network = classifyNetworkError(error, 'redis', where, target);
  if (network?.code === 'connection_refused' && target.path !== undefined) {
    return new BanshoError(network.code, network.message, {
      cause: error,
      hint: `is Redis running with unixsocket ${target.path}, and is that the path in REDIS_URL?`,
    });
  }
  if (network?.code === 'tls') return clientCertificateFailure(error, target) ?? network;
  if (network) return network;
  const layers = errorChain(error);
  // node-redis leaves `name` as "Error" on its own classes: only instanceof tells them apart.
  if (layers.some((layer) => layer instanceof ConnectionTimeoutError)) {
    return new BanshoError('timeout', `connecting to ${where} timed out`, { cause: error, service: 'redis' });
  }
  const messages = layers.map((layer) => String(layer.message ?? ''));
  if (
    layers.some((layer) => layer instanceof SocketClosedUnexpectedlyError) ||
    messages.some((message) => /protocol error|parse|ECONNRESET|socket hang up/i.test(message))
  ) {
    if (context.answered && !messages.some((message) => /protocol error|parse/i.test(message))) {
      return new BanshoError(
        'connection_closed',
        `${where} closed the connection in the middle of the check, after it had answered`,
        { cause: error, service: 'redis' },
      );
    }
    const tlsHint = target.tls ? '' : ' (if the server expects TLS, use rediss://)';
    return new BanshoError('protocol', `${where} closed the connection without a Redis reply${tlsHint}`, {
      cause: error,
      service: 'redis',
    });
  }
  const text = scrubPassword(messages[0] || String(error), target);
  return new BanshoError('unexpected', `Redis check failed: ${text}`, {
    cause: error,
    service: 'redis',
  });
}

/**
 * The TLS alerts a server sends about the client's certificate, which OpenSSL reports in
 * words no operator should have to decode; undefined for any other TLS failure.
 */
function clientCertificateFailure(error: unknown, target: RedisTarget): BanshoError | undefined {
  const codes = errorChain(error).map((layer) => String(layer.code ?? ''));
  if (codes.includes('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED')) {
    return new BanshoError('tls', `${target.display} requires a client certificate, and none was given`, {
      cause: error,
      hint: 'give the client certificate and its key in REDIS_URL: rediss://…?ssl_certfile=/path/client.crt&ssl_keyfile=/path/client.key',
    });
  }
  const refused = codes.find((code) =>
    /^ERR_SSL_(TLSV1_ALERT_UNKNOWN_CA|SSLV3_ALERT_BAD_CERTIFICATE|SSLV3_ALERT_CERTIFICATE_UNKNOWN)$/.test(
      code,
    ),
  );
  if (refused === undefined) return undefined;
  return new BanshoError('tls', `${target.display} refused the client certificate (${refused})`, {
    cause: error,
    hint: "the server takes client certificates signed by the CA of its tls-ca-cert-file only: check REDIS_URL's ssl_certfile",
  });
}
