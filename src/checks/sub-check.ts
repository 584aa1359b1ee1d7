import { BanshoError, type FailureCode, type Service } from '../errors.js';
import { type CheckDetail, detailSubject } from './model.js';

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

/** A failed sub-check as a BanshoError: its code (or `code`, when the caller knows better), `name[ on node]: observed`, its hint. */
export function detailFailure(detail: CheckDetail, service: Service, code?: FailureCode): BanshoError {
  return new BanshoError(
    code ?? detail.code ?? 'unexpected',
    `${detailSubject(detail)}: ${detail.observed}`,
    {
      service,
      ...(detail.hint === undefined ? {} : { hint: detail.hint }),
    },
  );
}

/**
 * Throws the first failed sub-check as a BanshoError: the library's ping functions resolve
 * true or throw, and a server that fails a sub-check cannot serve the gateway.
 */
export function throwOnFailedDetail(details: readonly CheckDetail[], service: Service): void {
  const failure = details.find((detail) => detail.status === 'fail');
  if (failure) throw detailFailure(failure, service);
}
