import { spawn } from 'node:child_process';
import { accessSync, closeSync, constants, openSync, readSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';
import type { Env } from '../config/load.js';

/*
 * `bansho smoke --wait 60s -- node gateway.js`: once the checks pass, the command runs, with
 * bansho's stdio and environment and no shell, and its exit code becomes bansho's. That is what a
 * distroless image's exec-form ENTRYPOINT cannot say with `&&`.
 *
 * The command runs as bansho's child: SIGTERM, SIGINT and SIGHUP are forwarded to it, and bansho
 * exits with its exit code, or 128 + the number of the signal that ended it, as a shell does.
 * Node 22.15+ has process.execve, which would put the command in bansho's place instead, and
 * that is what BANSHO_RUN_AFTER=exec does. It is not the default, for what was seen here: the
 * command then inherits node's ignored signals (SIGPIPE and SIGXFSZ: /proc/<pid>/status showed
 * SigIgn 0x1001000, where a spawned child shows 0), a failed execve ends node with an abort and a
 * native stack trace rather than an error bansho could report, and it would behave one way on
 * Node 20 and another on 22. What it gives is bansho's memory back and the command's own PID 1.
 */

/** Exit codes for a command that cannot be run, as POSIX shells use them. */
export const COMMAND_NOT_FOUND = 127;
export const COMMAND_NOT_EXECUTABLE = 126;

export type RunAfterOutcome =
  | { kind: 'exited'; code: number }
  /** The command could not be started: bansho says why in one line and exits with `code`. */
  | { kind: 'failed'; code: number; message: string };

type Resolved = { path: string } | { failure: Extract<RunAfterOutcome, { kind: 'failed' }> };

/**
 * The file to run, as a shell finds it: the command itself when it names a path, else the first
 * executable match on PATH; or why there is none (127 not found, 126 not executable).
 */
export function resolveCommand(command: string, env: Env): Resolved {
  const notFound = {
    failure: { kind: 'failed', code: COMMAND_NOT_FOUND, message: `${command}: command not found` },
  } as const;
  if (command === '') return notFound;
  if (command.includes('/')) {
    try {
      if (!statSync(command).isFile()) throw Object.assign(new Error(), { code: 'EISDIR' });
      accessSync(command, constants.X_OK);
      return { path: command };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return notFound;
      return {
        failure: {
          kind: 'failed',
          code: COMMAND_NOT_EXECUTABLE,
          message: `${command}: cannot be run (${code === 'EISDIR' ? 'a directory' : code})`,
        },
      };
    }
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '' || !isAbsolute(dir)) continue;
    const candidate = join(dir, command);
    try {
      if (statSync(candidate).isFile()) {
        accessSync(candidate, constants.X_OK);
        return { path: candidate };
      }
    } catch {
      // Not here, or not executable by us: the shell moves on too.
    }
  }
  return notFound;
}

type Execve = (file: string, args: string[], env: Record<string, string | undefined>) => never;

/**
 * Runs `argv` (command and arguments) once the checks have passed. Resolves when the command
 * has ended (or could not be started); with BANSHO_RUN_AFTER=exec on a node with execve, it
 * does not return.
 */
export async function runAfter(argv: readonly string[], env: Env): Promise<RunAfterOutcome> {
  const [command = '', ...args] = argv;
  const resolved = resolveCommand(command, env);
  if ('failure' in resolved) return resolved.failure;
  const execve = (process as unknown as { execve?: Execve }).execve;
  // Only a file that execve takes (an ELF binary or a #! script) is handed to it: a failed
  // execve would abort node instead of returning an error.
  if (env.BANSHO_RUN_AFTER === 'exec' && typeof execve === 'function' && isExecutableImage(resolved.path)) {
    execve(resolved.path, [command, ...args], { ...env });
  }
  return runAsChild(resolved.path, command, args, env);
}

/** Whether the file starts as a program execve runs: ELF's magic number, or `#!`. */
function isExecutableImage(path: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const head = Buffer.alloc(4);
    const read = readSync(fd, head, 0, 4, 0);
    return (
      (read >= 2 && head[0] === 0x23 && head[1] === 0x21) ||
      (read === 4 && head.toString('latin1') === '\x7fELF')
    );
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const FORWARDED = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

function runAsChild(path: string, command: string, args: string[], env: Env): Promise<RunAfterOutcome> {
  return new Promise((resolve) => {
    // bansho's own handlers (abort the checks, exit 130/143) have done their work: the child decides now.
    for (const signal of FORWARDED) process.removeAllListeners(signal);
    const child = spawn(path, args, { stdio: 'inherit', env: { ...env }, argv0: command });
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    for (const signal of FORWARDED) process.on(signal, forward);
    child.once('error', (error: NodeJS.ErrnoException) =>
      resolve({
        kind: 'failed',
        code: error.code === 'ENOENT' ? COMMAND_NOT_FOUND : COMMAND_NOT_EXECUTABLE,
        message: `${command}: cannot be run (${error.code ?? error.message})`,
      }),
    );
    child.once('exit', (code, signal) => {
      for (const name of FORWARDED) process.removeListener(name, forward);
      const number = signal ? (osConstants.signals as Record<string, number>)[signal] : undefined;
      resolve({ kind: 'exited', code: code ?? 128 + (number ?? 0) });
    });
  });
}
