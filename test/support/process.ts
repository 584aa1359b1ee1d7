/**
 * Child-process plumbing for the test harness: one-shot commands (`exec`, `run`),
 * long-running servers (`spawnDaemon`) and the exit hooks that make sure no
 * server or temp dir outlives the test process.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// ---------------------------------------------------------------------------
// Exit hooks

const exitCleanups = new Set<() => void>();
let hooksInstalled = false;

function runExitCleanups(): void {
  for (const cleanup of exitCleanups) {
    try {
      cleanup();
    } catch {
      // Best effort: we are exiting anyway, and one failure must not skip the rest.
    }
  }
  exitCleanups.clear();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', runExitCleanups);
  // A process killed by a signal does not emit 'exit' (the test runner sends
  // SIGTERM on timeouts), so clean up and then die of the same signal.
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      runExitCleanups();
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

/**
 * Registers a synchronous cleanup that runs if the process exits (or is
 * signalled) before it is unregistered. Returns the unregister function.
 */
export function cleanupOnExit(cleanup: () => void): () => void {
  installExitHooks();
  exitCleanups.add(cleanup);
  return () => {
    exitCleanups.delete(cleanup);
  };
}

/** Removes a directory tree synchronously, tolerating files vanishing meanwhile. */
export function removeDirSync(dir: string): void {
  rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 });
}

/** A fresh directory under the OS temp dir that is removed when the process exits. */
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  cleanupOnExit(() => removeDirSync(dir));
  return dir;
}

// ---------------------------------------------------------------------------
// One-shot commands

export interface ExecOptions {
  /** Written to the child's stdin, which is then closed. */
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run as this user (needs root); used for PostgreSQL, which refuses to run as root. */
  user?: OsUser;
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
}

export interface OsUser {
  uid: number;
  gid: number;
}

export interface ExecResult {
  /** Exit code, or null when the command died of a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never rejects because of its exit code. */
export function exec(
  command: string,
  args: readonly string[],
  options: ExecOptions = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: options.env ?? process.env,
      cwd: options.cwd,
      uid: options.user?.uid,
      gid: options.user?.gid,
      timeout: options.timeoutMs ?? 30_000,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    // EPIPE happens when a command exits without reading its input; the exit code tells the story.
    child.stdin.on('error', () => {});
    child.stdin.end(options.input ?? '');
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** Runs a command to completion and rejects (with its stderr) unless it exits 0. */
export async function run(
  command: string,
  args: readonly string[],
  options: ExecOptions = {},
): Promise<ExecResult> {
  const result = await exec(command, args, options);
  if (result.code !== 0) {
    const status = result.signal ? `signal ${result.signal}` : `exit code ${result.code}`;
    const output = (result.stderr || result.stdout).trim();
    throw new Error(`${command} ${args.join(' ')} failed with ${status}: ${output}`);
  }
  return result;
}

// ---------------------------------------------------------------------------
// Long-running servers

export interface DaemonOptions {
  env: NodeJS.ProcessEnv;
  cwd: string;
  user?: OsUser;
  /** How stop() kills it: SIGKILL for redis, SIGQUIT (immediate shutdown) for postgres. */
  killSignal: NodeJS.Signals;
  /** Removed (recursively) once the daemon has been stopped. */
  dir: string;
}

export interface Daemon {
  readonly pid: number | undefined;
  /** The last part of the daemon's combined stdout/stderr, for error messages. */
  output(): string;
  /** Resolves once the output matches; rejects if the daemon exits first or on timeout. */
  waitForOutput(pattern: RegExp, timeoutMs: number): Promise<void>;
  /** Kills the daemon, waits for it to exit and removes its dir. Idempotent. */
  stop(): Promise<void>;
}

const OUTPUT_TAIL_CHARS = 16_000;

/**
 * Spawns a server process that is killed when the test process exits.
 *
 * The child and its pipes are unref'd so that a test file that forgets to call
 * stop() still finishes (the exit hook kills the server) instead of hanging.
 */
export function spawnDaemon(command: string, args: readonly string[], options: DaemonOptions): Daemon {
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: options.env,
    cwd: options.cwd,
    uid: options.user?.uid,
    gid: options.user?.gid,
  });
  const isRunning = (): boolean => child.exitCode === null && child.signalCode === null;
  // 'close' rather than 'exit': it also waits for the output pipes to drain (so error
  // messages are complete) and, for postgres, for the backends that inherited them to die.
  const exited = new Promise<void>((resolve) => {
    child.once('close', () => resolve());
    // spawn failures (ENOENT, EACCES) emit 'error' and never 'exit'.
    child.once('error', () => resolve());
  });
  let spawnError: Error | undefined;
  child.once('error', (error) => {
    spawnError = error;
  });

  // Keep draining the pipes for the daemon's whole life: a full pipe would block its logging.
  let tail = '';
  const outputListeners = new Set<() => void>();
  for (const stream of [child.stdout, child.stderr]) {
    stream.setEncoding('utf8').on('data', (chunk: string) => {
      tail = (tail + chunk).slice(-OUTPUT_TAIL_CHARS);
      for (const listener of outputListeners) listener();
    });
    if (stream instanceof Socket) stream.unref();
  }
  child.unref();

  const unregister = cleanupOnExit(() => {
    if (isRunning()) child.kill(options.killSignal);
    removeDirSync(options.dir);
  });

  const describe = (): string => `${command} ${args.join(' ')}\n--- output ---\n${tail.trim()}`;

  function waitForOutput(pattern: RegExp, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (error?: Error): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        outputListeners.delete(check);
        if (error) reject(error);
        else resolve();
      };
      const check = (): void => {
        if (pattern.test(tail)) finish();
      };
      // This timer is the ref'd handle that keeps the event loop alive while we wait.
      const timer = setTimeout(() => {
        finish(new Error(`server not ready after ${timeoutMs} ms: ${describe()}`));
      }, timeoutMs);
      outputListeners.add(check);
      check();
      void exited.then(() => {
        const reason = spawnError ? spawnError.message : `exited (${child.exitCode ?? child.signalCode})`;
        finish(new Error(`server ${reason} before becoming ready: ${describe()}`));
      });
    });
  }

  let stopping: Promise<void> | undefined;
  function stop(): Promise<void> {
    stopping ??= (async () => {
      // Re-ref so the event loop stays alive until the exit is observed.
      child.ref();
      if (isRunning() && !spawnError) {
        child.kill(options.killSignal);
        const escalate = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(escalate);
      }
      await rm(options.dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 });
      unregister();
    })();
    return stopping;
  }

  return { pid: child.pid, output: () => tail, waitForOutput, stop };
}

/** Environment for spawned servers and clients, without the caller's PG... and REDIS... variables leaking in. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('PG') && !key.startsWith('REDIS')) env[key] = value;
  }
  return { ...env, LC_ALL: 'C', ...extra };
}
