import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import type { Env } from '../config/load.js';

/*
 * `bansho smoke --wait 60s -- node gateway.js`: once the checks pass, the command runs, with
 * bansho's stdio and environment and no shell, and its exit code becomes bansho's. That is what a
 * distroless image's exec-form ENTRYPOINT cannot say with `&&`.
 *
 * Where node has process.execve (22.15 and later), bansho replaces itself with the command: the
 * command gets bansho's PID (PID 1 in a container, so the runtime signals it directly), nothing
 * stands between them to forward signals or exit codes, and bansho's memory is given back.
 * Elsewhere the command runs as a child: SIGTERM, SIGINT and SIGHUP are forwarded to it, and bansho
 * exits with its exit code, or 128 + the number of the signal that ended it, as a shell does.
 */

/** Exit codes for a command that cannot be run, as POSIX shells use them. */
export const COMMAND_NOT_FOUND = 127;
export const COMMAND_NOT_EXECUTABLE = 126;

export type RunAfterOutcome =
  | { kind: 'exited'; code: number }
  /** The command could not be started: bansho says why in one line and exits with `code`. */
  | { kind: 'failed'; code: number; message: string };

/** The path execve needs: the command itself when it names a path, else the first match on PATH. */
export function resolveCommand(command: string, env: Env): string | undefined {
  if (command.includes('/')) return command;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '' || !isAbsolute(dir)) continue;
    const candidate = join(dir, command);
    try {
      if (statSync(candidate).isFile()) {
        accessSync(candidate, constants.X_OK);
        return candidate;
      }
    } catch {
      // Not here, or not executable by us: the shell moves on too.
    }
  }
  return undefined;
}

type Execve = (file: string, args: string[], env: Record<string, string | undefined>) => never;

/**
 * Runs `argv` (command and arguments) in bansho's place. Resolves only when the command ran as a
 * child (execve does not return), or could not be started.
 */
export async function runAfter(argv: readonly string[], env: Env): Promise<RunAfterOutcome> {
  const [command, ...args] = argv;
  if (command === undefined || command === '') {
    return { kind: 'failed', code: COMMAND_NOT_FOUND, message: 'no command given after --' };
  }
  const path = resolveCommand(command, env);
  if (path === undefined) {
    return { kind: 'failed', code: COMMAND_NOT_FOUND, message: `${command}: command not found` };
  }
  const execve = (process as unknown as { execve?: Execve }).execve;
  if (typeof execve === 'function' && env.BANSHO_RUN_AFTER !== 'child') {
    try {
      execve(path, [command, ...args], { ...env });
    } catch (error) {
      return startFailure(command, error);
    }
  }
  return runAsChild(path, command, args, env);
}

function startFailure(command: string, error: unknown): RunAfterOutcome {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT')
    return { kind: 'failed', code: COMMAND_NOT_FOUND, message: `${command}: command not found` };
  return {
    kind: 'failed',
    code: COMMAND_NOT_EXECUTABLE,
    message: `${command}: cannot be run (${code ?? (error instanceof Error ? error.message : String(error))})`,
  };
}

const FORWARDED = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

function runAsChild(path: string, command: string, args: string[], env: Env): Promise<RunAfterOutcome> {
  return new Promise((resolve) => {
    // bansho's own handlers (abort the checks, exit 130/143) have done their work: the child decides now.
    for (const signal of FORWARDED) process.removeAllListeners(signal);
    const child = spawn(path, args, { stdio: 'inherit', env: { ...env }, argv0: command });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    for (const signal of FORWARDED) process.on(signal, forward);
    child.once('error', (error) => resolve(startFailure(command, error)));
    child.once('exit', (code, signal) => {
      for (const name of FORWARDED) process.removeListener(name, forward);
      const number = signal ? (osConstants.signals as Record<string, number>)[signal] : undefined;
      resolve({ kind: 'exited', code: code ?? 128 + (number ?? 0) });
    });
  });
}
