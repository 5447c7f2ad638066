"""redis-py 8's pubsub against a minikv node: subscribe, psubscribe, messages, get_message,
PUBSUB introspection and unsubscribe, under RESP3 (redis-py 8's default) and RESP2.

Usage: python3 redis_py_pubsub.py PORT. Exits non-zero on the first mismatch."""

import sys
import time

import redis


def wait_message(p, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = p.get_message(timeout=0.5)
        if m is not None:
            return m
    raise AssertionError("no message within %.0f s" % timeout)


def check(port, protocol):
    r = redis.Redis(port=port, protocol=protocol, decode_responses=True)
    p = r.pubsub()
    p.subscribe("news")
    m = wait_message(p)
    assert m["type"] == "subscribe" and m["channel"] == "news" and m["data"] == 1, m
    p.psubscribe("sp*")
    m = wait_message(p)
    assert m["type"] == "psubscribe" and m["channel"] == "sp*" and m["data"] == 2, m
    assert r.pubsub_numsub("news") == [("news", 1)], r.pubsub_numsub("news")
    assert r.pubsub_numpat() == 1
    assert r.pubsub_channels() == ["news"]
    assert r.publish("news", "hello") == 1
    m = wait_message(p)
    assert m["type"] == "message" and m["channel"] == "news" and m["data"] == "hello", m
    assert r.publish("sport", "goal") == 1
    m = wait_message(p)
    assert m["type"] == "pmessage" and m["pattern"] == "sp*", m
    assert m["channel"] == "sport" and m["data"] == "goal", m
    # A handler-driven subscription, as applications write them.
    got = []
    p.subscribe(**{"events": lambda msg: got.append(msg["data"])})
    wait_message(p)
    r.publish("events", "e1")
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        p.get_message(timeout=0.5)
    assert got == ["e1"], got
    p.unsubscribe()
    p.punsubscribe()
    deadline = time.monotonic() + 10
    while r.pubsub_numsub("news") != [("news", 0)] and time.monotonic() < deadline:
        p.get_message(timeout=0.1)
    assert r.pubsub_numsub("news") == [("news", 0)]
    p.close()
    print("redis-py pubsub protocol=%d: ok" % protocol)


def main():
    port = int(sys.argv[1])
    for protocol in (3, 2):
        check(port, protocol)


if __name__ == "__main__":
    main()
