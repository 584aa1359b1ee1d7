/**
 * Milliseconds on a monotonic clock from an arbitrary origin, for durations: what
 * monotonicMs() gives, without touching the `performance` global, which node loads on
 * first use together with its perf_hooks modules (a cost every healthcheck would pay).
 */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
