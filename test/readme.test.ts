/**
 * The README's snippets, compose.yaml and the Dockerfile, read as their tools would: each YAML
 * block parses, each health check or probe that runs bansho gives bansho a --timeout below its
 * own, and every `bansho <command> <flags>` they show is one that bansho's own commander
 * program accepts, with durations bansho parses.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { CommanderError } from 'commander';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { buildProgram } from '../src/cli/program.js';
import { parseDuration } from '../src/config/duration.js';
import type { CliOptions } from '../src/config/load.js';
import { createMetricsState, recordReport, renderMetrics } from '../src/server/metrics.js';
import { dockerDurationMs, parseDockerfile } from './support/dockerfile.js';
import { ROOT } from './support/package.js';

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
/** What `docker run bansho` runs with no arguments. */
const IMAGE_CMD = parseDockerfile(dockerfile)
  .filter((instruction) => instruction.keyword === 'CMD')
  .at(-1)?.exec as string[];

interface Block {
  language: string;
  text: string;
  /** 1-based line of the block's first line of content. */
  line: number;
}

function codeBlocks(markdown: string): Block[] {
  return [...markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((match) => ({
    language: match[1] as string,
    text: match[2] as string,
    line: markdown.slice(0, match.index).split('\n').length + 1,
  }));
}

/** A bansho invocation: its arguments, and where it was shown. */
interface Invocation {
  args: string[];
  where: string;
}

const isBansho = (word: string): boolean => word === 'bansho' || word.endsWith('/bansho');

/** Keys whose values are commands: a compose service's, a Kubernetes container's or probe's, an Actions step's. */
const COMMAND_KEYS = new Set(['run', 'command', 'args', 'test', 'entrypoint']);

/** A shell line's simple commands, as lists of words (quotes removed), split at operators. */
function simpleCommands(line: string): string[][] {
  const commands: string[][] = [[]];
  const token = /(&&|\|\||[|;<>()]|\d?>>?)|((?:"[^"]*"|'[^']*'|[^\s"'|;&<>()])+)/g;
  for (const [, operator, word] of line.replace(/(^|\s)#.*$/, '').matchAll(token)) {
    if (operator !== undefined) commands.push([]);
    else (commands.at(-1) as string[]).push((word as string).replace(/"([^"]*)"|'([^']*)'/g, '$1$2'));
  }
  return commands.filter((words) => words.length > 0);
}

/**
 * The bansho invocations in a shell command line: bansho in command position (after
 * variable assignments, `npx` or `exec`), or the bansho image in `docker run`.
 */
function shellInvocations(line: string, where: string): Invocation[] {
  const found: Invocation[] = [];
  for (const command of simpleCommands(line)) {
    const first = command.findIndex((word) => !/^\w+=/.test(word));
    if (first < 0) continue;
    const words = command.slice(first);
    if (words[0] === 'npx' || words[0] === 'exec') words.shift();
    if (words[0] !== undefined && isBansho(words[0])) found.push({ args: words.slice(1), where });
    // Without arguments, the image runs its CMD.
    if (words[0] === 'docker' && words[1] === 'run' && words.indexOf('bansho') > 1) {
      const args = words.slice(words.indexOf('bansho') + 1);
      found.push({ args: args.length > 0 ? args : IMAGE_CMD, where });
    }
  }
  return found;
}

/**
 * The bansho invocations in a parsed YAML value: exec arrays and shell strings under command
 * keys, and the arguments of a container whose image is bansho's (its entrypoint is bansho).
 */
function valueInvocations(value: unknown, where: string, key?: string): Invocation[] {
  const isCommand = key !== undefined && COMMAND_KEYS.has(key);
  if (typeof value === 'string') return isCommand ? shellInvocations(value, where) : [];
  if (Array.isArray(value)) {
    const at = value.findIndex((item) => typeof item === 'string' && isBansho(item));
    if (at >= 0) return [{ args: value.slice(at + 1) as string[], where }];
    return value.flatMap((item) => valueInvocations(item, where, isCommand ? key : undefined));
  }
  if (value && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    const found = Object.entries(object).flatMap(([k, v]) => valueInvocations(v, where, k));
    if (
      typeof object.image === 'string' &&
      /(^|\/)bansho(:|$)/.test(object.image) &&
      Array.isArray(object.args)
    )
      found.push({ args: object.args as string[], where });
    return found;
  }
  return [];
}

/** The bansho invocations in a Dockerfile: RUN lines, HEALTHCHECK CMDs, and ENTRYPOINT with CMD. */
function dockerfileInvocations(text: string, where: string): Invocation[] {
  const instructions = parseDockerfile(text);
  const found: Invocation[] = [];
  for (const instruction of instructions) {
    const at = `${where}:${instruction.line}`;
    if (instruction.keyword === 'RUN') found.push(...shellInvocations(instruction.args, at));
    if (instruction.keyword === 'HEALTHCHECK') {
      const command = instruction.args.replace(/^(--\S+\s+)*CMD\s+/, '');
      found.push(
        ...(command.startsWith('[')
          ? valueInvocations(JSON.parse(command), at)
          : shellInvocations(command, at)),
      );
    }
  }
  const entrypoint = instructions.filter((i) => i.keyword === 'ENTRYPOINT').at(-1)?.exec;
  const cmd = instructions.filter((i) => i.keyword === 'CMD').at(-1);
  if (entrypoint && cmd?.exec)
    found.push(...valueInvocations([...entrypoint, ...cmd.exec], `${where}:${cmd.line}`, 'command'));
  return found;
}

function readmeInvocations(): Invocation[] {
  return codeBlocks(readme).flatMap((block) => {
    const where = `README.md:${block.line}`;
    if (block.language === 'yaml')
      return parseAllDocuments(block.text).flatMap((document) => valueInvocations(document.toJS(), where));
    if (block.language === 'dockerfile') return dockerfileInvocations(block.text, where);
    if (block.language === 'sh')
      return block.text.split('\n').flatMap((line) => shellInvocations(line, where));
    // A console block: the commands are the lines after the prompt, the rest is their output.
    if (block.language === 'console')
      return block.text
        .split('\n')
        .filter((line) => line.startsWith('$ '))
        .flatMap((line) => shellInvocations(line.slice(2), where));
    return [];
  });
}

function composeInvocations(): Invocation[] {
  const compose = parseYaml(readFileSync(join(ROOT, 'compose.yaml'), 'utf8'), { merge: true }) as {
    services: Record<string, { build?: unknown; entrypoint?: string[]; command?: string[] }>;
  };
  return Object.entries(compose.services).flatMap(([name, service]) => {
    const where = `compose.yaml (${name})`;
    const found = valueInvocations({ ...service, command: undefined, entrypoint: undefined }, where);
    // A service built from the Dockerfile runs its entrypoint, bansho, unless it names another.
    const entrypoint = service.entrypoint ?? (service.build !== undefined ? ['bansho'] : []);
    return [...found, ...valueInvocations([...entrypoint, ...(service.command ?? [])], where, 'command')];
  });
}

/** Parses an invocation as bansho would, without running it; the error, or the options. */
async function parseLikeBansho(args: string[]): Promise<{ error?: string; options?: CliOptions }> {
  let options: CliOptions | undefined;
  const program = buildProgram({
    onCommand: async (_command, parsed) => {
      options = parsed;
    },
    onWarmCache: async () => {
      options = {};
    },
    onServe: async (parsed) => {
      options = parsed;
    },
  });
  for (const command of [program, ...program.commands])
    command.configureOutput({ writeOut: () => {}, writeErr: () => {}, outputError: () => {} });
  // What follows `--` is the command run after the checks (src/cli/main.ts cuts it off too).
  const separator = args.indexOf('--');
  const own = separator === -1 ? args : args.slice(0, separator);
  if (separator !== -1 && args.length === separator + 1) return { error: 'nothing after --' };
  try {
    await program.parseAsync(['node', 'bansho', ...own]);
  } catch (error) {
    if (!(error instanceof CommanderError)) throw error;
    if (error.code !== 'commander.version' && error.code !== 'commander.helpDisplayed')
      return { error: error.message };
  }
  if (args[0] !== '--version' && args[0] !== '-V' && !args.includes('--help') && options === undefined)
    return { error: 'no command ran' };
  return options === undefined ? {} : { options };
}

const invocations = new Map<string, string[]>();
for (const { args, where } of [
  ...readmeInvocations(),
  ...composeInvocations(),
  ...dockerfileInvocations(dockerfile, 'Dockerfile'),
]) {
  // Placeholders (`bansho <command>`, `…`) are not commands.
  if (args.some((arg) => /[<…]/.test(arg))) continue;
  const key = args.join(' ');
  invocations.set(key, [...(invocations.get(key) ?? []), where]);
}

describe('bansho as the README, compose.yaml and the Dockerfile show it', () => {
  test('shows bansho commands at all', () => {
    // The README's console examples, the compose services, the Dockerfile's CMD.
    assert.ok(invocations.size > 20, `only ${invocations.size} found`);
    assert.ok(invocations.has('ensure-schema --wait 60s'));
    assert.ok(invocations.has('smoke --quiet --timeout 3s'));
  });

  for (const [key, where] of invocations) {
    test(`bansho ${key} (${[...new Set(where)].join(', ')}) is a real command with real flags`, async () => {
      const { error, options } = await parseLikeBansho(key === '' ? [] : key.split(' '));
      assert.equal(error, undefined, `bansho ${key}: ${error}`);
      for (const flag of ['timeout', 'wait', 'interval'] as const) {
        const value = options?.[flag];
        if (typeof value === 'string') parseDuration(value, `--${flag}`);
      }
    });
  }
});

/** `--timeout` of a bansho invocation, in milliseconds. */
function banshoTimeoutMs(args: string[]): number {
  const at = args.indexOf('--timeout');
  assert.ok(at >= 0, `bansho ${args.join(' ')}: a health check or probe bounds bansho with --timeout`);
  return parseDuration(args[at + 1] as string, '--timeout');
}

/**
 * A pod's containers: for each that runs `bansho serve` (a container of bansho's image), every
 * httpGet probe on its port, in any container of the pod, waits longer than serve's --timeout,
 * since a probe may have to wait for a fresh check.
 */
function assertServeProbes(containers: Record<string, unknown>[], where: string): void {
  for (const container of containers) {
    const [serve] = valueInvocations(container, where).filter((invocation) => invocation.args[0] === 'serve');
    if (!serve) continue;
    const listen = serve.args[serve.args.indexOf('--listen') + 1] ?? '127.0.0.1:9840';
    const port = Number(/:(\d+)$/.exec(listen)?.[1]);
    const timeoutMs = serve.args.includes('--timeout') ? banshoTimeoutMs(serve.args) : 5000;
    let probes = 0;
    for (const other of containers)
      for (const key of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        const probe = other[key] as { httpGet?: { port?: unknown }; timeoutSeconds?: number } | undefined;
        if (probe?.httpGet?.port !== port) continue;
        probes++;
        assert.ok(
          typeof probe.timeoutSeconds === 'number' && probe.timeoutSeconds * 1000 > timeoutMs,
          `${where}: ${String(other.name)}'s ${key} on bansho serve's port waits ${probe.timeoutSeconds} s, not above its --timeout`,
        );
      }
    assert.ok(probes > 0, `${where}: nothing probes bansho serve on port ${port}`);
  }
}

/** The metrics /metrics serves for a report with every kind of series: name → label → values. */
function servedMetrics(): Map<string, Map<string, Set<string>>> {
  const state = createMetricsState(false);
  const details = ['role', 'write', 'commands', 'eviction', 'memory', 'clock'].map((name) => ({
    name,
    status: 'pass' as const,
    observed: '…',
  }));
  const pgDetails = ['version', 'primary', 'privileges', 'connections', 'timeouts', 'clock', 'encoding'].map(
    (name) => ({ name, status: 'pass' as const, observed: '…' }),
  );
  recordReport(state, {
    report: {
      status: 'fail',
      checks: {
        redis: { status: 'pass', target: 'redis://h', latencyMs: 1, details },
        postgres: { status: 'pass', target: 'postgres://h', latencyMs: 1, details: pgDetails },
        schema: {
          status: 'fail',
          target: 'postgres://h',
          latencyMs: 1,
          error: { code: 'schema_mismatch', message: '…', hint: '…' },
        },
      },
    },
    checkedAt: 0,
    durationMs: 1,
  });
  const served = new Map<string, Map<string, Set<string>>>();
  for (const line of renderMetrics(state).split('\n')) {
    const match = /^(bansho_\w+)(?:\{(.*)\})? /.exec(line);
    if (!match) continue;
    const labels = served.get(match[1] as string) ?? new Map<string, Set<string>>();
    served.set(match[1] as string, labels);
    for (const [, label = '', value = ''] of (match[2] ?? '').matchAll(/(\w+)="([^"]*)"/g))
      labels.set(label, (labels.get(label) ?? new Set()).add(value));
  }
  // A cluster's sub-checks carry the node too.
  served.get('bansho_sub_check_status')?.set('node', new Set());
  return served;
}

/** Every object in a parsed value, depth first. */
function objects(value: unknown): Record<string, unknown>[] {
  if (Array.isArray(value)) return value.flatMap(objects);
  if (value && typeof value === 'object')
    return [value as Record<string, unknown>, ...Object.values(value).flatMap(objects)];
  return [];
}

describe("the README's YAML and Dockerfile snippets", () => {
  const blocks = codeBlocks(readme);

  test('has the Docker, compose, Kubernetes and GitHub Actions snippets', () => {
    assert.ok(blocks.some((block) => block.language === 'dockerfile' && /HEALTHCHECK/.test(block.text)));
    const yaml = blocks.filter((block) => block.language === 'yaml').map((block) => block.text);
    for (const marker of [
      /^healthcheck:/m,
      /kind: Deployment/,
      /initContainers:/,
      /^jobs:/m,
      /httpGet:/,
      /^scrape_configs:/m,
      /^groups:/m,
    ])
      assert.ok(
        yaml.some((text) => marker.test(text)),
        `no YAML block matches ${marker}`,
      );
  });

  for (const block of blocks.filter((b) => b.language === 'yaml')) {
    test(`the YAML at README.md:${block.line} parses, and its bansho probes time out after bansho does`, () => {
      const documents = parseAllDocuments(block.text, { uniqueKeys: true });
      for (const document of documents) {
        assert.deepEqual(document.errors, [], `README.md:${block.line}`);
        for (const object of objects(document.toJS())) {
          // A compose healthcheck: { test: ["CMD", "bansho", …], timeout: 5s }.
          const check = Array.isArray(object.test) ? valueInvocations(object.test, '', 'test')[0] : undefined;
          if (check) {
            assert.ok(typeof object.timeout === 'string', 'a healthcheck running bansho sets timeout');
            assert.ok(dockerDurationMs(object.timeout) > banshoTimeoutMs(check.args));
          }
          // A Kubernetes probe: { exec: { command: ["bansho", …] }, timeoutSeconds: 5 } (default 1).
          const exec = object.exec as { command?: unknown } | undefined;
          const probe = Array.isArray(exec?.command)
            ? valueInvocations(exec.command, '', 'command')[0]
            : undefined;
          if (probe) {
            assert.ok(
              typeof object.timeoutSeconds === 'number',
              'a probe running bansho sets timeoutSeconds',
            );
            assert.ok(object.timeoutSeconds * 1000 > banshoTimeoutMs(probe.args));
          }
          if (Array.isArray(object.containers))
            assertServeProbes(object.containers, `README.md:${block.line}`);
        }
      }
    });
  }

  test('the alert rules name only metrics and labels that /metrics serves', () => {
    const rules = blocks.filter((b) => b.language === 'yaml' && /^groups:/m.test(b.text));
    assert.ok(rules.length > 0, 'no alert rules in the README');
    const served = servedMetrics();
    let named = 0;
    for (const block of rules) {
      const { groups } = parseYaml(block.text) as { groups: { rules: { expr: string }[] }[] };
      for (const rule of groups.flatMap((group) => group.rules)) {
        for (const [, name = '', selector] of rule.expr.matchAll(/\b(bansho_\w+)(?:\{([^}]*)\})?/g)) {
          named++;
          const labels = served.get(name);
          assert.ok(labels, `${name} is not a metric bansho serves`);
          for (const [, label = '', value = ''] of (selector ?? '').matchAll(/(\w+)\s*=~?\s*"([^"]*)"/g)) {
            const values = labels.get(label);
            assert.ok(values, `${name} has no label ${label}`);
            // A regex matcher's alternatives, each a value bansho gives that label.
            for (const alternative of value.split('|'))
              assert.ok(values.has(alternative), `${name}{${label}="${alternative}"} is never served`);
          }
        }
      }
    }
    assert.ok(named >= 5, `only ${named} metric references found`);
  });

  for (const block of blocks.filter((b) => b.language === 'dockerfile')) {
    test(`the Dockerfile lines at README.md:${block.line} parse, and a HEALTHCHECK times out after bansho does`, () => {
      for (const instruction of parseDockerfile(block.text)) {
        if (instruction.keyword !== 'HEALTHCHECK') continue;
        const docker = /--timeout=(\S+)/.exec(instruction.args)?.[1];
        assert.ok(docker, 'HEALTHCHECK --timeout= set (the default is 30s)');
        const [check] = dockerfileInvocations(`HEALTHCHECK ${instruction.args}`, '');
        assert.ok(check, 'the HEALTHCHECK runs bansho');
        assert.ok(dockerDurationMs(docker) > banshoTimeoutMs(check.args));
      }
    });
  }
});
