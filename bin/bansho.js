#!/usr/bin/env -S node --
// "node --": Node 20 would otherwise take a --env-file meant for bansho as its own (nodejs/node#54232).
import { main } from '../dist/bansho.mjs';

main(process.argv).catch((error) => {
  // Only a bug of bansho's lands here: say so in one line, no stack, and exit non-zero.
  process.stderr.write(`bansho: internal error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 70;
});
