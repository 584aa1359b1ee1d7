/**
 * `--help` of the program and of each command (issue 12, item 7): each command describes its
 * own flags, warnings and variables only, and the exit codes are the README's table.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { runCli } from './support/cli.js';

const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

/** The README's "Exit codes" table: code → meaning, markdown removed. */
function readmeExitCodes(): Map<string, string> {
  const section = README.slice(README.indexOf('## Exit codes'), README.indexOf('## Failure codes'));
  const rows = [...section.matchAll(/^\| (\d+) \| (.+) \|$/gm)];
  assert.ok(rows.length >= 6, 'no exit-code table in the README');
  return new Map(rows.map(([, code = '', meaning = '']) => [code, meaning.replaceAll('`', '')]));
}

/** The "Exit codes:" block of a help text: code → meaning, wrapped lines joined. */
function helpExitCodes(help: string): Map<string, string> {
  const block = help.slice(help.indexOf('Exit codes:\n') + 'Exit codes:\n'.length).split('\n\n')[0] ?? '';
  const codes = new Map<string, string>();
  let last = '';
  for (const line of block.split('\n')) {
    const row = /^ {2}(\d+) +(.+)$/.exec(line);
    if (row) {
      last = row[1] ?? '';
      codes.set(last, row[2] ?? '');
    } else if (last) {
      codes.set(last, `${codes.get(last)} ${line.trim()}`);
    }
  }
  return codes;
}

async function helpOf(...command: string[]): Promise<string> {
  const result = await runCli([...command, '--help']);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout;
}

/** The description commander prints for `flag`, wrapped lines joined; undefined when not offered. */
function flagHelp(help: string, flag: string): string | undefined {
  const lines = help.split('\n');
  const start = lines.findIndex((line) => new RegExp(`^ {2}(-\\w, )?${flag}\\b`).test(line));
  if (start === -1) return undefined;
  const text = [lines[start]?.replace(/^ {2}\S.*? {2,}/, '') ?? ''];
  for (const line of lines.slice(start + 1)) {
    if (!/^ {20,}\S/.test(line)) break;
    text.push(line.trim());
  }
  return text.join(' ');
}

const COMMANDS = {
  'ping-redis': { redis: true, postgres: false, warns: true },
  'ping-postgres': { redis: false, postgres: true, warns: true },
  'ensure-schema': { redis: false, postgres: true, warns: false },
  smoke: { redis: true, postgres: true, warns: true },
} as const;

describe('--help', { concurrency: true }, () => {
  test("bansho --help gives the README's exit codes, 70 included", async () => {
    assert.deepEqual(helpExitCodes(await helpOf()), readmeExitCodes());
  });

  for (const [command, needs] of Object.entries(COMMANDS)) {
    test(`${command} --help gives the README's exit codes${needs.warns ? '' : ', without --strict'}`, async () => {
      const expected = readmeExitCodes();
      if (!needs.warns)
        expected.set('0', (expected.get('0') ?? '').replace(' (or warned, without --strict)', ''));
      assert.deepEqual(helpExitCodes(await helpOf(command)), expected);
    });

    test(`${command} --help shows -- <command> and what it exits with`, async () => {
      const help = await helpOf(command);
      assert.match(
        help,
        new RegExp(`^Usage: bansho ${command} \\[options\\] \\[-- <command> \\[args\\.\\.\\.\\]\\]$`, 'm'),
      );
      const block = help.slice(help.indexOf('After the checks'));
      for (const words of [
        'SIGTERM, SIGINT and SIGHUP',
        '128 + the signal',
        '127 not found',
        '126 not executable',
      ])
        assert.ok(block.includes(words), `${command}: ${words}`);
    });

    test(`${command} --help names only the variables it reads`, async () => {
      const help = await helpOf(command);
      assert.equal(/^ {2}REDIS_URL /m.test(help), needs.redis, 'REDIS_URL');
      assert.equal(/^ {2}POSTGRES_DSN /m.test(help), needs.postgres, 'POSTGRES_DSN');
      for (const variable of ['NO_COLOR', 'FORCE_COLOR'])
        assert.match(help, new RegExp(`^ {2}${variable} `, 'm'));
      assert.match(help, /visible to other users in `ps`/);
    });
  }

  test('--strict is offered where something warns, described with that command’s warnings only', async () => {
    const strict = Object.fromEntries(
      await Promise.all(
        Object.keys(COMMANDS).map(async (command) => [command, flagHelp(await helpOf(command), '--strict')]),
      ),
    ) as Record<keyof typeof COMMANDS, string | undefined>;
    assert.equal(strict['ensure-schema'], undefined);
    assert.doesNotMatch(await helpOf('ensure-schema'), /--strict|warn/);
    assert.match(strict['ping-redis'] ?? '', /eviction policy/);
    assert.doesNotMatch(strict['ping-redis'] ?? '', /schema|connection slots|UTF8/);
    assert.match(strict['ping-postgres'] ?? '', /connection slots/);
    assert.doesNotMatch(strict['ping-postgres'] ?? '', /schema|eviction|memory|MULTI|INFO/);
    assert.match(strict.smoke ?? '', /eviction policy/);
    assert.match(strict.smoke ?? '', /connection slots/);
    assert.match(strict.smoke ?? '', /a schema not created yet/);
  });

  test('--quiet says that usage errors are still printed', async () => {
    assert.match(flagHelp(await helpOf('smoke'), '--quiet') ?? '', /usage error/);
  });
});
