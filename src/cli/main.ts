import { writeSync } from 'node:fs';
import { CommanderError } from 'commander';
import type { Config } from '../config/load.js';
import { ExitCode, hintFor } from '../errors.js';
import { packageRoot } from './package-root.js';
import { buildProgram, usageMessage } from './program.js';
import { configFor, type RunContext, reportUsageError, runCommand } from './run.js';

/**
 * How long closing may take after a signal before the process is ended anyway: long enough
 * for a PostgreSQL cancel request (bounded at 500 ms, src/postgres/wire.ts) to be sent.
 */
const SIGNAL_GRACE_MS = 1000;
/** How long the process may linger after its report before an open handle is declared a bug. */
const EXIT_GRACE_MS = 2000;

export interface CliHooks {
  /** `bansho serve` is running: after a signal it drains for up to `graceMs` before it exits. */
  serving?: (graceMs: number) => void;
}

/**
 * The whole CLI, argv in and exit code out, over the streams, environment and signal it is
 * given: what is the process's own (signals, exiting, failed writes) is main's. Resolves once
 * the command is done; with `-- <command>` after a check command, runs that command in bansho's
 * place once the checks pass (src/cli/run-after.ts).
 */
export async function runCli(
  argv: readonly string[],
  context: RunContext,
  hooks: CliHooks = {},
): Promise<number> {
  // `bansho smoke --wait 60s -- node gateway.js`: what follows `--` is the command to run, not bansho's.
  const separator = argv.indexOf('--', 2);
  const after = separator === -1 ? undefined : argv.slice(separator + 1);
  let exitCode: number = ExitCode.healthy;
  const usage = (message: string) => {
    context.stderr.write(`bansho: ${message}\n`);
    return ExitCode.usage;
  };
  const program = buildProgram(
    {
      onCommand: async (command, options) => {
        if (after?.length === 0) {
          exitCode = usage('nothing after --: give the command to run once the checks pass');
          return;
        }
        exitCode = await runCommand(command, options, context);
        if (after && exitCode === ExitCode.healthy) {
          const { runAfter } = await import('./run-after.js');
          const outcome = await runAfter(after, context.env);
          if (outcome.kind === 'failed') context.stderr.write(`bansho: ${outcome.message}\n`);
          exitCode = outcome.code;
        }
      },
      onWarmCache: async () => {
        if (after) {
          exitCode = usage('-- <command> follows a check command (smoke, ping-redis, …), not warm-cache');
          return;
        }
        const { warmCache } = await import('./warm-cache.js');
        const { dir, written, missing } = await warmCache(packageRoot(import.meta.url), context.env);
        if (missing.length > 0) {
          context.stderr.write(
            `bansho: could not write ${missing.length} start-up cache(s) to ${dir}: is it writable by this user?\n`,
          );
          exitCode = ExitCode.checkFailed;
        } else {
          context.stdout.write(
            `wrote ${written.length} start-up caches for node ${process.version} to ${dir}\n`,
          );
        }
      },
      onServe: async (options) => {
        if (after) {
          exitCode = usage('-- <command> follows a check command (smoke, ping-redis, …), not serve');
          return;
        }
        let config: Config;
        try {
          config = configFor(options, { redis: true, postgres: true }, context);
        } catch (error) {
          exitCode = reportUsageError(error, options, context);
          return;
        }
        const { serve, SERVE_GRACE_MS } = await import('./serve.js');
        hooks.serving?.(SERVE_GRACE_MS);
        const log = options.quiet ? () => {} : (line: string) => context.stderr.write(`bansho: ${line}\n`);
        exitCode = await serve(config, context, log);
      },
    },
    {
      writeOut: (text) => context.stdout.write(text),
      writeErr: (text) => context.stderr.write(text),
    },
  );
  try {
    await program.parseAsync(separator === -1 ? argv : argv.slice(0, separator));
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    // Commander exits 1 on a usage error; bansho's contract keeps 1 for failed checks.
    exitCode = error.exitCode === 0 ? ExitCode.healthy : ExitCode.usage;
    // A CI step that asked for JSON gets its one document, even when the flags were wrong.
    if (error.exitCode !== 0 && argv.includes('--json')) {
      const message = usageMessage(error.message);
      context.stdout.write(
        `${JSON.stringify({ status: 'fail', error: { code: 'config', message, hint: hintFor('config') } })}\n`,
      );
    }
  }
  return exitCode;
}

/**
 * The executable's entry. Sets process.exitCode and lets the process end by itself once every
 * socket is closed, so that output is never cut short.
 */
export async function main(argv: readonly string[]): Promise<void> {
  const controller = new AbortController();
  let graceMs = SIGNAL_GRACE_MS;
  const onSignal = (signal: NodeJS.Signals) => {
    controller.abort(signal);
    process.exitCode = signal === 'SIGTERM' ? ExitCode.terminated : ExitCode.interrupted;
    // Checks abort at once; this only guards against a driver that fails to let go.
    setTimeout(() => process.exit(), graceMs).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  surviveFailedWrites();
  process.exitCode = await runCli(
    argv,
    {
      env: process.env,
      cwd: process.cwd(),
      stdout: process.stdout,
      stderr: process.stderr,
      signal: controller.signal,
    },
    {
      serving: (drainMs) => {
        graceMs = drainMs + SIGNAL_GRACE_MS;
      },
    },
  );
  watchForLeaks();
}

/**
 * A write that fails on stdout or stderr (a full disk, a closed descriptor, an I/O error) is
 * no crash of ours: the exit code stays what the command set, the verdict, and stderr says
 * once, if it still can, that output was lost. A reader that closed its pipe (`bansho --help
 * | head -1`) wanted no more, so EPIPE is not worth a word.
 */
function surviveFailedWrites(): void {
  let told = false;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (told || error.code === 'EPIPE') return;
    told = true;
    try {
      writeSync(
        2,
        `bansho: could not write to stdout (${error.code ?? error.message}): output lost, the exit code still tells\n`,
      );
    } catch {
      // stderr fails too: the exit code is all that is left.
    }
  });
  // stderr is where a failure would be told: when it fails too, there is no one to tell.
  process.stderr.on('error', () => {});
}

/**
 * Every socket is closed before the report is written, so the process should end at once.
 * If a handle is still open (a bug), say so and end anyway: a healthcheck must not hang.
 */
function watchForLeaks(): void {
  setTimeout(() => {
    process.stderr.write('bansho: internal error: a handle stayed open after the report; exiting\n');
    process.exit();
  }, EXIT_GRACE_MS).unref();
}
