/**
 * The Dockerfile, without Docker (no engine runs where the tests do): its build stage's and
 * runtime stage's steps are performed here as written, each stage in a folder standing for its
 * root filesystem (absolute paths are taken inside it; the runtime stage's node is a copy at
 * usr/local/bin/node, npm's global prefix usr/local, as in the official node image). The
 * result then runs the way the image runs it: as a non-root user, from a read-only copy, with
 * an unwritable HOME, against throwaway Redis and PostgreSQL. Slow: `npm ci` and a build.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  constants,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
} from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { before, describe, test } from 'node:test';
import { type Instruction, parseStages, runCommand, type Stage } from './support/dockerfile.js';
import { npmEnv, ROOT, SAME_ON_EVERY_NODE } from './support/package.js';
import { type ExecResult, exec, makeTempDir, run } from './support/process.js';
import { usePostgres, useRedis } from './support/shared.js';

const stages = parseStages(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
/** What the image runs as at run time; the test runs as `nobody` instead (see below). */
const NOBODY = { uid: 65534, gid: 65534 };

/**
 * The build context as .dockerignore leaves it. It is written as an allowlist (`*`, then
 * `!name` per top-level entry), the one form read here.
 */
function contextEntries(): string[] {
  const patterns = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'));
  assert.equal(patterns[0], '*', '.dockerignore starts by excluding everything');
  return patterns.slice(1).map((pattern) => {
    assert.match(
      pattern,
      /^![\w.-]+$/,
      `.dockerignore: only "!<top-level name>" is understood here: ${pattern}`,
    );
    return pattern.slice(1);
  });
}

describe('Dockerfile', () => {
  test('builds in one stage and runs in another, on the same pinned Node LTS image', () => {
    assert.equal(stages.length, 2);
    const [build, runtime] = stages as [Stage, Stage];
    assert.equal(build.name, 'build');
    assert.equal(runtime.from, build.from);
    const match = /^node:(\d+)\.\d+\.\d+-[a-z]+(-slim)?$/.exec(runtime.from);
    assert.ok(match, `a full Node version and a named variant: ${runtime.from}`);
    // Even majors become LTS; bansho's image stays on one of the lines it supports.
    assert.ok(Number(match[1]) % 2 === 0 && Number(match[1]) >= 22, runtime.from);
  });

  test('runs bansho as a numeric non-root user, with bansho as the entrypoint and smoke by default', () => {
    const runtime = stages[1] as Stage;
    const last = (keyword: string) => runtime.instructions.filter((i) => i.keyword === keyword).at(-1);
    assert.match(last('USER')?.args ?? '', /^[1-9]\d*(:[1-9]\d*)?$/, 'USER uid[:gid], not root');
    assert.deepEqual(last('ENTRYPOINT')?.exec, ['bansho']);
    assert.deepEqual(last('CMD')?.exec, ['smoke']);
    // The code caches are written as root, into the package: before USER.
    const order = runtime.instructions.map((i) => (i.keyword === 'RUN' ? runCommand(i) : i.keyword));
    assert.ok(order.indexOf('bansho warm-cache') < order.indexOf('USER'), 'warm-cache runs before USER');
  });

  test('the runtime stage installs the packed tarball with production dependencies only', () => {
    const runs = (stages[1] as Stage).instructions.filter((i) => i.keyword === 'RUN').map(runCommand);
    const install = runs.find((command) => /\bnpm install\b/.test(command));
    assert.ok(install, 'an npm install in the runtime stage');
    assert.match(install, /--omit=dev/);
    assert.match(install, /\.tgz\b/);
    assert.ok(
      !runs.some((command) => /\bnpm (ci|run|pack)\b/.test(command)),
      'no build in the runtime stage',
    );
  });
});

