import { readConfigFiles } from '../config/files.js';
import { type Env, loadConfig } from '../config/load.js';
import { loadDrivers } from '../engine/checks.js';
import { smokeReport } from '../engine/reports.js';
import { createHealthResponder, type HealthHandler } from './handler.js';
import type { TimedReport } from './result-cache.js';

/** Options of the library's health handler; each has the CLI's default. */
export interface HealthHandlerOptions {
  /** Default: `env.REDIS_URL`, then `redis://127.0.0.1:6379`. */
  redisUrl?: string;
  /** Default: `env.POSTGRES_DSN`, then `postgres://postgres@127.0.0.1:5432/postgres`. */
  postgresDsn?: string;
  /** Where REDIS_URL and POSTGRES_DSN are read from; default `process.env` (no .env file is read). */
  env?: Env;
  /** Hard bound for each check, in milliseconds; default 5000. Keep it under the probe's timeout. */
  timeoutMs?: number;
  /** A report is answered again for this many milliseconds before the next check; default 2000. */
  maxAgeMs?: number;
  /** A warning makes /readyz answer 503; default false. */
  strict?: boolean;
  /** Write (and delete) a short-lived key to prove Redis takes writes; default true. */
  writeProbe?: boolean;
  /** Called with every new report, e.g. to log a change of readiness. */
  onReport?: (result: TimedReport) => void;
}

/**
 * A node:http request handler serving /livez, /readyz and /metrics as `bansho serve` does, on
 * the gateway's own server: smoke's checks (Redis, PostgreSQL, the schema), one in flight at a
 * time, reused for `maxAgeMs`. Throws a `config` BanshoError at once for a malformed URL or an
 * unreadable TLS file; a server that is down is a 503, never a throw.
 */
export function createHealthHandler(options: HealthHandlerOptions = {}): HealthHandler {
  const config = loadConfig(
    {
      options: {
        ...(options.redisUrl === undefined ? {} : { redisUrl: options.redisUrl }),
        ...(options.postgresDsn === undefined ? {} : { postgresDsn: options.postgresDsn }),
        strict: options.strict === true,
        writeProbe: options.writeProbe !== false,
      },
      env: options.env ?? process.env,
      fileEnv: {},
      isTTY: false,
    },
    { redis: true, postgres: true },
  );
  readConfigFiles(config);
  if (options.timeoutMs !== undefined) config.timeoutMs = options.timeoutMs;
  return createHealthResponder({
    check: async (signal) => {
      // The drivers load before the first check's clock starts, as the CLI loads them.
      await loadDrivers(config);
      return smokeReport(config, signal);
    },
    maxAgeMs: options.maxAgeMs ?? 2000,
    strict: config.strict,
    ...(options.onReport ? { onReport: options.onReport } : {}),
  });
}
