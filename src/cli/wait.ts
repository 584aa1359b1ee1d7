import { monotonicMs } from '../checks/time.js';
import { formatDuration } from '../config/duration.js';
import type { Report } from '../engine/report.js';

/** Longest pause between two `--wait` attempts, however many have failed. */
export const MAX_BACKOFF_MS = 5000;
/** An attempt given less time than this would only report a timeout of bansho's own making. */
const MIN_ATTEMPT_MS = 100;

/**
 * The pause after failed attempt number `attempt` (1-based): doubling from `intervalMs` up to
 * MAX_BACKOFF_MS, then scaled by a random factor in [0.5, 1) so that many healthchecks
 * started together do not retry in lockstep.
 */
export function backoffDelay(attempt: number, intervalMs: number, random: number): number {
  const capped = Math.min(MAX_BACKOFF_MS, intervalMs * 2 ** (attempt - 1));
  return Math.round(capped * (0.5 + random / 2));
}

export interface WaitOptions {
  waitMs: number;
  intervalMs: number;
  timeoutMs: number;
  signal: AbortSignal;
  /** Called after each failed attempt that will be retried. */
  onRetry: (line: string) => void;
  random?: () => number;
}

/**
 * Repeats `attempt` until its report passes (or warns) or `waitMs` has passed, and returns the
 * last report. Each attempt's timeout is cut to the time left, so the whole wait stays bounded.
 */
export async function retryUntilHealthy(
  attempt: (timeoutMs: number) => Promise<Report>,
  options: WaitOptions,
): Promise<Report> {
  const random = options.random ?? Math.random;
  const start = monotonicMs();
  const remaining = () => options.waitMs - (monotonicMs() - start);
  for (let count = 1; ; count++) {
    const report = await attempt(Math.max(1, Math.min(options.timeoutMs, remaining())));
    if (report.status !== 'fail' || options.signal.aborted) return report;
    const left = remaining();
    if (left <= 0) return report;
    // The last pause is shortened so that one more attempt still fits before the deadline.
    const delay = Math.min(
      backoffDelay(count, options.intervalMs, random()),
      left - Math.min(options.timeoutMs, MIN_ATTEMPT_MS),
    );
    if (delay < 0) return report;
    options.onRetry(
      `attempt ${count}: ${describeFailures(report)}; retrying in ${formatDuration(delay)} (${formatDuration(left)} left)`,
    );
    await sleep(delay, options.signal);
    if (options.signal.aborted) return report;
  }
}

function describeFailures(report: Report): string {
  return Object.entries(report.checks)
    .map(([name, check]) => `${name} ${check.status}${check.error ? ` (${check.error.code})` : ''}`)
    .join(', ');
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
  });
}