describe("the Dockerfile's steps, performed outside Docker", { skip: SAME_ON_EVERY_NODE }, () => {
  const roots: string[] = [];
  let context: string;
  let node: string;

  before(async () => {
    context = await makeTempDir('bansho-docker-context-');
    for (const entry of contextEntries()) {
      if (existsSync(join(ROOT, entry))) cpSync(join(ROOT, entry), join(context, entry), { recursive: true });
    }
    for (const stage of stages) roots.push(await makeTempDir(`bansho-docker-${stage.name ?? 'runtime'}-`));
    // The base image's node, at the official image's path, readable by any user.
    node = join(roots[1] as string, 'usr/local/bin/node');
    mkdirSync(join(roots[1] as string, 'usr/local/bin'), { recursive: true });
    copyFileSync(process.execPath, node, constants.COPYFILE_FICLONE);
    chmodSync(node, 0o755);
  });

  /** Per stage: the state Docker keeps between instructions. */
  const state = stages.map(() => ({ cwd: '/', env: {} as Record<string, string>, user: 'root' }));

  function inRoot(stageIndex: number, path: string): string {
    const { cwd } = state[stageIndex] as { cwd: string };
    return join(roots[stageIndex] as string, isAbsolute(path) ? path : join(cwd, path));
  }

  function stageEnv(stageIndex: number): NodeJS.ProcessEnv {
    const root = roots[stageIndex] as string;
    return npmEnv({
      ...(state[stageIndex] as { env: Record<string, string> }).env,
      // npm's global prefix in the official node image; its bin directory is first on PATH there.
      npm_config_prefix: join(root, 'usr/local'),
      PATH: `${join(root, 'usr/local/bin')}:${npmEnv().PATH}`,
    });
  }

  /** WORKDIR, ENV, COPY and USER as Docker applies them. */
  function apply(stageIndex: number, instruction: Instruction): void {
    const current = state[stageIndex] as (typeof state)[number];
    if (instruction.keyword === 'WORKDIR') {
      current.cwd = isAbsolute(instruction.args) ? instruction.args : join(current.cwd, instruction.args);
      mkdirSync(inRoot(stageIndex, '.'), { recursive: true });
    } else if (instruction.keyword === 'ENV') {
      for (const [, name, value] of instruction.args.matchAll(/(\w+)=(\S+)/g))
        current.env[name as string] = value as string;
    } else if (instruction.keyword === 'USER') {
      current.user = instruction.args;
    } else if (instruction.keyword === 'COPY') {
      const words = instruction.args.split(/\s+/);
      const from = words.find((word) => word.startsWith('--from='))?.slice('--from='.length);
      const [destination, ...sources] = words.filter((word) => !word.startsWith('--')).reverse() as [
        string,
        ...string[],
      ];
      const sourceRoot =
        from === undefined ? context : (roots[stages.findIndex((s) => s.name === from)] as string);
      const target = inRoot(stageIndex, destination);
      const intoDirectory = destination.endsWith('/') || destination === '.' || sources.length > 1;
      mkdirSync(intoDirectory ? target : dirname(target), { recursive: true });
      for (const source of sources) {
        const path = join(sourceRoot, source);
        cpSync(path, intoDirectory && source !== '.' ? join(target, basename(source)) : target, {
          recursive: true,
        });
      }
    }
  }

  /** A RUN's shell command with its absolute paths taken inside the stage's root. */
  function localCommand(stageIndex: number, instruction: Instruction): string {
    return runCommand(instruction).replace(
      /(^|\s)(\/[\w./*-]+)/g,
      (_, space, path) => `${space}${join(roots[stageIndex] as string, path)}`,
    );
  }

  let applied = stages.map(() => 0);
  stages.forEach((stage, stageIndex) => {
    stage.instructions.forEach((instruction, index) => {
      if (instruction.keyword !== 'RUN') return;
      const command = runCommand(instruction);
      test(`${stage.name ?? 'runtime'} stage, line ${instruction.line}: RUN ${command}`, async () => {
        for (const earlier of stage.instructions.slice(applied[stageIndex], index))
          apply(stageIndex, earlier);
        applied = applied.map((count, i) => (i === stageIndex ? index + 1 : count));
        const result = await exec('sh', ['-c', localCommand(stageIndex, instruction)], {
          cwd: inRoot(stageIndex, '.'),
          env: stageEnv(stageIndex),
          timeoutMs: 600_000,
        });
        assert.equal(result.code, 0, `${command}\n${result.stdout}\n${result.stderr}`);
      });
    });
  });

  test('the image runs ensure-schema, then its CMD, as a non-root user from a read-only root with an unwritable HOME', async () => {
    const runtimeIndex = stages.length - 1;
    const runtime = stages[runtimeIndex] as Stage;
    for (const earlier of runtime.instructions.slice(applied[runtimeIndex])) apply(runtimeIndex, earlier);
    const root = roots[runtimeIndex] as string;
    const last = (keyword: string) => runtime.instructions.filter((i) => i.keyword === keyword).at(-1);
    const entrypoint = last('ENTRYPOINT')?.exec ?? [];
    const cmd = last('CMD')?.exec ?? [];
    assert.ok(
      existsSync(join(root, 'usr/local/bin', entrypoint[0] as string)),
      'the entrypoint is installed',
    );

    // Read-only for any user but root: no write bit anywhere, owned by root. The image runs as
    // uid 1000; here uid 1000 may own files on the host, so `nobody`, who owns none, runs it.
    chmodSync(root, 0o755);
    await run('chmod', ['-R', 'a-w', root]);
    const home = await makeTempDir('bansho-docker-home-');
    chmodSync(home, 0o555);
    const marker = join(await makeTempDir('bansho-docker-marker-'), 'start');
    await run('touch', [marker]);
    const before = await listTree(root);

    const redis = await useRedis();
    const postgres = await usePostgres();
    const database = await postgres.createDatabase('docker');
    const asImage = (args: string[], extraEnv: Record<string, string> = {}): Promise<ExecResult> =>
      exec(join(root, 'usr/local/bin', entrypoint[0] as string), [...entrypoint.slice(1), ...args], {
        cwd: join(root, state[runtimeIndex]?.cwd ?? '/'),
        user: NOBODY,
        env: {
          ...(state[runtimeIndex]?.env ?? {}),
          ...extraEnv,
          PATH: `${join(root, 'usr/local/bin')}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
          HOME: home,
          REDIS_URL: redis.url,
          POSTGRES_DSN: postgres.dsn(database),
        },
        timeoutMs: 120_000,
      });
    for (const args of [['ensure-schema', '--wait', '60s'], cmd]) {
      const result = await asImage(args);
      const output = result.stdout + result.stderr;
      assert.equal(result.code, 0, `bansho ${args.join(' ')}: ${output}`);
      assert.doesNotMatch(
        output,
        /cache/i,
        `bansho ${args.join(' ')} said something about a cache: ${output}`,
      );
    }

    // The start-up caches warm-cache made at build time are the ones it runs with.
    const traced = await asImage(cmd, { BANSHO_CACHE_DEBUG: '1' });
    assert.equal(traced.code, 0, traced.stderr);
    assert.match(
      traced.stderr,
      /start-up cache for smoke: used \S*\/usr\/local\/lib\/node_modules\/bansho\/dist\/cache\/smoke-[0-9a-z]+\.v8; could not write /,
    );

    assert.deepEqual(await listTree(root), before, 'the read-only root changed');
    assert.deepEqual(await readdir(home), [], 'something was written in HOME');
    const { stdout: written } = await exec('find', [
      '/tmp',
      '/var/tmp',
      '/dev/shm',
      '-xdev',
      '-user',
      String(NOBODY.uid),
      '-newer',
      marker,
    ]);
    assert.equal(written, '', 'files written by the run');
  });
});

/** Every path under a folder with its size and modification time, to see that nothing changed. */
async function listTree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries
    .map((entry) => {
      const stat = statSync(join(dir, entry), { throwIfNoEntry: false });
      return `${entry} ${stat?.size} ${stat?.mtimeMs}`;
    })
    .sort();
}
