import type { CheckDetail, CheckError, CheckResult, CheckStatus } from '../checks/model.js';
import { formatDuration } from '../config/duration.js';
import { type Report, reportJson } from '../engine/report.js';

/**
 * Writes reports and errors to stdout and stderr. Nothing here masks text: targets are rendered
 * from their parsed URLs with the password masked, and messages are built without secrets, so
 * the output is exactly what was built (valid JSON whatever the password).
 */
export interface Output {
  /** The report: human lines, or exactly one JSON document, or nothing with --quiet. */
  report(report: Report): void;
  /** A failure of the invocation itself (exit 2), in one line on stderr, --quiet or not. */
  usageError(error: CheckError): void;
  /** Progress of `--wait`: an updating line on a terminal, a line per attempt in logs. */
  progress(line: string): void;
  /** Ends an updating progress line so the report starts on a fresh one. */
  endProgress(): void;
}

export interface OutputOptions {
  mode: 'human' | 'json' | 'quiet';
  color: boolean;
  /** Redraw the `--wait` progress line in place (a terminal); otherwise a line per attempt, as in logs. */
  redrawProgress: boolean;
  verbose: boolean;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
}

const STATUS_WORDS: Record<CheckStatus, string> = { pass: 'PASS', warn: 'WARN', fail: 'FAIL' };

/** The colours a report uses; without colour, each leaves its text as it is. */
interface Paint {
  green(text: string): string;
  yellow(text: string): string;
  red(text: string): string;
  dim(text: string): string;
}

const PLAIN: Paint = { green: String, yellow: String, red: String, dim: String };

/**
 * The output of a run. chalk is loaded only when the report is coloured: most runs are a
 * healthcheck's, into a pipe, and chalk's colour detection loads node's tty and net modules.
 */
export async function createOutput(options: OutputOptions): Promise<Output> {
  const paint: Paint = options.color ? new (await import('chalk')).Chalk({ level: 1 }) : PLAIN;
  const write = (stream: NodeJS.WritableStream, text: string) => stream.write(text);
  let progressOpen = false;
  const updating = options.redrawProgress;

  return {
    report(report) {
      if (options.mode === 'quiet') return;
      if (options.mode === 'json') write(options.stdout, `${reportJson(report, options.verbose)}\n`);
      else write(options.stdout, renderHuman(report, paint, options.verbose));
    },
    usageError(error) {
      writeUsageError(error, options);
    },
    progress(line) {
      if (options.mode === 'quiet') return;
      if (updating) {
        // \r plus "erase line" redraws in place, so a long wait stays one line on a terminal.
        write(options.stderr, `\r\x1b[2K${line}`);
        progressOpen = true;
      } else {
        write(options.stderr, `${line}\n`);
      }
    },
    endProgress() {
      if (progressOpen) write(options.stderr, '\n');
      progressOpen = false;
    },
  };
}

function renderHuman(report: Report, paint: Paint, verbose: boolean): string {
  const colour = { pass: paint.green, warn: paint.yellow, fail: paint.red } as const;
  const names = Object.keys(report.checks);
  const width = Math.max(...names.map((name) => name.length));
  const lines: string[] = [];
  for (const [name, check] of Object.entries(report.checks)) {
    const word = colour[check.status](STATUS_WORDS[check.status]);
    lines.push(
      `${word}  ${name.padEnd(width)}  ${check.target}  ${formatLatency(check.latencyMs)}  ${describe(check)}`,
    );
    const indent = ' '.repeat(width + 6);
    // A failed sub-check shows its hint on its own line below.
    const shownBelow = check.details?.some((detail) => detail.hint === check.error?.hint) ?? false;
    if (check.error && !shownBelow) lines.push(`${indent}${paint.dim(`hint: ${check.error.hint}`)}`);
    if (verbose)
      for (const line of check.error?.detail ?? []) lines.push(`${indent}${paint.dim(`cause: ${line}`)}`);
    for (const item of check.drift ?? [])
      lines.push(`${indent}drift: ${item.object}: expected ${item.expected}, found ${item.found}`);
    lines.push(...renderDetails(check.details ?? [], indent, paint));
    for (const item of check.pending ?? []) lines.push(`${indent}${paint.dim(`pending: ${item}`)}`);
  }
  if (report.changes?.length === 0 && report.status !== 'fail')
    lines.push('schema is up to date: nothing to change');
  if (report.dryRun) {
    // The plan is a script psql runs as it is (`> plan.sql && psql -f plan.sql`): the report
    // above it becomes SQL comments, so that the file still says what it was planned against.
    const comments = lines.flatMap((line) => line.split('\n')).map((line) => `-- ${line}`);
    const plan = (report.changes ?? []).flatMap((change) => [
      `-- ${change.action} ${change.object}`,
      `${change.sql};`,
    ]);
    return `${[...comments, ...plan].join('\n')}\n`;
  }
  for (const change of report.changes ?? [])
    lines.push(`${paint.green('done')}  ${change.action} ${change.object}`);
  return `${lines.join('\n')}\n`;
}

/**
 * One line per sub-check under its check ("pass  role      master"; with a node, "pass
 * eviction  10.0.0.1:7000  no maxmemory"), and its hint below it.
 */
function renderDetails(details: readonly CheckDetail[], indent: string, paint: Paint): string[] {
  const colour = { pass: paint.green, warn: paint.yellow, fail: paint.red } as const;
  const width = Math.max(0, ...details.map((detail) => detail.name.length));
  const nodeWidth = Math.max(0, ...details.map((detail) => detail.node?.length ?? 0));
  const hintIndent = `${indent}${' '.repeat(width + 8)}`;
  // A cluster's masters often share a hint: it is shown once per sub-check, not once per node.
  const shownHints = new Set<string>();
  return details.flatMap((detail) => {
    const repeated = detail.node !== undefined && shownHints.has(`${detail.name}\n${detail.hint}`);
    shownHints.add(`${detail.name}\n${detail.hint}`);
    return [
      `${indent}${colour[detail.status](detail.status)}  ${detail.name.padEnd(width)}  ${detail.node === undefined ? '' : `${detail.node.padEnd(nodeWidth)}  `}${detail.observed}`,
      ...(detail.hint === undefined || repeated ? [] : [`${hintIndent}${paint.dim(`hint: ${detail.hint}`)}`]),
    ];
  });
}

function describe(check: CheckResult): string {
  if (check.error) return `${check.error.code}: ${check.error.message}`;
  return [check.version, check.host && `on ${check.host}`, check.message].filter(Boolean).join(', ');
}

function formatLatency(ms: number): string {
  return ms < 10 ? `${ms.toFixed(1)}ms` : formatDuration(ms);
}

/** A failure of the invocation itself (exit 2): one line on stderr, and the document with --json. */
export function writeUsageError(
  error: CheckError,
  options: Pick<OutputOptions, 'mode' | 'stdout' | 'stderr'>,
): void {
  if (options.mode === 'json') options.stdout.write(`${JSON.stringify({ status: 'fail', error })}\n`);
  // Even with --quiet, as commander's own usage errors: a healthcheck that can never pass says why.
  options.stderr.write(`bansho: ${error.message}\n`);
}
