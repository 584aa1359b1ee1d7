import { pingRedisReport } from '../../engine/reports.js';
import type { BanshoCommand } from './command.js';

export const pingRedisCommand: BanshoCommand = {
  name: 'ping-redis',
  summary: 'connect to Redis, expect PONG, check what the gateway needs; report latency and server version',
  warnings: 'an eviction policy, memory nearly full, clock skew, INFO or MULTI denied',
  flags: [['--no-write-probe', 'do not write (and delete) a short-lived key to prove Redis takes writes']],
  needs: { redis: true, postgres: false },
  run: pingRedisReport,
};
