// Bundles the CLI into dist/bansho.mjs (plus lazily loaded chunks), after tsc has built dist/.
// Why: a HEALTHCHECK starts the process every few seconds, and resolving and reading hundreds
// of small module files dominates that start-up; one file per command path costs ~60 ms less
// (measured by `npm run bench`). The library entry (dist/index.js) stays tsc's output.
import { build } from 'esbuild';

await build({
  entryPoints: { bansho: 'dist/main.js' },
  outdir: 'dist',
  bundle: true,
  // Each command imports its driver on first use; splitting keeps that lazy in the bundle.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
  format: 'esm',
  outExtension: { '.js': '.mjs' },
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  // CommonJS dependencies (commander, @redis/client) call require(); ESM output has none.
  banner: {
    js: "import { createRequire as __banshoCreateRequire } from 'node:module'; const require = __banshoCreateRequire(import.meta.url);",
  },
});
