"""redis-py 8 against a minikv node: `python3 redis_py_check.py PORT`.

Runs every check twice, with redis-py's default protocol (it opens the connection with
HELLO 3) and with protocol=2, and asserts the values read back: strings, expiry,
transactions, SCAN, hashes, lists, sets, sorted sets and a publish/subscribe round trip. Exits non-zero with a
message naming the first mismatch. Run by tests/clients.rs.
"""

import os
import sys
import time

import redis

# Keys of one run never meet those of an earlier run against the same node.
RUN = f"{os.getpid()}.{time.time_ns()}"
TIMEOUT = 5  # seconds: a reply the client cannot parse fails the check instead of hanging it


def expect(what, got, want):
    if got != want:
        raise AssertionError(f"{what}: expected {want!r}, got {got!r}")


def client(port, protocol):
    kwargs = dict(
        host="127.0.0.1",
        port=port,
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        decode_responses=True,
    )
    if protocol is not None:
        kwargs["protocol"] = protocol
    return redis.Redis(**kwargs)


def check(port, protocol):
    label = "default" if protocol is None else f"protocol={protocol}"
    p = f"py:{RUN}:{label}:"
    r = client(port, protocol)
    other = client(port, protocol)

    expect("PING", r.ping(), True)
    # The handshake negotiated what was asked for: by default HELLO 3, answered with a map.
    wanted_proto = 3 if protocol is None else protocol
    conn = r.connection_pool.get_connection()
    try:
        meta = conn.handshake_metadata
        if protocol is None:
            if not isinstance(meta, dict):
                raise AssertionError(f"HELLO 3 handshake: expected a map, got {meta!r}")
            expect("handshake proto", meta.get("proto", meta.get(b"proto")), 3)
            expect("handshake server", str(meta.get("server", meta.get(b"server"))), "redis")
    finally:
        r.connection_pool.release(conn)
    # HELLO without a version reports the connection's protocol and keeps it.
    hello = r.execute_command("HELLO")
    if isinstance(hello, list):  # RESP2: a flat list of field, value
        hello = dict(zip(hello[::2], hello[1::2]))
    if not isinstance(hello, dict):
        raise AssertionError(f"HELLO: expected a map, got {hello!r}")
    expect("HELLO server", hello.get("server"), "redis")
    expect("HELLO proto", int(hello.get("proto")), wanted_proto)
    for field in ("version", "id", "mode", "role", "modules"):
        if field not in hello:
            raise AssertionError(f"HELLO: no {field!r} field in {hello!r}")

    info = r.info()
    if not isinstance(info, dict):
        raise AssertionError(f"INFO: expected a dict, got {type(info)}")
    version = info.get("redis_version")
    if not isinstance(version, str) or not version[:1].isdigit():
        raise AssertionError(f"INFO redis_version: got {version!r}")
    expect("INFO loading", info.get("loading"), 0)
    server = r.info("server")
    expect("INFO server redis_version", server.get("redis_version"), version)

    # Strings.
    expect("SET", r.set(p + "k", "v1"), True)
    expect("GET", r.get(p + "k"), "v1")
    started = time.monotonic()
    expect("GET missing", r.get(p + "missing"), None)
    elapsed = time.monotonic() - started
    if elapsed > 1:
        raise AssertionError(f"GET missing took {elapsed:.2f}s")
    expect("SET NX on existing", r.set(p + "k", "v2", nx=True), None)
    expect("GET after SET NX", r.get(p + "k"), "v1")
    expect("INCR new", r.incr(p + "n"), 1)
    expect("INCRBY", r.incrby(p + "n", 41), 42)
    expect("GET counter", r.get(p + "n"), "42")
    expect("INCRBYFLOAT", r.incrbyfloat(p + "f", 1.5), 1.5)

    # Expiry.
    expect("EXPIRE", r.expire(p + "k", 100), True)
    ttl = r.ttl(p + "k")
    if not 98 <= ttl <= 100:
        raise AssertionError(f"TTL after EXPIRE 100: got {ttl}")
    expect("TTL no expiry", r.ttl(p + "n"), -1)
    expect("TTL missing", r.ttl(p + "missing"), -2)
    expect("PERSIST", r.persist(p + "k"), True)
    expect("TTL after PERSIST", r.ttl(p + "k"), -1)

    # Several keys.
    expect("MSET", r.mset({p + "a": "1", p + "b": "2", p + "c": "3"}), True)
    expect("MGET", r.mget([p + "a", p + "b", p + "missing", p + "c"]), ["1", "2", None, "3"])
    expect("EXISTS", r.exists(p + "a", p + "b", p + "missing"), 2)
    expect("DEL", r.delete(p + "a", p + "missing"), 1)
    expect("TYPE", r.type(p + "b"), "string")

    # Pipelines without and with a transaction.
    pipe = r.pipeline(transaction=False)
    pipe.set(p + "p1", "x").get(p + "p1").incr(p + "pn").incr(p + "pn").get(p + "missing")
    expect("pipeline", pipe.execute(), [True, "x", 1, 2, None])
    pipe = r.pipeline(transaction=True)
    pipe.set(p + "t1", "a").append(p + "t1", "bc").get(p + "t1").mget(p + "t1", p + "missing")
    expect("MULTI/EXEC pipeline", pipe.execute(), [True, 3, "abc", ["abc", None]])
    expect("GET after MULTI/EXEC", r.get(p + "t1"), "abc")

    # A queued command that fails at run time does not abort the others.
    pipe = r.pipeline(transaction=True)
    pipe.set(p + "str", "text").incr(p + "str").set(p + "after", "ok")
    results = pipe.execute(raise_on_error=False)
    expect("MULTI/EXEC results count", len(results), 3)
    if not isinstance(results[1], redis.ResponseError):
        raise AssertionError(f"INCR on text inside EXEC: expected an error, got {results[1]!r}")
    expect("GET after partially failing EXEC", r.get(p + "after"), "ok")

    # WATCH: an untouched key lets the transaction through.
    r.set(p + "w", "0")
    with r.pipeline() as pipe:
        pipe.watch(p + "w")
        value = int(pipe.get(p + "w"))
        pipe.multi()
        pipe.set(p + "w", str(value + 1))
        expect("WATCH untouched EXEC", pipe.execute(), [True])
    expect("GET after WATCH EXEC", r.get(p + "w"), "1")
    # WATCH: another client's write makes EXEC fail with WatchError.
    with r.pipeline() as pipe:
        pipe.watch(p + "w")
        pipe.get(p + "w")
        other.set(p + "w", "changed")
        pipe.multi()
        pipe.set(p + "w", "mine")
        try:
            pipe.execute()
        except redis.WatchError:
            pass
        else:
            raise AssertionError("WATCH conflict: EXEC succeeded, expected WatchError")
    expect("GET after WATCH conflict", r.get(p + "w"), "changed")
    # The transaction helper retries until it wins.
    attempts = []

    def bump(pipe):
        if not attempts:
            other.set(p + "w2", "10")
        attempts.append(1)
        current = int(pipe.get(p + "w2") or 0)
        pipe.multi()
        pipe.set(p + "w2", str(current + 1))

    r.set(p + "w2", "0")
    r.transaction(bump, p + "w2")
    expect("transaction() attempts", len(attempts), 2)
    expect("GET after transaction()", r.get(p + "w2"), "11")

    # SCAN returns every key exactly once.
    pipe = r.pipeline(transaction=False)
    names = {f"{p}scan:{i}" for i in range(500)}
    for name in names:
        pipe.set(name, "1")
    pipe.execute()
    seen = list(r.scan_iter(match=p + "scan:*", count=37))
    expect("scan_iter count (duplicates or misses)", len(seen), 500)
    expect("scan_iter keys", set(seen), names)
    expect("DBSIZE at least", r.dbsize() >= 500, True)

    check_data_types(r, p)
    check_pubsub(r, p)

    # The connection still answers after all of the above (no desynchronised replies).
    expect("ECHO", r.echo("done"), "done")
    r.close()
    other.close()
    print(f"redis-py {redis.__version__} ({label}): ok")


