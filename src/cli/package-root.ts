import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package's root folder, found from a module's URL by walking up to bansho's package.json:
 * the CLI runs bundled as dist/bansho.cjs and, in tests, from src/cli/, at other depths.
 */
export function packageRoot(moduleUrl: string): string {
  let dir = dirname(fileURLToPath(moduleUrl));
  for (let depth = 0; depth < 4; depth++, dir = dirname(dir)) {
    try {
      if (
        (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string }).name === 'bansho'
      )
        return dir;
    } catch {
      // No package.json here (dist/, src/cli/), or not ours: look one level up.
    }
  }
  throw new Error(`bansho's package.json not found above ${fileURLToPath(moduleUrl)}`);
}

/** bansho's version, as package.json gives it. */
export function packageVersion(moduleUrl: string): string {
  return (
    JSON.parse(readFileSync(join(packageRoot(moduleUrl), 'package.json'), 'utf8')) as { version: string }
  ).version;
}
