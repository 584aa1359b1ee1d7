/**
 * `bansho serve` under load, against throwaway local servers started as the tests start theirs:
 *   1. probe storm: --requests GET /readyz, --concurrency at a time on a keep-alive agent, against
 *      a cached report; requests/s, p50 and p99, and the connections each server accepted during
 *      the storm, counted by a TCP proxy in front of it (Redis's own total_connections_received
 *      beside it): at most one per report interval the storm spanned, ceil(duration / max-age) + 1.
 *   2. memory: the serve process's VmRSS over --memory-requests requests (80% /readyz, 10% /livez,
 *      10% /metrics), after a warm-up and at every 10,000, and its growth from the 10,000 mark
 *      to the end. Flat when the second half grew by less than MEMORY_GROWTH_LIMIT of the RSS at
 *      its start: the first tens of thousands of requests grow V8's heap to its working size
 *      (node --trace-gc showed RSS going from 76 to 100 MiB by 50,000 requests while the heap
 *      left after each mark-compact stayed at 8-10 MB, up to 300,000), and a leak goes on growing.
 *   3. soak: --soak-rate GET /readyz a second for --soak-seconds, while Redis and then PostgreSQL
 *      are stopped (their process killed) and started again on the same port. Every answer is
 *      compared with the truth when it was asked (both up: 200, one down: 503), except within
 *      max-age + timeout of a transition; then SIGTERM must end serve with 143, and no connection
 *      of its may be left on either server.
 * The exit code is 1 if any verdict is not met.
 *
 *   npm run bench:serve [-- --requests 1000] [--concurrency 100] [--memory-requests 100000]
 *                       [--soak-seconds 80] [--soak-rate 20] [--max-age 2s] [--timeout 5s]
 * Unset NODE_EXTRA_CA_CERTS first: it makes every node start read a file.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, loadavg, totalmem } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { parseDuration } from '../src/config/duration.js';
import { runCli } from '../test/support/cli.js';
import { type Served, startServe as startServed } from '../test/support/serve.js';
import {
  type ForwardingProxy,
  postgresAt,
  rawExchange,
  startPostgres,
  startProxy,
  startRedis,
  waitForPort,
} from '../test/support/servers.js';
import { printTable } from './table.js';

const { values: flags } = parseArgs({
  options: {
    requests: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '100' },
    'memory-requests': { type: 'string', default: '100000' },
    'soak-seconds': { type: 'string', default: '80' },
    'soak-rate': { type: 'string', default: '20' },
    'max-age': { type: 'string', default: '2s' },
    timeout: { type: 'string', default: '5s' },
  },
});
const stormRequests = positiveInteger(flags.requests, '--requests');
const concurrency = positiveInteger(flags.concurrency, '--concurrency');
const memoryRequests = positiveInteger(flags['memory-requests'], '--memory-requests');
const soakMs = positiveInteger(flags['soak-seconds'], '--soak-seconds') * 1000;
const soakRate = positiveInteger(flags['soak-rate'], '--soak-rate');
const maxAge = flags['max-age'] ?? '2s';
const timeout = flags.timeout ?? '5s';
const maxAgeMs = parseDuration(maxAge, '--max-age');
const timeoutMs = parseDuration(timeout, '--timeout');
/** After a transition, answers may still be the old truth for one report's age and one check. */
const graceMs = maxAgeMs + timeoutMs;
/** The soak is five equal parts: both up, Redis down, both up, PostgreSQL down, both up. */
const soakPartMs = soakMs / 5;
if (soakPartMs <= graceMs + 2000) {
  throw new Error(
    `--soak-seconds must exceed 5 × (max-age + timeout + 2s) = ${(5 * (graceMs + 2000)) / 1000}`,
  );
}

const MIB = 2 ** 20;
/** The memory verdict: over the second half, RSS grew by less than this share of its value. */
const MEMORY_GROWTH_LIMIT = 0.05;
const MEMORY_SAMPLE_EVERY = 10_000;
const MEMORY_WARM_UP = 2_000;
/** No answer takes longer than this, or it counts as an error. */
const REQUEST_TIMEOUT_MS = 15_000;
const SERVE_START_TIMEOUT_MS = 30_000;
const SERVE_STOP_TIMEOUT_MS = 10_000;
/** SIGTERM's exit code: 128 + 15. */
const EXIT_TERMINATED = 143;
/** 'postgres' rather than a database of its own: a new cluster on the same port has it too. */
const DATABASE = 'postgres';

