// ioredis 6 against a minikv node: `node ioredis_check.js PORT`.
//
// Runs the checks with ioredis's default handshake (HELLO 3, then the ready check's INFO),
// with RESP3 maps decoded as objects, and with protocol 2, over strings, transactions, SCAN,
// hashes, lists, sets, sorted sets and pub/sub. Asserts the values read back and
// exits non-zero naming the first mismatch. Run by tests/clients.rs.
"use strict";

const assert = require("node:assert/strict");
const Redis = require("ioredis");

const port = Number(process.argv[2]);
if (!port) {
  console.error("usage: node ioredis_check.js PORT");
  process.exit(2);
}

// Keys of one run never meet those of an earlier run against the same node.
const RUN = `${process.pid}.${Date.now()}`;

async function check(label, extra) {
  const p = `ioredis:${RUN}:${label}:`;
  const options = {
    host: "127.0.0.1",
    port,
    lazyConnect: true,
    enableReadyCheck: true,
    connectTimeout: 5000,
    commandTimeout: 5000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    ...extra,
  };
  const r = new Redis(options);
  const other = new Redis(options);
  try {
    // connect() resolves once the handshake and the ready check (INFO) have succeeded.
    await r.connect();
    await other.connect();
    assert.equal(r.status, "ready", "status after connect");
    // The ready check already sent INFO and found `loading:0`; read it the same way.
    const info = await r.info();
    assert.match(info, /^# Server\r\n/, "INFO starts with its Server section");
    assert.match(info, /\r\nredis_version:\d+\.\d+/, "INFO redis_version");
    assert.match(info, /\r\nloading:0\r\n/, "INFO loading:0");
    assert.equal(await r.ping(), "PONG", "PING");

    const hello = await r.hello();
    const fields = Array.isArray(hello)
      ? Object.fromEntries(hello.reduce((acc, v, i) => (i % 2 ? acc[acc.length - 1].push(v) : acc.push([v]), acc), []))
      : hello;
    assert.equal(fields.server, "redis", "HELLO server");
    assert.equal(Number(fields.proto), extra.protocol === 2 ? 2 : 3, "HELLO proto");
    if (extra.replyMapping === "resp3") {
      assert.ok(!Array.isArray(hello) && typeof hello === "object", "HELLO map decoded as an object");
    }

    assert.equal(await r.set(p + "k", "v1"), "OK", "SET");
    assert.equal(await r.get(p + "k"), "v1", "GET");
    assert.equal(await r.get(p + "missing"), null, "GET missing");
    assert.equal(await r.set(p + "k", "v2", "NX"), null, "SET NX on existing");
    assert.equal(await r.incr(p + "n"), 1, "INCR");
    assert.equal(await r.incrby(p + "n", 41), 42, "INCRBY");
    assert.equal(await r.get(p + "n"), "42", "GET counter");
    assert.equal(await r.incrbyfloat(p + "f", "1.5"), "1.5", "INCRBYFLOAT");

    assert.equal(await r.expire(p + "k", 100), 1, "EXPIRE");
    const ttl = await r.ttl(p + "k");
    assert.ok(ttl >= 98 && ttl <= 100, `TTL after EXPIRE 100: ${ttl}`);
    assert.equal(await r.ttl(p + "n"), -1, "TTL without expiry");
    assert.equal(await r.ttl(p + "missing"), -2, "TTL missing");

    assert.equal(await r.mset(p + "a", "1", p + "b", "2"), "OK", "MSET");
    assert.deepEqual(await r.mget(p + "a", p + "missing", p + "b"), ["1", null, "2"], "MGET");
    assert.equal(await r.exists(p + "a", p + "b", p + "missing"), 2, "EXISTS");
    assert.equal(await r.del(p + "a", p + "missing"), 1, "DEL");

    const piped = await r.pipeline()
      .set(p + "p1", "x").get(p + "p1").incr(p + "pn").incr(p + "pn").get(p + "missing")
      .exec();
    assert.deepEqual(piped, [[null, "OK"], [null, "x"], [null, 1], [null, 2], [null, null]], "pipeline");

    const tx = await r.multi()
      .set(p + "t", "a").append(p + "t", "bc").get(p + "t").mget(p + "t", p + "missing")
      .exec();
    assert.deepEqual(tx, [[null, "OK"], [null, 3], [null, "abc"], [null, ["abc", null]]], "MULTI/EXEC");

    // WATCH, then another client's write: EXEC answers null and nothing is applied.
    await r.set(p + "w", "0");
    assert.equal(await r.watch(p + "w"), "OK", "WATCH");
    await other.set(p + "w", "changed");
    assert.equal(await r.multi().set(p + "w", "mine").exec(), null, "EXEC after WATCH conflict");
    assert.equal(await r.get(p + "w"), "changed", "value after WATCH conflict");
    // WATCH with no interference goes through.
    await r.watch(p + "w");
    assert.deepEqual(await r.multi().set(p + "w", "mine").exec(), [[null, "OK"]], "EXEC after WATCH");
    assert.equal(await r.get(p + "w"), "mine", "value after WATCH EXEC");

    // SCAN returns every key exactly once.
    const names = new Set();
    const fill = r.pipeline();
    for (let i = 0; i < 300; i++) {
      names.add(`${p}scan:${i}`);
      fill.set(`${p}scan:${i}`, "1");
    }
    await fill.exec();
    const seen = [];
    let cursor = "0";
    do {
      const [next, keys] = await r.scan(cursor, "MATCH", p + "scan:*", "COUNT", 50);
      cursor = next;
      seen.push(...keys);
    } while (cursor !== "0");
    assert.equal(seen.length, names.size, "SCAN key count (duplicates or misses)");
    assert.deepEqual(new Set(seen), names, "SCAN keys");

    await checkDataTypes(r, p, extra.replyMapping === "resp3");
    await checkPubSub(r, p, options);

    assert.equal(await r.echo("done"), "done", "ECHO");
    console.log(`ioredis ${require("ioredis/package.json").version} (${label}): ok`);
  } finally {
    r.disconnect();
    other.disconnect();
  }
}

// Hashes, lists, sets and sorted sets. Under `replyMapping: "resp3"` doubles arrive as
// numbers and maps as objects; under the default ("legacy") mapping both protocols give
// RESP2's shapes (flat arrays, doubles as strings).
async function checkDataTypes(r, p, resp3) {
  const h = p + "h";
  assert.equal(await r.hset(h, { f1: "v1", f2: "v2" }), 2, "HSET object");
  assert.equal(await r.hset(h, "f3", "v3"), 1, "HSET field");
  assert.equal(await r.hset(h, "f1", "v1b"), 0, "HSET update");
  assert.equal(await r.hget(h, "f1"), "v1b", "HGET");
  assert.equal(await r.hget(h, "nope"), null, "HGET missing field");
  assert.deepEqual(await r.hgetall(h), { f1: "v1b", f2: "v2", f3: "v3" }, "HGETALL");
  assert.deepEqual(await r.hgetall(p + "missing"), {}, "HGETALL missing");
  assert.deepEqual(await r.hmget(h, "f1", "nope", "f2"), ["v1b", null, "v2"], "HMGET");
  assert.equal(await r.hincrby(h, "n", 5), 5, "HINCRBY");
  assert.equal(await r.hincrbyfloat(h, "x", "1.5"), "1.5", "HINCRBYFLOAT");
  assert.equal(await r.hlen(h), 5, "HLEN");
  assert.equal(await r.hexists(h, "f2"), 1, "HEXISTS");
  assert.equal(await r.hdel(h, "f2", "nope"), 1, "HDEL");
  assert.deepEqual((await r.hkeys(h)).sort(), ["f1", "f3", "n", "x"], "HKEYS");
  assert.equal(await r.type(h), "hash", "TYPE hash");
  await assert.rejects(r.get(h), /^ReplyError: WRONGTYPE/, "GET on a hash");

  const l = p + "l";
  assert.equal(await r.lpush(l, "a", "b", "c"), 3, "LPUSH");
  assert.equal(await r.rpush(l, "d", "e"), 5, "RPUSH");
  assert.deepEqual(await r.lrange(l, 0, -1), ["c", "b", "a", "d", "e"], "LRANGE");
  assert.deepEqual(await r.lrange(l, -2, -1), ["d", "e"], "LRANGE negative");
  assert.equal(await r.llen(l), 5, "LLEN");
  assert.equal(await r.lindex(l, 1), "b", "LINDEX");
  assert.equal(await r.lpop(l), "c", "LPOP");
  assert.deepEqual(await r.rpop(l, 2), ["e", "d"], "RPOP count");
  assert.equal(await r.lpop(p + "missing"), null, "LPOP missing");
  assert.equal(await r.del(l), 1, "DEL list");
  assert.equal(await r.type(l), "none", "TYPE after DEL");

  const s = p + "s";
  assert.equal(await r.sadd(s, "x", "y", "z", "x"), 3, "SADD");
  assert.deepEqual((await r.smembers(s)).sort(), ["x", "y", "z"], "SMEMBERS");
  assert.deepEqual(await r.smembers(p + "missing"), [], "SMEMBERS missing");
  assert.equal(await r.sismember(s, "y"), 1, "SISMEMBER");
  assert.equal(await r.sismember(s, "w"), 0, "SISMEMBER missing");
  assert.equal(await r.scard(s), 3, "SCARD");
  assert.equal(await r.srem(s, "y", "w"), 1, "SREM");
  assert.deepEqual((await r.sunion(s, p + "missing")).sort(), ["x", "z"], "SUNION");
  assert.equal(await r.type(s), "set", "TYPE set");

  const z = p + "z";
  assert.equal(await r.zadd(z, 1, "a", 2.5, "b", -1, "c"), 3, "ZADD");
  assert.equal(await r.zadd(z, 1.1, "a"), 0, "ZADD update");
  assert.deepEqual(await r.zrange(z, 0, -1), ["c", "a", "b"], "ZRANGE");
  assert.deepEqual(
    await r.zrange(z, 0, -1, "WITHSCORES"),
    resp3
      ? [["c", -1], ["a", 1.1], ["b", 2.5]]
      : ["c", "-1", "a", "1.1000000000000001", "b", "2.5"],
    "ZRANGE WITHSCORES",
  );
  assert.deepEqual(await r.zrangebyscore(z, "(1", "+inf"), ["a", "b"], "ZRANGEBYSCORE");
  assert.equal(await r.zscore(z, "b"), resp3 ? 2.5 : "2.5", "ZSCORE");
  assert.equal(await r.zscore(z, "nope"), null, "ZSCORE missing");
  assert.equal(await r.zincrby(z, 2, "c"), resp3 ? 1 : "1", "ZINCRBY");
  assert.equal(await r.zrank(z, "c"), 0, "ZRANK");
  assert.equal(await r.zcard(z), 3, "ZCARD");
  assert.equal(await r.zrem(z, "b", "nope"), 1, "ZREM");
  assert.equal(await r.type(z), "zset", "TYPE zset");

  // A transaction over several types.
  const tx = await r.multi()
    .hset(p + "th", "f", "v").rpush(p + "tl", "1", "2").sadd(p + "ts", "m").zadd(p + "tz", 2, "m")
    .hgetall(p + "th").lrange(p + "tl", 0, -1).smembers(p + "ts").zscore(p + "tz", "m")
    .exec();
  assert.deepEqual(tx, [
    [null, 1], [null, 2], [null, 1], [null, 1],
    [null, { f: "v" }], [null, ["1", "2"]], [null, ["m"]], [null, resp3 ? 2 : "2"],
  ], "MULTI/EXEC over types");
}

// A subscribe/publish round trip on a subscriber connection of its own, with a pattern
// subscription beside the channel's.
async function checkPubSub(r, p, options) {
  const channel = p + "chan";
  const sub = new Redis(options);
  try {
    await sub.connect();
    const got = [];
    let arrived;
    const both = new Promise((resolve) => { arrived = resolve; });
    const note = (entry) => { got.push(entry); if (got.length === 2) arrived(); };
    sub.on("message", (ch, message) => note(["message", ch, message]));
    sub.on("pmessage", (pattern, ch, message) => note(["pmessage", pattern, ch, message]));
    assert.equal(await sub.subscribe(channel), 1, "SUBSCRIBE count");
    assert.equal(await sub.psubscribe(p + "ch*"), 2, "PSUBSCRIBE count");
    assert.deepEqual(await r.pubsub("NUMSUB", channel), [channel, 1], "PUBSUB NUMSUB");
    assert.equal(await r.publish(channel, "hello"), 2, "PUBLISH");
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("published messages did not arrive in 5 s")), 5000);
    });
    await Promise.race([both, timeout]).finally(() => clearTimeout(timer));
    assert.deepEqual(got.sort(), [
      ["message", channel, "hello"],
      ["pmessage", p + "ch*", channel, "hello"],
    ], "messages received");
    await sub.unsubscribe(channel);
    await sub.punsubscribe();
    assert.equal(await r.publish(channel, "again"), 0, "PUBLISH after UNSUBSCRIBE");
  } finally {
    sub.disconnect();
  }
}

(async () => {
  const variants = [
    ["default", {}],
    ["resp3-maps", { protocol: 3, replyMapping: "resp3" }],
    ["protocol=2", { protocol: 2 }],
  ];
  for (const [label, extra] of variants) {
    try {
      await check(label, extra);
    } catch (e) {
      console.error(`ioredis (${label}) FAILED: ${e && e.stack ? e.stack : e}`);
      process.exit(1);
    }
  }
})();
