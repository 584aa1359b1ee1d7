import { Command, Option } from 'commander';
import type { CliOptions } from '../config/load.js';
import type { BanshoCommand } from './commands/command.js';
import { ensureSchemaCommand } from './commands/ensure-schema.js';
import { pingPostgresCommand } from './commands/ping-postgres.js';
import { pingRedisCommand } from './commands/ping-redis.js';
import { smokeCommand } from './commands/smoke.js';
import { packageVersion } from './package-root.js';

const COMMANDS: readonly BanshoCommand[] = [
  pingRedisCommand,
  pingPostgresCommand,
  ensureSchemaCommand,
  smokeCommand,
];

/** The exit codes as the README's table gives them; `--strict` only where the command takes it. */
function exitCodesHelp(strict: boolean): string {
  return `
Exit codes:
  0    healthy: every check passed${strict ? ' (or warned, without --strict)' : ''}
  1    a check failed: a dependency is down or unhealthy, or the schema differs
  2    invalid invocation or configuration (unknown command or flag, malformed URL or DSN,
       bad duration, unreadable file): nothing was attempted
  70   an internal error of bansho's (a bug: please report it)
  130  interrupted by SIGINT; open connections were closed
  143  terminated by SIGTERM; open connections were closed`;
}

/** What `-- <command>` does after a check command. */
const RUN_AFTER_HELP = `
After the checks (-- <command> [args…]):
  once the checks pass, bansho runs the command (no shell; stdio and environment inherited),
  forwards SIGTERM, SIGINT and SIGHUP to it, and exits with its exit code (128 + the signal's
  number if a signal ended it; 127 not found, 126 not executable). When the checks fail, the
  command never runs and the exit code is bansho's own (1).
  e.g. bansho smoke --wait 60s -- node gateway.js`;

/** serve's endpoints and exit codes: it runs until a signal ends it. */
function serveHelp(): string {
  return `
Endpoints (GET or HEAD; anything else 405, other paths 404):
  /livez    200 while bansho serves; never touches Redis or PostgreSQL
  /readyz   smoke's checks: 200 on pass (and warn, unless --strict), 503 on fail; the --json document
  /metrics  Prometheus text: each check's and sub-check's status, latencies, counters

Exit codes:
  1    could not listen (the address is taken, or not this machine's)
  2    invalid invocation or configuration: nothing was attempted
  70   an internal error of bansho's (a bug: please report it)
  130  stopped by SIGINT; 143 stopped by SIGTERM (after answering the requests in flight)`;
}

/** The variables a command reads: only the servers it talks to. */
function variablesHelp(needs: { redis: boolean; postgres: boolean }): string {
  const lines = ['', 'Variables (a flag wins over the environment, which wins over ./.env):'];
  if (needs.redis)
    lines.push(
      '  REDIS_URL     redis://[[user]:password@]host[:port][/db] or rediss://…  (default redis://127.0.0.1:6379);',
      '                several comma-separated for a cluster; redis+sentinel://host:port[,…]/<master>;',
      '                unix://[[user]:password@]/path/to/redis.sock[?db=N]; rediss:// takes',
      '                ?ssl_ca_certs=<ca.pem>&ssl_certfile=<client.crt>&ssl_keyfile=<client.key>',
    );
  if (needs.postgres)
    lines.push(
      '  POSTGRES_DSN  postgres://[user[:password]@]host[:port][,host[:port]…][/db][?sslmode=…&sslrootcert=…&sslcert=…&sslkey=…]',
      '                or through a Unix socket: postgres://[user[:password]@]/db?host=/var/run/postgresql',
      '                (default postgres://postgres@127.0.0.1:5432/postgres)',
    );
  lines.push(
    '  A URL given as a flag is visible to other users in `ps`: prefer the environment or ./.env.',
    '',
    'Colour (the report on stdout only; from the environment only):',
    '  NO_COLOR      set (not empty): no colour; it wins over FORCE_COLOR',
    '  FORCE_COLOR   1, 2, 3 or true: colour on a pipe too; 0 or false: no colour on a terminal',
  );
  return lines.join('\n');
}

const version = packageVersion(import.meta.url);

/**
 * Builds the commander program: wiring only. Each subcommand gets the shared flags, with
 * no defaults, so that loadConfig can tell a flag from its absence and apply precedence.
 */
export interface ProgramHandlers {
  /** A check command: ping-redis, ping-postgres, ensure-schema, smoke. */
  onCommand: (command: BanshoCommand, options: CliOptions) => Promise<void>;
  onWarmCache?: () => Promise<void>;
  onServe?: (options: CliOptions) => Promise<void>;
}

/** Where commander writes help and usage errors; default the process's streams. */
export interface ProgramOutput {
  writeOut: (text: string) => void;
  writeErr: (text: string) => void;
}

