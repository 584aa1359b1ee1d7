import { monotonicMs } from '../checks/time.js';
import type { Report } from '../engine/report.js';

/** A report, and when the checks behind it ran. */
export interface TimedReport {
  report: Report;
  /** When the checks started, in milliseconds since the epoch. */
  checkedAt: number;
  /** How long they took, in milliseconds. */
  durationMs: number;
}

export interface ResultCacheOptions {
  /** A report younger than this is answered again instead of checking anew, in milliseconds. */
  maxAgeMs: number;
  /** The clock, in milliseconds since the epoch; default Date.now. */
  now?: () => number;
  /** Called with every report the checks produce (not with reports served again). */
  onReport?: (result: TimedReport) => void;
}

export interface ResultCache {
  /**
   * A report at most `maxAgeMs` old: the last one when it is young enough, else the one being
   * made (joined, never started twice), else a new one. Never rejects: a failed check is a report.
   */
  get(): Promise<TimedReport>;
  /** The last report, however old, without checking; undefined before the first. */
  peek(): TimedReport | undefined;
  /** Aborts the checks in flight (their report still comes, failed as interrupted) and refuses new ones. */
  close(reason?: unknown): void;
}

/**
 * One check in flight at a time, and its report reused for a short while: however many probes
 * ask at once (many pods, a scraper, a probe storm), the servers see one check per interval.
 */
export function createResultCache(
  check: (signal: AbortSignal) => Promise<Report>,
  options: ResultCacheOptions,
): ResultCache {
  const now = options.now ?? Date.now;
  const controller = new AbortController();
  let last: TimedReport | undefined;
  let inFlight: Promise<TimedReport> | undefined;

  const start = (): Promise<TimedReport> => {
    const checkedAt = now();
    const began = monotonicMs();
    inFlight = check(controller.signal)
      .then((report) => {
        const result = { report, checkedAt, durationMs: Math.round(monotonicMs() - began) };
        last = result;
        options.onReport?.(result);
        return result;
      })
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };

  return {
    get() {
      if (last && now() - last.checkedAt < options.maxAgeMs) return Promise.resolve(last);
      // Closed: the last report stands (a server draining its last requests checks nothing new).
      if (controller.signal.aborted && last) return Promise.resolve(last);
      return inFlight ?? start();
    },
    peek: () => last,
    close(reason) {
      controller.abort(reason ?? 'SIGTERM');
    },
  };
}
