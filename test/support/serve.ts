/**
 * `bansho serve` as a child process, for the tests and bench/serve.ts: started on a free loopback
 * port, its stderr kept, killed if the caller's process exits first.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { BIN, emptyDir } from './cli.js';
import { cleanupOnExit } from './process.js';

export interface Served {
  child: ChildProcess;
  /** The port it serves on, from its "serving http://127.0.0.1:<port>/" line. */
  port: number;
  /** What it has written on stderr so far. */
  stderr(): string;
  /** Resolves once the process has ended: its exit code, or null when a signal ended it. */
  exited: Promise<number | null>;
}

/**
 * Spawns `bansho serve --listen 127.0.0.1:0 ...args` with `env` (and this node first on PATH),
 * and resolves once it serves; rejects with its stderr if it exits first or is not serving
 * within `startMs`.
 */
export async function startServe(
  args: readonly string[],
  env: Record<string, string>,
  startMs = 30_000,
): Promise<Served> {
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', ...args], {
    cwd: emptyDir(),
    env: {
      PATH: `${dirname(process.execPath)}:${process.env.PATH}`,
      HOME: process.env.HOME ?? '/root',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const unregister = cleanupOnExit(() => child.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      unregister();
      resolve(code);
    }),
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`bansho serve not serving within ${startMs} ms: ${stderr}`)),
      startMs,
    );
    const onData = () => {
      const match = /serving http:\/\/127\.0\.0\.1:(\d+)\//.exec(stderr);
      if (!match) return;
      clearTimeout(timer);
      child.stderr?.off('data', onData);
      resolve(Number(match[1]));
    };
    child.stderr?.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`bansho serve exited ${code} before serving: ${stderr}`));
    });
  });
  return { child, port, stderr: () => stderr, exited };
}