def check_data_types(r, p):
    """Hashes, lists, sets and sorted sets through redis-py's typed calls."""
    # Hashes.
    h = p + "h"
    expect("HSET mapping", r.hset(h, mapping={"f1": "v1", "f2": "v2"}), 2)
    expect("HSET field", r.hset(h, "f3", "v3"), 1)
    expect("HSET update", r.hset(h, "f1", "v1b"), 0)
    expect("HGET", r.hget(h, "f1"), "v1b")
    expect("HGET missing field", r.hget(h, "nope"), None)
    expect("HGETALL", r.hgetall(h), {"f1": "v1b", "f2": "v2", "f3": "v3"})
    expect("HGETALL missing", r.hgetall(p + "missing"), {})
    expect("HMGET", r.hmget(h, ["f1", "nope", "f2"]), ["v1b", None, "v2"])
    expect("HINCRBY", r.hincrby(h, "n", 5), 5)
    expect("HINCRBYFLOAT", r.hincrbyfloat(h, "x", 1.5), 1.5)
    expect("HLEN", r.hlen(h), 5)
    expect("HEXISTS", r.hexists(h, "f2"), True)
    expect("HEXISTS missing", r.hexists(h, "nope"), False)
    expect("HDEL", r.hdel(h, "f2", "nope"), 1)
    expect("HKEYS", sorted(r.hkeys(h)), ["f1", "f3", "n", "x"])
    expect("HVALS", sorted(r.hvals(h)), ["1.5", "5", "v1b", "v3"])
    expect("HSETNX existing", r.hsetnx(h, "f1", "other"), False)
    expect("HSCAN", dict(r.hscan_iter(h, count=2)), r.hgetall(h))
    expect("TYPE hash", r.type(h), "hash")
    try:
        r.get(h)
    except redis.ResponseError as e:
        expect("GET on a hash", str(e).startswith("WRONGTYPE"), True)
    else:
        raise AssertionError("GET on a hash: expected a WRONGTYPE error")

    # Lists.
    ls = p + "l"
    expect("LPUSH", r.lpush(ls, "a", "b", "c"), 3)
    expect("RPUSH", r.rpush(ls, "d", "e"), 5)
    expect("LRANGE", r.lrange(ls, 0, -1), ["c", "b", "a", "d", "e"])
    expect("LRANGE negative", r.lrange(ls, -2, -1), ["d", "e"])
    expect("LRANGE out of range", r.lrange(ls, 10, 20), [])
    expect("LLEN", r.llen(ls), 5)
    expect("LINDEX", r.lindex(ls, 1), "b")
    expect("LINDEX out of range", r.lindex(ls, 99), None)
    expect("LPOP", r.lpop(ls), "c")
    expect("RPOP", r.rpop(ls), "e")
    expect("RPOP count", r.rpop(ls, 2), ["d", "a"])
    expect("LPOP missing", r.lpop(p + "missing"), None)
    expect("LPOP count missing", r.lpop(p + "missing", 2), None)
    expect("LPOP last", r.lpop(ls), "b")
    expect("emptied list deleted", r.exists(ls), 0)
    expect("RPUSH again", r.rpush(ls, "x", "y", "x"), 3)
    expect("LREM", r.lrem(ls, 0, "x"), 2)
    expect("LSET", r.lset(ls, 0, "z"), True)
    expect("LRANGE after LSET", r.lrange(ls, 0, -1), ["z"])
    expect("TYPE list", r.type(ls), "list")

    # Sets.
    st = p + "s"
    expect("SADD", r.sadd(st, "x", "y", "z", "x"), 3)
    expect("SADD existing", r.sadd(st, "x"), 0)
    expect("SMEMBERS", r.smembers(st), {"x", "y", "z"})
    expect("SMEMBERS missing", r.smembers(p + "missing"), set())
    expect("SISMEMBER", r.sismember(st, "y"), True)
    expect("SISMEMBER missing", r.sismember(st, "w"), False)
    expect("SMISMEMBER", r.smismember(st, ["x", "w"]), [True, False])
    expect("SCARD", r.scard(st), 3)
    expect("SREM", r.srem(st, "y", "w"), 1)
    expect("SADD other", r.sadd(p + "s2", "z", "q"), 2)
    expect("SINTER", r.sinter(st, p + "s2"), {"z"})
    expect("SUNION", r.sunion(st, p + "s2"), {"x", "z", "q"})
    expect("SDIFF", r.sdiff(st, p + "s2"), {"x"})
    expect("SSCAN", set(r.sscan_iter(st, count=1)), {"x", "z"})
    expect("TYPE set", r.type(st), "set")

    # Sorted sets.
    zs = p + "z"
    expect("ZADD", r.zadd(zs, {"a": 1, "b": 2.5, "c": -1}), 3)
    expect("ZADD update", r.zadd(zs, {"a": 1.1}), 0)
    expect("ZADD NX", r.zadd(zs, {"a": 9, "d": 4}, nx=True), 1)
    expect("ZRANGE", r.zrange(zs, 0, -1), ["c", "a", "b", "d"])
    expect("ZRANGE withscores", r.zrange(zs, 0, -1, withscores=True),
           [("c", -1.0), ("a", 1.1), ("b", 2.5), ("d", 4.0)])
    expect("ZREVRANGE withscores", r.zrevrange(zs, 0, 1, withscores=True),
           [("d", 4.0), ("b", 2.5)])
    expect("ZRANGEBYSCORE", r.zrangebyscore(zs, 0, "(4"), ["a", "b"])
    expect("ZSCORE", r.zscore(zs, "a"), 1.1)
    expect("ZSCORE missing", r.zscore(zs, "nope"), None)
    expect("ZMSCORE", r.zmscore(zs, ["b", "nope"]), [2.5, None])
    expect("ZINCRBY", r.zincrby(zs, 2, "c"), 1.0)
    expect("ZRANK", r.zrank(zs, "c"), 0)
    expect("ZREVRANK", r.zrevrank(zs, "c"), 3)
    expect("ZCARD", r.zcard(zs), 4)
    expect("ZCOUNT", r.zcount(zs, 1, 3), 3)
    expect("ZREM", r.zrem(zs, "b", "nope"), 1)
    expect("ZPOPMIN", r.zpopmin(zs), [("c", 1.0)])
    expect("ZSCAN", dict(r.zscan_iter(zs)), {"a": 1.1, "d": 4.0})
    expect("TYPE zset", r.type(zs), "zset")

    # A pipeline and a transaction over several types.
    pipe = r.pipeline(transaction=True)
    pipe.hset(p + "ph", "f", "v").rpush(p + "pl", "1", "2").sadd(p + "ps", "m")
    pipe.zadd(p + "pz", {"m": 2}).hgetall(p + "ph").lrange(p + "pl", 0, -1)
    pipe.smembers(p + "ps").zrange(p + "pz", 0, -1, withscores=True)
    expect("MULTI/EXEC over types", pipe.execute(),
           [1, 2, 1, 1, {"f": "v"}, ["1", "2"], {"m"}, [("m", 2.0)]])
    expect("SCAN TYPE hash", sorted(r.scan_iter(match=p + "p*", _type="hash")), [p + "ph"])