interface Verdict {
  name: string;
  met: boolean;
}
const verdicts: Verdict[] = [];
const judge = (name: string, met: boolean): string => {
  verdicts.push({ name, met });
  return met ? 'met' : 'NOT MET';
};

interface Stoppable {
  stop(): Promise<void>;
}
const started: Served[] = [];
const proxies: ForwardingProxy[] = [];
let redis: Stoppable | undefined;
let pg: Stoppable | undefined;
try {
  const firstRedis = await startRedis();
  redis = firstRedis;
  const firstPg = await startPostgres();
  pg = firstPg;
  const redisPort = firstRedis.port;
  const pgPort = firstPg.port;
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  const postgresDsn = `postgres://postgres@127.0.0.1:${pgPort}/${DATABASE}`;
  // The schema in place, so that /readyz passes rather than warns.
  await ensureSchema(postgresDsn);

  const cpu = cpus();
  console.log(
    `machine: ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${cpu.length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB RAM, node ${process.version}, load average ${loadavg()
      .map((load) => load.toFixed(2))
      .join(' ')}`,
  );
  console.log(`bansho serve --max-age ${maxAge} --timeout ${timeout}; Redis and PostgreSQL on loopback\n`);

  const [redisProxy, pgProxy] = await Promise.all([startProxy(redisPort), startProxy(pgPort)]);
  proxies.push(redisProxy, pgProxy);
  const proxied = await startServe({
    REDIS_URL: `redis://127.0.0.1:${redisProxy.port}`,
    POSTGRES_DSN: `postgres://postgres@127.0.0.1:${pgProxy.port}/${DATABASE}`,
  });
  await probeStorm(proxied, redisPort, redisProxy, pgProxy);
  await memory(proxied, redisProxy, pgProxy);
  const stopped = await stopServe(proxied);
  const leftThrough = await settle(() => openThrough(redisProxy) + openThrough(pgProxy), 0);
  console.log(
    `serve (storm and memory) on SIGTERM: exit ${stopped.code} after ${stopped.ms} ms (${judge('storm/memory serve exits 143', stopped.code === EXIT_TERMINATED)}); connections left open through the proxies: ${leftThrough} (${judge('storm/memory serve leaves no connection', leftThrough === 0)})\n`,
  );

  await soak(redisUrl, redisPort, postgresDsn, pgPort);

  const missed = verdicts.filter((verdict) => !verdict.met);
  console.log(
    missed.length === 0
      ? `\nevery verdict met (${verdicts.length})`
      : `\n${missed.length} verdict(s) not met: ${missed.map((verdict) => verdict.name).join('; ')}`,
  );
  process.exitCode = missed.length === 0 ? 0 : 1;
} finally {
  for (const served of started)
    if (served.child.exitCode === null && served.child.signalCode === null) served.child.kill('SIGKILL');
  await Promise.all(proxies.map((proxy) => proxy.close()));
  await Promise.all([redis?.stop(), pg?.stop()]);
}

// ---------------------------------------------------------------------------
// 1. Probe storm

