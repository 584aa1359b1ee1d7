import { BanshoError, type Service } from '../errors.js';
import { scrubPassword } from '../redact.js';

/** Errors from Node's net, dns and tls layers that both drivers pass through. */
interface SystemErrorLike {
  code?: unknown;
  message?: unknown;
  cause?: unknown;
}

/** Walks `cause` chains (drivers wrap socket errors) and returns every layer, outermost first. */
export function errorChain(error: unknown): SystemErrorLike[] {
  const chain: SystemErrorLike[] = [];
  let current: unknown = error;
  while (current !== null && typeof current === 'object' && chain.length < 8) {
    const layer = current as SystemErrorLike;
    chain.push(layer);
    if (layer.cause === current) break;
    current = layer.cause;
  }
  return chain;
}

const TLS_CODE =
  /^(ERR_SSL_|ERR_TLS_|CERT_|DEPTH_ZERO_SELF_SIGNED_CERT$|SELF_SIGNED_CERT_IN_CHAIN$|UNABLE_TO_|HOSTNAME_MISMATCH)/;

/**
 * Classifies a failure of the socket itself (refused, unresolvable host, TLS handshake),
 * which looks the same whichever driver made the socket. Returns undefined for anything else.
 * `target`'s password is masked in the socket's own words, when they are quoted.
 */
export function classifyNetworkError(
  error: unknown,
  service: Service,
  where: string,
  target: { password?: string | undefined } = {},
): BanshoError | undefined {
  for (const layer of errorChain(error)) {
    const code = typeof layer.code === 'string' ? layer.code : '';
    const message = typeof layer.message === 'string' ? layer.message : '';
    const make = (failure: ConstructorParameters<typeof BanshoError>[0], text: string) =>
      new BanshoError(failure, text, { cause: error, service });
    if (code === 'ECONNREFUSED') return make('connection_refused', `connection refused by ${where}`);
    // A Unix socket path where no socket is.
    if (code === 'ENOENT') return make('connection_refused', `no socket at ${where} (ENOENT)`);
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_NONAME' || code === 'EAI_FAIL') {
      return make('dns', `host name of ${where} does not resolve (${code})`);
    }
    if (code === 'ETIMEDOUT') return make('timeout', `connecting to ${where} timed out`);
    if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL') {
      return make('connection_refused', `${where} is unreachable (${code})`);
    }
    if (TLS_CODE.test(code) || (/^(EPROTO|ECONNRESET)$/.test(code) && /ssl|tls/i.test(message))) {
      return make('tls', `TLS handshake with ${where} failed: ${scrubPassword(message || code, target)}`);
    }
  }
  return undefined;
}