export function buildProgram(handlers: ProgramHandlers, io?: ProgramOutput): Command {
  const { onCommand, onWarmCache = async () => {}, onServe = async () => {} } = handlers;
  const program = new Program('bansho')
    .description("bansho's storage CLI: health checks and schema bootstrap for Redis and PostgreSQL")
    .version(version, '-V, --version')
    .addHelpText('after', `${exitCodesHelp(true)}\n${variablesHelp({ redis: true, postgres: true })}`)
    .showSuggestionAfterError(true)
    // Throw instead of exiting, so that main maps usage errors to exit 2 (commander uses 1).
    .exitOverride()
    .configureOutput({
      ...(io ?? {}),
      // One line: "bansho: unknown option '--jsn' (Did you mean --json?)".
      outputError: (text, write) => write(`bansho: ${usageMessage(text)}\n`),
    });
  for (const spec of COMMANDS) {
    // program.command() (not addCommand) so that the subcommand inherits exitOverride and output.
    const command = program
      .command(spec.name)
      .description(spec.summary)
      .usage('[options] [-- <command> [args...]]');
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
      .option('-q, --quiet', 'print nothing but a usage error (on stderr); the exit code tells')
      .option('-v, --verbose', "also show the drivers' errors behind a failure");
    if (spec.warnings) command.option('--strict', `a warning fails (exit 1): ${spec.warnings}`);
    for (const [flags, description] of spec.flags ?? []) command.option(flags, description);
    command
      .addHelpText(
        'after',
        `${exitCodesHelp(spec.warnings !== undefined)}\n${RUN_AFTER_HELP}\n${variablesHelp(spec.needs)}`,
      )
      .action((options: CliOptions) => onCommand(spec, options));
  }
  program
    .command('serve')
    .description(
      "serve /livez, /readyz (smoke's checks) and /metrics over HTTP until SIGTERM, for Kubernetes probes and Prometheus",
    )
    .option('--listen <host:port>', 'where to listen, e.g. 0.0.0.0:9840 in a pod (default 127.0.0.1:9840)')
    .option('--max-age <duration>', 'answer a report again for this long before checking anew (default 2s)')
    .option('--redis-url <url>', 'Redis URL (overrides REDIS_URL)')
    .option('--postgres-dsn <dsn>', 'PostgreSQL DSN (overrides POSTGRES_DSN)')
    .option('--env-file <path>', 'read variables from this file instead of ./.env')
    .option('--timeout <duration>', 'hard bound for each check, e.g. 500ms, 2s (default 5s)')
    .option('--strict', `/readyz answers 503 on a warning too: ${smokeCommand.warnings}`)
    .option('--no-write-probe', 'do not write (and delete) a short-lived key to prove Redis takes writes')
    .option('-q, --quiet', 'log nothing on stderr (where it listens, changes of readiness)')
    .addHelpText('after', `${serveHelp()}\n${variablesHelp({ redis: true, postgres: true })}`)
    .action((options: CliOptions) => onServe(options));
  program
    .command('warm-cache')
    .description(
      "make the start-up caches for this node binary in the package's dist/cache (or BANSHO_CACHE_DIR): run it at image build time",
    )
    .action(() => onWarmCache());
  return program;
}

/**
 * commander's Command, except that an unknown option is named without the `=value` typed after
 * it (a value may be a URL holding a password), so that the suggestion is made for the name too.
 */
class Program extends Command {
  override createCommand(name?: string): Command {
    return new Program(name);
  }

  /** Replaces commander's own (untyped) unknownOption, which quotes the argument whole. */
  unknownOption(flag: string): void {
    const name = flag.startsWith('--') ? (flag.split('=')[0] ?? flag) : flag.slice(0, 2);
    (Command.prototype as unknown as { unknownOption(flag: string): void }).unknownOption.call(this, name);
  }
}

/** What a flag or a command name looks like; anything else typed is not echoed (it may be a URL). */
const FLAG_SHAPE = /^--?[a-z0-9][a-z0-9-]*$/i;
const COMMAND_SHAPE = /^[a-z][a-z0-9-]*$/i;

/**
 * Commander's error text as bansho's one line: no "error:" prefix, no line breaks, and nothing
 * typed that is not shaped like a flag or a command name. Of commander's errors only these
 * quote what was typed; the others quote bansho's own flags and commands.
 */
export function usageMessage(text: string): string {
  const line = text
    .replace(/^error: /, '')
    .trim()
    .replace(/\s*\n\s*/g, ' ');
  // Greedy up to the last quote: what was typed may hold quotes too; a suggestion holds none.
  const typed = /^unknown (option|command) '(.*)'( \(Did you mean [^']*\))?$/s.exec(line);
  if (typed) {
    const [, kind, word = '', suggestion = ''] = typed;
    if (kind === 'option') {
      const name = word.split('=')[0] ?? '';
      return FLAG_SHAPE.test(name)
        ? `unknown option '${name}'${suggestion}`
        : 'unknown option (not shown: what was typed may hold a password)';
    }
    if (COMMAND_SHAPE.test(word)) return `unknown command '${word}'${suggestion}`;
    return `the first argument is not a command (not shown: it may hold a password); commands: ${COMMANDS.map((command) => command.name).join(', ')}`;
  }
  return line.replace(/ argument '.*' is invalid\./s, ' argument is invalid.');
}
