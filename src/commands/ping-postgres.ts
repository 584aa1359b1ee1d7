import { summarize } from '../checks.js';
import { postgresCheck } from '../probes.js';
import type { BanshoCommand } from './command.js';

export const pingPostgresCommand: BanshoCommand = {
  name: 'ping-postgres',
  summary:
    'connect to PostgreSQL, check what the gateway needs (a writable primary, privileges); report latency and version',
  warnings: 'connection slots nearly used up, clock skew, a database not in UTF8',
  needs: { redis: false, postgres: true },
  async run(config, signal) {
    const checks = { postgres: await postgresCheck(config, signal) };
    return { status: summarize(checks, config.strict), checks };
  },
};
