/**
 * Runs the built `bansho` bin as users do: the executable that npm links (bin/bansho, a sh line
 * that execs node on the same file, which loads dist/ with its start-up cache), in a directory
 * of its own (so no stray .env is read), with a minimal environment that a test spells out.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { cleanupOnExit, removeDirSync } from './process.js';

/** What npm links as `bansho`: run by sh, it execs node on itself; node runs it too (see bin/bansho). */
export const BIN = resolve(import.meta.dirname, '../../bin/bansho');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, in milliseconds. */
  elapsedMs: number;
}

export interface CliOptions {
  /** Added to a minimal environment (PATH, HOME); nothing else leaks in from the test process. */
  env?: Record<string, string>;
  /** Default: a fresh empty temporary directory. */
  cwd?: string;
  /** Called once the process is spawned, e.g. to send it a signal. */
  onSpawn?: (child: import('node:child_process').ChildProcess) => void;
  /**
   * Run as `node <nodeArgs> bin/bansho …` instead of the executable, e.g. ['--'] so that
   * Node leaves a --env-file after the script to bansho (Node reads it itself otherwise).
   */
  nodeArgs?: string[];
  /** The test fails rather than hangs: SIGKILL after this long (default 30 s). */
  killAfterMs?: number;
}

/** A fresh empty directory, removed when the test process exits. */
export function emptyDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bansho-cli-'));
  cleanupOnExit(() => removeDirSync(dir));
  return dir;
}

export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const start = performance.now();
  const [command, argv] = options.nodeArgs
    ? [process.execPath, [...options.nodeArgs, BIN, ...args]]
    : [BIN, [...args]];
  const child = spawn(command, argv, {
    cwd: options.cwd ?? emptyDir(),
    env: { PATH: pathWithThisNode(), HOME: process.env.HOME ?? '/root', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), options.killAfterMs ?? 30_000);
  options.onSpawn?.(child);
  return new Promise((resolvePromise, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(killer);
      resolvePromise({ code, signal, stdout, stderr, elapsedMs: performance.now() - start });
    });
  });
}

/** Parses stdout as exactly one JSON document (throws otherwise). */
export function parseJson(result: CliResult): {
  status: string;
  checks: Record<
    string,
    {
      status: string;
      target: string;
      latencyMs: number;
      version?: string;
      host?: string;
      message?: string;
      pending?: string[];
      drift?: { object: string; expected: string; found: string }[];
      details?: Array<{ name: string; status: string; observed: string; hint?: string; code?: string }>;
      error?: { code: string; message: string; hint: string; detail?: string[] };
    }
  >;
  changes?: { object: string; action: string; sql: string }[];
  drift?: { object: string; expected: string; found: string }[];
  dryRun?: boolean;
  error?: { code: string; message: string; hint: string };
} {
  const lines = result.stdout.trim().split('\n');
  if (lines.length !== 1) throw new Error(`expected one line of JSON on stdout, got:\n${result.stdout}`);
  return JSON.parse(lines[0] as string);
}

/** The line a leaked handle would print; no run may ever show it. */
export const LEAK_MESSAGE = 'a handle stayed open after the report';

/** PATH with the directory of the node running the tests first, so bin/bansho finds the same node. */
function pathWithThisNode(): string {
  return `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`;
}

/** Asserts a run's exit code, showing its output when it differs. */
export function assertExit(result: CliResult, code: number): void {
  assert.equal(
    result.code,
    code,
    `expected exit ${code}, got ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
}

/**
 * Runs the CLI in this process (src/cli/main.ts's runCli over captured streams), for the large
 * matrices whose every cell would otherwise cost a node start: what differs from a spawned run
 * (the bin, the bundle, signals, exiting) is tested by spawning. No TTY; no --  <command>.
 */
export async function runCliInProcess(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const { runCli: run } = await import('../../src/cli/main.js');
  const { Writable } = await import('node:stream');
  let stdout = '';
  let stderr = '';
  const sink = (append: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        append(chunk.toString('utf8'));
        done();
      },
    });
  const start = performance.now();
  const code = await run(['node', 'bansho', ...args], {
    env: { PATH: pathWithThisNode(), HOME: process.env.HOME ?? '/root', ...options.env },
    cwd: options.cwd ?? emptyDir(),
    stdout: sink((text) => {
      stdout += text;
    }),
    stderr: sink((text) => {
      stderr += text;
    }),
    signal: new AbortController().signal,
  });
  return { code, signal: null, stdout, stderr, elapsedMs: performance.now() - start };
}
