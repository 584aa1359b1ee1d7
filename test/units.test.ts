import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { summarize } from '../src/checks/model.js';
import { backoffDelay, MAX_BACKOFF_MS } from '../src/cli/wait.js';
import { formatDuration, parseDuration } from '../src/config/duration.js';
import { BanshoError, hintFor } from '../src/errors.js';
import { MASK, quoteTyped, redactUrl, scrubSecrets, secretForms } from '../src/redact.js';
import { PROBE_SCRIPT_SHA, probeId } from '../src/redis/sub-checks.js';

describe('parseDuration', () => {
  for (const [text, ms] of [
    ['500ms', 500],
    ['2s', 2000],
    ['1.5s', 1500],
    ['1m', 60_000],
    ['1h', 3_600_000],
    [' 3s ', 3000],
  ] as const) {
    test(`${JSON.stringify(text)} is ${ms} ms`, () => assert.equal(parseDuration(text, '--timeout'), ms));
  }
  for (const text of ['5', '-1s', '0s', 'abc', '1d', '', '2 seconds', '25h', 'NaNs']) {
    test(`refuses ${JSON.stringify(text)} as a config error naming the flag`, () => {
      assert.throws(
        () => parseDuration(text, '--timeout'),
        (error: unknown) =>
          error instanceof BanshoError && error.code === 'config' && error.message.startsWith('--timeout'),
      );
    });
  }
  test('echoes nothing that is not a duration: with arguments shifted, it may be a URL', () => {
    const message = (text: string) => {
      try {
        parseDuration(text, '--timeout');
      } catch (error) {
        return (error as Error).message;
      }
      return 'no error';
    };
    assert.equal(message("redis://:it's@h"), '--timeout must be a duration such as 500ms, 2s or 1m');
    assert.equal(message('hunter2'), '--timeout must be a duration such as 500ms, 2s or 1m');
    assert.equal(message('5'), '--timeout needs a unit: a bare number could mean seconds or milliseconds');
    assert.equal(message('0s'), '--timeout must be greater than zero (got "0s")');
  });
  test('formats for people', () => {
    assert.equal(formatDuration(800), '800ms');
    assert.equal(formatDuration(2000), '2s');
    assert.equal(formatDuration(1500), '1.5s');
    assert.equal(formatDuration(90_000), '1.5m');
  });
});

describe('redaction', () => {
  for (const [input, expected] of [
    ['redis://:secret@host:6379', `redis://:${MASK}@host:6379`],
    ['redis://user:secret@host', `redis://user:${MASK}@host`],
    ['postgres://u:p@ss/w?rd@host/db', `postgres://u:${MASK}@host/db`],
    ['redis://user@host', 'redis://user@host'],
    ['redis://host:6379', 'redis://host:6379'],
    ['not a url', 'not a url'],
  ] as const) {
    test(`redactUrl(${JSON.stringify(input)})`, () => assert.equal(redactUrl(input), expected));
  }
  test('scrubSecrets masks every form, longest first', () => {
    const forms = secretForms('p@ss');
    assert.deepEqual(forms, ['p%40ss', 'p@ss']);
    assert.equal(scrubSecrets('a p%40ss b p@ss c', forms), `a ${MASK} b ${MASK} c`);
    assert.equal(scrubSecrets('nothing here', []), 'nothing here');
  });
  test('scrubSecrets masks a password where it is a whole token of the text, quoted or not', () => {
    const reply = (password: string) =>
      `ERR unknown command 'HELLO', with args beginning with: '3' 'AUTH' 'u' '${password}' `;
    for (const password of ["it's", 'two words', 'back\\slash', 'fail', '.', ':', 'a', '%41']) {
      assert.equal(scrubSecrets(reply(password), secretForms(password)), reply(MASK), password);
    }
    assert.equal(
      scrubSecrets('redis://:s3cret@h failed', secretForms('s3cret')),
      `redis://:${MASK}@h failed`,
    );
  });
  test('scrubSecrets leaves a word that only contains the password as it is', () => {
    const text =
      'FATAL 28P01: password authentication failed for user "app"; WRONGPASS invalid pair, 127.0.0.1:6379.';
    for (const password of ['fail', 'pass', 'a', '.', ':', 'auth', 'WRONG']) {
      assert.equal(scrubSecrets(text, secretForms(password)), text, password);
    }
  });
  test('quoteTyped quotes a typed value with everything before its last "@" removed', () => {
    assert.equal(quoteTyped("redis://:it's@h@127.0.0.1:1"), `"redis://${MASK}@127.0.0.1:1"`);
    assert.equal(quoteTyped('user:pw@host'), `"${MASK}@host"`);
    assert.equal(quoteTyped('/etc/bansho/.env'), '"/etc/bansho/.env"');
  });
});

describe('backoff', () => {
  test('doubles from the interval, capped, with jitter in [0.5, 1)', () => {
    assert.equal(backoffDelay(1, 200, 0), 100);
    assert.equal(backoffDelay(1, 200, 0.999), 200);
    assert.equal(backoffDelay(3, 200, 0), 400);
    assert.equal(backoffDelay(30, 200, 1), MAX_BACKOFF_MS);
    assert.ok(backoffDelay(30, 200, 0) >= MAX_BACKOFF_MS / 2);
  });
});

describe('summarize', () => {
  const check = (status: 'pass' | 'warn' | 'fail') => ({ status, target: 't', latencyMs: 1 });
  test('the worst check wins; --strict turns a warning into a failure', () => {
    assert.equal(summarize({ a: check('pass'), b: check('pass') }, false), 'pass');
    assert.equal(summarize({ a: check('pass'), b: check('warn') }, false), 'warn');
    assert.equal(summarize({ a: check('pass'), b: check('warn') }, true), 'fail');
    assert.equal(summarize({ a: check('fail'), b: check('warn') }, false), 'fail');
  });
});

describe('hints', () => {
  test('every failure code has a hint for each service', () => {
    const codes = [
      'connection_refused',
      'timeout',
      'dns',
      'auth_failed',
      'tls',
      'not_ready',
      'unknown_database',
      'read_only',
      'too_many_connections',
      'protocol',
      'server_error',
      'schema_mismatch',
      'interrupted',
      'config',
      'unexpected',
    ] as const;
    for (const code of codes) {
      assert.ok(hintFor(code, 'redis').length > 10, code);
      assert.ok(hintFor(code, 'postgres').length > 10, code);
    }
    assert.match(hintFor('auth_failed', 'redis'), /REDIS_URL's password/);
  });
});

describe('the write sub-check key', () => {
  test("PROBE_SCRIPT_SHA is the script's SHA1, as EVALSHA needs it", () => {
    assert.equal(createHash('sha1').update('return 1').digest('hex'), PROBE_SCRIPT_SHA);
  });

  test('probeId differs on every call, without node:crypto', () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => probeId()));
    assert.equal(ids.size, 10_000);
    assert.match(probeId(), /^[0-9a-z]+-[0-9a-z]+-[0-9a-z]+$/);
  });
});
