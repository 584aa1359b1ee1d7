/**
 * Whole-process cost of each command, as a HEALTHCHECK pays it, for every way bansho is installed
 * and every supported Node.js line, against throwaway local servers started as the tests start
 * theirs. Every sample is paired with a `node -e 0` run of the same node just before it (A B A B
 * ...), so both see the same machine state; the tables give medians and the ratio of medians to
 * `node -e 0`, and smoke's peak RSS. Beside them, two floor scripts show what Node alone costs
 * for the same exchanges over raw sockets. Then the targets are checked, and the exit code says
 * whether all were met.
 *
 *   npm run bench [-- --runs 20] [--nodes 20,22,24,26] [--kinds clone,tarball,global,git,image]
 *
 * Install kinds, each in a folder of its own with a HOME of its own (so caches never mix):
 *   clone    a copy of the working tree, built by that node (npm run build), run as bin/bansho
 *   tarball  `npm pack` of the working tree, `npm i ./bansho-*.tgz` into a fresh project
 *   global   the same tarball with `npm i -g --prefix`
 *   git      `npm i git+file://…` of a temporary git repository holding the working tree
 *   image    what the Dockerfile does outside Docker: the tarball installed with --omit=dev,
 *            `bansho warm-cache` as root, then run by nobody from a read-only tree, HOME unwritable
 * Unset NODE_EXTRA_CA_CERTS first: it makes every node start read a file.
 */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { cleanupOnExit, removeDirSync } from '../test/support/process.js';
import { startPostgres, startRedis } from '../test/support/servers.js';
import { printTable } from './table.js';

const ROOT = resolve(import.meta.dirname, '..');
const NOBODY = { uid: 65534, gid: 65534 };
const ALL_KINDS = ['clone', 'tarball', 'global', 'git', 'image'] as const;
type Kind = (typeof ALL_KINDS)[number];

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    nodes: { type: 'string', default: '20,22,24,26' },
    kinds: { type: 'string', default: ALL_KINDS.join(',') },
  },
});
const runs = Number(flags.runs);
const majors = (flags.nodes ?? '').split(',').filter(Boolean);
const kinds = (flags.kinds ?? '').split(',').filter(Boolean) as Kind[];
for (const kind of kinds) if (!ALL_KINDS.includes(kind)) throw new Error(`unknown install kind ${kind}`);

/** The targets: the median's ratio to `node -e 0`, per command; smoke's peak RSS ratio. */
const TIME_TARGETS: Record<string, number> = {
  '--version': 1.3,
  'ping-redis': 1.6,
  'ensure-schema': 2.0,
  smoke: 2.0,
};
const RSS_TARGET = 1.5;
const COMMANDS: Record<string, string[]> = {
  '--version': ['--version'],
  'ping-redis': ['ping-redis', '--quiet'],
  'ping-postgres': ['ping-postgres', '--quiet'],
  'ensure-schema': ['ensure-schema', '--quiet'],
  smoke: ['smoke', '--quiet'],
};

interface Installed {
  bin: string;
  home: string;
  user?: { uid: number; gid: number };
  /** A node of its own, where the install's user could not run the bench's. */
  nodeDir?: string;
}

/**
 * npm's global config as this machine's npm reads it (where a registry's cafile or proxy is set).
 * npm run under another node looks for it beside that node (its prefix) and would not find it.
 */
const GLOBAL_NPMRC = run('npm', ['config', 'get', 'globalconfig']).trim();

