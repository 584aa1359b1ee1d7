#!/usr/bin/env node
import { main } from '../dist/bansho.mjs';

main(process.argv).catch((error) => {
  // Only a bug of bansho's lands here: say so in one line, no stack, and exit non-zero.
  process.stderr.write(`bansho: internal error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 70;
});
