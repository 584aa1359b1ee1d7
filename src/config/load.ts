import { configError } from '../errors.js';
import { parseDuration } from './duration.js';
import { DEFAULT_LISTEN, type ListenAddress, parseListen } from './listen.js';
import { type PostgresTarget, parsePostgresDsn } from './postgres-dsn.js';
import { parseRedisTarget, type RedisTarget } from './redis-url.js';
import type { Setting } from './url.js';

/** Used when neither a flag, the environment nor `.env` names a server. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export const DEFAULT_POSTGRES_DSN = 'postgres://postgres@127.0.0.1:5432/postgres';

/** Each check's budget, from start to closed socket, when `--timeout` is not given. */
export const DEFAULT_TIMEOUT_MS = 5000;

/** First pause between `--wait` attempts when `--interval` is not given. */
export const DEFAULT_INTERVAL_MS = 250;

/** `bansho serve`: a report is answered again for this long when `--max-age` is not given. */
export const DEFAULT_MAX_AGE_MS = 2000;

/** Flags as commander hands them over: no defaults, so that absence is visible here. */
export interface CliOptions {
  redisUrl?: string;
  postgresDsn?: string;
  envFile?: string;
  timeout?: string;
  wait?: string;
  interval?: string;
  json?: boolean;
  quiet?: boolean;
  verbose?: boolean;
  strict?: boolean;
  dryRun?: boolean;
  /** False with `--no-write-probe`; commander sets true otherwise. */
  writeProbe?: boolean;
  /** `bansho serve`: where to listen. */
  listen?: string;
  /** `bansho serve`: how long a report is answered again before the next check. */
  maxAge?: string;
}

export type Env = Readonly<Record<string, string | undefined>>;

export type OutputMode = 'human' | 'json' | 'quiet';

export interface Config {
  redis?: RedisTarget;
  postgres?: PostgresTarget;
  /** Hard bound for each check, in milliseconds. */
  timeoutMs: number;
  /** With `--wait`: keep retrying for this many milliseconds. */
  waitMs?: number;
  /** With `--wait`: the first pause between attempts, in milliseconds; it doubles up to a cap. */
  intervalMs: number;
  output: OutputMode;
  verbose: boolean;
  strict: boolean;
  /** `ensure-schema --dry-run`: plan and print, change nothing. */
  dryRun: boolean;
  /** Whether the Redis check writes (and deletes) a short-lived key; off with `--no-write-probe`. */
  writeProbe: boolean;
  /** Whether the report on stdout is coloured (see decideColor); stderr's lines never are. */
  color: boolean;
  /** Whether `--wait` redraws one progress line in place: stderr is a terminal that is not TERM=dumb. */
  redrawProgress: boolean;
  /** `bansho serve`: where to listen (default loopback, DEFAULT_LISTEN). */
  listen: ListenAddress;
  /** `bansho serve`: a report is answered again for this many milliseconds before the next check. */
  maxAgeMs: number;
}

export interface ConfigInput {
  options: CliOptions;
  /** The real environment (process.env). */
  env: Env;
  /** Variables read from the `.env` file; they never override `env`. */
  fileEnv: Env;
  /** Whether stdout is a terminal: colour is only for people. */
  isTTY: boolean;
  /** Whether stderr is a terminal, where `--wait` may redraw its progress line; default false. */
  isStderrTTY?: boolean;
}

export interface Needs {
  redis: boolean;
  postgres: boolean;
}

/**
 * Resolves every source of configuration, strongest first: flags, the real environment,
 * the `.env` file, defaults. Pure: it reads nothing but its arguments, so it is tested
 * without touching `process.env`. Only what `needs` names is validated, so that a broken
 * POSTGRES_DSN does not fail `ping-redis`. Throws a `config` BanshoError on bad input.
 */
export function loadConfig(input: ConfigInput, needs: Needs): Config {
  const { options, env, fileEnv } = input;
  const pick = (flagValue: string | undefined, flag: string, variable: string, fallback: string): Setting => {
    if (flagValue !== undefined) return { value: flagValue, source: flag };
    if (env[variable] !== undefined) return { value: env[variable], source: variable };
    if (fileEnv[variable] !== undefined)
      return { value: fileEnv[variable], source: `${variable} (from .env)` };
    return { value: fallback, source: `the default ${variable}` };
  };

  if (options.json && options.quiet) throw configError('--json and --quiet cannot be used together');

  const config: Config = {
    timeoutMs:
      options.timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(options.timeout, '--timeout'),
    intervalMs:
      options.interval === undefined ? DEFAULT_INTERVAL_MS : parseDuration(options.interval, '--interval'),
    output: options.json ? 'json' : options.quiet ? 'quiet' : 'human',
    verbose: options.verbose === true,
    strict: options.strict === true,
    dryRun: options.dryRun === true,
    writeProbe: options.writeProbe !== false,
    color: decideColor(env, input.isTTY),
    redrawProgress: input.isStderrTTY === true && env.TERM !== 'dumb',
    listen: options.listen === undefined ? { ...DEFAULT_LISTEN } : parseListen(options.listen),
    maxAgeMs: options.maxAge === undefined ? DEFAULT_MAX_AGE_MS : parseDuration(options.maxAge, '--max-age'),
  };
  if (options.wait !== undefined) config.waitMs = parseDuration(options.wait, '--wait');
  else if (options.interval !== undefined) throw configError('--interval only makes sense with --wait');

  if (needs.redis) {
    config.redis = parseRedisTarget(pick(options.redisUrl, '--redis-url', 'REDIS_URL', DEFAULT_REDIS_URL));
  }
  if (needs.postgres) {
    config.postgres = parsePostgresDsn(
      pick(options.postgresDsn, '--postgres-dsn', 'POSTGRES_DSN', DEFAULT_POSTGRES_DSN),
    );
  }
  return config;
}

function isSet(value: string | undefined): boolean {
  return value !== undefined && value !== '';
}

/**
 * Colour as chalk decides it, with NO_COLOR first: NO_COLOR set (not empty) turns it off;
 * FORCE_COLOR `0` or `false` turns it off, and `1`-`3`, `true` or empty turns it on, on a pipe
 * too; otherwise colour is for a terminal that is not TERM=dumb.
 */
function decideColor(env: Env, isTTY: boolean): boolean {
  if (isSet(env.NO_COLOR)) return false;
  const force = env.FORCE_COLOR;
  if (force === '0' || force === 'false') return false;
  if (force === '' || force === 'true' || /^[1-9]\d*$/.test(force ?? '')) return true;
  return isTTY && env.TERM !== 'dumb';
}