const work = mkdtempSync('/tmp/bansho-bench-');
chmodSync(work, 0o755);
// Removed on a signal too (an interrupted bench would otherwise leave its installs behind).
cleanupOnExit(() => removeDirSync(work));
const [redis, pg] = await Promise.all([startRedis(), startPostgres()]);
let missed = 0;
try {
  const database = await pg.createDatabase('bench');
  const floors = writeFloorScripts(work, redis.port, pg.port, database);
  const tarball = packTarball();
  const gitRepo = kinds.includes('git') ? makeGitRepo() : '';
  console.log(
    `machine: ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB`,
  );
  console.log(
    `${runs} pairs per command (each run right after a \`node -e 0\` run of the same node); medians\n`,
  );

  for (const major of majors) {
    const nodeDir = run('scripts/node-line.sh', [major], { cwd: ROOT }).trim();
    const node = join(nodeDir, 'node');
    const version = run(node, ['--version']).trim();
    const env = (home: string, dir = nodeDir) => ({
      PATH: `${dir}:/usr/local/bin:/usr/bin:/bin`,
      HOME: home,
      REDIS_URL: redis.url,
      POSTGRES_DSN: pg.dsn(database),
    });
    const rows: string[][] = [];
    /** Every `node -e 0` run of this node, and those paired with each row's runs. */
    const baseline: number[] = [];
    const pairedWith = new Map<number[], number[]>();
    const timed = (
      samples: number[],
      argv: string[],
      runEnv: NodeJS.ProcessEnv,
      user?: Installed['user'],
    ) => {
      const before = time([node, '-e', '0'], env(work));
      baseline.push(before);
      pairedWith.set(samples, [...(pairedWith.get(samples) ?? []), before]);
      samples.push(time(argv, runEnv, user));
    };
    const cells = (samples: number[]) => {
      const ratio = median(samples) / median(pairedWith.get(samples) ?? []);
      return { ratio, cells: [`${median(samples).toFixed(1)} ms`, `${ratio.toFixed(2)}x`] };
    };

    for (const [name, script] of Object.entries(floors)) {
      const samples: number[] = [];
      for (let sample = 0; sample < runs; sample++) timed(samples, [node, script], env(work));
      rows.push([`floor: ${name}`, ...cells(samples).cells]);
    }
    for (const kind of kinds) {
      const installed = install(kind, nodeDir, tarball, gitRepo);
      const runEnv = env(installed.home, installed.nodeDir);
      // The first runs make the start-up caches where the install kind may: they are not timed.
      for (const args of Object.values(COMMANDS)) {
        for (let warm = 0; warm < 2; warm++) time([installed.bin, ...args], runEnv, installed.user);
      }
      const samples: Record<string, number[]> = Object.fromEntries(
        Object.keys(COMMANDS).map((name) => [name, []]),
      );
      for (let sample = 0; sample < runs; sample++) {
        for (const [name, args] of Object.entries(COMMANDS)) {
          timed(samples[name] as number[], [installed.bin, ...args], runEnv, installed.user);
        }
      }
      const rss = peakRss([installed.bin, ...(COMMANDS.smoke as string[])], runEnv, installed.user);
      // The node the install's user can run (the image's own copy), as bansho ran on it.
      const nodeRss = peakRss(
        [join(installed.nodeDir ?? nodeDir, 'node'), '-e', '0'],
        runEnv,
        installed.user,
      );
      for (const [name, values] of Object.entries(samples)) {
        const { ratio, cells: timeCells } = cells(values);
        const target = TIME_TARGETS[name];
        const verdict =
          target === undefined ? '' : ratio <= target ? `met (${target}x)` : `MISSED (${target}x)`;
        if (target !== undefined && ratio > target) missed++;
        const rssCells =
          name === 'smoke'
            ? [
                `${(rss / 1024).toFixed(1)} MiB`,
                `${(rss / nodeRss).toFixed(2)}x ${rss / nodeRss <= RSS_TARGET ? 'met' : 'MISSED'}`,
              ]
            : ['', ''];
        if (name === 'smoke' && rss / nodeRss > RSS_TARGET) missed++;
        rows.push([`${kind}: bansho ${name}`, ...timeCells, verdict, ...rssCells]);
      }
    }
    console.log(`node ${version}: node -e 0 median ${median(baseline).toFixed(1)} ms`);
    printTable(['command', 'median', 'vs node -e 0', 'target', 'peak RSS', 'RSS vs node'], rows);
    console.log('');
  }
  console.log(missed === 0 ? 'every target met' : `${missed} target(s) missed`);
  process.exitCode = missed === 0 ? 0 : 1;
} finally {
  await Promise.all([redis.stop(), pg.stop()]);
  rmSync(work, { recursive: true, force: true });
}

