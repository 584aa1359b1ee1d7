/**
 * The package as users get it: npm run the way users run it, in folders of its own, on a copy
 * of this working tree (so that a pack never rewrites the package.json other tests read).
 */
import { copyFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type ExecResult, exec, makeTempDir, run } from './process.js';

export const ROOT = resolve(import.meta.dirname, '../..');

/**
 * Set by .ci/run for every Node line after the first: what this run adds is that Node, so the
 * tests of what npm, TypeScript, esbuild and the Dockerfile's steps do (the same on every line,
 * and the slowest of the suite) ran on the first line and are skipped, with this reason. The
 * install on this node, and a consumer compiled for it and run on it, are not.
 */
export const SAME_ON_EVERY_NODE =
  process.env.BANSHO_TEST_NODE_ONLY === '1'
    ? 'BANSHO_TEST_NODE_ONLY: run on the first Node line of this CI run, and the same on every line'
    : false;

/**
 * The environment npm runs in: this process's, without what `npm test` passes down (npm_*
 * settings of the outer npm) or server URLs, with this node first on PATH so that npm and its
 * scripts run on the node under test, and the npm cache preferred over the registry.
 */
export function npmEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^(npm_|NPM_|PG|REDIS|BANSHO_)/.test(key) && key !== 'NODE_EXTRA_CA_CERTS') env[key] = value;
  }
  return {
    ...env,
    PATH: `${dirname(process.execPath)}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    npm_config_prefer_offline: 'true',
    npm_config_audit: 'false',
    npm_config_fund: 'false',
    npm_config_update_notifier: 'false',
    ...extra,
  };
}

/** Runs npm to completion (exit code in the result); installs may take a while on a busy machine. */
export function npm(args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<ExecResult> {
  return exec('npm', args, { cwd, env: npmEnv(env), timeoutMs: 300_000 });
}

/** Like npm(), but rejects with npm's output unless it exits 0. */
export function npmOk(
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
): Promise<ExecResult> {
  return run('npm', args, { cwd, env: npmEnv(env), timeoutMs: 300_000 });
}

/** The lines of npm's install-scripts warning (npm 11.19+: scripts not covered by allowScripts). */
export function installScriptWarnings(output: string): string[] {
  return output.split('\n').filter((line) => /install-scripts/.test(line) && line.trim() !== '');
}

/**
 * Copies what a clone of this working tree holds (tracked files and untracked ones git does
 * not ignore, as they are on disk now) into a fresh folder, and returns it.
 */
export async function copyWorkingTree(prefix = 'bansho-tree-'): Promise<string> {
  const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
  });
  const dir = await makeTempDir(prefix);
  for (const file of stdout.split('\0').filter(Boolean)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    try {
      copyFileSync(join(ROOT, file), join(dir, file));
    } catch (error) {
      // A tracked file deleted in the working tree is not part of it.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return dir;
}

export interface PackedRepo {
  /** The tarball `npm pack` wrote. */
  tarball: string;
  /** The copy of the working tree that was packed, after the pack. */
  tree: string;
  /** What npm printed. */
  output: string;
}

let packed: Promise<PackedRepo> | undefined;

/** `npm pack` of a copy of this working tree (with this repo's node_modules), once per test process. */
export function packRepo(): Promise<PackedRepo> {
  packed ??= (async () => {
    const tree = await copyWorkingTree('bansho-pack-');
    symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'));
    const destination = await makeTempDir('bansho-tarball-');
    const { stdout, stderr } = await npmOk(['pack', '--pack-destination', destination], tree);
    const [name] = (await readdir(destination)).filter((file) => file.endsWith('.tgz'));
    if (!name) throw new Error(`npm pack wrote no tarball:\n${stderr}`);
    return { tarball: join(destination, name), tree, output: stdout + stderr };
  })();
  return packed;
}
