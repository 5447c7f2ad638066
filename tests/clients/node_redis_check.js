// node-redis 6 against a minikv node: `node node_redis_check.js PORT`.
//
// Runs the checks with node-redis's default handshake (HELLO 3 in 6.x), with `RESP: 3`
// given explicitly, and with `RESP: 2`, over strings, transactions, SCAN, hashes, lists,
// sets, sorted sets and pub/sub. Asserts the values read back and exits non-zero
// naming the first mismatch. Run by tests/clients.rs.
"use strict";

const assert = require("node:assert/strict");
const { createClient, WatchError } = require("redis");

const port = Number(process.argv[2]);
if (!port) {
  console.error("usage: node node_redis_check.js PORT");
  process.exit(2);
}

// Keys of one run never meet those of an earlier run against the same node.
const RUN = `${process.pid}.${Date.now()}`;

// A reply that never comes (one the client cannot parse) fails the run instead of hanging it.
setTimeout(() => {
  console.error("node-redis: checks did not finish within 60 s (a reply never came?)");
  process.exit(1);
}, 60000).unref();

async function connect(extra) {
  const client = createClient({
    socket: { host: "127.0.0.1", port, connectTimeout: 5000, reconnectStrategy: false },
    ...extra,
  });
  let failure = null;
  client.on("error", (e) => { failure = failure || e; });
  await client.connect();
  if (failure) throw failure;
  return client;
}

async function check(label, extra) {
  const p = `node-redis:${RUN}:${label}:`;
  const resp = extra.RESP === 2 ? 2 : 3;
  const r = await connect(extra);
  const other = await connect(extra);
  try {
    assert.equal(await r.ping(), "PONG", "PING");

    const hello = await r.hello();
    // RESP3 maps must arrive as maps (an object), not as flat lists.
    if (resp === 3) {
      assert.ok(hello && !Array.isArray(hello) && typeof hello === "object",
        `HELLO under RESP3 decoded as an object, got ${JSON.stringify(hello)}`);
    }
    assert.equal(hello.server, "redis", "HELLO server");
    assert.equal(Number(hello.proto), resp, "HELLO proto");
    assert.equal(typeof hello.version, "string", "HELLO version");

    const info = await r.info("server");
    assert.match(String(info), /redis_version:\d+\.\d+/, "INFO server has redis_version");

    assert.equal(await r.set(p + "k", "v1"), "OK", "SET");
    assert.equal(await r.get(p + "k"), "v1", "GET");
    assert.equal(await r.get(p + "missing"), null, "GET missing");
    assert.equal(await r.set(p + "k", "v2", { condition: "NX" }), null, "SET NX on existing");
    assert.equal(await r.incr(p + "n"), 1, "INCR");
    assert.equal(await r.incrBy(p + "n", 41), 42, "INCRBY");
    assert.equal(await r.get(p + "n"), "42", "GET counter");

    assert.equal(await r.expire(p + "k", 100), 1, "EXPIRE");
    const ttl = await r.ttl(p + "k");
    assert.ok(ttl >= 98 && ttl <= 100, `TTL after EXPIRE 100: ${ttl}`);
    assert.equal(await r.ttl(p + "n"), -1, "TTL without expiry");
    assert.equal(await r.ttl(p + "missing"), -2, "TTL missing");

    assert.equal(await r.mSet([[p + "a", "1"], [p + "b", "2"]]), "OK", "MSET");
    assert.deepEqual(await r.mGet([p + "a", p + "missing", p + "b"]), ["1", null, "2"], "MGET");
    assert.equal(await r.exists([p + "a", p + "b", p + "missing"]), 2, "EXISTS");
    assert.equal(await r.del([p + "a", p + "missing"]), 1, "DEL");

    const piped = await r.multi()
      .set(p + "p1", "x").get(p + "p1").incr(p + "pn").incr(p + "pn").get(p + "missing")
      .execAsPipeline();
    assert.deepEqual(piped, ["OK", "x", 1, 2, null], "pipeline");
    // Commands sent without awaiting each other are pipelined on the socket too.
    const burst = await Promise.all([
      r.set(p + "q", "1"), r.incr(p + "q"), r.get(p + "q"), r.get(p + "missing"),
    ]);
    assert.deepEqual(burst, ["OK", 2, "2", null], "auto-pipelined burst");

    const tx = await r.multi()
      .set(p + "t", "a").append(p + "t", "bc").get(p + "t").mGet([p + "t", p + "missing"])
      .exec();
    assert.deepEqual(tx, ["OK", 3, "abc", ["abc", null]], "MULTI/EXEC");

    // WATCH, then another client's write: EXEC is refused with WatchError.
    await r.set(p + "w", "0");
    assert.equal(await r.watch(p + "w"), "OK", "WATCH");
    await other.set(p + "w", "changed");
    await assert.rejects(r.multi().set(p + "w", "mine").exec(), WatchError,
      "EXEC after a WATCH conflict rejects with WatchError");
    assert.equal(await r.get(p + "w"), "changed", "value after WATCH conflict");
    // WATCH with no interference goes through.
    await r.watch(p + "w");
    assert.deepEqual(await r.multi().set(p + "w", "mine").exec(), ["OK"], "EXEC after WATCH");
    assert.equal(await r.get(p + "w"), "mine", "value after WATCH EXEC");

    // SCAN returns every key exactly once.
    const names = new Set();
    const fill = r.multi();
    for (let i = 0; i < 300; i++) {
      names.add(`${p}scan:${i}`);
      fill.set(`${p}scan:${i}`, "1");
    }
    await fill.execAsPipeline();
    const seen = [];
    for await (const keys of r.scanIterator({ MATCH: p + "scan:*", COUNT: 50 })) {
      seen.push(...keys);
    }
    assert.equal(seen.length, names.size, "SCAN key count (duplicates or misses)");
    assert.deepEqual(new Set(seen), names, "SCAN keys");

    await checkDataTypes(r, p);
    await checkPubSub(r, p);

    assert.equal(await r.echo("done"), "done", "ECHO");
    console.log(`node-redis ${require("redis/package.json").version} (${label}): ok`);
  } finally {
    r.destroy();
    other.destroy();
  }
}

