import type { CheckDetail } from '../checks.js';
import { BanshoError, type FailureCode, type Service } from '../errors.js';

/*
 * Builders for sub-checks. A sub-check judges one fact bansho needs from a server it is
 * already connected to; the facts are gathered in one batch per server, never on a
 * connection of their own.
 */

export function passed(name: string, observed: string, hint?: string): CheckDetail {
  return { name, status: 'pass', observed, ...(hint === undefined ? {} : { hint }) };
}

export function warned(name: string, observed: string, hint: string): CheckDetail {
  return { name, status: 'warn', observed, hint };
}

export function failed(name: string, code: FailureCode, observed: string, hint: string): CheckDetail {
  return { name, status: 'fail', observed, hint, code };
}

/**
 * Throws the first failed sub-check as a BanshoError: the library's ping functions resolve
 * true or throw, and a server that fails a sub-check cannot serve the gateway.
 */
export function throwOnFailedDetail(details: readonly CheckDetail[], service: Service): void {
  const failure = details.find((detail) => detail.status === 'fail');
  if (!failure) return;
  throw new BanshoError(failure.code ?? 'unexpected', `${failure.name}: ${failure.observed}`, {
    service,
    ...(failure.hint === undefined ? {} : { hint: failure.hint }),
  });
}
