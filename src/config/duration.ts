import { configError } from '../errors.js';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
/** Longer than any sane health check, and well inside setTimeout's 2^31-1 ms range. */
const MAX_DURATION_MS = 24 * UNIT_MS.h;

/**
 * Parses `500ms`, `2s`, `1.5s`, `1m`, `1h` into milliseconds. A bare number is refused:
 * `--timeout 5` could mean seconds or milliseconds, and guessing wrong fails silently.
 */
export function parseDuration(text: string, name: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$/.exec(text);
  // What was typed is not echoed unless it is a duration: with arguments shifted, it may be a URL.
  if (!match && /^\s*\d+(\.\d+)?\s*$/.test(text)) {
    throw configError(
      `${name} needs a unit: a bare number could mean seconds or milliseconds`,
      'write it as 500ms, 2s or 1m (units: ms, s, m, h)',
    );
  }
  if (!match) throw configError(`${name} must be a duration such as 500ms, 2s or 1m`, 'units: ms, s, m, h');
  const [, amount, unit] = match as unknown as [string, string, keyof typeof UNIT_MS];
  const ms = Number(amount) * UNIT_MS[unit];
  if (ms <= 0) throw configError(`${name} must be greater than zero (got ${JSON.stringify(text)})`);
  if (ms > MAX_DURATION_MS) throw configError(`${name} must be at most 24h (got ${JSON.stringify(text)})`);
  return ms;
}

/** Renders milliseconds for people: 800ms, 2s, 1.5s, 2m. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))}s`;
  return `${Number((ms / 60_000).toFixed(1))}m`;
}