// A reply map as a plain object: RESP3 maps may arrive with another prototype, which
// deepEqual would count as a difference.
const plain = (map) => ({ ...map });

// Hashes, lists, sets and sorted sets through node-redis's typed calls (same results under
// RESP2 and RESP3: node-redis maps both to one shape).
async function checkDataTypes(r, p) {
  const h = p + "h";
  assert.equal(await r.hSet(h, { f1: "v1", f2: "v2" }), 2, "HSET object");
  assert.equal(await r.hSet(h, "f3", "v3"), 1, "HSET field");
  assert.equal(await r.hSet(h, "f1", "v1b"), 0, "HSET update");
  assert.equal(await r.hGet(h, "f1"), "v1b", "HGET");
  assert.equal(await r.hGet(h, "nope"), null, "HGET missing field");
  assert.deepEqual(plain(await r.hGetAll(h)), { f1: "v1b", f2: "v2", f3: "v3" }, "HGETALL");
  assert.deepEqual(plain(await r.hGetAll(p + "missing")), {}, "HGETALL missing");
  assert.deepEqual(await r.hmGet(h, ["f1", "nope", "f2"]), ["v1b", null, "v2"], "HMGET");
  assert.equal(await r.hIncrBy(h, "n", 5), 5, "HINCRBY");
  assert.equal(await r.hLen(h), 4, "HLEN");
  assert.equal(await r.hExists(h, "f2"), 1, "HEXISTS");
  assert.equal(await r.hDel(h, ["f2", "nope"]), 1, "HDEL");
  assert.deepEqual((await r.hKeys(h)).sort(), ["f1", "f3", "n"], "HKEYS");
  assert.equal(await r.type(h), "hash", "TYPE hash");
  await assert.rejects(r.get(h), /WRONGTYPE/, "GET on a hash");

  const l = p + "l";
  assert.equal(await r.lPush(l, ["a", "b", "c"]), 3, "LPUSH");
  assert.equal(await r.rPush(l, ["d", "e"]), 5, "RPUSH");
  assert.deepEqual(await r.lRange(l, 0, -1), ["c", "b", "a", "d", "e"], "LRANGE");
  assert.deepEqual(await r.lRange(l, -2, -1), ["d", "e"], "LRANGE negative");
  assert.equal(await r.lLen(l), 5, "LLEN");
  assert.equal(await r.lIndex(l, 1), "b", "LINDEX");
  assert.equal(await r.lPop(l), "c", "LPOP");
  assert.deepEqual(await r.rPopCount(l, 2), ["e", "d"], "RPOP count");
  assert.equal(await r.lPop(p + "missing"), null, "LPOP missing");
  assert.equal(await r.del(l), 1, "DEL list");

  const s = p + "s";
  assert.equal(await r.sAdd(s, ["x", "y", "z", "x"]), 3, "SADD");
  assert.deepEqual([...(await r.sMembers(s))].sort(), ["x", "y", "z"], "SMEMBERS");
  assert.equal(await r.sIsMember(s, "y"), 1, "SISMEMBER");
  assert.equal(await r.sIsMember(s, "w"), 0, "SISMEMBER missing");
  assert.equal(await r.sCard(s), 3, "SCARD");
  assert.equal(await r.sRem(s, ["y", "w"]), 1, "SREM");
  assert.equal(await r.type(s), "set", "TYPE set");

  const z = p + "z";
  assert.equal(await r.zAdd(z, [
    { score: 1, value: "a" }, { score: 2.5, value: "b" }, { score: -1, value: "c" },
  ]), 3, "ZADD");
  assert.equal(await r.zAdd(z, { score: 1.1, value: "a" }), 0, "ZADD update");
  assert.deepEqual(await r.zRange(z, 0, -1), ["c", "a", "b"], "ZRANGE");
  assert.deepEqual(
    (await r.zRangeWithScores(z, 0, -1)).map(plain),
    [{ value: "c", score: -1 }, { value: "a", score: 1.1 }, { value: "b", score: 2.5 }],
    "ZRANGE WITHSCORES",
  );
  assert.equal(await r.zScore(z, "b"), 2.5, "ZSCORE");
  assert.equal(await r.zScore(z, "nope"), null, "ZSCORE missing");
  assert.equal(await r.zIncrBy(z, 2, "c"), 1, "ZINCRBY");
  assert.equal(await r.zRank(z, "c"), 0, "ZRANK");
  assert.equal(await r.zCard(z), 3, "ZCARD");
  assert.equal(await r.zRem(z, ["b", "nope"]), 1, "ZREM");
  assert.equal(await r.type(z), "zset", "TYPE zset");

  // A transaction over several types.
  const tx = await r.multi()
    .hSet(p + "th", "f", "v").rPush(p + "tl", ["1", "2"]).sAdd(p + "ts", "m")
    .zAdd(p + "tz", { score: 2, value: "m" })
    .lRange(p + "tl", 0, -1).zScore(p + "tz", "m")
    .exec();
  assert.deepEqual(tx, [1, 2, 1, 1, ["1", "2"], 2], "MULTI/EXEC over types");
}

