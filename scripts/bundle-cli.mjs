// Bundles the CLI into one file, dist/bansho.cjs, and its loader, dist/start-up-cache.cjs, after tsc
// has built dist/, then makes the start-up caches for this node. The library entry
// (dist/index.js) stays tsc's output.
// Why: a HEALTHCHECK starts the process every few seconds, and resolving, reading, compiling and
// running hundreds of modules was most of its run. src/cli/start-up-cache.ts says how the bundle is loaded;
// the README's Performance section has the measurements.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';

/**
 * Modules that something loads on every run but a check rarely uses: each is replaced by a
 * stand-in with the same export names that loads the real module on the first use of one.
 * Node's built-ins: tls (only rediss:// and sslmode), crypto (node-redis's client id and
 * SCRAM), child_process (commander's executable subcommands), and what those pull in. node-redis's
 * command table and command metadata: a check sends its commands with sendCommand, and
 * RESP3's handshake (HELLO) needs neither. A stand-in has the export names that the Node running
 * the build gives the module.
 */
const LAZY_MODULES = [
  /^(node:)?(tls|crypto|child_process|os|assert|dgram|dns\/promises|timers\/promises|perf_hooks)$/,
  /@redis[/\\]client[/\\]dist[/\\]lib[/\\](commands|command-metadata)[/\\]index\.js$/,
];

const requireHere = createRequire(import.meta.url);

/**
 * node-redis gives every client an identity for its OpenTelemetry attributes, a label such as
 * "127.0.0.1:6379/0-1a2b3c4d", whose suffix it draws from node:crypto's randomBytes: loading
 * crypto for that alone costs a Redis check a few milliseconds of every start. In the CLI's
 * bundle that module gets a randomBytes of Math.random instead; the library (dist/index.js)
 * keeps node-redis as it is.
 */
function redisIdentityWithoutCrypto() {
  return {
    name: 'redis-identity-without-crypto',
    setup(build) {
      build.onResolve({ filter: /^(node:)?crypto$/ }, (args) =>
        /@redis[/\\]client[/\\]dist[/\\]lib[/\\]client[/\\]identity\.js$/.test(args.importer)
          ? { path: 'identity-random-bytes', namespace: 'bansho-shim' }
          : undefined,
      );
      build.onLoad({ filter: /.*/, namespace: 'bansho-shim' }, () => ({
        contents:
          'exports.randomBytes = (size) => Buffer.from(Array.from({ length: size }, () => Math.floor(Math.random() * 256)));',
        loader: 'js',
      }));
    },
  };
}

function lazyModules(patterns) {
  return {
    name: 'lazy-modules',
    setup(build) {
      const isLazy = (path) => patterns.some((pattern) => pattern.test(path));
      // A built-in keeps its name; node-redis's modules require each other by relative path.
      build.onResolve({ filter: /.*/ }, (args) => {
        if (args.namespace !== 'file') return undefined;
        let path;
        if (isBuiltin(args.path)) path = args.path;
        else if (args.path.startsWith('.') && args.resolveDir.includes('@redis'))
          path = requireHere.resolve(join(args.resolveDir, args.path));
        return path !== undefined && isLazy(path) ? { path, namespace: 'lazy' } : undefined;
      });
      // The stand-in's own require of the real module.
      build.onResolve({ filter: /.*/, namespace: 'lazy' }, (args) =>
        isBuiltin(args.path) ? { path: args.path, external: true } : { path: args.path, namespace: 'real' },
      );
      build.onLoad({ filter: /.*/, namespace: 'real' }, (args) => ({
        contents: readFileSync(args.path, 'utf8'),
        resolveDir: dirname(args.path),
        loader: 'js',
      }));
      build.onLoad({ filter: /.*/, namespace: 'lazy' }, (args) => {
        // The export names are read here, at build time, from the same module.
        const real = requireHere(args.path);
        return {
          contents: [
            `let real;`,
            `const load = () => (real ??= require(${JSON.stringify(args.path)}));`,
            // node:assert is itself a function.
            typeof real === 'function'
              ? 'module.exports = function (...args) { return load().apply(this, args); };'
              : '',
            real.__esModule ? `Object.defineProperty(module.exports, '__esModule', { value: true });` : '',
            `for (const key of ${JSON.stringify(Object.keys(real))})`,
            `  Object.defineProperty(module.exports, key, { enumerable: true, get: () => load()[key] });`,
          ].join('\n'),
          loader: 'js',
        };
      });
    },
  };
}

const common = { bundle: true, format: 'cjs', platform: 'node', target: 'node20', logLevel: 'warning' };

// One function expression, so that the start-up cache's loader can compile it with vm.Script and a code cache.
// Drivers stay lazy inside it: esbuild turns `await import()` into a deferred module init.
await build({
  ...common,
  entryPoints: ['dist/cli/main.js'],
  outfile: 'dist/bansho.cjs',
  // Whitespace and syntax only: postgres.js names its errors after their class, and the checks match on it.
  minify: true,
  keepNames: true,
  define: { 'import.meta.url': '__bansho_module_url' },
  banner: { js: '(function (exports, require, module, __filename, __dirname, __bansho_module_url) {' },
  footer: { js: '})' },
  // The `performance` global, whose first use loads node's perf_hooks: see scripts/bundle/performance.mjs.
  inject: [join(import.meta.dirname, 'bundle', 'performance.mjs')],
  plugins: [redisIdentityWithoutCrypto(), lazyModules(LAZY_MODULES)],
});
await build({ ...common, entryPoints: ['dist/cli/start-up-cache.js'], outfile: 'dist/start-up-cache.cjs' });
// The start-up caches for the node running the build, so that a clone starts fast from its
// first run (src/cli/start-up-cache.ts). Made afresh: the bundle just changed, and so did every key.
const warm = spawnSync(process.execPath, ['--', 'bin/bansho', 'warm-cache'], {
  stdio: ['ignore', 'ignore', 'inherit'],
  env: { ...process.env, BANSHO_CACHE_DIR: '' },
});
if (warm.error) throw warm.error;
if (warm.status !== 0) throw new Error(`bansho warm-cache ended with ${warm.status ?? warm.signal}`);
