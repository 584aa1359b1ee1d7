/**
 * The result cache behind /readyz and /metrics: one check in flight at a time, and its report
 * reused for a while. Pure logic over a check function of our own (no server is involved), with a
 * clock the test moves; the end-to-end behaviour against real servers is in test/serve.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Report } from '../src/engine/report.js';
import { createResultCache } from '../src/server/result-cache.js';

/** A check that the test finishes by hand, counting how often it was started. */
function manualCheck() {
  const pending: Array<{ resolve: (report: Report) => void; signal: AbortSignal }> = [];
  const check = (signal: AbortSignal) =>
    new Promise<Report>((resolve) => {
      pending.push({ resolve, signal });
      signal.addEventListener('abort', () => resolve(report('fail')), { once: true });
    });
  return { check, pending, finish: (status: Report['status']) => pending.shift()?.resolve(report(status)) };
}

function report(status: Report['status']): Report {
  return { status, checks: {} };
}

describe('createResultCache', () => {
  test('many requests at once start one check, and all get its report', async () => {
    const { check, pending, finish } = manualCheck();
    const cache = createResultCache(check, { maxAgeMs: 1000, now: () => 0 });
    const answers = Array.from({ length: 100 }, () => cache.get());
    assert.equal(pending.length, 1);
    finish('pass');
    const results = await Promise.all(answers);
    assert.ok(results.every((result) => result === results[0] && result.report.status === 'pass'));
  });

  test('a report is reused while younger than maxAgeMs, then the next request checks again', async () => {
    let clock = 0;
    const { check, pending, finish } = manualCheck();
    const seen: string[] = [];
    const cache = createResultCache(check, {
      maxAgeMs: 1000,
      now: () => clock,
      onReport: (result) => seen.push(result.report.status),
    });
    const first = cache.get();
    finish('pass');
    assert.equal((await first).checkedAt, 0);
    clock = 999;
    assert.equal((await cache.get()).checkedAt, 0);
    assert.equal(pending.length, 0);
    clock = 1000;
    const second = cache.get();
    assert.equal(pending.length, 1);
    finish('fail');
    assert.equal((await second).report.status, 'fail');
    assert.equal((await second).checkedAt, 1000);
    assert.deepEqual(seen, ['pass', 'fail']);
  });

  test('peek gives the last report without checking', async () => {
    const { check, pending, finish } = manualCheck();
    const cache = createResultCache(check, { maxAgeMs: 0, now: () => 0 });
    assert.equal(cache.peek(), undefined);
    const first = cache.get();
    finish('warn');
    await first;
    assert.equal(cache.peek()?.report.status, 'warn');
    assert.equal(pending.length, 0);
  });

  test('close aborts the check in flight; its requests still get an answer, and no new check starts', async () => {
    const { check, pending } = manualCheck();
    const cache = createResultCache(check, { maxAgeMs: 0, now: () => 0 });
    const waiting = cache.get();
    const { signal } = pending[0] ?? assert.fail('no check started');
    cache.close();
    assert.equal(signal.aborted, true);
    assert.equal((await waiting).report.status, 'fail');
    assert.equal((await cache.get()).report.status, 'fail');
    assert.equal(pending.length, 1, 'no check was started after close');
  });
});
