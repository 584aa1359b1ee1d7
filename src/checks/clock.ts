import type { CheckDetail } from './model.js';
import { passed, warned } from './sub-check.js';

/** A server clock further than this from the local one gets a warning, in milliseconds. */
export const CLOCK_SKEW_LIMIT_MS = 1000;

/**
 * How far a server's clock reading lies outside the local interval in which it must have
 * been taken (from sending the request to receiving the reply), in milliseconds: positive
 * when the server is ahead, negative when behind, 0 when inside. Measured this way a slow
 * network never shows up as skew.
 */
export function clockSkewMs(serverMs: number, sentAtMs: number, receivedAtMs: number): number {
  if (serverMs > receivedAtMs) return serverMs - receivedAtMs;
  if (serverMs < sentAtMs) return serverMs - sentAtMs;
  return 0;
}

/** The clock sub-check; `why` says what depends on the server's clock. */
export function judgeClock(
  reading: { serverMs: number; sentAtMs: number; receivedAtMs: number },
  why: string,
): CheckDetail {
  const skew = clockSkewMs(reading.serverMs, reading.sentAtMs, reading.receivedAtMs);
  if (Math.abs(skew) <= CLOCK_SKEW_LIMIT_MS) {
    return passed('clock', `within ${CLOCK_SKEW_LIMIT_MS / 1000}s of the local clock`);
  }
  const seconds = (Math.abs(skew) / 1000).toFixed(1);
  return warned(
    'clock',
    `${seconds}s ${skew > 0 ? 'ahead of' : 'behind'} the local clock`,
    `${why}: synchronise the clocks of both machines (NTP: chrony or systemd-timesyncd)`,
  );
}
