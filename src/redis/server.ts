import { startDeadline } from '../checks/deadline.js';
import type { CheckDetail } from '../checks/model.js';
import { monotonicMs } from '../checks/time.js';
import type { RedisTarget } from '../config/redis-url.js';
import { BanshoError } from '../errors.js';
import { scrubPassword } from '../redact.js';
import { classifyRedisError } from './classify.js';

import { createCheckClient } from './client.js';
import { runRedisSubChecks } from './sub-checks.js';

/** What one successful Redis check learned. */
export interface RedisOutcome {
  /** From connect to closed socket, in milliseconds. */
  latencyMs: number;
  /** `redis_version` from INFO, when the server lets us read it. */
  version?: string;
  /** The sub-checks: role, write, commands, eviction, memory, clock (see src/sub-checks/redis.ts). */
  details: CheckDetail[];
  /** INFO's redis_mode, when INFO was readable: a "cluster" node is then checked as a cluster. */
  mode?: string;
  /** A Redis Sentinel (mode "sentinel"): the names of the masters it watches, from INFO. */
  sentinelMasters?: string[];
  /** With the `cluster` option: CLUSTER INFO and CLUSTER NODES as the node answered them. */
  cluster?: { info: string; nodes: string };
}

export interface RedisCheckOptions {
  /** Hard bound for the whole check in milliseconds: resolve, connect, TLS, auth, sub-checks, close. */
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** Also prove the server takes writes: set, read back and delete a short-lived key. Default false. */
  write?: boolean;
  /** Also ask a cluster node for CLUSTER INFO and CLUSTER NODES, in the same round trip. Default false. */
  cluster?: boolean;
}

/**
 * One bounded health check: connect, PING (any reply but PONG fails), the sub-checks
 * (version among them), close. Throws a classified BanshoError when the server cannot be
 * checked at all; what the sub-checks find is returned. Never reconnects.
 */
export async function checkRedis(target: RedisTarget, options: RedisCheckOptions): Promise<RedisOutcome> {
  const client = createCheckClient(target, options.timeoutMs);
  const deadline = startDeadline({
    timeoutMs: options.timeoutMs,
    service: 'redis',
    signal: options.signal,
    onExpire: () => client.destroy(),
  });
  const start = monotonicMs();
  // Once the handshake is answered, a closed connection is the server hanging up, not another protocol.
  let answered = false;
  try {
    await deadline.race(client.connect());
    answered = true;
    deadline.phase = 'waiting for PONG';
    // The sub-checks' first batch goes out with PING, in one round trip; it is judged only after a PONG.
    const ping = client.sendCommand<unknown>(['PING']);
    // Before the sub-checks' batch, which ends with MULTI: anything sent after it would be queued.
    const clusterFacts = options.cluster
      ? Promise.all([client.sendCommand(['CLUSTER', 'INFO']), client.sendCommand(['CLUSTER', 'NODES'])])
      : undefined;
    const subChecks = runRedisSubChecks(client, { write: options.write ?? false });
    // Without a PONG the sub-checks are abandoned with the connection: their failure is no news.
    subChecks.catch(() => {});
    clusterFacts?.catch(() => {});
    const reply = await deadline.race(ping);
    if (reply !== 'PONG') {
      const shown = scrubPassword(typeof reply === 'string' ? reply : String(JSON.stringify(reply)), target);
      throw new BanshoError(
        'protocol',
        `expected PONG from ${target.display}, got ${JSON.stringify(shown)}`,
        {
          service: 'redis',
        },
      );
    }
    deadline.phase = 'running the sub-checks';
    const { version, mode, details, sentinelMasters } = await deadline.race(subChecks);
    const cluster = clusterFacts
      ? await deadline
          .race(clusterFacts)
          .then(([info, nodes]) => ({ info: String(info), nodes: String(nodes) }))
      : undefined;
    // Every reply is in: closing needs no QUIT (deprecated since Redis 7.2, and one more round
    // trip for its OK); the socket closes cleanly, with nothing unread on it.
    client.destroy();
    return {
      latencyMs: monotonicMs() - start,
      ...(version === undefined ? {} : { version }),
      ...(mode === undefined ? {} : { mode }),
      ...(sentinelMasters === undefined ? {} : { sentinelMasters }),
      ...(cluster === undefined ? {} : { cluster }),
      details,
    };
  } catch (error) {
    throw classifyRedisError(error, target, { answered });
  } finally {
    deadline.clear();
    client.destroy();
  }
}
