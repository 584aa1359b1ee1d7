/**
 * The package as npm packs and installs it: what the tarball holds, that installing it prints
 * no warning about bansho's own scripts, and that its bin and its types work where users put
 * them. Slow (a pack builds, a git URL install builds again in npm's clone): npm takes what it
 * can from its cache.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { before, describe, test } from 'node:test';
import {
  copyWorkingTree,
  installScriptWarnings,
  npmOk,
  type PackedRepo,
  packRepo,
  ROOT,
  SAME_ON_EVERY_NODE,
} from './support/package.js';
import { exec, makeTempDir, run } from './support/process.js';
import { useRedis } from './support/shared.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** The files a module pulls in through relative imports, requires and re-exports, itself included. */
function importClosure(root: string, entry: string): string[] {
  const seen = new Set<string>();
  const pending = [entry];
  // As tsc and esbuild write them: `from './x.js'`, `import('./x.js')`, `require('../x.cjs')`.
  const specifier = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    for (const [, path] of readFileSync(join(root, file), 'utf8').matchAll(specifier)) {
      const target = relative(root, join(root, dirname(file), path as string));
      pending.push(file.endsWith('.d.ts') ? target.replace(/\.js$/, '.d.ts') : target);
    }
  }
  return [...seen];
}

async function tarballFiles(tarball: string): Promise<string[]> {
  const { stdout } = await run('tar', ['-tzf', tarball]);
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((path) => path.replace(/^package\//, ''))
    .sort();
}

interface Manifest {
  name: string;
  license: string;
  bin: Record<string, string>;
  scripts: Record<string, string>;
  exports: Record<string, unknown>;
}

async function packedManifest(tarball: string): Promise<Manifest> {
  const { stdout } = await run('tar', ['-xOzf', tarball, 'package/package.json']);
  return JSON.parse(stdout);
}

describe('npm pack', () => {
  let pack: PackedRepo;
  before(async () => {
    pack = await packRepo();
  });

  test('holds the library entry and what it imports, the CLI bundle and bin/, and nothing else', async () => {
    const bins = (await run('git', ['ls-files', 'bin'], { cwd: ROOT })).stdout.split('\n').filter(Boolean);
    const expected = new Set([
      'package.json',
      'README.md',
      'LICENSE',
      'CHANGELOG.md',
      ...importClosure(pack.tree, 'dist/index.js'),
      ...importClosure(pack.tree, 'dist/index.d.ts'),
      // The bundle bin/ runs; what bin/ requires besides.
      'dist/bansho.cjs',
      ...bins.flatMap((bin) => importClosure(pack.tree, bin)),
    ]);
    const files = await tarballFiles(pack.tarball);
    const unusable = files.filter((file) =>
      /^(test|src|bench|scripts)\/|(?<!\.d)\.ts$|\.(v8|blob)$|^dist\/(cache|code-cache|snapshot)\//.test(
        file,
      ),
    );
    assert.deepEqual(unusable, [], 'tests, sources, snapshots or code caches in the tarball');
    assert.deepEqual(
      files.filter((file) => !expected.has(file)),
      [],
      'packed but not used by the library, its types or the bin: take it out of "files"',
    );
    assert.deepEqual(
      [...expected].filter((file) => !files.includes(file)).sort(),
      [],
      'needed but not packed: add it to "files" in package.json',
    );
  });

  test("the tarball's package.json has no prepare script, and the packed folder's is the committed one again", async () => {
    const manifest = await packedManifest(pack.tarball);
    assert.equal(manifest.scripts.prepare, undefined);
    assert.equal(manifest.name, 'bansho');
    assert.equal(manifest.bin.bansho, 'bin/bansho');
    // postpack put back the package.json that prepack took prepare out of.
    assert.equal(
      readFileSync(join(pack.tree, 'package.json'), 'utf8'),
      readFileSync(join(ROOT, 'package.json'), 'utf8'),
    );
    assert.equal(existsSync(join(pack.tree, 'package.json.packing')), false);
    assert.equal(
      JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).scripts.prepare,
      'npm run build',
    );
  });

  test('exports ./package.json beside the library entry', async () => {
    const manifest = await packedManifest(pack.tarball);
    assert.equal(manifest.exports['./package.json'], './package.json');
    assert.deepEqual(manifest.exports['.'], { types: './dist/index.d.ts', default: './dist/index.js' });
  });

  test('packs an MIT LICENSE, as package.json says', async () => {
    const manifest = await packedManifest(pack.tarball);
    assert.equal(manifest.license, 'MIT');
    const { stdout } = await run('tar', ['-xOzf', pack.tarball, 'package/LICENSE']);
    assert.match(stdout, /^MIT License\n\nCopyright \(c\) \d{4} bansho contributors\n/);
  });
});

