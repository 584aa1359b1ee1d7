/**
 * Redis verdicts and hints that used to send the operator the wrong way (issue 12, items 4
 * and 5): a server that refuses HELLO (Redis before 6, a proxy without RESP3), commands
 * renamed away with rename-command (reported as ACL denials), and a server that hangs up
 * after it has answered (reported as a peer that does not speak Redis). Real servers, with a
 * fake peer only for a Redis 5 that cannot be started here.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { assertExit, type CliResult, parseJson, runCli } from './support/cli.js';
import {
  type FakePeer,
  type RedisServer,
  rawExchange,
  startInterceptingProxy,
  startRedis,
  startRedisErrorPeer,
  startRedisScriptedPeer,
} from './support/servers.js';

function check(result: CliResult) {
  const redis = parseJson(result).checks.redis;
  assert.ok(redis, `no checks.redis:\n${result.stdout}\n${result.stderr}`);
  return redis;
}

function detail(result: CliResult, name: string) {
  const found = check(result).details?.find((item) => item.name === name);
  assert.ok(found, `no ${name} sub-check:\n${result.stdout}`);
  return found;
}

const bulk = (text: string) => `$${Buffer.byteLength(text)}\r\n${text}\r\n`;

/** What Redis 5.0 answers: no HELLO (RESP3 came with Redis 6), the rest over RESP2. */
function answerLikeRedis5(command: string[]): string {
  switch (command[0]) {
    case 'HELLO':
      return `-ERR unknown command \`HELLO\`, with args beginning with: \`${command[1] ?? ''}\`, \r\n`;
    case 'AUTH':
    case 'SELECT':
    case 'QUIT':
      return '+OK\r\n';
    case 'PING':
      return '+PONG\r\n';
    case 'INFO':
      return bulk('# Server\r\nredis_version:5.0.14\r\nredis_mode:standalone\r\n');
    default:
      return `-ERR unknown command \`${command[0]}\`\r\n`;
  }
}

describe('a server that refuses HELLO', () => {
  const peers: FakePeer[] = [];
  after(async () => {
    await Promise.all(peers.map((peer) => peer.close()));
  });

  test('Redis 5 (no HELLO): exit 1 with unsupported_version, saying RESP3 needs Redis 6, with or without a password', async () => {
    const peer = await startRedisScriptedPeer(answerLikeRedis5);
    peers.push(peer);
    for (const url of [peer.url('redis'), `redis://:s3cret@127.0.0.1:${peer.port}/2`]) {
      const result = await runCli(['ping-redis', '--json', '--redis-url', url]);
      assertExit(result, 1);
      const error = check(result).error;
      assert.equal(error?.code, 'unsupported_version');
      assert.match(
        error?.message ?? '',
        /refused HELLO 3, so it does not speak RESP3: ERR unknown command `HELLO`/,
      );
      assert.match(error?.hint ?? '', /RESP3, which needs Redis 6 or newer/);
      assert.ok(!result.stdout.includes('s3cret'));
    }
  });

  test('a server that answers HELLO 3 with NOPROTO: exit 1 with unsupported_version', async () => {
    const peer = await startRedisErrorPeer('NOPROTO unsupported protocol version');
    peers.push(peer);
    const result = await runCli(['ping-redis', '--json', '--redis-url', peer.url('redis')]);
    assertExit(result, 1);
    assert.equal(check(result).error?.code, 'unsupported_version');
  });
});