/** Installs bansho the `kind` way with the node in `nodeDir` first on PATH; returns how to run it. */
function install(kind: Kind, nodeDir: string, tarball: string, gitRepo: string): Installed {
  const dir = mkdtempSync(join(work, `${kind}-`));
  chmodSync(dir, 0o755);
  const home = join(dir, 'home');
  mkdirSync(home);
  const npmEnv = {
    PATH: `${nodeDir}:${process.env.PATH}`,
    HOME: home,
    npm_config_cache: join(process.env.HOME ?? '/root', '.npm'),
    npm_config_globalconfig: GLOBAL_NPMRC,
    npm_config_prefer_offline: 'true',
  };
  const npm = (args: string[], cwd: string) =>
    run('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, env: npmEnv });
  switch (kind) {
    case 'clone': {
      const copy = join(dir, 'bansho');
      for (const entry of ['bin', 'src', 'scripts', 'package.json', 'tsconfig.json', 'tsconfig.build.json']) {
        cpSync(join(ROOT, entry), join(copy, entry), { recursive: true });
      }
      // The build needs the devDependencies the working tree already has.
      symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
      run('npm', ['run', 'build'], { cwd: copy, env: npmEnv });
      return { bin: join(copy, 'bin/bansho'), home };
    }
    case 'tarball':
      writeFileSync(join(dir, 'package.json'), '{"name":"bench-project","private":true}\n');
      npm(['install', tarball], dir);
      return { bin: join(dir, 'node_modules/.bin/bansho'), home };
    case 'global':
      npm(['install', '-g', '--prefix', join(dir, 'prefix'), tarball], dir);
      return { bin: join(dir, 'prefix/bin/bansho'), home };
    case 'git':
      writeFileSync(join(dir, 'package.json'), '{"name":"bench-project","private":true}\n');
      npm(['install', `git+file://${gitRepo}`], dir);
      return { bin: join(dir, 'node_modules/.bin/bansho'), home };
    case 'image': {
      // The Dockerfile's runtime stage: production dependencies only, the cache made at build time.
      writeFileSync(join(dir, 'package.json'), '{"name":"bench-image","private":true}\n');
      npm(['install', '--omit=dev', tarball], dir);
      // The image's node, which its user may run (the bench's may sit under root's HOME).
      const imageNode = join(dir, 'node');
      mkdirSync(imageNode);
      cpSync(join(nodeDir, 'node'), join(imageNode, 'node'));
      run(join(dir, 'node_modules/.bin/bansho'), ['warm-cache'], {
        env: { ...npmEnv, PATH: `${imageNode}:${process.env.PATH}` },
      });
      makeReadOnly(dir);
      return {
        bin: join(dir, 'node_modules/.bin/bansho'),
        home: '/nonexistent',
        user: NOBODY,
        nodeDir: imageNode,
      };
    }
  }
}

/** No write bits anywhere under `dir`, as a read-only root filesystem is for the image's user. */
function makeReadOnly(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isSymbolicLink()) continue;
    if (entry.isDirectory()) makeReadOnly(path);
    else chmodSync(path, statSync(path).mode & 0o555);
  }
  chmodSync(dir, 0o555);
}

function packTarball(): string {
  const out = join(work, 'pack');
  mkdirSync(out);
  run('npm', ['pack', '--pack-destination', out, '--loglevel=error'], { cwd: ROOT });
  const [file] = readdirSync(out).filter((name) => name.endsWith('.tgz'));
  if (!file) throw new Error('npm pack made no tarball');
  return join(out, file);
}

