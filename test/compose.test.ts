import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, test } from 'node:test';
import { parse as parseDotenv } from 'dotenv';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from '../src/config/duration.js';
import { parsePostgresDsn } from '../src/config/postgres-dsn.js';
import { parseRedisUrl } from '../src/config/redis-url.js';
import { dockerDurationMs } from './support/dockerfile.js';

// No Docker engine runs where the tests do, so compose.yaml is checked by reading it.
const root = resolve(import.meta.dirname, '..');
const composeText = readFileSync(resolve(root, 'compose.yaml'), 'utf8');
const exampleText = readFileSync(resolve(root, '.env.example'), 'utf8');
const example = parseDotenv(exampleText);

interface Service {
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  entrypoint?: string[];
  command?: string[];
  ports?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[]; interval: string; timeout: string; retries: number; start_period?: string };
  restart?: string;
  read_only?: boolean;
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** compose.yaml as written (merge keys resolved, `${…}` left as they are). */
const raw = parseYaml(composeText, { merge: true }) as Compose;

/** Compose's interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR, $$. */
function interpolate(text: string, env: Record<string, string>): string {
  return text.replace(
    /\$\$|\$\{(\w+)(?:(:?[-?+])((?:[^{}]|\{[^}]*\})*))?\}|\$(\w+)/g,
    (match, name, operator, operand, bare) => {
      if (match === '$$') return '$';
      const key = (name ?? bare) as string;
      const value = env[key];
      const unset = operator?.startsWith(':') ? !value : value === undefined;
      if (operator?.endsWith('?') && unset) throw new Error(`${key}: ${operand}`);
      if (operator?.endsWith('-') && unset) return operand;
      if (operator?.endsWith('+')) return unset ? '' : operand;
      return value ?? '';
    },
  );
}

function interpolateAll<T>(value: T, env: Record<string, string>): T {
  if (typeof value === 'string') return interpolate(value, env) as T;
  if (Array.isArray(value)) return value.map((item) => interpolateAll(item, env)) as T;
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateAll(v, env)])) as T;
  return value;
}

/** compose.yaml as `docker compose config` would show it with .env copied from .env.example. */
const compose = interpolateAll(raw, example);

/** Every variable compose.yaml substitutes (not `$$`, which the container's shell expands). */
function variablesUsed(text: string): string[] {
  const names = new Set<string>();
  for (const [match, braced, bare] of text.matchAll(/\$\$|\$\{(\w+)[^}]*\}|\$(\w+)/g))
    if (match !== '$$') names.add((braced ?? bare) as string);
  return [...names].sort();
}

/** The arguments after `bansho` in a healthcheck test, or undefined when it runs something else. */
function banshoArgs(check: string[]): string[] | undefined {
  const at = check.indexOf('bansho');
  return check[0] === 'CMD' && at >= 0 ? check.slice(at + 1) : undefined;
}

/** The services built from ./Dockerfile, whose entrypoint is bansho. */
function banshoServices(): [string, Service][] {
  return Object.entries(compose.services).filter(([, service]) => service.build !== undefined);
}

