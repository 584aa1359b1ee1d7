import { runCheck, summarize } from '../checks.js';
import type { SchemaChange } from '../schema/plan.js';
import type { BanshoCommand } from './command.js';

export const ensureSchemaCommand: BanshoCommand = {
  name: 'ensure-schema',
  summary:
    'create what is missing of the schema (tables, nullable or defaulted columns, indexes, constraints) in one transaction; refuse drift',
  needs: { redis: false, postgres: true },
  flags: [['--dry-run', 'print the SQL of the plan and change nothing']],
  async run(config, signal) {
    const target = config.postgres;
    if (!target) throw new Error('bug: postgres was not configured for ensure-schema');
    const { ensureSchemaOn } = await import('../schema/ensure.js');
    const { dryRun } = config;
    let changes: SchemaChange[] = [];
    const schema = await runCheck(target, async () => {
      const result = await ensureSchemaOn(target, { timeoutMs: config.timeoutMs, signal, dryRun });
      changes = result.changes;
      const host = result.host ? { host: result.host } : {};
      const count = changes.length === 1 ? '1 change' : `${changes.length} changes`;
      if (changes.length === 0) return { message: 'already up to date', ...host };
      return { message: dryRun ? `${count} planned (dry run: nothing changed)` : `${count} made`, ...host };
    });
    const checks = { schema };
    return {
      status: summarize(checks, config.strict),
      checks,
      changes,
      drift: schema.drift ?? [],
      ...(dryRun ? { dryRun } : {}),
    };
  },
};
