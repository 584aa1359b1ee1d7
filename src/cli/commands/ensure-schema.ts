import { ensureSchemaReport } from '../../engine/reports.js';
import type { BanshoCommand } from './command.js';

export const ensureSchemaCommand: BanshoCommand = {
  name: 'ensure-schema',
  summary:
    'create what is missing of the schema (tables, nullable or defaulted columns, indexes, constraints) in one transaction; refuse drift',
  needs: { redis: false, postgres: true },
  flags: [['--dry-run', 'print the SQL of the plan and change nothing']],
  run: ensureSchemaReport,
};