describe('commands renamed away with rename-command', () => {
  /** INFO disabled. */
  let noInfo: RedisServer;
  /** INFO renamed to another name. */
  let renamedInfo: RedisServer;
  /** TIME, SET and INCR disabled; EVALSHA renamed. */
  let noGatewayCommands: RedisServer;
  before(async () => {
    [noInfo, renamedInfo, noGatewayCommands] = await Promise.all([
      startRedis({ args: ['--rename-command', 'INFO', ''] }),
      startRedis({ args: ['--rename-command', 'INFO', 'INFO_b4f1c2'] }),
      startRedis({
        args: [
          '--rename-command',
          'TIME',
          '',
          '--rename-command',
          'SET',
          '',
          '--rename-command',
          'INCR',
          '',
          '--rename-command',
          'EVALSHA',
          'EVALSHA_9e2d',
        ],
      }),
    ]);
  });
  after(async () => {
    await Promise.all([noInfo?.stop(), renamedInfo?.stop(), noGatewayCommands?.stop()]);
  });

  test('INFO disabled or renamed: role, eviction and memory warn about rename-command, not the ACL', async () => {
    for (const server of [noInfo, renamedInfo]) {
      const result = await runCli(['ping-redis', '--json', '--redis-url', server.url]);
      assertExit(result, 0);
      assert.equal(check(result).status, 'warn');
      for (const name of ['role', 'eviction', 'memory']) {
        const found = detail(result, name);
        assert.equal(found.status, 'warn', name);
        assert.match(found.observed, /the server has no INFO command/, name);
        assert.match(found.hint ?? '', /rename-command/, name);
        assert.doesNotMatch(found.hint ?? '', /ACL SETUSER/, name);
      }
      // The others still run and pass.
      assert.equal(detail(result, 'commands').status, 'pass');
      assert.equal(detail(result, 'write').status, 'pass');
    }
  });

  test("the gateway's commands and TIME disabled: commands and write fail (permission_denied) naming rename-command, clock warns", async () => {
    const result = await runCli(['ping-redis', '--json', '--redis-url', noGatewayCommands.url]);
    assertExit(result, 1);
    const commands = detail(result, 'commands');
    assert.equal(commands.status, 'fail');
    assert.equal(commands.code, 'permission_denied');
    assert.match(commands.observed, /^SET, INCR, EVALSHA unknown to the server \(ERR unknown command/);
    assert.match(
      commands.hint ?? '',
      /SET, INCR, EVALSHA are renamed or disabled on the server \(rename-command/,
    );
    assert.doesNotMatch(commands.hint ?? '', /ACL SETUSER/);
    const write = detail(result, 'write');
    assert.equal(write.status, 'fail');
    assert.equal(write.code, 'permission_denied');
    assert.match(write.hint ?? '', /SET is renamed or disabled on the server/);
    const clock = detail(result, 'clock');
    assert.equal(clock.status, 'warn');
    assert.match(clock.observed, /the server has no TIME command/);
    assert.match(clock.hint ?? '', /rename-command/);
    assert.doesNotMatch(clock.hint ?? '', /ACL SETUSER|grant/);
    assert.equal(check(result).error?.code, 'permission_denied');
  });
});

describe('a server that closes the connection after it has answered', () => {
  let redis: RedisServer;
  let proxy: FakePeer;
  before(async () => {
    redis = await startRedis();
    // Once the handshake is answered, the server itself kills the check's connection.
    proxy = await startInterceptingProxy(redis.port, async (localPort) => {
      await rawExchange(redis.port, `CLIENT KILL ADDR 127.0.0.1:${localPort}\r\n`, /\r\n/, 5000);
    });
  });
  after(async () => {
    await Promise.all([proxy?.close(), redis?.stop()]);
  });

  test('CLIENT KILL mid-check: exit 1 with connection_closed, not protocol', async () => {
    const result = await runCli(['ping-redis', '--json', '--redis-url', proxy.url('redis')]);
    assertExit(result, 1);
    const error = check(result).error;
    assert.equal(error?.code, 'connection_closed');
    assert.match(
      error?.message ?? '',
      /closed the connection in the middle of the check, after it had answered/,
    );
    assert.match(error?.hint ?? '', /CLIENT KILL/);
    assert.doesNotMatch(`${error?.message} ${error?.hint}`, /does not speak Redis|rediss:\/\//);
  });
});
