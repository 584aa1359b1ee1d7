import {
  accessSync,
  closeSync,
  constants,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Script } from 'node:vm';
import { cacheNameFor } from './command-names.js';

/*
 * How bin/bansho starts the CLI. A healthcheck starts a process every few seconds, and compiling
 * the bundle's JavaScript is most of a cold start: this hands V8 a code cache of what an earlier
 * run of the same subcommand compiled, made by and for the very node binary that runs now.
 *
 * Where caches live: `$BANSHO_CACHE_DIR`, else `$XDG_CACHE_HOME/bansho`, else `~/.cache/bansho`
 * (made on first run, per user), and `dist/cache/` in the package (made by `bansho warm-cache`,
 * e.g. at image build time, and only read at run time). A cache that cannot be read or written
 * is never an error and never printed: the run compiles from source and is only slower.
 *
 * Whose cache it is: V8 itself refuses a cache made by another V8 version, under other V8 flags,
 * or for another source length. That is not enough: a node binary rebuilt with the same V8, or
 * replaced in place, would pass. So each file is named after, and headed by, a key of everything
 * it depends on (the node binary's identity on disk, its version and architecture, node's and
 * V8's flags, the bundle's identity, the subcommand), and a file is used only when its key, its
 * length, its owner and its permissions are right. Files are written whole to a temporary name
 * and renamed, so a reader sees a complete file or none, whatever runs at once.
 */

/** First line of every cache file; bump it when the format changes. */
const FORMAT = 'bansho-code-cache 1';
/** A directory keeps this many caches, the most recently written; older ones are removed. */
const KEEP_FILES = 24;
/** A temporary file this old was left by a run that died before renaming it. */
const STALE_TEMP_MS = 10 * 60_000;
/** Set by `bansho warm-cache` for the runs it starts: always write, never read. */
export const WARM_ENV = 'BANSHO_CACHE_WARM';

export type Env = Readonly<Record<string, string | undefined>>;

/** Where caches are read from, in order, and the one a run may write to. */
export interface CacheDirs {
  read: string[];
  write?: string;
}

/**
 * The cache directories for this environment: the user's (or BANSHO_CACHE_DIR) first, since a
 * cache made there after a successful run beats the package's, made by warm-cache before any.
 */
export function cacheDirs(env: Env, packageDir: string): CacheDirs {
  const prebuilt = join(packageDir, 'dist', 'cache');
  const explicit = env.BANSHO_CACHE_DIR;
  const base = env.XDG_CACHE_HOME && isAbsolute(env.XDG_CACHE_HOME) ? env.XDG_CACHE_HOME : undefined;
  const home = env.HOME && isAbsolute(env.HOME) ? join(env.HOME, '.cache') : undefined;
  const write = explicit ? explicit : base || home ? join((base ?? home) as string, 'bansho') : undefined;
  return { read: write && write !== prebuilt ? [write, prebuilt] : [prebuilt], ...(write ? { write } : {}) };
}

/** Everything a code cache depends on, one item per line; see the comment at the top. */
export function cacheKey(name: string, bundlePath: string, env: Env): string {
  const node = statSync(process.execPath);
  const bundle = statSync(bundlePath);
  return [
    FORMAT,
    `node ${process.version} ${process.arch} v8 ${process.versions.v8}`,
    `binary ${process.execPath} ${node.dev}:${node.ino} ${node.size} ${node.mtimeMs}`,
    `flags ${JSON.stringify(process.execArgv)} ${JSON.stringify(env.NODE_OPTIONS ?? '')}`,
    `bundle ${bundlePath} ${bundle.dev}:${bundle.ino} ${bundle.size} ${bundle.mtimeMs}`,
    `command ${name}`,
  ].join('\n');
}

/** `smoke-1k2j3h4g.v8`: readable, and different for every key (FNV-1a of it; the header has the key itself). */
export function cacheFileName(name: string, key: string): string {
  let hash = 0x811c9dc5;
  for (let index = 0; index < key.length; index++) {
    hash = Math.imul(hash ^ key.charCodeAt(index), 0x01000193);
  }
  return `${name}-${(hash >>> 0).toString(36)}.v8`;
}

export interface CodeCache {
  data: Buffer;
  /** The file it was read from. */
  path: string;
  /** Made after a run that exited 0, which compiled the whole successful path. */
  complete: boolean;
}