async function probeStorm(
  served: Served,
  redisPort: number,
  redisProxy: ForwardingProxy,
  pgProxy: ForwardingProxy,
): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  try {
    // The first report made and answered: the storm starts on a cached one.
    const warm = await untilStatus(served.port, 200, SERVE_START_TIMEOUT_MS);
    const warmAge = reportOf(warm.body)?.ageMs ?? Number.NaN;
    const redisBefore = await redisConnectionsReceived(redisPort);
    const redisProxyBefore = redisProxy.clients().length;
    const pgProxyBefore = pgProxy.clients().length;

    const answers: Answer[] = [];
    let errors = 0;
    const start = performance.now();
    await runPool(stormRequests, concurrency, async () => {
      try {
        answers.push(await get(served.port, '/readyz', agent));
      } catch {
        errors++;
      }
    });
    const durationMs = performance.now() - start;

    const redisOpened = redisProxy.clients().length - redisProxyBefore;
    const pgOpened = pgProxy.clients().length - pgProxyBefore;
    // The second INFO's own connection is counted in its answer.
    const redisReceived = (await redisConnectionsReceived(redisPort)) - redisBefore - 1;
    const intervals = Math.ceil(durationMs / maxAgeMs) + 1;
    const reports = new Set(answers.map((answer) => reportOf(answer.body)?.checkedAt)).size;
    const latencies = answers.map((answer) => answer.answeredAt - answer.sentAt);
    const all200 = errors === 0 && answers.every((answer) => answer.status === 200);

    console.log(
      `1. probe storm: ${stormRequests} GET /readyz, ${concurrency} concurrent, keep-alive agent (${concurrency} sockets)`,
    );
    console.log(
      `   started on a report ${Math.round(warmAge)} ms old; took ${Math.round(durationMs)} ms: ${Math.round((stormRequests / durationMs) * 1000)} requests/s, p50 ${percentile(latencies, 50).toFixed(1)} ms, p99 ${percentile(latencies, 99).toFixed(1)} ms`,
    );
    console.log(
      `   answers: ${countStatuses(answers)}, ${errors} errors (${judge('storm: every answer 200', all200)})`,
    );
    console.log(
      `   spanned ${intervals} result intervals (ceil(${Math.round(durationMs)} ms / ${maxAgeMs} ms) + 1); the answers carried ${reports} distinct report(s)`,
    );
    console.log(
      `   connections opened: Redis ${redisOpened} (redis-server's total_connections_received: ${redisReceived}), PostgreSQL ${pgOpened}; at most ${intervals} each: ${judge('storm: at most one connection per server per interval', redisOpened <= intervals && pgOpened <= intervals && redisReceived <= intervals)}\n`,
    );
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------
// 2. Memory

async function memory(served: Served, redisProxy: ForwardingProxy, pgProxy: ForwardingProxy): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const pathOf = (index: number) => (index % 10 === 0 ? '/livez' : index % 10 === 1 ? '/metrics' : '/readyz');
  try {
    let errors = 0;
    const send = async (index: number) => {
      try {
        const answer = await get(served.port, pathOf(index), agent);
        if (answer.status !== 200) errors++;
      } catch {
        errors++;
      }
    };
    await runPool(MEMORY_WARM_UP, concurrency, send);
    const warmRss = rssBytes(served.child.pid ?? 0);
    const connectionsBefore = redisProxy.clients().length + pgProxy.clients().length;
    const samples: { requests: number; rss: number }[] = [];
    let done = 0;
    const start = performance.now();
    await runPool(memoryRequests, concurrency, async (index) => {
      await send(index);
      done++;
      if (done % MEMORY_SAMPLE_EVERY === 0 || done === memoryRequests) {
        samples.push({ requests: done, rss: rssBytes(served.child.pid ?? 0) });
      }
    });
    const durationMs = performance.now() - start;
    const connections = redisProxy.clients().length + pgProxy.clients().length - connectionsBefore;

    console.log(
      `2. memory: ${memoryRequests} requests (80% /readyz, 10% /livez, 10% /metrics), ${concurrency} concurrent, keep-alive agent, after ${MEMORY_WARM_UP} warm-up requests; ${Math.round(durationMs / 1000)} s, ${Math.round((memoryRequests / durationMs) * 1000)} requests/s, ${errors} errors or non-200 answers, ${connections} server connections`,
    );
    printTable(
      ['requests', 'VmRSS'],
      [['warm-up', mib(warmRss)], ...samples.map((sample) => [String(sample.requests), mib(sample.rss)])],
    );
    const mark = samples.find((sample) => sample.requests >= MEMORY_SAMPLE_EVERY) ?? samples[0];
    const last = samples.at(-1);
    if (!mark || !last) throw new Error('no RSS sample was taken');
    const half = samples.find((sample) => sample.requests >= last.requests / 2) ?? mark;
    const growth = (from: { requests: number; rss: number }) =>
      `${((last.rss - from.rss) / MIB).toFixed(1)} MiB (${(((last.rss - from.rss) / from.rss) * 100).toFixed(1)}%, ${Math.round((last.rss - from.rss) / Math.max(1, last.requests - from.requests))} bytes a request)`;
    const flat = last.rss - half.rss < MEMORY_GROWTH_LIMIT * half.rss;
    console.log(`   growth from ${mark.requests} to ${last.requests} requests: ${growth(mark)}`);
    console.log(
      `   growth from ${half.requests} to ${last.requests} requests: ${growth(half)}; flat means below ${MEMORY_GROWTH_LIMIT * 100}% over this second half (the first grows V8's heap to its working size): ${flat ? 'flat' : 'NOT flat'} (${judge('memory: RSS flat', flat)}); every answer 200: ${judge('memory: every answer 200', errors === 0)}\n`,
    );
  } finally {
    agent.destroy();
  }
}