/** A git repository holding the working tree as it is (committed or not), for `npm i git+file://`. */
function makeGitRepo(): string {
  const repo = join(work, 'repo');
  const files = run('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: ROOT })
    .split('\n')
    .filter(Boolean);
  for (const file of files) cpSync(join(ROOT, file), join(repo, file), { recursive: true });
  const git = (...args: string[]) =>
    run('git', ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', ...args], { cwd: repo });
  git('init', '-q');
  git('add', '-A');
  git('commit', '-q', '-m', 'bench');
  return repo;
}

/**
 * The two floors, as CommonJS scripts over raw sockets: a Redis PING, and a Redis PING with a
 * PostgreSQL session running one query at the same time (startup, trust auth, `select 1`, Terminate).
 */
function writeFloorScripts(
  dir: string,
  redisPort: number,
  pgPort: number,
  database: string,
): Record<string, string> {
  const ping = join(dir, 'floor-redis.cjs');
  writeFileSync(
    ping,
    `const s = require('node:net').connect(${redisPort}, '127.0.0.1');
s.write('PING\\r\\n');
s.on('data', (d) => { if (String(d) !== '+PONG\\r\\n') process.exitCode = 1; s.destroy(); });
`,
  );
  const both = join(dir, 'floor-both.cjs');
  writeFileSync(
    both,
    `const net = require('node:net');
const r = net.connect(${redisPort}, '127.0.0.1');
r.write('PING\\r\\n');
r.on('data', () => r.destroy());
const p = net.connect(${pgPort}, '127.0.0.1');
const params = Buffer.from('user\\0postgres\\0database\\0${database}\\0\\0');
const start = Buffer.alloc(8 + params.length);
start.writeInt32BE(start.length, 0);
start.writeInt32BE(196608, 4);
params.copy(start, 8);
p.write(start);
const ready = Buffer.from([0x5a, 0, 0, 0, 5]);
let queried = false;
p.on('data', (d) => {
  if (!d.includes(ready)) return;
  if (queried) { p.end(Buffer.from([0x58, 0, 0, 0, 4])); p.destroy(); return; }
  queried = true;
  const q = Buffer.from('select 1\\0');
  const m = Buffer.alloc(5 + q.length);
  m[0] = 0x51;
  m.writeInt32BE(4 + q.length, 1);
  q.copy(m, 5);
  p.write(m);
});
`,
  );
  return { 'raw Redis PING': ping, 'raw Redis PING + PostgreSQL query': both };
}

/** Wall time of one run, spawn to exit, in milliseconds; a failed run ends the bench. */
function time(argv: string[], env: NodeJS.ProcessEnv, user?: Installed['user']): number {
  const start = process.hrtime.bigint();
  const result = spawnSync(argv[0] as string, argv.slice(1), {
    cwd: work,
    env,
    encoding: 'utf8',
    ...(user ?? {}),
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.error) throw result.error;
  if (result.status !== 0) throw new Error(`${argv.join(' ')} exited ${result.status}: ${result.stderr}`);
  return ms;
}

/** Median peak RSS in KiB, from GNU time's %M, of a few runs. */
function peakRss(argv: string[], env: NodeJS.ProcessEnv, user?: Installed['user']): number {
  const values = Array.from({ length: 5 }, () => {
    const result = spawnSync('/usr/bin/time', ['-f', 'peak-rss-kib %M', ...argv], {
      cwd: work,
      env,
      encoding: 'utf8',
      ...(user ?? {}),
    });
    return Number(/peak-rss-kib (\d+)/.exec(result.stderr)?.[1]);
  });
  return median(values);
}

function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): string {
  const result = spawnSync(command, args, { encoding: 'utf8', ...options, env: options.env ?? process.env });
  if (result.error) throw result.error;
  if (result.status !== 0)
    throw new Error(`${command} ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return result.stdout;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}
