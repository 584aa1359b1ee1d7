/**
 * Facts of the PostgreSQL sub-checks for pure judgement tests: the session part of a healthy
 * server, no CONNECTION LIMIT and no session timeout set, for a role that is no superuser.
 */
import type { PostgresFacts } from '../../src/postgres/sub-checks.js';

export const UNLIMITED_SESSION: Pick<
  PostgresFacts,
  | 'database'
  | 'superuser'
  | 'roleConnectionLimit'
  | 'roleConnections'
  | 'databaseConnectionLimit'
  | 'databaseConnections'
  | 'timeouts'
> = {
  database: 'bansho',
  superuser: false,
  roleConnectionLimit: -1,
  roleConnections: 1,
  databaseConnectionLimit: -1,
  databaseConnections: 1,
  timeouts: [
    { name: 'statement_timeout', ms: 0 },
    { name: 'lock_timeout', ms: 0 },
    { name: 'idle_in_transaction_session_timeout', ms: 0 },
    { name: 'idle_session_timeout', ms: 0 },
  ],
};
