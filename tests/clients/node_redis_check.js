// node-redis 6 against a minikv node: `node node_redis_check.js PORT`.
//
// Runs the checks with node-redis's default handshake (HELLO 3 in 6.x), with `RESP: 3`
// given explicitly, and with `RESP: 2`. Asserts the values read back and exits non-zero
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

    assert.equal(await r.echo("done"), "done", "ECHO");
    console.log(`node-redis ${require("redis/package.json").version} (${label}): ok`);
  } finally {
    r.destroy();
    other.destroy();
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