// A subscribe/publish round trip on a duplicate connection, with a pattern subscription
// beside the channel's.
async function checkPubSub(r, p) {
  const channel = p + "chan";
  const sub = r.duplicate();
  sub.on("error", () => {});
  await sub.connect();
  try {
    const got = [];
    let arrived;
    const both = new Promise((resolve) => { arrived = resolve; });
    const note = (entry) => { got.push(entry); if (got.length === 2) arrived(); };
    await sub.subscribe(channel, (message, ch) => note(["message", ch, message]));
    await sub.pSubscribe(p + "ch*", (message, ch) => note(["pmessage", ch, message]));
    assert.deepEqual(plain(await r.pubSubNumSub(channel)), { [channel]: 1 }, "PUBSUB NUMSUB");
    assert.equal(await r.publish(channel, "hello"), 2, "PUBLISH");
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error("published messages did not arrive in 5 s")), 5000);
    });
    await Promise.race([both, timeout]).finally(() => clearTimeout(timer));
    assert.deepEqual(got.sort(), [["message", channel, "hello"], ["pmessage", channel, "hello"]],
      "messages received");
    await sub.unsubscribe(channel);
    await sub.pUnsubscribe();
    assert.equal(await r.publish(channel, "again"), 0, "PUBLISH after UNSUBSCRIBE");
  } finally {
    sub.destroy();
  }
}

(async () => {
  const variants = [
    ["default", {}],
    ["RESP3", { RESP: 3 }],
    ["RESP2", { RESP: 2 }],
  ];
  for (const [label, extra] of variants) {
    try {
      await check(label, extra);
    } catch (e) {
      console.error(`node-redis (${label}) FAILED: ${e && e.stack ? e.stack : e}`);
      process.exit(1);
    }
  }
  process.exit(0);
})();