describe('scripts/strip-prepare.mjs', () => {
  test('refuses to strip twice, keeps the committed package.json in package.json.packing, and restores it', async () => {
    const tree = await copyWorkingTree();
    const committed = readFileSync(join(tree, 'package.json'), 'utf8');
    const strip = () => exec(process.execPath, ['scripts/strip-prepare.mjs', 'strip'], { cwd: tree });
    assert.equal((await strip()).code, 0);
    assert.equal(JSON.parse(readFileSync(join(tree, 'package.json'), 'utf8')).scripts.prepare, undefined);
    // A pack that stopped before postpack: the next one must not take the stripped file as committed.
    const again = await strip();
    assert.equal(again.code, 1);
    assert.match(again.stderr, /package\.json\.packing exists.*mv package\.json\.packing package\.json/);
    assert.equal(readFileSync(join(tree, 'package.json.packing'), 'utf8'), committed);
    await run(process.execPath, ['scripts/strip-prepare.mjs', 'restore'], { cwd: tree });
    assert.equal(readFileSync(join(tree, 'package.json'), 'utf8'), committed);
    assert.equal(existsSync(join(tree, 'package.json.packing')), false);
  });

  test('restore without a saved package.json fails and changes nothing', async () => {
    const tree = await copyWorkingTree();
    const committed = readFileSync(join(tree, 'package.json'), 'utf8');
    const result = await exec(process.execPath, ['scripts/strip-prepare.mjs', 'restore'], { cwd: tree });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /package\.json\.packing is missing/);
    assert.equal(readFileSync(join(tree, 'package.json'), 'utf8'), committed);
  });
});

/** A fresh project folder with a package.json of its own. */
async function project(manifest: Record<string, unknown> = {}): Promise<string> {
  const dir = await makeTempDir('bansho-consumer-');
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', ...manifest }),
  );
  return dir;
}

async function assertBinRuns(bin: string): Promise<void> {
  const { stdout } = await run(bin, ['--version'], { cwd: dirname(bin) });
  assert.equal(stdout, `${VERSION}\n`);
}

describe('installing bansho', { concurrency: true }, () => {
  test('npm install of the tarball prints no install-scripts warning, and its bansho runs', async () => {
    const { tarball } = await packRepo();
    const dir = await project();
    const { stdout, stderr } = await npmOk(['install', tarball], dir);
    assert.deepEqual(installScriptWarnings(stdout + stderr), []);
    await assertBinRuns(join(dir, 'node_modules/.bin/bansho'));
    const { stdout: version } = await run(
      process.execPath,
      ['-p', "require('bansho/package.json').version"],
      { cwd: dir },
    );
    assert.equal(version, `${VERSION}\n`);
  });

  test('npm install -g of the tarball into a prefix prints no install-scripts warning, and its bansho runs', {
    skip: SAME_ON_EVERY_NODE,
  }, async () => {
    const { tarball } = await packRepo();
    const prefix = await makeTempDir('bansho-global-');
    const { stdout, stderr } = await npmOk(['install', '--global', '--prefix', prefix, tarball], prefix);
    assert.deepEqual(installScriptWarnings(stdout + stderr), []);
    await assertBinRuns(join(prefix, 'bin/bansho'));
  });

  test("a git URL install builds bansho in npm's clone, and npm names that prepare, the one script it runs", {
    skip: SAME_ON_EVERY_NODE,
  }, async () => {
    const clone = await makeTempDir('bansho-git-');
    await run('git', ['clone', '--quiet', ROOT, clone]);
    const dir = await project();
    const { stdout, stderr } = await npmOk(['install', `git+file://${clone}`], dir);
    // The build does run at install time (pacote runs prepare in its clone): npm is right to say
    // so, and a project allows it in its allowScripts (see the README's Install section).
    const named = installScriptWarnings(stdout + stderr).filter((line) => /@\d/.test(line));
    assert.deepEqual(
      named.map((line) => line.replace(/^npm warn install-scripts\s+/, '')),
      [`bansho@${VERSION} (prepare: npm run build)`],
    );
    await assertBinRuns(join(dir, 'node_modules/.bin/bansho'));
  });
});

interface Consumer {
  name: string;
  type: 'commonjs' | 'module';
  compilerOptions: Record<string, unknown>;
  source: string;
}

const STATIC_IMPORT = `import { BanshoError, ExitCode, type FailureCode, pingRedis, SCHEMA_VERSION } from 'bansho';
const code: FailureCode = 'timeout';
const error = new BanshoError(code, 'example');
// @ts-expect-error: the types know ExitCode's members
ExitCode.nope;
pingRedis({ timeoutMs: 5000 }).then((ok: true) => {
  console.log(JSON.stringify({ ok, schemaVersion: SCHEMA_VERSION, code: error.code, healthy: ExitCode.healthy }));
});
`;

// What a CommonJS project on module node16/node18 writes: TypeScript models a Node without require(esm).
const DYNAMIC_IMPORT = `async function main(): Promise<void> {
  const { BanshoError, ExitCode, pingRedis, SCHEMA_VERSION } = await import('bansho');
  const error = new BanshoError('timeout', 'example');
  // @ts-expect-error: the types know ExitCode's members
  ExitCode.nope;
  const ok: true = await pingRedis({ timeoutMs: 5000 });
  console.log(JSON.stringify({ ok, schemaVersion: SCHEMA_VERSION, code: error.code, healthy: ExitCode.healthy }));
}
void main();
`;

