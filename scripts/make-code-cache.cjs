// Runs the bundled CLI once with the arguments given after the cache's path, then writes the
// V8 code cache of everything the run compiled to that path. Called by bundle-cli.mjs.
const { writeFileSync } = require('node:fs');
const { join } = require('node:path');
const { loadCli } = require('../dist/cli-loader.cjs');

const [cachePath, ...args] = process.argv.slice(2);
const cli = loadCli({ bundlePath: join(__dirname, '..', 'dist', 'bansho.cjs') });
process.on('exit', () => writeFileSync(cachePath, cli.script.createCachedData()));
cli.main([process.argv[0], 'bansho', ...args]);
