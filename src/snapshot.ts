import { Writable } from 'node:stream';
import { startupSnapshot } from 'node:v8';
import { buildProgram } from './cli.js';
import { main } from './main.js';
import { runCommand } from './run.js';

/*
 * The entry of the V8 startup snapshot that bin/bansho runs (`node --snapshot-blob`). The build
 * (scripts/bundle-cli.mjs) bundles this file, evaluates it with `node --build-snapshot` and saves
 * the heap: a run then deserializes the CLI, its drivers and the code its checks compiled,
 * instead of loading and compiling them. Everything a run depends on (argv, the environment,
 * the working directory, whether stdout is a TTY, the time) is read in main, after
 * deserialization; nothing here may touch process.stdout, timers or sockets that outlive the
 * warm-up, or the snapshot would carry them.
 */

/**
 * Runs each subcommand once, as main would, against a port nothing listens on and with its
 * output thrown away: that loads every driver module a command loads on first use and compiles
 * the code up to the connection attempt, and the snapshot keeps both.
 */
async function warmUp(closedPort: number): Promise<void> {
  const discard = () => new Writable({ write: (_chunk, _encoding, done) => done() });
  for (const command of ['ping-redis', 'ping-postgres', 'ensure-schema', 'smoke']) {
    const program = buildProgram(async (bansho, options) => {
      await runCommand(bansho, options, {
        env: {
          REDIS_URL: `redis://127.0.0.1:${closedPort}`,
          POSTGRES_DSN: `postgres://postgres@127.0.0.1:${closedPort}/postgres`,
        },
        // No .env is read from a directory that does not exist.
        cwd: '/nonexistent/bansho-snapshot',
        stdout: discard(),
        stderr: discard(),
        signal: new AbortController().signal,
      });
    });
    await program.parseAsync(['node', 'bansho', command, '--timeout', '2s']);
  }
}

const closedPort = Number(process.env.BANSHO_SNAPSHOT_CLOSED_PORT);
if (!Number.isInteger(closedPort) || closedPort <= 0) {
  throw new Error('BANSHO_SNAPSHOT_CLOSED_PORT must name a port nothing listens on');
}
// A failed warm-up rejects, and Node ends the build with an error instead of writing the blob.
void warmUp(closedPort);

startupSnapshot.setDeserializeMainFunction(() => {
  // Under --snapshot-blob, argv has no script: bansho's arguments follow the node binary.
  main([process.argv[0] ?? 'node', 'bansho', ...process.argv.slice(1)]).catch((error: unknown) => {
    // Only a bug of bansho's lands here, as in bin/bansho.js.
    process.stderr.write(
      `bansho: internal error: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    process.exitCode = 70;
  });
});
