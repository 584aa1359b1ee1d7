import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Script } from 'node:vm';

/*
 * How bin/bansho.js starts the CLI. A healthcheck starts a process every few seconds, and
 * compiling the bundle's JavaScript was most of its start-up: the build (scripts/bundle-cli.mjs)
 * runs each subcommand once and saves the V8 code cache of what that run compiled, and this
 * hands that cache to V8 with the bundle's source. V8 checks a cache against its own version,
 * flags and the source, and compiles from source when it rejects one: then bansho is slower
 * to start, never wrong.
 */

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
  /** The compiled bundle: the build calls createCachedData() on it after a run. */
  script: Script;
}

export interface LoadCliOptions {
  /** dist/bansho.cjs: the CLI bundled into one function expression. */
  bundlePath: string;
  /** A V8 code cache for this bundle, or undefined to compile from source. */
  cachedData?: Buffer | undefined;
}

/** Compiles the bundle (from its code cache when V8 accepts it) and runs its top level. */
export function loadCli(options: LoadCliOptions): LoadedCli {
  const { bundlePath, cachedData } = options;
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
 * The code cache the build made for this subcommand (`argv[2]`), else the one it made for
 * everything else (help, version, usage errors); undefined when there is none to read.
 */
export function readCodeCache(cacheDir: string, subcommand: string | undefined): Buffer | undefined {
  const names = subcommand && /^[a-z][a-z-]*$/.test(subcommand) ? [subcommand, 'default'] : ['default'];
  for (const name of names) {
    try {
      return readFileSync(join(cacheDir, `${name}.v8`));
    } catch {
      // No cache for this name (or none at all): try the next, else compile from source.
    }
  }
  return undefined;
}
