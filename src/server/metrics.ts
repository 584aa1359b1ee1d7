import type { CheckStatus } from '../checks/model.js';
import type { Report } from '../engine/report.js';
import type { TimedReport } from './result-cache.js';

/*
 * The Prometheus text exposition format (version 0.0.4) of what the checks found: what the
 * gateway needs of its servers, watched all the time rather than only at deploy. Statuses are
 * state sets (one series per status, 1 for the current one), so that an alert reads
 * `bansho_sub_check_status{name="eviction",status="warn"} == 1`.
 */

const STATUSES: readonly CheckStatus[] = ['pass', 'warn', 'fail'];

/** What /metrics serves: the last report, and counters over every report since start. */
export interface MetricsState {
  last?: TimedReport;
  /** Reports produced (each one check run of every check). */
  checksTotal: number;
  /** Failed checks, by check and failure code. */
  failures: Map<string, number>;
  /** Whether readiness counts a warning as a failure (`--strict`). */
  strict: boolean;
}

export function createMetricsState(strict: boolean): MetricsState {
  return { checksTotal: 0, failures: new Map(), strict };
}

/** Counts a new report (not one served again from the cache). */
export function recordReport(state: MetricsState, result: TimedReport): void {
  state.last = result;
  state.checksTotal++;
  for (const [check, outcome] of Object.entries(result.report.checks)) {
    if (outcome.status !== 'fail') continue;
    const key = labels({ check, code: outcome.error?.code ?? 'unexpected' });
    state.failures.set(key, (state.failures.get(key) ?? 0) + 1);
  }
}

/** Whether a report makes the process ready: pass, or warn unless strict. */
export function isReady(report: Report, strict: boolean): boolean {
  return report.status === 'pass' || (report.status === 'warn' && !strict);
}

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function renderMetrics(state: MetricsState): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labelText, value] of samples) lines.push(`${name}${labelText} ${formatValue(value)}`);
  };
  const last = state.last;
  const checks = Object.entries(last?.report.checks ?? {});
  metric(
    'bansho_ready',
    'gauge',
    'Whether the last check makes this process ready (1) or not (0), as /readyz answers.',
    last ? [['', isReady(last.report, state.strict) ? 1 : 0]] : [],
  );
  metric(
    'bansho_check_status',
    'gauge',
    "Each check's status in the last report: 1 for the status it has, 0 for the others.",
    checks.flatMap(([check, outcome]) =>
      STATUSES.map((status): [string, number] => [
        labels({ check, status }),
        outcome.status === status ? 1 : 0,
      ]),
    ),
  );
  metric(
    'bansho_check_latency_seconds',
    'gauge',
    "Each check's duration in the last report, from first byte to closed connection.",
    checks.map(([check, outcome]) => [labels({ check }), seconds(outcome.latencyMs)]),
  );
  metric(
    'bansho_sub_check_status',
    'gauge',
    "Each sub-check's status in the last report (what the gateway needs of the server): 1 for the status it has.",
    checks.flatMap(([check, outcome]) =>
      (outcome.details ?? []).flatMap((detail) =>
        STATUSES.map((status): [string, number] => [
          labels({ check, name: detail.name, ...nodeLabel(detail), status }),
          detail.status === status ? 1 : 0,
        ]),
      ),
    ),
  );
  metric(
    'bansho_last_check_timestamp_seconds',
    'gauge',
    'When the last report was made, in seconds since the epoch.',
    last ? [['', seconds(last.checkedAt)]] : [],
  );
  metric(
    'bansho_last_check_duration_seconds',
    'gauge',
    'How long the checks of the last report took together.',
    last ? [['', seconds(last.durationMs)]] : [],
  );
  metric('bansho_checks_total', 'counter', 'Reports made since start, each one run of every check.', [
    ['', state.checksTotal],
  ]);
  metric(
    'bansho_check_failures_total',
    'counter',
    'Failed checks since start, by check and failure code.',
    [...state.failures].map(([labelText, count]) => [labelText, count]),
  );
  return `${lines.join('\n')}\n`;
}

/** A sub-check of one node of a cluster carries the node (host:port). */
function nodeLabel(detail: object): { node?: string } {
  const node = (detail as { node?: unknown }).node;
  return typeof node === 'string' && node !== '' ? { node } : {};
}

/** `{a="1",b="2"}`, values escaped as the format requires (backslash, double quote, newline). */
export function labels(values: Record<string, string>): string {
  const pairs = Object.entries(values).map(
    ([name, value]) => `${name}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
  );
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}

/**
 * Milliseconds as seconds, to the microsecond: 55.6 ms is 0.0556, not 0.055600000000000004 (the
 * nearest double to 55.6, divided). Exact for the epoch too (1.8e15 µs is below 2^53).
 */
function seconds(ms: number): number {
  return Math.round(ms * 1000) / 1e6;
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return String(value);
}
