import { summarize } from '../checks.js';
import { redisCheck } from '../probes.js';
import type { BanshoCommand } from './command.js';

export const pingRedisCommand: BanshoCommand = {
  name: 'ping-redis',
  summary: 'connect to Redis, expect PONG; report latency and server version',
  needs: { redis: true, postgres: false },
  async run(config, signal) {
    const checks = { redis: await redisCheck(config, signal, { write: false }) };
    return { status: summarize(checks, config.strict), checks };
  },
};
