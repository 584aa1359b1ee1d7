import { runCheck, summarize } from '../checks.js';
import type { BanshoCommand } from './command.js';

export const ensureSchemaCommand: BanshoCommand = {
  name: 'ensure-schema',
  summary: 'create the api_keys and audit_events tables and indexes where missing (idempotent)',
  needs: { redis: false, postgres: true },
  async run(config, signal) {
    const target = config.postgres;
    if (!target) throw new Error('bug: postgres was not configured for ensure-schema');
    const { ensureSchemaOn } = await import('../schema/ensure.js');
    let changes: string[] = [];
    const schema = await runCheck(target.display, async () => {
      ({ changes } = await ensureSchemaOn(target, { timeoutMs: config.timeoutMs, signal }));
      return { message: changes.length === 0 ? 'already up to date' : `${changes.length} created` };
    });
    const checks = { schema };
    return { status: summarize(checks, config.strict), checks, changes };
  },
};
