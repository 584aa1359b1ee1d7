import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseDotenv } from 'dotenv';
import { parse as parseYaml } from 'yaml';
import { parsePostgresDsn, parseRedisUrl } from '../src/config.js';

// No Docker engine runs where the tests do, so compose.yaml is checked by reading it.
const root = resolve(import.meta.dirname, '..');
const compose = parseYaml(readFileSync(resolve(root, 'compose.yaml'), 'utf8')) as {
  services: Record<
    string,
    {
      image: string;
      ports?: string[];
      environment?: Record<string, string>;
      volumes?: string[];
      healthcheck?: { test: string[]; interval: string; timeout: string; retries: number };
    }
  >;
  volumes?: Record<string, unknown>;
};
const example = parseDotenv(readFileSync(resolve(root, '.env.example'), 'utf8'));

describe('compose.yaml', () => {
  const { redis, postgres } = compose.services;

  test('runs Redis 7 and PostgreSQL 15', () => {
    assert.match(redis?.image ?? '', /^redis:7/);
    assert.match(postgres?.image ?? '', /^postgres:15/);
  });

  test('binds every published port to localhost only', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const port of service.ports ?? [])
        assert.match(port, /^127\.0\.0\.1:\d+:\d+$/, `${name}: ${port}`);
    }
  });

  test('gives both services a healthcheck that fails on an error reply', () => {
    for (const service of [redis, postgres]) {
      const check = service?.healthcheck;
      assert.ok(check, 'healthcheck missing');
      assert.ok(check.interval && check.timeout && check.retries > 0);
    }
    // `redis-cli ping` alone exits 0 on "-LOADING" or "-NOAUTH": the check must insist on PONG.
    assert.match(redis?.healthcheck?.test.join(' ') ?? '', /PONG/);
    assert.match(postgres?.healthcheck?.test.join(' ') ?? '', /pg_isready/);
  });

  test('keeps PostgreSQL data in a named volume', () => {
    const mount = postgres?.volumes?.find((volume) => volume.endsWith(':/var/lib/postgresql/data'));
    assert.ok(mount, 'no volume on /var/lib/postgresql/data');
    const name = mount.split(':')[0] as string;
    assert.ok(compose.volumes && name in compose.volumes, `volume ${name} is not declared at the top level`);
  });

  test('matches the credentials, database and ports in .env.example', () => {
    const dsn = parsePostgresDsn({ value: example.POSTGRES_DSN ?? '', source: 'POSTGRES_DSN' });
    assert.equal(postgres?.environment?.POSTGRES_USER, dsn.username);
    assert.equal(postgres?.environment?.POSTGRES_PASSWORD, dsn.password);
    assert.equal(postgres?.environment?.POSTGRES_DB, dsn.database);
    assert.ok(postgres?.ports?.includes(`127.0.0.1:${dsn.port}:5432`));
    const url = parseRedisUrl({ value: example.REDIS_URL ?? '', source: 'REDIS_URL' });
    assert.ok(redis?.ports?.includes(`127.0.0.1:${url.port}:6379`));
  });
});

describe('.env.example', () => {
  test('lists every variable bansho reads', () => {
    const text = readFileSync(resolve(root, '.env.example'), 'utf8');
    for (const name of ['REDIS_URL', 'POSTGRES_DSN', 'NO_COLOR', 'NODE_EXTRA_CA_CERTS']) {
      assert.match(text, new RegExp(`^#? ?${name}=`, 'm'), name);
    }
  });
});
