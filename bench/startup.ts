/**
 * Whole-process start-up and check cost, as a HEALTHCHECK pays it: each command is spawned
 * RUNS times, interleaved with `node -e 0` so that both see the same machine state, and the
 * medians are compared. Usage: npm run bench [-- RUNS]. Targets: REDIS_URL / POSTGRES_DSN,
 * else the local defaults.
 */
import { spawnSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { resolve } from 'node:path';

const runs = Number(process.argv[2] ?? 30);
const bin = resolve(import.meta.dirname, '../bin/bansho.js');
const node = process.execPath;

const allCommands: Record<string, string[]> = {
  'node -e 0': [node, '-e', '0'],
  'bansho --version': [node, bin, '--version'],
  'bansho ping-redis': [node, bin, 'ping-redis', '--quiet'],
  'bansho ping-postgres': [node, bin, 'ping-postgres', '--quiet'],
  'bansho smoke': [node, bin, 'smoke', '--quiet'],
  'redis-cli ping': ['redis-cli', 'ping'],
  pg_isready: ['pg_isready', '-h', '127.0.0.1', '-q'],
};

/** redis-cli and pg_isready are there for scale only: left out where they are not installed. */
const commands = Object.fromEntries(
  Object.entries(allCommands).filter(([, argv]) => !spawnSync(argv[0] as string, ['--version']).error),
);

function timeOnce(argv: string[]): number {
  const start = process.hrtime.bigint();
  const result = spawnSync(argv[0] as string, argv.slice(1), { stdio: 'ignore' });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.error) throw result.error;
  return ms;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number;
}

const samples: Record<string, number[]> = Object.fromEntries(Object.keys(commands).map((name) => [name, []]));
for (const argv of Object.values(commands)) timeOnce(argv); // warm the page cache once
for (let run = 0; run < runs; run++) {
  for (const [name, argv] of Object.entries(commands)) samples[name]?.push(timeOnce(argv));
}

const cpu = cpus()[0]?.model ?? 'unknown CPU';
console.log(
  `machine: ${cpu}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB; node ${process.version}; ${runs} runs each, interleaved`,
);
const baseline = percentile(
  [...(samples['node -e 0'] ?? [])].sort((a, b) => a - b),
  0.5,
);
console.log(
  `${'command'.padEnd(22)} ${'median'.padStart(9)} ${'p90'.padStart(9)} ${'vs node -e 0'.padStart(13)}`,
);
for (const [name, values] of Object.entries(samples)) {
  const sorted = [...values].sort((a, b) => a - b);
  const median = percentile(sorted, 0.5);
  const diff = median - baseline;
  const delta = name === 'node -e 0' ? '' : `${diff >= 0 ? '+' : '-'}${Math.abs(diff).toFixed(1)} ms`;
  console.log(
    `${name.padEnd(22)} ${`${median.toFixed(1)} ms`.padStart(9)} ${`${percentile(sorted, 0.9).toFixed(1)} ms`.padStart(9)} ${delta.padStart(13)}`,
  );
}
