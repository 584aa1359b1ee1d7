/**
 * The package as npm packs it: what the tarball holds. Slow: a pack builds.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { before, describe, test } from 'node:test';
import { type PackedRepo, packRepo, ROOT } from './support/package.js';
import { run } from './support/process.js';

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