// ---------------------------------------------------------------------------
// 3. Soak

interface Transition {
  name: string;
  server: 'redis' | 'postgres';
  /** The server's state after it. */
  up: boolean;
  /** When the stop or start began, and when it finished (the process gone, or ready), in ms. */
  start: number;
  end: number;
}

async function soak(redisUrl: string, redisPort: number, postgresDsn: string, pgPort: number): Promise<void> {
  const served = await startServe({ REDIS_URL: redisUrl, POSTGRES_DSN: postgresDsn });
  const answers: Answer[] = [];
  const transitions: Transition[] = [];
  let errors = 0;
  await untilStatus(served.port, 200, SERVE_START_TIMEOUT_MS);

  /** When an answer first carried a report that no answer had carried before. */
  let newestReport = { checkedAt: '', seenAt: 0 };
  const begin = performance.now();
  const load = (async () => {
    const inFlight: Promise<void>[] = [];
    for (let index = 0; ; index++) {
      const at = begin + (index * 1000) / soakRate;
      if (at >= begin + soakMs) break;
      await sleep(Math.max(0, at - performance.now()));
      // A connection of its own for every probe, as a kubelet makes.
      inFlight.push(
        get(served.port, '/readyz', false).then(
          (answer) => {
            answers.push(answer);
            const checkedAt = reportOf(answer.body)?.checkedAt ?? '';
            if (checkedAt > newestReport.checkedAt) newestReport = { checkedAt, seenAt: answer.answeredAt };
          },
          () => {
            errors++;
          },
        ),
      );
    }
    await Promise.all(inFlight);
  })();
  const transition = async (
    name: string,
    server: Transition['server'],
    up: boolean,
    at: number,
    act: () => Promise<void>,
  ) => {
    await sleep(Math.max(0, begin + at - performance.now()));
    // Just after a new report: the old truth is then answered for a whole max-age, the worst case.
    const due = performance.now();
    while (newestReport.seenAt < due && performance.now() < due + graceMs + 1000) await sleep(5);
    const start = performance.now();
    await act();
    transitions.push({ name, server, up, start, end: performance.now() });
  };
  const scenario = (async () => {
    await transition('Redis stopped', 'redis', false, soakPartMs, async () => {
      await redis?.stop();
    });
    await transition('Redis started', 'redis', true, 2 * soakPartMs, async () => {
      redis = await startRedisOn(redisPort);
    });
    await transition('PostgreSQL stopped', 'postgres', false, 3 * soakPartMs, async () => {
      await pg?.stop();
    });
    await transition('PostgreSQL started', 'postgres', true, 4 * soakPartMs, async () => {
      pg = await startPostgresOn(pgPort);
    });
    // A new cluster has no schema (its /readyz only warns); a restarted server would still have it.
    await ensureSchema(postgresDsn);
  })();
  // A failed restart is thrown once the load (bounded by --soak-seconds) has ended.
  const [, scenarioOutcome] = await Promise.allSettled([load, scenario]);
  if (scenarioOutcome.status === 'rejected') throw scenarioOutcome.reason;

  // When the truth changed: a server stopping is down from the kill; a server starting is up once ready.
  const instant = (entry: Transition) => (entry.up ? entry.end : entry.start);
  const upAt = (server: Transition['server'], time: number) =>
    transitions.filter((entry) => entry.server === server && instant(entry) <= time).at(-1)?.up ?? true;
  const expectedAt = (time: number) => (upAt('redis', time) && upAt('postgres', time) ? 200 : 503);
  const excused = (answer: Answer) =>
    transitions.some((entry) => answer.sentAt <= entry.end + graceMs && answer.answeredAt >= entry.start);
  let excusedCount = 0;
  let wrong = 0;
  const wrongExamples: string[] = [];
  for (const answer of answers) {
    if (excused(answer)) {
      excusedCount++;
      continue;
    }
    const expected = expectedAt(answer.sentAt);
    if (answer.status === expected) continue;
    wrong++;
    if (wrongExamples.length < 5) {
      wrongExamples.push(
        `${answer.status} at ${((answer.sentAt - begin) / 1000).toFixed(1)} s (expected ${expected})`,
      );
    }
  }
  const firstRight = transitions.map((entry, index) => {
    const from = instant(entry);
    const until = transitions[index + 1]?.start ?? Number.POSITIVE_INFINITY;
    const expected = expectedAt(from);
    const first = answers
      .filter((answer) => answer.sentAt >= from && answer.sentAt < until && answer.status === expected)
      .sort((a, b) => a.answeredAt - b.answeredAt)[0];
    return { entry, expected, afterMs: first ? first.answeredAt - from : undefined };
  });

  const stopped = await stopServe(served);
  const redisLeft = await settle(() => redisClients(redisPort), 0);
  const pgLeft = await settle(() => postgresBackends(postgresDsn), 0);

  console.log(
    `3. soak: ${soakRate} GET /readyz a second for ${soakMs / 1000} s, a new connection each (agent: false); Redis, then PostgreSQL, killed (Redis SIGKILL, PostgreSQL SIGQUIT) and a new server started on the same port, each just after serve made a new report (the worst moment)`,
  );
  printTable(
    ['transition', 'at', 'took', 'expected after', 'first right answer after'],
    firstRight.map(({ entry, expected, afterMs }) => [
      entry.name,
      `${((entry.start - begin) / 1000).toFixed(1)} s`,
      `${Math.round(entry.end - entry.start)} ms`,
      String(expected),
      afterMs === undefined ? 'NONE' : `${Math.round(afterMs)} ms`,
    ]),
  );
  const slowest = Math.max(...firstRight.map(({ afterMs }) => afterMs ?? Number.POSITIVE_INFINITY));
  const allSeen = firstRight.every(({ afterMs }) => afterMs !== undefined);
  console.log(
    `   answers: ${answers.length} (${countStatuses(answers)}), ${errors} errors (${judge('soak: every probe answered', errors === 0)}); ${excusedCount} within ${graceMs} ms (max-age + timeout) of a transition`,
  );
  console.log(
    `   wrong answers outside the grace window: ${wrong}${wrongExamples.length > 0 ? ` (${wrongExamples.join(', ')})` : ''} (${judge('soak: no wrong answer outside the grace window', wrong === 0)})`,
  );
  console.log(
    `   longest from a transition to the first right answer: ${Number.isFinite(slowest) ? `${Math.round(slowest)} ms` : 'never'}; within ${graceMs} ms: ${judge('soak: every transition answered right within the grace window', allSeen && slowest <= graceMs)}`,
  );
  console.log(
    `   serve on SIGTERM: exit ${stopped.code} after ${stopped.ms} ms (${judge('soak: serve exits 143 on SIGTERM', stopped.code === EXIT_TERMINATED)}); left on the servers: ${redisLeft} Redis connections, ${pgLeft} PostgreSQL sessions (${judge('soak: no connection left', redisLeft === 0 && pgLeft === 0)})`,
  );
  console.log('   serve logged:');
  for (const line of served.stderr().trimEnd().split('\n')) console.log(`     ${line}`);
}

