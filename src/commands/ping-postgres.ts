import { summarize } from '../checks.js';
import { postgresCheck } from '../probes.js';
import type { BanshoCommand } from './command.js';

export const pingPostgresCommand: BanshoCommand = {
  name: 'ping-postgres',
  summary: 'connect to PostgreSQL, run a query on a writable primary; report latency and server version',
  needs: { redis: false, postgres: true },
  async run(config, signal) {
    const checks = { postgres: await postgresCheck(config, signal) };
    return { status: summarize(checks, config.strict), checks };
  },
};
