import { ErrorReply } from '@redis/client';
import { judgeClock } from '../checks/clock.js';
import type { CheckDetail } from '../checks/model.js';
import { failed, passed, warned } from '../checks/sub-check.js';
import type { CheckClient } from './client.js';

/**
 * A name for the write sub-check's key and value: unique among the runs of every process at
 * once (the pid, the time, a random part), and made without node:crypto, which a check would
 * otherwise load for this alone (a few milliseconds of every healthcheck's start).
 */
export function probeId(): string {
  return `${process.pid.toString(36)}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
}

/** A used share of maxmemory above this gets a warning. */
export const MEMORY_WARN_RATIO = 0.9;
/** The write probe's key lives this long if its DEL is lost, in milliseconds. */
const PROBE_TTL_MS = 5000;
/** Never run: only queued inside a discarded MULTI, to ask the ACL about SCRIPT LOAD and EVALSHA. */
const PROBE_SCRIPT = 'return 1';
/** SHA1 of PROBE_SCRIPT, as EVALSHA names it (a test checks it against node:crypto). */
export const PROBE_SCRIPT_SHA = 'e0e1f9fabfc9d4800c877a703b823ac0578ff8db';

/**
 * The commands the gateway sends through `redisOps` (src/storage/redis.ts), as it sends
 * them; keep the two in step. Each is only queued inside a MULTI that is discarded, so the
 * ACL is asked without anything running.
 */
const GATEWAY_COMMANDS: ReadonlyArray<{ name: string; rule: string; args: (key: string) => string[] }> = [
  { name: 'GET', rule: '+get', args: (key) => ['GET', key] },
  { name: 'SET', rule: '+set', args: (key) => ['SET', key, '1', 'PX', '1000'] },
  { name: 'INCR', rule: '+incr', args: (key) => ['INCR', key] },
  { name: 'PEXPIRE', rule: '+pexpire', args: (key) => ['PEXPIRE', key, '1000'] },
  { name: 'SCRIPT LOAD', rule: '+script|load', args: () => ['SCRIPT', 'LOAD', PROBE_SCRIPT] },
  {
    name: 'EVALSHA',
    rule: '+evalsha',
    args: (key) => ['EVALSHA', PROBE_SCRIPT_SHA, '1', key],
  },
];

export interface RedisSubCheckOptions {
  /** Write, read back and delete a key that expires by itself (`--no-write-probe` turns it off). */
  write: boolean;
}

/** What the sub-checks learned: the version, when INFO was readable, and one detail per sub-check. */
export interface RedisFindings {
  version?: string;
  /** INFO's redis_mode: "standalone", "cluster" or "sentinel". */
  mode?: string;
  /** A sentinel's INFO: the names of the masters it watches. */
  sentinelMasters?: string[];
  details: CheckDetail[];
}

/** A reply, or the error reply the server gave instead. */
type Reply = { value: unknown } | { error: ErrorReply };

/** Only the server's error replies are results; anything else (a dropped socket) ends the check. */
async function settle(reply: Promise<unknown>): Promise<Reply> {
  try {
    return { value: await reply };
  } catch (error) {
    if (error instanceof ErrorReply) return { error };
    throw error;
  }
}

/**
 * Runs the Redis sub-checks on a connected client: one pipelined batch (INFO, TIME, the
 * write probe, MULTI), then, when MULTI was accepted, the gateway's commands queued and
 * discarded. Error replies become sub-check results; a broken connection throws.
 */
export async function runRedisSubChecks(
  client: Pick<CheckClient, 'sendCommand'>,
  options: RedisSubCheckOptions,
): Promise<RedisFindings> {
  // Without Node's cache of random bytes: a startup snapshot that captured a filled cache would
  // give every run the same ids (bin/bansho runs one; see src/snapshot.ts).
  const key = `bansho:probe:${probeId()}`;
  const send = (...args: string[]) => settle(client.sendCommand(args));
  // node-redis writes every command issued in the same tick in one batch: one round trip.
  const sentAtMs = Date.now();
  let receivedAtMs = sentAtMs;
  const token = probeId();
  const infoReply = send('INFO');
  const timeReply = send('TIME').then((reply) => {
    receivedAtMs = Date.now();
    return reply;
  });
  const writeReplies = options.write
    ? [send('SET', key, token, 'PX', String(PROBE_TTL_MS)), send('GET', key), send('DEL', key)]
    : [];
  // Last: once MULTI is accepted, every command after it is queued rather than run.
  const multiReply = send('MULTI');
  const [info, time, multi, write] = await Promise.all([
    infoReply,
    timeReply,
    multiReply,
    Promise.all(writeReplies),
  ]);
  let queued: Reply[] | undefined;
  if ('value' in multi) {
    const replies = await Promise.all([
      ...GATEWAY_COMMANDS.map((command) => send(...command.args(key))),
      send('DISCARD'),
    ]);
    queued = replies.slice(0, GATEWAY_COMMANDS.length);
  }
  const fields = 'value' in info ? parseInfo(String(info.value)) : undefined;
  const details = [
    judgeRole(fields, info),
    ...(options.write ? [judgeWrite(write, token)] : []),
    judgeCommands(multi, queued),
    judgeEviction(fields, info),
    judgeMemory(fields, info),
    judgeRedisClock(time, sentAtMs, receivedAtMs),
  ];
  const version = fields?.get('redis_version');
  const mode = fields?.get('redis_mode');
  // A sentinel's INFO lists "master0:name=mymaster,status=ok,address=…" per master it watches.
  const sentinelMasters =
    mode === 'sentinel' && fields
      ? [...fields].flatMap(([field, value]) =>
          /^master\d+$/.test(field) ? (/(?:^|,)name=([^,]+)/.exec(value)?.slice(1) ?? []) : [],
        )
      : undefined;
  return {
    ...(version === undefined ? {} : { version }),
    ...(mode === undefined ? {} : { mode }),
    ...(sentinelMasters === undefined ? {} : { sentinelMasters }),
    details,
  };
}

/** INFO's `field:value` lines; section headers and blank lines are skipped. */
export function parseInfo(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  return fields;
}

/**
 * Whether an error reply says the server has no such command: renamed or disabled with
 * rename-command in redis.conf (or by a managed service), which no ACL rule can grant.
 */
function isUnknownCommand(error: ErrorReply): boolean {
  return /^ERR unknown (sub)?command\b/i.test(error.message);
}

/** The hint for commands the server does not know: rename-command, not the ACL, is to blame; `consequence` follows it. */
function renamedHint(commands: readonly string[], consequence: string): string {
  const list = commands.join(', ');
  return `${list} ${commands.length === 1 ? 'is' : 'are'} renamed or disabled on the server (rename-command in redis.conf, or a managed service's list of disabled commands)${consequence}`;
}

/** Without INFO (an ACL may deny it, rename-command hide it) role, eviction and memory cannot be seen: say so rather than guess. */
function infoUnavailable(name: string, info: Reply): CheckDetail {
  if ('error' in info && isUnknownCommand(info.error)) {
    return warned(
      name,
      `unknown: the server has no INFO command (${info.error.message})`,
      renamedHint(
        ['INFO'],
        ', so bansho cannot check this: remove that rename-command line, or check it by hand',
      ),
    );
  }
  const reason = 'error' in info ? info.error.message : 'no INFO reply';
  return warned(
    name,
    `unknown: INFO failed (${reason})`,
    "grant INFO to REDIS_URL's user (ACL SETUSER <user> +info) so that bansho can check this",
  );
}

export function judgeRole(fields: Map<string, string> | undefined, info: Reply): CheckDetail {
  if (!fields) return infoUnavailable('role', info);
  const role = fields.get('role') ?? 'unknown';
  if (role === 'master') return passed('role', 'master');
  if (role !== 'slave')
    return warned('role', role, 'bansho expects a master; check what REDIS_URL points at');
  const master = `${fields.get('master_host') ?? '?'}:${fields.get('master_port') ?? '?'}`;
  return failed(
    'role',
    'read_only',
    `replica of ${master} (link ${fields.get('master_link_status') ?? 'unknown'})`,
    `the gateway's writes would fail on a replica (or be lost, if it is writable): point REDIS_URL at the master it follows, ${master}`,
  );
}

/** The write probe's replies (SET, GET, DEL) judged: the server takes writes, and gives them back. */
export function judgeWrite(replies: readonly Reply[], token: string): CheckDetail {
  const [set, get] = replies;
  if (set && 'error' in set) return writeFailure(set.error, 'SET');
  if (get && 'error' in get) return writeFailure(get.error, 'GET');
  if (!get || get.value !== token) {
    return failed(
      'write',
      'server_error',
      `wrote a key and read back ${JSON.stringify(get?.value ?? null)} instead`,
      'something between bansho and Redis (a proxy?) does not keep what is written: check what REDIS_URL points at',
    );
  }
  // A DEL denied by the ACL is no failure: the gateway never deletes, and the key expires by itself.
  return passed('write', `set, read back and deleted a key expiring in ${PROBE_TTL_MS / 1000}s`);
}

function writeFailure(error: ErrorReply, command: string): CheckDetail {
  const reply = error.message;
  const observed = `${command} refused: ${reply}`;
  if (/^READONLY\b/.test(reply)) {
    return failed(
      'write',
      'read_only',
      observed,
      'the server is a read-only replica: point REDIS_URL at the master',
    );
  }
  if (/^OOM\b/.test(reply)) {
    return failed(
      'write',
      'read_only',
      observed,
      'memory is full under maxmemory-policy noeviction, so every write fails: raise maxmemory or find what fills it (redis-cli --bigkeys)',
    );
  }
  if (/^MISCONF\b/.test(reply)) {
    return failed('write', 'read_only', observed, MISCONF_HINT);
  }
  if (/^NOPERM\b/.test(reply)) {
    return failed(
      'write',
      'permission_denied',
      observed,
      "REDIS_URL's user may not write bansho:* keys: grant it (ACL SETUSER <user> ~bansho:* +@write), or run with --no-write-probe if writes from health checks are forbidden",
    );
  }
  if (isUnknownCommand(error)) {
    return failed(
      'write',
      'permission_denied',
      observed,
      renamedHint(
        [command],
        ': the gateway sends it by this name, and its calls fail: remove that rename-command line',
      ),
    );
  }
  return failed('write', 'server_error', observed, "read the message and the server's log");
}

export const MISCONF_HINT =
  "writes are stopped because the last background save failed: see the Redis log (disk full? 'dir' not writable?), fix it and run BGSAVE";

/** Whether the ACL lets the gateway's commands run: every one queued inside MULTI, none refused. */
export function judgeCommands(multi: Reply, queued: readonly Reply[] | undefined): CheckDetail {
  const names = GATEWAY_COMMANDS.map((command) => command.name);
  if ('error' in multi || !queued) {
    if ('error' in multi && isUnknownCommand(multi.error)) {
      return warned(
        'commands',
        `not checked: the server has no MULTI command (${multi.error.message})`,
        renamedHint(
          ['MULTI'],
          `, and bansho asks the ACL by queueing ${names.join(', ')} in a transaction it discards: restore MULTI, or check ACL GETUSER <user> by hand`,
        ),
      );
    }
    const reason = 'error' in multi ? multi.error.message : 'no reply';
    return warned(
      'commands',
      `not checked: MULTI failed (${reason})`,
      `bansho asks the ACL by queueing ${names.join(', ')} in a transaction it discards: grant +multi +discard, or check ACL GETUSER <user> by hand`,
    );
  }
  // Only a refusal by the ACL or a missing command matters here: OOM, READONLY and MISCONF are the write probe's.
  const refusals = GATEWAY_COMMANDS.flatMap((command, index) => {
    const reply = queued[index];
    return reply && 'error' in reply ? [{ ...command, error: reply.error }] : [];
  });
  const missing = refusals.filter((command) => isUnknownCommand(command.error));
  const denied = refusals.filter((command) => /^NOPERM\b/.test(command.error.message));
  if (missing.length === 0 && denied.length === 0) return passed('commands', `${names.join(', ')} permitted`);
  const observed: string[] = [];
  const hints: string[] = [];
  if (missing.length > 0) {
    const missingNames = missing.map((command) => command.name);
    observed.push(`${missingNames.join(', ')} unknown to the server (${missing[0]?.error.message})`);
    hints.push(
      renamedHint(
        missingNames,
        ': the gateway sends them by these names, and its calls fail: remove those rename-command lines',
      ),
    );
  }
  if (denied.length > 0) {
    observed.push(
      `${denied.map((command) => command.name).join(', ')} not permitted (${denied[0]?.error.message})`,
    );
    // A key outside the user's patterns: "no permissions to access one of the keys used as arguments".
    const keysRefused = denied.some((command) =>
      /permissions to access .*\bkeys?\b/i.test(command.error.message),
    );
    hints.push(
      keysRefused
        ? "bansho's probe keys (bansho:probe:*) are outside the user's key patterns: ACL SETUSER <user> ~bansho:*"
        : `the gateway runs ${names.join(', ')}: ACL SETUSER <user> ${denied.map((command) => command.rule).join(' ')}`,
    );
  }
  return failed('commands', 'permission_denied', observed.join('; '), hints.join('; '));
}

export function judgeEviction(fields: Map<string, string> | undefined, info: Reply): CheckDetail {
  if (!fields) return infoUnavailable('eviction', info);
  const maxmemory = Number(fields.get('maxmemory') ?? 0);
  const policy = fields.get('maxmemory_policy') ?? 'unknown';
  if (maxmemory === 0) {
    return passed(
      'eviction',
      `no maxmemory (policy ${policy})`,
      'Redis grows until the machine runs out of memory; if you set maxmemory, keep maxmemory-policy noeviction',
    );
  }
  const observed = `maxmemory ${fields.get('maxmemory_human') ?? maxmemory}, policy ${policy}`;
  if (policy === 'noeviction') return passed('eviction', observed);
  return warned(
    'eviction',
    observed,
    'under memory pressure Redis evicts keys before they expire, rate-limit counters included, and an evicted counter starts again from zero (the client gets through): set maxmemory-policy noeviction',
  );
}

export function judgeMemory(fields: Map<string, string> | undefined, info: Reply): CheckDetail {
  if (!fields) return infoUnavailable('memory', info);
  const maxmemory = Number(fields.get('maxmemory') ?? 0);
  // What Redis itself compares with maxmemory: replication and AOF buffers do not count.
  const used = Number(fields.get('used_memory') ?? 0) - Number(fields.get('mem_not_counted_for_evict') ?? 0);
  const usedHuman = fields.get('used_memory_human') ?? String(used);
  if (maxmemory === 0) return passed('memory', `${usedHuman} used, no maxmemory`);
  const ratio = used / maxmemory;
  const observed = `${usedHuman} used of ${fields.get('maxmemory_human') ?? maxmemory} (${Math.round(ratio * 100)}%)`;
  if (ratio <= MEMORY_WARN_RATIO) return passed('memory', observed);
  return warned(
    'memory',
    observed,
    'above 90% of maxmemory: once full, writes fail (noeviction) or keys are evicted (any other policy); raise maxmemory or find what fills it (redis-cli --bigkeys)',
  );
}

function judgeRedisClock(time: Reply, sentAtMs: number, receivedAtMs: number): CheckDetail {
  const value = 'value' in time ? time.value : undefined;
  const [seconds, micros] = Array.isArray(value) ? value.map(Number) : [];
  if (seconds === undefined || micros === undefined || !Number.isFinite(seconds + micros)) {
    if ('error' in time && isUnknownCommand(time.error)) {
      return warned(
        'clock',
        `unknown: the server has no TIME command (${time.error.message})`,
        renamedHint(
          ['TIME'],
          ", so bansho cannot compare the clocks: remove that rename-command line, or check the server's clock by hand",
        ),
      );
    }
    const reason = 'error' in time ? time.error.message : 'unexpected reply';
    return warned(
      'clock',
      `unknown: TIME failed (${reason})`,
      "grant TIME to REDIS_URL's user (ACL SETUSER <user> +time) so that bansho can check this",
    );
  }
  return judgeClock(
    { serverMs: seconds * 1000 + micros / 1000, sentAtMs, receivedAtMs },
    "the rate limiter's windows depend on the gateway and Redis agreeing on the time",
  );
}