describe('compose.yaml', () => {
  const { redis, postgres } = compose.services;

  test('runs Redis 7 and PostgreSQL 15', () => {
    assert.match(redis?.image ?? '', /^redis:7\./);
    assert.match(postgres?.image ?? '', /^postgres:15\./);
  });

  test('pins every image to a full version', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (service.build !== undefined) continue;
      assert.match(service.image ?? '', /^[\w./-]+:\d+\.\d+(\.\d+)?(-[\w.]+)?$/, `${name}: ${service.image}`);
    }
    // PostgreSQL numbers its releases major.minor; Redis major.minor.patch.
    assert.match(redis?.image ?? '', /^redis:\d+\.\d+\.\d+-/);
    assert.match(postgres?.image ?? '', /^postgres:\d+\.\d+-/);
  });

  test('binds every published port to localhost only', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const port of service.ports ?? [])
        assert.match(port, /^127\.0\.0\.1:\d+:\d+$/, `${name}: ${port}`);
    }
  });

  test('gives Redis and PostgreSQL a healthcheck that fails on an error reply', () => {
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

  test('takes every variable it uses from .env, and each is in .env.example', () => {
    const used = variablesUsed(composeText);
    assert.deepEqual(used, ['POSTGRES_DB', 'POSTGRES_PASSWORD', 'POSTGRES_USER']);
    for (const name of used) assert.ok(example[name], `${name} is not set in .env.example`);
    // Without .env, compose stops with the message instead of starting PostgreSQL with no password.
    assert.throws(() => interpolateAll(raw, {}), /POSTGRES_USER: set POSTGRES_USER in \.env/);
  });

  test('writes no credential itself', () => {
    assert.ok(
      !composeText.includes(example.POSTGRES_PASSWORD as string),
      'the password is written in compose.yaml',
    );
    // Each variable stands for itself, so that what is written in is told from what comes from .env.
    const fromEnv = Object.fromEntries(variablesUsed(composeText).map((name) => [name, `FROM_ENV_${name}`]));
    for (const [name, service] of Object.entries(raw.services)) {
      for (const [key, written] of Object.entries(service.environment ?? {})) {
        const value = interpolate(written, fromEnv);
        if (/PASSWORD|SECRET|TOKEN/.test(key)) assert.match(value, /^FROM_ENV_\w+$/, `${name}.${key}`);
        if (/^\w+:\/\//.test(value) && new URL(value).password)
          assert.match(new URL(value).password, /^FROM_ENV_\w+$/, `${name}.${key} has a password written in`);
      }
    }
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

  test("gives the bansho services the servers' compose addresses and the same credentials", () => {
    const services = banshoServices();
    assert.deepEqual(services.map(([name]) => name).sort(), ['ensure-schema', 'gateway']);
    for (const [name, service] of services) {
      assert.equal(typeof service.build === 'string' ? service.build : service.build?.context, '.', name);
      assert.ok(existsSync(resolve(root, 'Dockerfile')));
      assert.equal(service.read_only, true, `${name}: a read-only root filesystem, as in production`);
      const dsn = parsePostgresDsn({ value: service.environment?.POSTGRES_DSN ?? '', source: name });
      assert.deepEqual(
        [dsn.host, dsn.username, dsn.password, dsn.database],
        [
          'postgres',
          postgres?.environment?.POSTGRES_USER,
          postgres?.environment?.POSTGRES_PASSWORD,
          postgres?.environment?.POSTGRES_DB,
        ],
      );
      assert.equal(
        parseRedisUrl({ value: service.environment?.REDIS_URL ?? '', source: name }).host,
        'redis',
      );
    }
  });

  test('runs ensure-schema once, after Redis and PostgreSQL are healthy', () => {
    const bootstrap = compose.services['ensure-schema'];
    assert.deepEqual(bootstrap?.command, ['ensure-schema', '--wait', '60s']);
    assert.equal(bootstrap?.entrypoint, undefined, "the image's entrypoint: bansho");
    assert.equal(bootstrap?.restart, 'no');
    assert.deepEqual(bootstrap?.depends_on, {
      redis: { condition: 'service_healthy' },
      postgres: { condition: 'service_healthy' },
    });
  });

  test('starts the gateway stand-in only once ensure-schema has exited 0, and checks its health with bansho', () => {
    const gateway = compose.services.gateway;
    assert.deepEqual(gateway?.depends_on, {
      'ensure-schema': { condition: 'service_completed_successfully' },
    });
    assert.ok(banshoArgs(gateway?.healthcheck?.test ?? [])?.[0] === 'smoke', 'healthcheck runs bansho smoke');
  });

  test("lets each bansho healthcheck report before Docker's timeout kills it", () => {
    const checks = Object.entries(compose.services).filter(([, s]) => banshoArgs(s.healthcheck?.test ?? []));
    assert.ok(checks.length > 0);
    for (const [name, service] of checks) {
      const args = banshoArgs(service.healthcheck?.test ?? []) as string[];
      const flag = args.indexOf('--timeout');
      assert.ok(flag >= 0, `${name}: --timeout bounds bansho's run`);
      const banshoMs = parseDuration(args[flag + 1] as string, '--timeout');
      const dockerMs = dockerDurationMs(service.healthcheck?.timeout ?? '');
      assert.ok(
        dockerMs > banshoMs,
        `${name}: healthcheck timeout ${dockerMs} ms must exceed --timeout ${banshoMs} ms`,
      );
      assert.ok(args.includes('--quiet'), `${name}: a healthcheck needs only the exit code`);
    }
  });
});

describe('.env.example', () => {
  test('lists every variable bansho reads', () => {
    for (const name of ['REDIS_URL', 'POSTGRES_DSN', 'NO_COLOR', 'NODE_EXTRA_CA_CERTS']) {
      assert.match(exampleText, new RegExp(`^#? ?${name}=`, 'm'), name);
    }
  });
});
