import { writeSync } from 'node:fs';
import { CommanderError } from 'commander';
import { ExitCode, hintFor } from '../errors.js';
import { packageRoot } from './package-root.js';
import { buildProgram, usageMessage } from './program.js';
import { runCommand } from './run.js';

/**
 * How long closing may take after a signal before the process is ended anyway: long enough
 * for a PostgreSQL cancel request (bounded at 500 ms, src/storage/postgres.ts) to be sent.
 */
const SIGNAL_GRACE_MS = 1000;
/** How long the process may linger after its report before an open handle is declared a bug. */
const EXIT_GRACE_MS = 2000;

/**
 * The executable's entry: argv in, exit code out. Sets process.exitCode and lets the
 * process end by itself once every socket is closed, so that output is never cut short.
 */
export async function main(argv: readonly string[]): Promise<void> {
  const controller = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    controller.abort(signal);
    process.exitCode = signal === 'SIGTERM' ? ExitCode.terminated : ExitCode.interrupted;
    // Checks abort at once; this only guards against a driver that fails to let go.
    setTimeout(() => process.exit(), SIGNAL_GRACE_MS).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  surviveFailedWrites();

  const program = buildProgram(
    async (command, options) => {
      process.exitCode = await runCommand(command, options, {
        env: process.env,
        cwd: process.cwd(),
        stdout: process.stdout,
        stderr: process.stderr,
        signal: controller.signal,
      });
    },
    async () => {
      const { warmCache } = await import('./warm-cache.js');
      const { dir, written, missing } = await warmCache(packageRoot(import.meta.url), process.env);
      if (missing.length > 0) {
        process.stderr.write(
          `bansho: could not write ${missing.length} start-up cache(s) to ${dir}: is it writable by this user?\n`,
        );
        process.exitCode = ExitCode.checkFailed;
      } else {
        process.stdout.write(
          `wrote ${written.length} start-up caches for node ${process.version} to ${dir}\n`,
        );
      }
    },
  );
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    // Commander exits 1 on a usage error; bansho's contract keeps 1 for failed checks.
    process.exitCode = error.exitCode === 0 ? ExitCode.healthy : ExitCode.usage;
    // A CI step that asked for JSON gets its one document, even when the flags were wrong.
    if (error.exitCode !== 0 && argv.includes('--json')) {
      const message = usageMessage(error.message);
      process.stdout.write(
        `${JSON.stringify({ status: 'fail', error: { code: 'config', message, hint: hintFor('config') } })}\n`,
      );
    }
  }
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