/** The cache for `key` from the first directory that has a valid one; undefined when none does. */
export function readCache(dirs: readonly string[], fileName: string, key: string): CodeCache | undefined {
  for (const dir of dirs) {
    const cache = readCacheFile(join(dir, fileName), key);
    if (cache) return cache;
  }
  return undefined;
}

function readCacheFile(path: string, key: string): CodeCache | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    const stat = fstatSync(fd);
    // Only a file that no one else could have written: V8 trusts a code cache's bytecode.
    const owner = stat.uid === process.getuid?.() || stat.uid === 0;
    if (!stat.isFile() || !owner || (stat.mode & 0o022) !== 0) return undefined;
    const bytes = Buffer.allocUnsafe(stat.size);
    if (readSync(fd, bytes, 0, stat.size, 0) !== stat.size) return undefined;
    const cache = parseCache(bytes, key);
    return cache && { ...cache, path };
  } catch {
    // Missing, unreadable, or vanished meanwhile: compile from source.
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** A cache file: the format line, a JSON header line, then V8's data. */
export function parseCache(bytes: Buffer, key: string): Omit<CodeCache, 'path'> | undefined {
  const formatEnd = bytes.indexOf(10);
  const headerEnd = formatEnd < 0 ? -1 : bytes.indexOf(10, formatEnd + 1);
  if (headerEnd < 0 || bytes.toString('latin1', 0, formatEnd) !== FORMAT) return undefined;
  let header: { key?: unknown; complete?: unknown; length?: unknown };
  try {
    header = JSON.parse(bytes.toString('utf8', formatEnd + 1, headerEnd));
  } catch {
    return undefined;
  }
  const data = bytes.subarray(headerEnd + 1);
  // A truncated file fails here, before V8 sees it.
  if (header.key !== key || header.length !== data.length) return undefined;
  return { data, complete: header.complete === true };
}

export function serializeCache(key: string, data: Buffer, complete: boolean): Buffer {
  const header = JSON.stringify({ key, complete, length: data.length });
  return Buffer.concat([Buffer.from(`${FORMAT}\n${header}\n`, 'utf8'), data]);
}

/**
 * Writes a cache whole, under a temporary name then renamed, so that runs starting at once only
 * ever see a complete file. Returns false when the directory cannot be written (a read-only
 * filesystem, an unwritable HOME): that costs nothing but speed.
 */
export function writeCache(dir: string, fileName: string, contents: () => Buffer): boolean {
  const temporary = join(dir, `.${fileName}.${process.pid}.tmp`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    // Before making the data, which costs a few milliseconds a read-only filesystem would waste.
    accessSync(dir, constants.W_OK);
    writeFileSync(temporary, contents(), { mode: 0o644, flag: 'wx' });
    renameSync(temporary, join(dir, fileName));
  } catch {
    try {
      unlinkSync(temporary);
    } catch {
      // Never created.
    }
    return false;
  }
  pruneCaches(dir);
  return true;
}

/** Keeps a directory to the KEEP_FILES caches written last (other node binaries, older builds). */
function pruneCaches(dir: string): void {
  try {
    const now = Date.now();
    const files = readdirSync(dir)
      .filter((name) => /^[a-z-]+-[0-9a-z]+\.v8$/.test(name) || /^\..+\.tmp$/.test(name))
      .map((name) => ({ name, stat: statSync(join(dir, name)) }));
    const caches = files.filter((file) => file.name.endsWith('.v8'));
    caches.sort((a, b) => b.stat.mtimeMs - a.stat.mtimeMs);
    const stale = files.filter(
      (file) => file.name.endsWith('.tmp') && now - file.stat.mtimeMs > STALE_TEMP_MS,
    );
    for (const file of [...caches.slice(KEEP_FILES), ...stale]) unlinkSync(join(dir, file.name));
  } catch {
    // Another run pruned first, or the directory is not ours to clean: nothing is lost.
  }
}

/** The bundle's parameters, in order: it is built as one function expression (see the build). */
type BundleFunction = (
  exports: object,
  require: NodeJS.Require,
  module: { exports: object },
  filename: string,
  dirname: string,
  moduleUrl: string,
) => void;

export interface LoadedCli {
  main(argv: readonly string[]): Promise<void>;
  /** The compiled bundle: createCachedData() on it after a run is the cache for the next. */
  script: Script;
}

/** Compiles the bundle (from `cachedData` when V8 accepts it) and runs its top level. */
export function loadCli(bundlePath: string, cachedData?: Buffer): LoadedCli {
  // esbuild writes ASCII only (non-ASCII is escaped), and latin1 is the cheapest decoding.
  const source = readFileSync(bundlePath, 'latin1');
  const script = new Script(source, { filename: bundlePath, ...(cachedData ? { cachedData } : {}) });
  const bundle = script.runInThisContext() as BundleFunction;
  const module = { exports: {} as { main?: LoadedCli['main'] } };
  bundle(
    module.exports,
    createRequire(bundlePath),
    module,
    bundlePath,
    dirname(bundlePath),
    pathToFileURL(bundlePath).href,
  );
  const { main } = module.exports;
  if (typeof main !== 'function') throw new Error(`${bundlePath} does not export main`);
  return { main, script };
}

/**
 * `bansho --version` (or `-V`) and nothing else: answered from package.json without loading the
 * CLI, which is most of what such a run would cost, exactly as commander prints it. False when
 * the invocation is another, or the write failed (the CLI then writes, and reports, itself).
 */
function printVersion(options: StartOptions): boolean {
  const [, , flag, ...rest] = options.argv;
  if (rest.length > 0 || (flag !== '--version' && flag !== '-V')) return false;
  try {
    const { version } = JSON.parse(readFileSync(join(options.packageDir, 'package.json'), 'utf8')) as {
      version: string;
    };
    // Straight to the file descriptor: a stream for stdout would load half of node's net and stream modules.
    writeSync(1, `${version}\n`);
    return true;
  } catch {
    return false;
  }
}

export interface StartOptions {
  argv: readonly string[];
  env: Env;
  /** The package's root: dist/bansho.cjs and dist/cache/ are under it. */
  packageDir: string;
}

/**
 * Loads the CLI with its start-up cache and runs it; when the run had no usable cache, or only
 * one made before any successful run and this one succeeded, it leaves a cache for the next run
 * as the process exits (once every function the run needed is compiled).
 */
export function startCli(options: StartOptions): Promise<void> {
  if (printVersion(options)) return Promise.resolve();
  const bundlePath = join(options.packageDir, 'dist', 'bansho.cjs');
  const name = cacheNameFor(options.argv);
  const dirs = cacheDirs(options.env, options.packageDir);
  const warm = options.env[WARM_ENV] === '1';
  let key: string | undefined;
  let cache: CodeCache | undefined;
  try {
    if (name === undefined) throw new Error('no start-up cache for this command');
    key = cacheKey(name, bundlePath, options.env);
    if (!warm) cache = readCache(dirs.read, cacheFileName(name, key), key);
  } catch {
    // No cache for this command, or the node binary or the bundle cannot be stat'ed.
    key = undefined;
  }
  const cli = loadCli(bundlePath, cache?.data);
  const accepted = cache !== undefined && cli.script.cachedDataRejected !== true;
  const fileName = name !== undefined && key !== undefined ? cacheFileName(name, key) : undefined;
  process.once('exit', (code) => {
    let wrote: string | undefined;
    // Exit 0 compiled the whole successful path; a signal's exit may have cut the run short.
    const worth = warm || !accepted || (cache?.complete === false && code === 0);
    if (
      fileName !== undefined &&
      key !== undefined &&
      dirs.write !== undefined &&
      worth &&
      [0, 1, 2].includes(code)
    ) {
      const contents = () => serializeCache(key, cli.script.createCachedData(), code === 0);
      wrote = writeCache(dirs.write, fileName, contents) ? 'wrote' : 'could not write';
    }
    if (options.env.BANSHO_CACHE_DEBUG === '1') {
      const used =
        cache === undefined ? 'none found' : `${accepted ? 'used' : 'rejected by V8:'} ${cache.path}`;
      const where = dirs.write === undefined ? '' : ` ${wrote ?? 'kept'} ${join(dirs.write, fileName ?? '')}`;
      process.stderr.write(`bansho: start-up cache for ${name ?? 'this command'}: ${used};${where}\n`);
    }
  });
  return cli.main(options.argv);
}