def check_pubsub(r, p):
    """A subscribe/publish round trip, with a pattern subscription beside it."""
    channel = p + "chan"
    ps = r.pubsub()
    ps.subscribe(channel)
    ps.psubscribe(p + "ch*")
    for want in (("subscribe", channel, 1), ("psubscribe", p + "ch*", 2)):
        got = ps.get_message(timeout=TIMEOUT)
        if got is None:
            raise AssertionError(f"no {want[0]} confirmation")
        expect("subscription confirmation", (got["type"], got["channel"], got["data"]), want)
    expect("PUBSUB NUMSUB", r.pubsub_numsub(channel), [(channel, 1)])
    expect("PUBLISH", r.publish(channel, "hello"), 2)
    got = [ps.get_message(timeout=TIMEOUT) for _ in range(2)]
    expect("messages", sorted((m["type"], m["pattern"], m["channel"], m["data"]) for m in got
                              if m is not None),
           [("message", None, channel, "hello"), ("pmessage", p + "ch*", channel, "hello")])
    ps.unsubscribe(channel)
    ps.punsubscribe()
    for _ in range(2):
        got = ps.get_message(timeout=TIMEOUT)
        if got is None or got["type"] not in ("unsubscribe", "punsubscribe"):
            raise AssertionError(f"unsubscribe confirmation: got {got!r}")
    expect("PUBLISH nobody", r.publish(channel, "again"), 0)
    ps.close()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: redis_py_check.py PORT")
    port = int(sys.argv[1])
    major = int(redis.__version__.split(".")[0])
    if major != 8:
        sys.exit(f"redis-py 8.x expected, found {redis.__version__}")
    for protocol in (None, 2):
        try:
            check(port, protocol)
        except Exception as e:  # report which variant failed, then fail
            label = "default" if protocol is None else f"protocol={protocol}"
            print(f"redis-py ({label}) FAILED: {type(e).__name__}: {e}", file=sys.stderr)
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
