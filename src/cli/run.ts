import { type CheckError, toCheckError } from '../checks/model.js';
import { readConfigFiles, readEnvFile } from '../config/files.js';
import { type CliOptions, type Config, type Env, loadConfig, type Needs } from '../config/load.js';
import { loadDrivers } from '../engine/checks.js';
import type { Report } from '../engine/report.js';
import { BanshoError, ExitCode } from '../errors.js';
import type { BanshoCommand } from './commands/command.js';
import { createOutput, writeUsageError } from './output.js';
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
    config = configFor(options, command.needs, context);
  } catch (error) {
    return reportUsageError(error, options, context);
  }

  const output = await createOutput({
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

/**
 * The configuration of a run: flags, the environment and .env, through loadConfig, and the files
 * it names read. Throws a `config` BanshoError on bad input (exit 2, nothing attempted).
 */
export function configFor(options: CliOptions, needs: Needs, context: RunContext): Config {
  const config = loadConfig(
    {
      options,
      env: context.env,
      fileEnv: readEnvFile(options.envFile, context.cwd),
      isTTY: context.stdout.isTTY === true,
      isStderrTTY: context.stderr.isTTY === true,
    },
    needs,
  );
  readConfigFiles(config);
  return config;
}

function exitCodeFor(report: Report, signal: AbortSignal): number {
  if (signal.aborted) return signal.reason === 'SIGTERM' ? ExitCode.terminated : ExitCode.interrupted;
  return report.status === 'fail' ? ExitCode.checkFailed : ExitCode.healthy;
}

/** A configuration error: one line on stderr (and a JSON document with --json), exit 2. */
export function reportUsageError(error: unknown, options: CliOptions, context: RunContext): number {
  if (!(error instanceof BanshoError) || error.code !== 'config') throw error;
  writeUsageError(toCheckError(error) satisfies CheckError, {
    mode: options.json ? 'json' : options.quiet ? 'quiet' : 'human',
    stdout: context.stdout,
    stderr: context.stderr,
  });
  return ExitCode.usage;
}