// ---------------------------------------------------------------------------
// Servers

/**
 * A redis-server on exactly `port`: startRedis picks a free port, but its `args` come last and
 * win, and with `unixSocket` it does not wait for that other port, so this waits for ours.
 */
async function startRedisOn(port: number): Promise<Stoppable> {
  const server = await startRedis({ unixSocket: true, args: ['--port', String(port)] });
  try {
    await waitForPort(port);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

/** A new PostgreSQL cluster on exactly `port`: settings come last and override the free port. */
function startPostgresOn(port: number): Promise<Stoppable> {
  return startPostgres({ settings: { port: String(port) } });
}

async function ensureSchema(postgresDsn: string): Promise<void> {
  const result = await runCli(['ensure-schema', '--quiet'], { env: { POSTGRES_DSN: postgresDsn } });
  if (result.code !== 0) throw new Error(`ensure-schema exited ${result.code}: ${result.stderr}`);
}

async function redisInfo(port: number, section: string, field: string): Promise<number> {
  const pattern = new RegExp(`${field}:(\\d+)`);
  const reply = await rawExchange(port, `INFO ${section}\r\n`, pattern);
  return Number(pattern.exec(reply)?.[1]);
}

function redisConnectionsReceived(port: number): Promise<number> {
  return redisInfo(port, 'stats', 'total_connections_received');
}

/** Clients connected to Redis, not counting the one asking. */
async function redisClients(port: number): Promise<number> {
  return (await redisInfo(port, 'clients', 'connected_clients')) - 1;
}

/** Client sessions on PostgreSQL, not counting the one asking. */
async function postgresBackends(dsn: string): Promise<number> {
  const count = await postgresAt(dsn).query(
    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
  );
  return Number(count.trim());
}

function openThrough(proxy: ForwardingProxy): number {
  return proxy.clients().filter((socket) => !socket.destroyed).length;
}

/** The value once it is `wanted`, or its last value after a few seconds (connections take a moment to close). */
async function settle(read: () => number | Promise<number>, wanted: number): Promise<number> {
  const deadline = performance.now() + 3000;
  for (;;) {
    const value = await read();
    if (value === wanted || performance.now() > deadline) return value;
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------
// bansho serve

async function startServe(env: Record<string, string>): Promise<Served> {
  const served = await startServed(['--max-age', maxAge, '--timeout', timeout], env, SERVE_START_TIMEOUT_MS);
  started.push(served);
  return served;
}

/** SIGTERM, then the exit code and how long it took; SIGKILL if it is not gone within bounds. */
async function stopServe(served: Served): Promise<{ code: number | string; ms: number }> {
  const start = performance.now();
  served.child.kill('SIGTERM');
  const timer = setTimeout(() => served.child.kill('SIGKILL'), SERVE_STOP_TIMEOUT_MS);
  // The exit code, or the signal's name when one ended it.
  const code = (await served.exited) ?? served.child.signalCode ?? 'unknown';
  clearTimeout(timer);
  return { code, ms: Math.round(performance.now() - start) };
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib) * 1024;
}

// ---------------------------------------------------------------------------
// HTTP

interface Answer {
  status: number;
  body: string;
  /** performance.now() when the request was sent and its answer was complete. */
  sentAt: number;
  answeredAt: number;
}

function get(port: number, path: string, agent: Agent | false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const sentAt = performance.now();
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, sentAt, answeredAt: performance.now() }),
      );
      res.on('error', reject);
    });
    req.setTimeout(REQUEST_TIMEOUT_MS, () =>
      req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)),
    );
    req.on('error', reject);
    req.end();
  });
}

