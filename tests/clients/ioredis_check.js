// ioredis 6 against a minikv node: `node ioredis_check.js PORT`.
//
// Runs the checks with ioredis's default handshake (HELLO 3, then the ready check's INFO),
// with RESP3 maps decoded as objects, and with protocol 2. Asserts the values read back and
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

    assert.equal(await r.echo("done"), "done", "ECHO");
    console.log(`ioredis ${require("ioredis/package.json").version} (${label}): ok`);
  } finally {
    r.disconnect();
    other.disconnect();
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