/** What `tsc --init` writes that matters here; two settings turn skipLibCheck off, to check bansho's declarations too. */
const BASE = { strict: true, skipLibCheck: true, target: 'es2022', outDir: 'out', rootDir: 'src' };

/** The tsconfig settings the README names as supported, each compiled and run as its project would. */
const CONSUMERS: Consumer[] = [
  {
    name: 'cjs-nodenext',
    type: 'commonjs',
    compilerOptions: { module: 'nodenext', skipLibCheck: false },
    source: STATIC_IMPORT,
  },
  { name: 'cjs-node20', type: 'commonjs', compilerOptions: { module: 'node20' }, source: STATIC_IMPORT },
  {
    name: 'cjs-commonjs',
    type: 'commonjs',
    compilerOptions: { module: 'commonjs', moduleResolution: 'node10', esModuleInterop: true },
    source: STATIC_IMPORT,
  },
  {
    name: 'cjs-node16-dynamic',
    type: 'commonjs',
    compilerOptions: { module: 'node16' },
    source: DYNAMIC_IMPORT,
  },
  { name: 'esm-node16', type: 'module', compilerOptions: { module: 'node16' }, source: STATIC_IMPORT },
  {
    name: 'esm-nodenext',
    type: 'module',
    compilerOptions: { module: 'nodenext', skipLibCheck: false },
    source: STATIC_IMPORT,
  },
];

describe('TypeScript consumers of the installed package', { concurrency: 4 }, () => {
  const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
  let installed: string;
  let redisUrl: string;

  before(async () => {
    const { tarball } = await packRepo();
    installed = await project();
    await npmOk(['install', tarball], installed);
    // The consumer's own @types/node: bansho's types refer to node's (sockets, TLS options).
    await mkdir(join(installed, 'node_modules/@types'), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules/@types/node'), join(installed, 'node_modules/@types/node'));
    redisUrl = (await useRedis()).url;
  });

  /** A project folder inside the installed one (node_modules is found upwards), with its sources. */
  async function consumerProject(consumer: Consumer): Promise<string> {
    const dir = join(installed, consumer.name);
    await mkdir(join(dir, 'src'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: consumer.name, type: consumer.type }));
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { ...BASE, ...consumer.compilerOptions }, include: ['src'] }),
    );
    writeFileSync(join(dir, 'src/index.ts'), consumer.source);
    return dir;
  }

  async function assertRuns(script: string): Promise<void> {
    const { stdout } = await run(process.execPath, [script], {
      env: { PATH: process.env.PATH, REDIS_URL: redisUrl },
    });
    assert.deepEqual(JSON.parse(stdout), { ok: true, schemaVersion: 1, code: 'timeout', healthy: 0 });
  }

  for (const consumer of CONSUMERS) {
    // One CommonJS and one ES module consumer on every line: how Node loads bansho differs by
    // line (require() of an ES module); the other settings differ only in what TypeScript does.
    const everyLine = consumer.name === 'cjs-nodenext' || consumer.name === 'esm-nodenext';
    test(`${consumer.name}: ${JSON.stringify(consumer.compilerOptions)} in a ${consumer.type} project compiles and runs`, {
      skip: everyLine ? false : SAME_ON_EVERY_NODE,
    }, async () => {
      const dir = await consumerProject(consumer);
      const compiled = await exec(process.execPath, [tsc, '-p', dir], { timeoutMs: 120_000 });
      assert.equal(compiled.code, 0, compiled.stdout + compiled.stderr);
      await assertRuns(join(dir, 'out/index.js'));
    });
  }

  test('cjs-node16: a static import fails with TS1479, as TypeScript models Node without require(esm)', {
    skip: SAME_ON_EVERY_NODE,
  }, async () => {
    const dir = await consumerProject({
      name: 'cjs-node16-static',
      type: 'commonjs',
      compilerOptions: { module: 'node16' },
      source: STATIC_IMPORT,
    });
    const compiled = await exec(process.execPath, [tsc, '-p', dir], { timeoutMs: 120_000 });
    assert.equal(compiled.code, 2);
    assert.deepEqual(
      [...compiled.stdout.matchAll(/error (TS\d+)/g)].map((match) => match[1]),
      ['TS1479'],
      compiled.stdout,
    );
  });

  test('bundler resolution type-checks, and esbuild bundles and runs it', {
    skip: SAME_ON_EVERY_NODE,
  }, async () => {
    const dir = await consumerProject({
      name: 'bundler',
      type: 'module',
      compilerOptions: { module: 'preserve', moduleResolution: 'bundler', noEmit: true },
      source: STATIC_IMPORT,
    });
    const checked = await exec(process.execPath, [tsc, '-p', dir], { timeoutMs: 120_000 });
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    const bundle = join(dir, 'out/bundle.cjs');
    await run(join(ROOT, 'node_modules/.bin/esbuild'), [
      join(dir, 'src/index.ts'),
      '--bundle',
      '--platform=node',
      '--format=cjs',
      '--log-level=warning',
      `--outfile=${bundle}`,
    ]);
    await assertRuns(bundle);
  });
});
