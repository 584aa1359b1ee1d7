// Bundles the CLI into one file, dist/bansho.cjs, and makes a V8 code cache for each subcommand,
// after tsc has built dist/. The library entry (dist/index.js) stays tsc's output.
// Why: a HEALTHCHECK starts the process every few seconds, and resolving, reading, compiling and
// running hundreds of modules was most of its run. src/cli-loader.ts says how the bundle is loaded;
// the README's Performance section has the measurements.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
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

// One function expression, so that cli-loader can compile it with vm.Script and a code cache.
// Drivers stay lazy inside it: esbuild turns `await import()` into a deferred module init.
await build({
  ...common,
  entryPoints: ['dist/main.js'],
  outfile: 'dist/bansho.cjs',
  // Whitespace and syntax only: postgres.js names its errors after their class, and the checks match on it.
  minify: true,
  keepNames: true,
  define: { 'import.meta.url': '__bansho_module_url' },
  banner: { js: '(function (exports, require, module, __filename, __dirname, __bansho_module_url) {' },
  footer: { js: '})' },
  plugins: [lazyModules(LAZY_MODULES)],
});
await build({ ...common, entryPoints: ['dist/cli-loader.js'], outfile: 'dist/cli-loader.cjs' });
// The startup snapshot's entry (src/snapshot.ts): the same bundle as a plain script, which
// `node --build-snapshot` runs with a require that knows Node's built-ins only.
await build({
  ...common,
  entryPoints: ['dist/snapshot.js'],
  outfile: 'dist/bansho-snapshot.cjs',
  minify: true,
  keepNames: true,
  define: { 'import.meta.url': '__bansho_module_url' },
  banner: { js: 'var __bansho_module_url = require("node:url").pathToFileURL(__filename).href;' },
  plugins: [lazyModules(LAZY_MODULES)],
});
// Outputs of earlier layouts, which nothing loads any more.
rmSync('dist/bansho.mjs', { force: true });
rmSync('dist/chunks', { recursive: true, force: true });

// Each subcommand runs once against a port nothing listens on: that compiles its path through
// the CLI and its driver up to the connection attempt, and the cache keeps what was compiled.
const closedPort = await new Promise((resolve) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    server.close(() => resolve(port));
  });
});
const redisUrl = ['--redis-url', `redis://127.0.0.1:${closedPort}`];
const postgresDsn = ['--postgres-dsn', `postgres://postgres@127.0.0.1:${closedPort}/postgres`];
const runs = {
  default: ['--help'],
  'ping-redis': ['ping-redis', ...redisUrl],
  'ping-postgres': ['ping-postgres', ...postgresDsn],
  'ensure-schema': ['ensure-schema', ...postgresDsn],
  smoke: ['smoke', ...redisUrl, ...postgresDsn],
};
rmSync('dist/code-cache', { recursive: true, force: true });
mkdirSync('dist/code-cache');
const cwd = mkdtempSync(join(tmpdir(), 'bansho-build-'));
try {
  for (const [name, args] of Object.entries(runs)) {
    const cachePath = join(process.cwd(), 'dist/code-cache', `${name}.v8`);
    const result = spawnSync(
      process.execPath,
      [join(import.meta.dirname, 'make-code-cache.cjs'), cachePath, ...args, '--timeout', '2s'],
      // The build's own environment, NODE_OPTIONS included: V8 rejects a cache made under other flags.
      { cwd, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NO_COLOR: '1' } },
    );
    if (result.error) throw result.error;
    if (!existsSync(cachePath)) {
      throw new Error(`no code cache for ${name}: the run ended with ${result.status ?? result.signal}`);
    }
  }
} finally {
  rmSync(cwd, { recursive: true, force: true });
}

/*
 * The startup snapshot that bin/bansho runs: dist/snapshot/bansho.blob, the heap after the
 * bundle was evaluated and each subcommand ran once (src/snapshot.ts). Node refuses a blob made
 * by another Node binary or under other V8 flags, so the blob is made without NODE_OPTIONS, and
 * dist/snapshot/node links to the binary that made it: bin/bansho runs the blob only when
 * `node` is that very file (see bin/bansho). The link is written last, so that a failed build
 * leaves no blob that bin/bansho would use.
 */
const snapshotNode = 'dist/snapshot/node';
const blobPath = 'dist/snapshot/bansho.blob';
rmSync('dist/snapshot', { recursive: true, force: true });
mkdirSync('dist/snapshot');
const { NODE_OPTIONS: _ignored, ...snapshotEnv } = process.env;
const snapshotBuild = spawnSync(
  process.execPath,
  ['--no-warnings', '--snapshot-blob', blobPath, '--build-snapshot', 'dist/bansho-snapshot.cjs'],
  {
    stdio: ['ignore', 'inherit', 'pipe'],
    env: { ...snapshotEnv, BANSHO_SNAPSHOT_CLOSED_PORT: String(closedPort) },
  },
);
if (snapshotBuild.error) throw snapshotBuild.error;
if (snapshotBuild.status !== 0 || !existsSync(blobPath)) {
  process.stderr.write(snapshotBuild.stderr);
  throw new Error(
    `no startup snapshot: node --build-snapshot ended with ${snapshotBuild.status ?? snapshotBuild.signal}`,
  );
}
symlinkSync(realpathSync(process.execPath), snapshotNode);
