import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Report, reportJson } from '../engine/report.js';
import {
  createMetricsState,
  isReady,
  METRICS_CONTENT_TYPE,
  type MetricsState,
  recordReport,
  renderMetrics,
} from './metrics.js';
import { createResultCache, type ResultCache, type TimedReport } from './result-cache.js';

/*
 * The health endpoints, as one node:http request handler that `bansho serve` and the gateway's
 * own server both mount:
 *   GET /livez    200 while the process serves; never touches Redis or PostgreSQL (a database
 *                 that is down must not make Kubernetes restart the gateway's pods)
 *   GET /readyz   smoke's checks: 200 on pass (and on warn, unless strict), 503 on fail; the body
 *                 is the --json document with the result's age
 *   GET /metrics  the Prometheus text format of the last report, and counters
 * HEAD as GET without a body; other methods 405, other paths 404, a request with a body 413.
 */

export interface HealthResponderOptions {
  /** Runs every check once and resolves their report; never rejects for a failed check. */
  check: (signal: AbortSignal) => Promise<Report>;
  /** A report is answered again for this long before the next check, in milliseconds. */
  maxAgeMs: number;
  /** A warning makes /readyz answer 503. */
  strict: boolean;
  /** Called with every new report (not with one answered again), after the metrics counted it. */
  onReport?: (result: TimedReport) => void;
}

/** A node:http request handler for the health endpoints, with what stands behind it. */
export interface HealthHandler {
  (request: IncomingMessage, response: ServerResponse): void;
  /** The result cache: one check in flight at a time, reused for `maxAgeMs`. */
  readonly results: ResultCache;
  readonly metrics: MetricsState;
  /** Aborts a check in flight (its requests get its interrupted report) and starts no new one. */
  close(): void;
}

const ROUTES = new Set(['/livez', '/readyz', '/metrics']);

export function createHealthResponder(options: HealthResponderOptions): HealthHandler {
  const metrics = createMetricsState(options.strict);
  const results = createResultCache(options.check, {
    maxAgeMs: options.maxAgeMs,
    onReport: (result) => {
      recordReport(metrics, result);
      options.onReport?.(result);
    },
  });
  const handler = (request: IncomingMessage, response: ServerResponse) => {
    void respond(request, response, results, metrics, options.strict).catch((error: unknown) => {
      // Only a bug of bansho's lands here: the answer is a 500 without details, never a crash.
      sendText(
        response,
        request,
        500,
        `internal error: ${error instanceof Error ? error.name : 'unknown'}\n`,
      );
    });
  };
  return Object.assign(handler, { results, metrics, close: () => results.close() });
}

async function respond(
  request: IncomingMessage,
  response: ServerResponse,
  results: ResultCache,
  metrics: MetricsState,
  strict: boolean,
): Promise<void> {
  const path = (request.url ?? '/').split('?')[0] ?? '/';
  if (!ROUTES.has(path))
    return sendText(response, request, 404, 'not found: try /livez, /readyz or /metrics\n');
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('Allow', 'GET, HEAD');
    return sendText(response, request, 405, `method ${request.method} not allowed: use GET or HEAD\n`);
  }
  if (hasBody(request)) {
    // Read and dropped, up to a bound, so that the answer is not cut off by what is still unread.
    response.setHeader('Connection', 'close');
    await drain(request, MAX_DRAINED_BYTES);
    return sendText(response, request, 413, 'these endpoints take no request body\n');
  }
  if (path === '/livez') return sendText(response, request, 200, 'ok\n');
  if (path === '/metrics') {
    return send(response, request, 200, METRICS_CONTENT_TYPE, renderMetrics(metrics));
  }
  const result = await results.get();
  const status = isReady(result.report, strict) ? 200 : 503;
  send(response, request, status, 'application/json; charset=utf-8', `${readinessDocument(result)}\n`);
}

/** The --json document (the drivers' `detail` left out, as without --verbose), and the result's age. */
export function readinessDocument(result: TimedReport, now = Date.now()): string {
  return reportJson({
    ...result.report,
    checkedAt: new Date(result.checkedAt).toISOString(),
    ageMs: Math.max(0, now - result.checkedAt),
  });
}

/** A request body larger than this is not read to its end: its connection is cut instead. */
const MAX_DRAINED_BYTES = 64 * 1024;

function drain(request: IncomingMessage, maxBytes: number): Promise<void> {
  return new Promise((resolve) => {
    let bytes = 0;
    request.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > maxBytes) {
        request.socket.destroy();
        resolve();
      }
    });
    request.once('end', resolve);
    request.once('close', resolve);
  });
}

function hasBody(request: IncomingMessage): boolean {
  const length = request.headers['content-length'];
  return (length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined;
}

function sendText(response: ServerResponse, request: IncomingMessage, status: number, text: string): void {
  send(response, request, status, 'text/plain; charset=utf-8', text);
}

function send(
  response: ServerResponse,
  request: IncomingMessage,
  status: number,
  contentType: string,
  body: string,
): void {
  if (response.headersSent || response.destroyed) return;
  response.writeHead(status, {
    'Content-Type': contentType,
    'Content-Length': Buffer.byteLength(body),
    // A health answer is about now: no proxy or browser may keep it.
    'Cache-Control': 'no-store',
  });
  response.end(request.method === 'HEAD' ? undefined : body);
}
