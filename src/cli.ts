import { createRequire } from 'node:module';
import { Command, Option } from 'commander';
import type { BanshoCommand } from './commands/command.js';
import { ensureSchemaCommand } from './commands/ensure-schema.js';
import { pingPostgresCommand } from './commands/ping-postgres.js';
import { pingRedisCommand } from './commands/ping-redis.js';
import { smokeCommand } from './commands/smoke.js';
import type { CliOptions } from './config.js';
import { redactUrls } from './redact.js';

const COMMANDS: readonly BanshoCommand[] = [
  pingRedisCommand,
  pingPostgresCommand,
  ensureSchemaCommand,
  smokeCommand,
];

const EXIT_CODES_HELP = `
Exit codes:
  0    healthy: every check passed (warnings too, unless --strict)
  1    a check failed: a dependency is down or unhealthy, or the schema differs
  2    invalid invocation or configuration: nothing was attempted
  130  interrupted (SIGINT); 143 terminated (SIGTERM)

Variables (flags win, then the environment, then ./.env):
  REDIS_URL     redis://[[user]:password@]host[:port][/db] or rediss://…  (default redis://127.0.0.1:6379);
                several comma-separated for a cluster; redis+sentinel://host:port[,…]/<master>
  POSTGRES_DSN  postgres://[user[:password]@]host[:port][,host[:port]…][/db][?sslmode=…&sslrootcert=…&sslcert=…&sslkey=…]
                or through a Unix socket: postgres://[user[:password]@]/db?host=/var/run/postgresql
                (default postgres://postgres@127.0.0.1:5432/postgres)
  NO_COLOR      set to turn colour off`;

const version = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

/**
 * Builds the commander program: wiring only. Each subcommand gets the shared flags, with
 * no defaults, so that loadConfig can tell a flag from its absence and apply precedence.
 */
export function buildProgram(
  onCommand: (command: BanshoCommand, options: CliOptions) => Promise<void>,
): Command {
  const program = new Command('bansho')
    .description("bansho's storage CLI: health checks and schema bootstrap for Redis and PostgreSQL")
    .version(version, '-V, --version')
    .addHelpText('after', EXIT_CODES_HELP)
    .showSuggestionAfterError(true)
    // Throw instead of exiting, so that main maps usage errors to exit 2 (commander uses 1).
    .exitOverride()
    .configureOutput({
      // One line: "bansho: unknown option '--jsn' (Did you mean --json?)".
      outputError: (text, write) => write(`bansho: ${usageMessage(text)}\n`),
    });
  for (const spec of COMMANDS) {
    // program.command() (not addCommand) so that the subcommand inherits exitOverride and output.
    const command = program.command(spec.name).description(spec.summary);
    if (spec.needs.redis) command.option('--redis-url <url>', 'Redis URL (overrides REDIS_URL)');
    if (spec.needs.postgres)
      command.option('--postgres-dsn <dsn>', 'PostgreSQL DSN (overrides POSTGRES_DSN)');
    command
      .option('--env-file <path>', 'read variables from this file instead of ./.env')
      .option('--timeout <duration>', 'hard bound for each check, e.g. 500ms, 2s, 1m (default 5s)')
      .option('--wait <duration>', 'retry until healthy or this much time has passed, e.g. 30s')
      .option(
        '--interval <duration>',
        'first pause between --wait attempts; doubles up to 5s (default 250ms)',
      )
      .addOption(new Option('--json', 'print exactly one JSON document on stdout').conflicts('quiet'))
      .option('-q, --quiet', 'print nothing; the exit code tells')
      .option('-v, --verbose', "also show the drivers' errors behind a failure");
    if (spec.hasWarnings)
      command.option(
        '--strict',
        'treat warnings (e.g. an eviction policy, a schema not bootstrapped) as failures',
      );
    for (const [flags, description] of spec.flags ?? []) command.option(flags, description);
    command.addHelpText('after', EXIT_CODES_HELP).action((options: CliOptions) => onCommand(spec, options));
  }
  return program;
}

/** Commander's error text as bansho's one line: no "error:" prefix, no line breaks, no password. */
export function usageMessage(text: string): string {
  return redactUrls(
    text
      .replace(/^error: /, '')
      .trim()
      .replace(/\s*\n\s*/g, ' '),
  );
}
