/**
 * Whole-process cost of each command, as a HEALTHCHECK pays it, against throwaway local servers
 * started as the tests start theirs. Every sample of a command is paired with a `node -e 0` run
 * just before it (A B A B ...), so both see the same machine state; the table gives median, min
 * and max wall time, the ratio of medians to `node -e 0`, and the median peak RSS. Then the
 * issue's targets are checked, and the exit code says whether all were met.
 *
 *   npm run bench [-- RUNS]        (default 30 pairs per command)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pgBinary, startPostgres, startRedis } from '../test/support/servers.js';

const runs = Number(process.argv[2] ?? 30);
/** Peak RSS is read in a separate pass (it needs a preloaded reporter), with this many runs. */
const RSS_RUNS = 10;
/** What npm links as `bansho` (bin/bansho: the startup snapshot), run as users run it. */
const bin = resolve(import.meta.dirname, '../bin/bansho');
/** The fallback and the code-cache path: `node bin/bansho.js`, for comparison. */
const binJs = resolve(import.meta.dirname, '../bin/bansho.js');
const blob = resolve(import.meta.dirname, '../dist/snapshot/bansho.blob');
const node = process.execPath;
const BASELINE = 'node -e 0';

/** The issue's targets: the median's ratio to `node -e 0`, and smoke's peak RSS ratio. */
const TIME_TARGETS: Record<string, number> = {
  'bansho ping-redis': 1.4,
  'bansho smoke': 1.5,
  'bansho ensure-schema': 1.5,
};
const RSS_TARGETS: Record<string, number> = { 'bansho smoke': 1.5 };

const [redis, pg] = await Promise.all([startRedis(), startPostgres()]);
const dir = mkdtempSync(join(tmpdir(), 'bansho-bench-'));
try {
  const database = await pg.createDatabase('bench');
  // This node first on PATH: bin/bansho runs the `node` it finds there, as a user's shell would.
  const env = {
    PATH: `${dirname(node)}:${process.env.PATH ?? ''}`,
    REDIS_URL: redis.url,
    POSTGRES_DSN: pg.dsn(database),
  };
  const pgIsReady = await pgBinary('pg_isready');
  const commands: Record<string, string[]> = {
    [BASELINE]: [node, '-e', '0'],
    'bansho --version': [bin, '--version'],
    'bansho ping-redis': [bin, 'ping-redis', '--quiet'],
    'bansho ping-postgres': [bin, 'ping-postgres', '--quiet'],
    'bansho ensure-schema': [bin, 'ensure-schema', '--quiet'],
    'bansho smoke': [bin, 'smoke', '--quiet'],
    'node bin/bansho.js ping-redis': [node, binJs, 'ping-redis', '--quiet'],
    'node bin/bansho.js smoke': [node, binJs, 'smoke', '--quiet'],
    'redis-cli ping': ['redis-cli', '-p', String(redis.port), 'ping'],
    pg_isready: [pgIsReady, '-h', pg.host, '-p', String(pg.port), '-q'],
  };
  // redis-cli and pg_isready are there for scale only: left out where they are not installed.
  for (const [name, argv] of Object.entries(commands)) {
    if (spawnSync(argv[0] as string, ['--version']).error) delete commands[name];
  }

  const exec = (argv: string[], extraNodeArgs: string[] = []) => {
    const [command, ...args] =
      argv[0] === node
        ? [node, ...extraNodeArgs, ...argv.slice(1)]
        : // The reporter cannot go through bin/bansho (NODE_OPTIONS makes it fall back): what it execs.
          argv[0] === bin && extraNodeArgs.length > 0
          ? [node, ...extraNodeArgs, '--snapshot-blob', blob, '--', ...argv.slice(1)]
          : argv;
    const start = process.hrtime.bigint();
    const result = spawnSync(command as string, args, { cwd: dir, env, encoding: 'utf8' });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (result.error) throw result.error;
    if (result.status !== 0) throw new Error(`${argv.join(' ')} exited ${result.status}: ${result.stderr}`);
    return { ms, stderr: result.stderr };
  };

  // The schema exists before ensure-schema is timed: the target is for "nothing to do".
  exec(commands['bansho ensure-schema'] as string[]);
  for (const argv of Object.values(commands)) exec(argv); // warm the page cache once

  const samples: Record<string, number[]> = Object.fromEntries(
    Object.keys(commands).map((name) => [name, []]),
  );
  for (let run = 0; run < runs; run++) {
    for (const [name, argv] of Object.entries(commands)) {
      if (name === BASELINE) continue;
      samples[BASELINE]?.push(exec(commands[BASELINE] as string[]).ms);
      samples[name]?.push(exec(argv).ms);
    }
  }

  // Peak RSS of node processes only, from the process itself as it exits.
  const reporter = join(dir, 'report-peak-rss.cjs');
  writeFileSync(
    reporter,
    "process.on('exit', () => require('node:fs').writeSync(2, '\\npeak-rss-kib ' + process.resourceUsage().maxRSS + '\\n'));\n",
  );
  const peakRss: Record<string, number> = {};
  for (const [name, argv] of Object.entries(commands)) {
    if (argv[0] !== node && argv[0] !== bin) continue;
    const values = Array.from({ length: RSS_RUNS }, () =>
      Number(/peak-rss-kib (\d+)/.exec(exec(argv, ['--require', reporter]).stderr)?.[1]),
    );
    peakRss[name] = median(values) / 1024;
  }

  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  console.log(
    `machine: ${cpu}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; node ${process.version}`,
  );
  console.log(
    `${runs} pairs per command (each run after a \`${BASELINE}\` run); peak RSS: median of ${RSS_RUNS}`,
  );
  const baseline = median(samples[BASELINE] ?? []);
  const baselineRss = peakRss[BASELINE] ?? Number.NaN;
  const rows = Object.entries(samples).map(([name, values]) => {
    const rss = peakRss[name];
    return [
      name,
      ms(median(values)),
      ms(Math.min(...values)),
      ms(Math.max(...values)),
      name === BASELINE ? '' : `${(median(values) / baseline).toFixed(2)}x`,
      rss === undefined ? '' : `${rss.toFixed(1)} MiB`,
      rss === undefined || name === BASELINE ? '' : `${(rss / baselineRss).toFixed(2)}x`,
    ];
  });
  printTable(['command', 'median', 'min', 'max', 'vs node -e 0', 'peak RSS', 'RSS vs node'], rows);

  let missed = 0;
  const check = (what: string, ratio: number, target: number) => {
    const met = ratio <= target;
    if (!met) missed++;
    console.log(`${met ? 'met   ' : 'MISSED'}  ${what}: ${ratio.toFixed(2)}x (target ${target}x)`);
  };
  console.log('');
  for (const [name, target] of Object.entries(TIME_TARGETS)) {
    check(`${name} median`, median(samples[name] ?? []) / baseline, target);
  }
  for (const [name, target] of Object.entries(RSS_TARGETS)) {
    check(`${name} peak RSS`, (peakRss[name] ?? Number.NaN) / baselineRss, target);
  }
  process.exitCode = missed === 0 ? 0 : 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
  await Promise.all([redis.stop(), pg.stop()]);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

function ms(value: number): string {
  return `${value.toFixed(1)} ms`;
}

/** A Markdown table, so that the output can go into the README as it is. */
function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => row[column]?.length ?? 0)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join(' | ')} |`;
  console.log(line(header));
  console.log(
    `|${widths.map((width, column) => (column === 0 ? `${'-'.repeat(width + 1)}-` : `-${'-'.repeat(width)}:`)).join('|')}|`,
  );
  for (const row of rows) console.log(line(row));
}
