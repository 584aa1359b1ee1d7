/**
 * How bin/bansho.js loads the bundled CLI with V8 code caches made by the build. Needs
 * `npm run build` first (it reads dist/bansho.cjs and dist/code-cache/).
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { loadCli, readCodeCache } from '../src/cli-loader.js';

const DIST = resolve(import.meta.dirname, '../dist');
const BUNDLE = join(DIST, 'bansho.cjs');
const CACHE_DIR = join(DIST, 'code-cache');

describe('loadCli', () => {
  test('the build made a code cache per subcommand and one for everything else', () => {
    assert.deepEqual(readdirSync(CACHE_DIR).sort(), [
      'default.v8',
      'ensure-schema.v8',
      'ping-postgres.v8',
      'ping-redis.v8',
      'smoke.v8',
    ]);
  });

  for (const file of readdirSync(CACHE_DIR)) {
    test(`V8 accepts ${file} for the bundle it was made from`, () => {
      const cli = loadCli({ bundlePath: BUNDLE, cachedData: readCodeCache(CACHE_DIR, file.slice(0, -3)) });
      assert.equal(cli.script.cachedDataRejected, false);
      assert.equal(typeof cli.main, 'function');
    });
  }

  test('a cache V8 rejects (another Node, a damaged file) only means compiling from source', () => {
    const cli = loadCli({ bundlePath: BUNDLE, cachedData: Buffer.from('not a code cache') });
    assert.equal(cli.script.cachedDataRejected, true);
    assert.equal(typeof cli.main, 'function');
  });

  test('no cache at all compiles from source', () => {
    const cli = loadCli({ bundlePath: BUNDLE });
    assert.equal(cli.script.cachedDataRejected, undefined);
    assert.equal(typeof cli.main, 'function');
  });
});

describe('readCodeCache', () => {
  test("reads the subcommand's own cache", () => {
    const smoke = readCodeCache(CACHE_DIR, 'smoke');
    const fallback = readCodeCache(CACHE_DIR, undefined);
    assert.ok(smoke && fallback);
    assert.notDeepEqual(smoke, fallback);
  });

  for (const argument of [undefined, '--version', 'no-such-command', '../package.json', 'SMOKE']) {
    test(`falls back to the default cache for ${JSON.stringify(argument)}`, () => {
      assert.deepEqual(readCodeCache(CACHE_DIR, argument), readCodeCache(CACHE_DIR, 'default'));
    });
  }

  test('is undefined when there is no cache directory', () => {
    assert.equal(readCodeCache(join(DIST, 'no-such-dir'), 'smoke'), undefined);
  });
});
