import { formatDuration } from '../config/duration.js';
import { formatListen } from '../config/listen.js';
import type { Config } from '../config/load.js';
import { loadDrivers } from '../engine/checks.js';
import { smokeReport } from '../engine/reports.js';
import { ExitCode } from '../errors.js';
import { createHealthResponder } from '../server/handler.js';
import { isReady } from '../server/metrics.js';
import type { TimedReport } from '../server/result-cache.js';
import { startHealthServer } from '../server/serve.js';
import type { RunContext } from './run.js';

/** After SIGTERM, requests in flight get this long to be answered before their check is aborted. */
export const SERVE_GRACE_MS = 2000;

/**
 * `bansho serve`: the health endpoints over smoke's checks until SIGTERM or SIGINT. Logs on stderr
 * where it listens, and each change of readiness; nothing per request. Resolves the exit code
 * once every connection is closed: 143 or 130, as for every command a signal ends.
 */
export async function serve(
  config: Config,
  context: RunContext,
  log: (line: string) => void,
): Promise<number> {
  let ready: boolean | undefined;
  const handler = createHealthResponder({
    check: (signal) => smokeReport(config, signal),
    maxAgeMs: config.maxAgeMs,
    strict: config.strict,
    onReport: (result) => {
      const now = isReady(result.report, config.strict);
      if (now !== ready) log(readinessLine(result, now));
      ready = now;
    },
  });
  await loadDrivers(config);
  const server = await startHealthServer(handler, config.listen).catch((error: NodeJS.ErrnoException) => {
    log(`cannot listen on ${formatListen(config.listen)} (${error.code ?? error.message})`);
    return undefined;
  });
  if (!server) return ExitCode.checkFailed;
  log(
    `serving http://${formatListen(server.address)}/livez, /readyz and /metrics; a report is reused for ${formatDuration(config.maxAgeMs)}, each check bounded by ${formatDuration(config.timeoutMs)}`,
  );
  // The first check starts now, so that the first probe is answered from a report already made.
  void handler.results.get();
  await new Promise<void>((resolve) => {
    if (context.signal.aborted) resolve();
    context.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  log(
    `${String(context.signal.reason)}: no new connections; closing within ${formatDuration(SERVE_GRACE_MS)}`,
  );
  await server.close(SERVE_GRACE_MS);
  return context.signal.reason === 'SIGINT' ? ExitCode.interrupted : ExitCode.terminated;
}

/** "ready: every check passed", "not ready: redis fail (connection_refused)". */
function readinessLine(result: TimedReport, ready: boolean): string {
  const problems = Object.entries(result.report.checks)
    .filter(([, check]) => check.status !== 'pass')
    .map(([name, check]) => `${name} ${check.status}${check.error ? ` (${check.error.code})` : ''}`);
  if (ready)
    return problems.length === 0
      ? 'ready: every check passed'
      : `ready, with warnings: ${problems.join(', ')}`;
  return `not ready: ${problems.join(', ')}`;
}
