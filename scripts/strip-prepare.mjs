// Takes `prepare` out of package.json for the length of `npm pack` / `npm publish`, so that the
// tarball's package.json has none: prepack runs `strip` after the build, postpack `restore`.
// Why: npm (11.19 here) lists `prepare` of a tarball, file or git dependency among the install
// scripts it warns about, and a tarball already holds dist/ (npm never runs `prepare` for one).
// A clone (`npm ci`) and a git URL install (pacote runs `prepare` in its clone) still build:
// the committed package.json keeps it. npm reads package.json and the file list from disk
// after prepack, and runs postpack once the tarball is written.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');
const manifest = join(root, 'package.json');
/** The committed package.json while a pack runs; its presence before a pack means one stopped midway. */
const saved = join(root, 'package.json.packing');

function stripPrepare() {
  if (existsSync(saved))
    fail(
      'package.json.packing exists: an earlier npm pack stopped before postpack, or another runs here. ' +
        'It holds the package.json to keep: mv package.json.packing package.json',
    );
  const text = readFileSync(manifest, 'utf8');
  const pkg = JSON.parse(text);
  if (!pkg.scripts?.prepare) fail('package.json has no "prepare" script to take out');
  delete pkg.scripts.prepare;
  // 'wx': the copy is made once, never over a copy that still holds the committed file.
  writeFileSync(saved, text, { flag: 'wx' });
  // A rename, so that package.json is never seen half-written.
  writeFileSync(`${manifest}.tmp`, `${JSON.stringify(pkg, null, 2)}\n`);
  renameSync(`${manifest}.tmp`, manifest);
}

function restorePrepare() {
  if (!existsSync(saved)) fail('package.json.packing is missing: nothing to restore');
  renameSync(saved, manifest);
}

function fail(message) {
  process.stderr.write(`strip-prepare: ${message}\n`);
  process.exit(1);
}

const verb = process.argv[2];
if (verb === 'strip') stripPrepare();
else if (verb === 'restore') restorePrepare();
else fail('usage: node scripts/strip-prepare.mjs strip|restore');
