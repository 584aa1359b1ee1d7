/**
 * /metrics rendering: the Prometheus text exposition format of a report, as pure functions; the
 * endpoint itself, against real servers, is in test/serve.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Report } from '../src/engine/report.js';
import { createMetricsState, labels, recordReport, renderMetrics } from '../src/server/metrics.js';

const REPORT: Report = {
  status: 'fail',
  checks: {
    redis: {
      status: 'warn',
      target: 'redis://127.0.0.1:6379',
      latencyMs: 12.5,
      details: [
        { name: 'eviction', status: 'warn', observed: 'maxmemory 1mb, policy allkeys-lru', hint: '…' },
        { name: 'memory', status: 'pass', observed: 'fine' },
      ],
    },
    postgres: {
      status: 'fail',
      target: 'postgres://postgres@127.0.0.1:5432/postgres',
      latencyMs: 1500,
      error: { code: 'timeout', message: 'no answer', hint: '…' },
    },
  },
};

/** Every sample line as `name{labels} value`, comments left out. */
function samples(text: string): string[] {
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
}

describe('renderMetrics', () => {
  test('before any report: the counters at zero, and no status series', () => {
    const text = renderMetrics(createMetricsState(false));
    assert.deepEqual(samples(text), ['bansho_checks_total 0']);
    assert.match(text, /^# TYPE bansho_check_failures_total counter$/m);
  });

  test('each check and sub-check as a state set, latency in seconds, failures counted by code', () => {
    const state = createMetricsState(false);
    recordReport(state, { report: REPORT, checkedAt: 1_700_000_000_000, durationMs: 1501 });
    recordReport(state, { report: REPORT, checkedAt: 1_700_000_002_000, durationMs: 1499 });
    const lines = samples(renderMetrics(state));
    for (const expected of [
      'bansho_ready 0',
      'bansho_check_status{check="redis",status="pass"} 0',
      'bansho_check_status{check="redis",status="warn"} 1',
      'bansho_check_status{check="postgres",status="fail"} 1',
      'bansho_check_latency_seconds{check="redis"} 0.0125',
      'bansho_check_latency_seconds{check="postgres"} 1.5',
      'bansho_sub_check_status{check="redis",name="eviction",status="warn"} 1',
      'bansho_sub_check_status{check="redis",name="eviction",status="pass"} 0',
      'bansho_sub_check_status{check="redis",name="memory",status="pass"} 1',
      'bansho_last_check_timestamp_seconds 1700000002',
      'bansho_last_check_duration_seconds 1.499',
      'bansho_checks_total 2',
      'bansho_check_failures_total{check="postgres",code="timeout"} 2',
    ]) {
      assert.ok(lines.includes(expected), `missing ${expected}\n${lines.join('\n')}`);
    }
  });

  test('milliseconds become seconds without binary-fraction noise', () => {
    const state = createMetricsState(false);
    const report: Report = {
      status: 'pass',
      checks: { schema: { status: 'pass', target: 'postgres://127.0.0.1/x', latencyMs: 55.6 } },
    };
    recordReport(state, { report, checkedAt: 1_796_188_899_269, durationMs: 73.3 });
    const lines = samples(renderMetrics(state));
    // 55.6 / 1000 would print 0.055600000000000004.
    for (const expected of [
      'bansho_check_latency_seconds{check="schema"} 0.0556',
      'bansho_last_check_timestamp_seconds 1796188899.269',
      'bansho_last_check_duration_seconds 0.0733',
    ])
      assert.ok(lines.includes(expected), `missing ${expected}\n${lines.join('\n')}`);
  });

  test('a sub-check of one cluster node carries it as a label', () => {
    const state = createMetricsState(true);
    const report: Report = {
      status: 'warn',
      checks: {
        redis: {
          status: 'warn',
          target: 'redis://127.0.0.1:7000',
          latencyMs: 3,
          details: [{ name: 'eviction', status: 'warn', observed: '…', node: '127.0.0.1:7001' } as never],
        },
      },
    };
    recordReport(state, { report, checkedAt: 0, durationMs: 3 });
    const lines = samples(renderMetrics(state));
    assert.ok(
      lines.includes(
        'bansho_sub_check_status{check="redis",name="eviction",node="127.0.0.1:7001",status="warn"} 1',
      ),
    );
    // strict: a warning is not ready.
    assert.ok(lines.includes('bansho_ready 0'));
  });

  test('every metric has HELP and TYPE lines before its samples', () => {
    const state = createMetricsState(false);
    recordReport(state, { report: REPORT, checkedAt: 0, durationMs: 1 });
    const text = renderMetrics(state);
    for (const name of new Set(samples(text).map((line) => line.replace(/[{ ].*$/, '')))) {
      const help = text.indexOf(`# HELP ${name} `);
      const type = text.indexOf(`# TYPE ${name} `);
      const first = text.indexOf(`\n${name}`);
      assert.ok(help >= 0 && type > help && first > type, name);
    }
  });
});

describe('labels', () => {
  test('escapes backslashes, double quotes and newlines in values', () => {
    assert.equal(labels({ a: 'x\\y"z\nw' }), '{a="x\\\\y\\"z\\nw"}');
    assert.equal(labels({}), '');
  });
});
