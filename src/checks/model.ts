import { BanshoError, type Difference, type FailureCode } from '../errors.js';
import { scrubPassword } from '../redact.js';
import { monotonicMs } from './time.js';

/** A cluster master as the check saw it (every one CLUSTER NODES lists); `checks.redis.topology.nodes[]` in --json. */
export interface ClusterNodeReport {
  /** "host:port". */
  node: string;
  role: 'master';
  status: 'pass' | 'fail';
  /** Its slot ranges: "0-5460"; empty for a master that holds no slots. */
  slots: string;
  latencyMs?: number;
  /** Why it failed: a failure code and message. */
  error?: string;
}

/** What a topology check saw; `checks.redis.topology` in --json. */
export type RedisTopology =
  | {
      kind: 'cluster';
      /** cluster_state as the first master that answered reports it: "ok" or "fail". */
      state?: string;
      /** How many of the 16384 slots have a master in the slot map. */
      slotsCovered: number;
      nodes: ClusterNodeReport[];
    }
  | {
      kind: 'sentinel';
      /** The master's name, and the address the sentinels gave for it. */
      master: { name: string; node?: string };
      sentinels: string[];
    };

export type CheckStatus = 'pass' | 'warn' | 'fail';

/** A failure as shown to people and scripts: stable code, message, what to check next. */
export interface CheckError {
  code: FailureCode;
  message: string;
  hint: string;
  /** The drivers' errors behind it, outermost first; shown only with --verbose. */
  detail?: string[];
}

/**
 * One named sub-check of a check ("eviction", "privileges"): what bansho observed on the
 * server and what the operator should do about it; the shape of `checks.<name>.details[]`.
 */
export interface CheckDetail {
  /** Stable name, unique within its check (with `node`, within that node's sub-checks). */
  name: string;
  /**
   * The server this sub-check judged ("host:port"), when the check covers several: each
   * master of a Redis Cluster, the master a sentinel named. Absent for a single server.
   */
  node?: string;
  status: CheckStatus;
  /** What was seen, in words: "maxmemory 100mb, policy allkeys-lru". */
  observed: string;
  /** What to do about it, or why it matters; absent when there is nothing to say. */
  hint?: string;
  /** On a failed sub-check only: the failure code its check reports. */
  code?: FailureCode;
}

/** The outcome of one check; the shape of `checks.<name>` in `--json`. */
export interface CheckResult {
  status: CheckStatus;
  /** The server checked, password masked. */
  target: string;
  /** The whole check, from first byte to closed socket, in milliseconds. */
  latencyMs: number;
  /** The server's version, when it was learned. */
  version?: string;
  /** With several hosts in POSTGRES_DSN: the one that gave the session. */
  host?: string;
  /** Redis Cluster or Sentinel: what the check saw, node by node. */
  topology?: RedisTopology;
  /** Why a check warns ("not bootstrapped yet"), in one sentence. */
  message?: string;
  /** Schema objects that `ensure-schema` would create ("create table api_keys"). */
  pending?: string[];
  /** With `schema_mismatch`: every existing object that differs from the spec. */
  drift?: Difference[];
  /** The sub-checks, in the order they are shown; the check's status is the worst of theirs. */
  details?: CheckDetail[];
  error?: CheckError;
}

/** What a check reports on success; `latencyMs`, when given, replaces the time runCheck measured. */
export type CheckOutcome = Pick<
  CheckResult,
  'version' | 'host' | 'topology' | 'message' | 'pending' | 'details'
> & {
  status?: CheckStatus;
  latencyMs?: number;
};

/** The server a check looks at: as shown (password masked), and its password, masked in drivers' words. */
export interface CheckTarget {
  display: string;
  password?: string | undefined;
}

/**
 * Runs one check, timing it and turning a thrown error into a failed result, so that one
 * broken dependency never hides the others' results.
 */
export async function runCheck(
  target: CheckTarget,
  check: () => Promise<CheckOutcome>,
  /** When the check began, if before this call (on a connection another check opened). */
  start: number = monotonicMs(),
): Promise<CheckResult> {
  try {
    const { latencyMs, status, ...outcome } = await check();
    const failed = outcome.details?.find((detail) => detail.status === 'fail');
    return {
      status: worstStatus([status ?? 'pass', ...(outcome.details ?? []).map((detail) => detail.status)]),
      target: target.display,
      latencyMs: roundLatency(latencyMs ?? monotonicMs() - start),
      ...outcome,
      ...(failed ? { error: detailError(failed) } : {}),
    };
  } catch (error) {
    return {
      status: 'fail',
      target: target.display,
      latencyMs: roundLatency(monotonicMs() - start),
      ...(error instanceof BanshoError && error.drift ? { drift: error.drift } : {}),
      ...(error instanceof BanshoError ? error.facts : {}),
      error: toCheckError(error, target),
    };
  }
}

/** A failed sub-check as its check's error: the first failure names the check's code. */
function detailError(detail: CheckDetail): CheckError {
  return {
    code: detail.code ?? 'unexpected',
    message: `${detailSubject(detail)}: ${detail.observed}`,
    hint: detail.hint ?? '',
  };
}

/** A sub-check as a failure message names it: "eviction", or "eviction on 10.0.0.1:7000". */
export function detailSubject(detail: Pick<CheckDetail, 'name' | 'node'>): string {
  return detail.node === undefined ? detail.name : `${detail.name} on ${detail.node}`;
}

function worstStatus(statuses: readonly CheckStatus[]): CheckStatus {
  if (statuses.includes('fail')) return 'fail';
  return statuses.includes('warn') ? 'warn' : 'pass';
}

function roundLatency(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/** `target`'s password is masked in the drivers' words: the unexpected error's message, the causes. */
export function toCheckError(error: unknown, target: Omit<CheckTarget, 'display'> = {}): CheckError {
  const known =
    error instanceof BanshoError
      ? error
      : new BanshoError(
          'unexpected',
          `unexpected error: ${scrubPassword(error instanceof Error ? error.message : String(error), target)}`,
          {
            cause: error,
          },
        );
  const detail = describeCauses(known.cause, target);
  return {
    code: known.code,
    message: known.message,
    hint: known.hint,
    ...(detail.length > 0 ? { detail } : {}),
  };
}

/** The drivers' errors, one line each: their own words, which may quote what bansho sent. */
function describeCauses(cause: unknown, target: Omit<CheckTarget, 'display'>): string[] {
  const lines: string[] = [];
  for (let layer = cause; layer instanceof Error && lines.length < 8; layer = layer.cause) {
    const code = (layer as { code?: unknown }).code;
    const message = scrubPassword(layer.message, target);
    lines.push(`${layer.name}${typeof code === 'string' ? ` [${code}]` : ''}: ${message}`);
  }
  return lines;
}

/** The report's status: the worst of its checks; with `strict`, a warning counts as a failure. */
export function summarize(checks: Record<string, CheckResult>, strict: boolean): CheckStatus {
  const statuses = Object.values(checks).map((check) => check.status);
  if (statuses.includes('fail')) return 'fail';
  if (statuses.includes('warn')) return strict ? 'fail' : 'warn';
  return 'pass';
}
