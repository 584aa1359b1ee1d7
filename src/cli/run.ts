import { type CheckError, toCheckError } from '../checks/model.js';
import { readConfigFiles, readEnvFile } from '../config/files.js';
import { type CliOptions, type Config, type Env, loadConfig } from '../config/load.js';
import { loadDrivers } from '../engine/checks.js';
import type { Report } from '../engine/report.js';
import { BanshoError, ExitCode } from '../errors.js';
import type { BanshoCommand } from './commands/command.js';
import { createOutput } from './output.js';
import { retryUntilHealthy } from './wait.js';

export interface RunContext {
  env: Env;
  cwd: string;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  /** Aborted with the signal's name ("SIGINT") when the process is asked to stop. */
  signal: AbortSignal;
}

/**
 * The one place that turns a command's results (or a configuration error) into output and
 * an exit code. Commands only return reports; nothing below here prints or exits.
 */
export async function runCommand(
  command: BanshoCommand,
  options: CliOptions,
  context: RunContext,
): Promise<number> {
  let config: Config;
  try {
    const fileEnv = readEnvFile(options.envFile, context.cwd);
    config = loadConfig(
      {
        options,
        env: context.env,
        fileEnv,
        isTTY: context.stdout.isTTY === true,
        isStderrTTY: context.stderr.isTTY === true,
      },
      command.needs,
    );
    readConfigFiles(config);
  } catch (error) {
    return reportUsageError(error, options, context);
  }

  const output = createOutput({
    ...config,
    mode: config.output,
    stdout: context.stdout,
    stderr: context.stderr,
  });
  await loadDrivers(config);
  const attempt = (timeoutMs: number) => command.run({ ...config, timeoutMs }, context.signal);
  const report =
    config.waitMs === undefined
      ? await attempt(config.timeoutMs)
      : await retryUntilHealthy(attempt, {
          waitMs: config.waitMs,
          intervalMs: config.intervalMs,
          timeoutMs: config.timeoutMs,
          signal: context.signal,
          onRetry: (line) => output.progress(line),
        });
  output.endProgress();
  output.report(report);
  return exitCodeFor(report, context.signal);
}

function exitCodeFor(report: Report, signal: AbortSignal): number {
  if (signal.aborted) return signal.reason === 'SIGTERM' ? ExitCode.terminated : ExitCode.interrupted;
  return report.status === 'fail' ? ExitCode.checkFailed : ExitCode.healthy;
}

/** A configuration error: one line on stderr (and a JSON document with --json), exit 2. */
function reportUsageError(error: unknown, options: CliOptions, context: RunContext): number {
  if (!(error instanceof BanshoError) || error.code !== 'config') throw error;
  const output = createOutput({
    mode: options.json ? 'json' : options.quiet ? 'quiet' : 'human',
    color: false,
    redrawProgress: false,
    verbose: false,
    stdout: context.stdout,
    stderr: context.stderr,
  });
  output.usageError(toCheckError(error) satisfies CheckError);
  return ExitCode.usage;
}
