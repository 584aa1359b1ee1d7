import { smokeReport } from '../../engine/reports.js';
import type { BanshoCommand } from './command.js';

export const smokeCommand: BanshoCommand = {
  name: 'smoke',
  summary: 'check Redis, PostgreSQL and the schema, with what the gateway needs of each, concurrently',
  needs: { redis: true, postgres: true },
  warnings:
    "ping-redis's and ping-postgres's (an eviction policy, memory nearly full, connection slots nearly used up, clock skew…), a schema not created yet or newer than this bansho",
  flags: [['--no-write-probe', 'do not write (and delete) a short-lived key to prove Redis takes writes']],
  run: smokeReport,
};