/** GET /readyz until it answers `status`, within `withinMs`. */
async function untilStatus(port: number, status: number, withinMs: number): Promise<Answer> {
  const deadline = performance.now() + withinMs;
  let last = 'no answer';
  while (performance.now() < deadline) {
    try {
      const answer = await get(port, '/readyz', false);
      if (answer.status === status) return answer;
      last = `${answer.status} ${answer.body}`;
    } catch (error) {
      last = String(error);
    }
    await sleep(100);
  }
  throw new Error(`/readyz did not answer ${status} within ${withinMs} ms; last: ${last}`);
}

function reportOf(body: string): { checkedAt?: string; ageMs?: number } | undefined {
  try {
    return JSON.parse(body) as { checkedAt?: string; ageMs?: number };
  } catch {
    return undefined;
  }
}

/** Sends `total` requests, `concurrency` at a time; `send` must not reject. */
async function runPool(
  total: number,
  poolSize: number,
  send: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < total) await send(next++);
  };
  await Promise.all(Array.from({ length: Math.min(poolSize, total) }, worker));
}

// ---------------------------------------------------------------------------
// Numbers and output

function positiveInteger(text: string | undefined, name: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

/** Nearest-rank percentile. */
function percentile(values: number[], rank: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((rank / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function countStatuses(answers: Answer[]): string {
  const counts = new Map<number, number>();
  for (const answer of answers) counts.set(answer.status, (counts.get(answer.status) ?? 0) + 1);
  return [...counts]
    .sort(([a], [b]) => a - b)
    .map(([status, count]) => `${count} × ${status}`)
    .join(', ');
}

function mib(bytes: number): string {
  return `${(bytes / MIB).toFixed(1)} MiB`;
}
