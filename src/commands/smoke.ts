import { summarize } from '../checks.js';
import { postgresAndSchemaChecks, redisCheck } from '../probes.js';
import type { BanshoCommand } from './command.js';

export const smokeCommand: BanshoCommand = {
  name: 'smoke',
  summary: 'check Redis (PING and a write), PostgreSQL and the schema, concurrently',
  needs: { redis: true, postgres: true },
  hasWarnings: true,
  async run(config, signal) {
    const [redis, { postgres, schema }] = await Promise.all([
      redisCheck(config, signal, { write: true }),
      postgresAndSchemaChecks(config, signal),
    ]);
    const checks = { redis, postgres, schema };
    return { status: summarize(checks, config.strict), checks };
  },
};
