import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseJson, runCli } from './support/cli.js';
import { type PostgresServer, startPostgres } from './support/servers.js';

// A real hot standby: recovery with no primary to follow, serving read-only sessions.
let standby: PostgresServer;

before(async () => {
  standby = await startPostgres({ standby: true });
});
after(async () => {
  await standby?.stop();
});

describe('a PostgreSQL standby in recovery', () => {
  test('is in recovery, as the test assumes', async () => {
    assert.equal((await standby.query('select pg_is_in_recovery()')).trim(), 't');
  });

  test('ping-postgres exits 1 with not_ready: the gateway needs a primary', async () => {
    const result = await runCli(['ping-postgres', '--json', '--postgres-dsn', standby.dsn()]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const error = parseJson(result).checks.postgres?.error;
    assert.equal(error?.code, 'not_ready');
    assert.match(error?.message ?? '', /standby in recovery/);
    assert.match(error?.hint ?? '', /primary/);
    const primary = parseJson(result).checks.postgres?.details?.find((detail) => detail.name === 'primary');
    assert.deepEqual(primary && { status: primary.status, observed: primary.observed }, {
      status: 'fail',
      observed: 'a standby in recovery',
    });
  });

  test('ensure-schema exits 1 with read_only, naming the standby, and creates nothing', async () => {
    const result = await runCli(['ensure-schema', '--json', '--postgres-dsn', standby.dsn()]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const report = parseJson(result);
    assert.equal(report.checks.schema?.error?.code, 'read_only');
    assert.match(report.checks.schema?.error?.message ?? '', /standby in recovery/);
    assert.deepEqual(report.changes, []);
  });
});
