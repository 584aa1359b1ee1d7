#!/usr/bin/env node
// The executable: runs the built CLI, dist/bansho.cjs, with the V8 code cache the build made for
// this subcommand (see src/cli-loader.ts). CommonJS (bin/package.json): Node starts it sooner
// than an ES module.
const { join } = require('node:path');
const { loadCli, readCodeCache } = require('../dist/cli-loader.cjs');

const dist = join(__dirname, '..', 'dist');
const cli = loadCli({
  bundlePath: join(dist, 'bansho.cjs'),
  cachedData: readCodeCache(join(dist, 'code-cache'), process.argv[2]),
});
cli.main(process.argv).catch((error) => {
  // Only a bug of bansho's lands here: say so in one line, no stack, and exit non-zero.
  process.stderr.write(`bansho: internal error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 70;
});
