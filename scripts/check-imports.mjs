// Fails when src/ has an import cycle, between modules or between the folders that hold them,
// or when a folder imports one it must not: the layout's arrows point one way (README, Layout).
// Type-only imports count: a cycle of types is a cycle of ideas.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

const SRC = new URL('../src/', import.meta.url).pathname;
/** Which folders each folder may import (besides itself); the top-level modules are `.`. */
const ALLOWED = {
  '.': ['.'],
  config: ['.'],
  checks: ['.', 'config'],
  redis: ['.', 'config', 'checks'],
  postgres: ['.', 'config', 'checks'],
  schema: ['.', 'config', 'checks', 'postgres'],
  engine: ['.', 'config', 'checks', 'redis', 'postgres', 'schema'],
  server: ['.', 'config', 'checks', 'engine'],
  cli: ['.', 'config', 'checks', 'engine', 'server'],
  index: ['.', 'config', 'checks', 'redis', 'postgres', 'schema', 'engine', 'server'],
};

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? files(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  );
}

const graph = new Map();
for (const file of files(SRC)) {
  const text = readFileSync(file, 'utf8');
  const targets = [...text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.[^']+)'/g)].map((match) =>
    normalize(join(dirname(file), match[1].replace(/\.js$/, '.ts'))),
  );
  graph.set(file, targets);
}
/** The layer a module belongs to: its folder; index.ts (the library) above every folder but cli/. */
const folderOf = (file) => {
  const path = relative(SRC, file);
  if (path === 'index.ts') return 'index';
  return path.includes('/') ? path.split('/')[0] : '.';
};
const problems = [];
for (const [file, targets] of graph) {
  for (const target of targets) {
    const from = folderOf(file);
    const to = folderOf(target);
    if (!graph.has(target))
      problems.push(`${relative(SRC, file)} imports ${relative(SRC, target)}, which does not exist`);
    else if (!(ALLOWED[from] ?? []).includes(to) && from !== to)
      problems.push(
        `${relative(SRC, file)} (${from}/) imports ${relative(SRC, target)} (${to}/): not allowed`,
      );
  }
}
// Module cycles: depth-first search with colours.
const state = new Map();
const stack = [];
function visit(file) {
  state.set(file, 'open');
  stack.push(file);
  for (const target of graph.get(file) ?? []) {
    if (state.get(target) === 'open') {
      const cycle = stack
        .slice(stack.indexOf(target))
        .concat(target)
        .map((f) => relative(SRC, f));
      problems.push(`import cycle: ${cycle.join(' -> ')}`);
    } else if (!state.has(target) && graph.has(target)) visit(target);
  }
  stack.pop();
  state.set(file, 'done');
}
for (const file of graph.keys()) if (!state.has(file)) visit(file);
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`${graph.size} modules, no import cycle, every import points down the layout`);
