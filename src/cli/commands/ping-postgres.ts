import { pingPostgresReport } from '../../engine/reports.js';
import type { BanshoCommand } from './command.js';

export const pingPostgresCommand: BanshoCommand = {
  name: 'ping-postgres',
  summary:
    'connect to PostgreSQL, check what the gateway needs (a writable primary, privileges); report latency and version',
  warnings: 'connection slots nearly used up, clock skew, a database not in UTF8',
  needs: { redis: false, postgres: true },
  run: pingPostgresReport,
};
