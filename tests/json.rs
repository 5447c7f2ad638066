//! The spec's JSON protocol over raw TCP: every command, the exact reply shapes, the framing
//! cases (half-close, no newline, many objects per write) and bad input.

mod common;

use common::raw::{connect, read_to_eof, send, JsonConn};
use common::{spawn_node, TestNode};
use serde_json::{json, Value};

/// A node with a recognisable id, so `server_id` is checked for real.
async fn node() -> TestNode {
    spawn_node(|c| c.id = 7).await
}

#[tokio::test]
async fn set_get_delete_have_the_spec_reply_shapes() {
    let node = node().await;
    let mut c = JsonConn::connect(node.addr).await;

    let reply = c
        .request(json!({"command": "SET", "key": "user:123", "value": "John Doe"}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "success", "message": "Key set successfully", "key": "user:123",
               "server_id": 7})
    );

    let reply = c
        .request(json!({"command": "GET", "key": "user:123"}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "success", "key": "user:123", "value": "John Doe", "ttl": -1,
               "server_id": 7})
    );

    let reply = c
        .request(json!({"command": "DELETE", "key": "user:123"}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "success", "message": "Key deleted successfully", "key": "user:123",
               "server_id": 7})
    );

    let not_found = |key: &str| {
        json!({"status": "error", "message": "Key not found", "value": null, "key": key,
               "server_id": 7})
    };
    let reply = c
        .request(json!({"command": "GET", "key": "user:123"}))
        .await;
    assert_eq!(reply, not_found("user:123"));
    let reply = c
        .request(json!({"command": "DELETE", "key": "user:123"}))
        .await;
    assert_eq!(reply, not_found("user:123"));
    let reply = c.request(json!({"command": "DEL", "key": "never"})).await;
    assert_eq!(reply, not_found("never"));
    let reply = c
        .request(json!({"command": "EXPIRE", "key": "never", "ttl": 10}))
        .await;
    assert_eq!(reply, not_found("never"));

    // DEL is accepted as DELETE.
    c.request(json!({"command": "SET", "key": "d", "value": "x"}))
        .await;
    let reply = c.request(json!({"command": "DEL", "key": "d"})).await;
    assert_eq!(reply["message"], "Key deleted successfully");
}

#[tokio::test]
async fn ttl_on_set_get_and_expire() {
    let node = node().await;
    let mut c = JsonConn::connect(node.addr).await;

    let reply = c
        .request(json!({"command": "SET", "key": "s", "value": "v", "ttl": 60}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "success", "message": "Key set successfully", "key": "s", "ttl": 60,
               "server_id": 7})
    );
    let reply = c.request(json!({"command": "GET", "key": "s"})).await;
    assert_eq!(reply["value"], "v");
    let ttl = reply["ttl"].as_i64().expect("ttl is an integer");
    assert!(
        (59..=60).contains(&ttl),
        "GET ttl right after SET ttl 60: {ttl}"
    );

    c.request(json!({"command": "SET", "key": "e", "value": "v"}))
        .await;
    let reply = c
        .request(json!({"command": "EXPIRE", "key": "e", "ttl": 300}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "success", "message": "Expiration set successfully", "key": "e",
               "ttl": 300, "server_id": 7})
    );
    let reply = c.request(json!({"command": "GET", "key": "e"})).await;
    let ttl = reply["ttl"].as_i64().expect("ttl is an integer");
    assert!(
        (299..=300).contains(&ttl),
        "GET ttl after EXPIRE 300: {ttl}"
    );

    // A SET without ttl clears the old one; null is the same as no ttl.
    c.request(json!({"command": "SET", "key": "e", "value": "w", "ttl": null}))
        .await;
    let reply = c.request(json!({"command": "GET", "key": "e"})).await;
    assert_eq!(reply["ttl"], -1);
}

#[tokio::test]
async fn stats_keys_and_ping() {
    let node = node().await;
    let mut c = JsonConn::connect(node.addr).await;
    for (key, ttl) in [("user:1", Some(100)), ("user:2", None), ("order:1", None)] {
        let mut req = json!({"command": "SET", "key": key, "value": "v"});
        if let Some(ttl) = ttl {
            req["ttl"] = json!(ttl);
        }
        assert_eq!(c.request(req).await["status"], "success");
    }
    c.request(json!({"command": "GET", "key": "user:1"})).await;
    c.request(json!({"command": "GET", "key": "missing"})).await;
    c.request(json!({"command": "DELETE", "key": "order:1"}))
        .await;
    c.request(json!({"command": "EXPIRE", "key": "user:2", "ttl": 50}))
        .await;

    let reply = c
        .request(json!({"command": "KEYS", "pattern": "user:*"}))
        .await;
    assert_eq!(reply["status"], "success");
    assert_eq!(reply["server_id"], 7);
    assert_eq!(reply["count"], 2);
    let mut keys: Vec<String> = serde_json::from_value(reply["keys"].clone()).expect("key list");
    keys.sort();
    assert_eq!(keys, ["user:1", "user:2"]);
    let reply = c.request(json!({"command": "KEYS"})).await;
    assert_eq!(reply["count"], 2, "default pattern is *");
    let reply = c
        .request(json!({"command": "KEYS", "pattern": "nothing*"}))
        .await;
    assert_eq!(
        reply,
        json!({"status": "success", "keys": [], "count": 0, "server_id": 7})
    );

    let reply = c.request(json!({"command": "PING"})).await;
    assert_eq!(
        reply,
        json!({"status": "success", "message": "PONG", "server_id": 7})
    );

    // 11 requests so far (3 SET, 2 GET, 1 DELETE, 1 EXPIRE, 3 KEYS, 1 PING); STATS reports
    // the requests before itself.
    let reply = c.request(json!({"command": "STATS"})).await;
    assert_eq!(
        reply,
        json!({"status": "success", "server_id": 7, "stats": {
            "total_requests": 11, "get": 2, "set": 3, "delete": 1, "expire": 1,
            "total_keys": 2, "keys_with_ttl": 2}})
    );
    let reply = c.request(json!({"command": "STATS"})).await;
    assert_eq!(reply["stats"]["total_requests"], 12);
}

#[tokio::test]
async fn command_names_are_case_insensitive() {
    let node = node().await;
    let mut c = JsonConn::connect(node.addr).await;
    let reply = c
        .request(json!({"command": "set", "key": "k", "value": "v"}))
        .await;
    assert_eq!(reply["message"], "Key set successfully");
    let reply = c.request(json!({"command": "Get", "key": "k"})).await;
    assert_eq!(reply["value"], "v");
    let reply = c
        .request(json!({"command": "eXpIrE", "key": "k", "ttl": 9}))
        .await;
    assert_eq!(reply["message"], "Expiration set successfully");
    let reply = c.request(json!({"command": "keys"})).await;
    assert_eq!(reply["count"], 1);
    let reply = c.request(json!({"command": "stats"})).await;
    assert_eq!(reply["stats"]["keys_with_ttl"], 1);
    let reply = c.request(json!({"command": "ping"})).await;
    assert_eq!(reply["message"], "PONG");
    let reply = c.request(json!({"command": "delete", "key": "k"})).await;
    assert_eq!(reply["message"], "Key deleted successfully");
    c.request(json!({"command": "SET", "key": "k2", "value": "v"}))
        .await;
    let reply = c.request(json!({"command": "del", "key": "k2"})).await;
    assert_eq!(reply["message"], "Key deleted successfully");
}

#[tokio::test]
async fn values_that_are_not_utf8_come_back_as_base64() {
    let node = node().await;
    // Set a binary value through RESP...
    let mut r = connect(node.addr).await;
    send(
        &mut r,
        b"*3\r\n$3\r\nSET\r\n$3\r\nbin\r\n$3\r\n\xff\x00\x01\r\n",
    )
    .await;
    common::raw::expect_bytes(&mut r, b"+OK\r\n").await;
    // ...and read it through JSON: nothing lost, no lossy replacement characters.
    let mut c = JsonConn::connect(node.addr).await;
    let reply = c.request(json!({"command": "GET", "key": "bin"})).await;
    assert_eq!(
        reply,
        json!({"status": "success", "key": "bin", "value_base64": "/wAB", "ttl": -1,
               "server_id": 7})
    );
    // Unicode text is plain `value`, unescaped.
    c.request(json!({"command": "SET", "key": "ключ", "value": "значение ✓"}))
        .await;
    let reply = c.request(json!({"command": "GET", "key": "ключ"})).await;
    assert_eq!(reply["value"], "значение ✓");
    assert_eq!(reply["key"], "ключ");
    // A value stored through JSON is the same bytes through RESP.
    send(&mut r, "GET ключ\r\n".as_bytes()).await;
    let value = "значение ✓";
    common::raw::expect_bytes(
        &mut r,
        format!("${}\r\n{value}\r\n", value.len()).as_bytes(),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn one_object_then_half_close_gets_one_reply() {
    let node = node().await;
    let mut s = connect(node.addr).await;
    send(
        &mut s,
        br#"{"command": "SET", "key": "half", "value": "closed"}"#,
    )
    .await;
    tokio::io::AsyncWriteExt::shutdown(&mut s)
        .await
        .expect("half-close");
    let out = read_to_eof(&mut s).await;
    let text = String::from_utf8(out).expect("UTF-8 reply");
    assert_eq!(
        text.matches('\n').count(),
        1,
        "exactly one reply line: {text:?}"
    );
    assert!(text.ends_with('\n'));
    let reply: Value = serde_json::from_str(&text).expect("JSON reply");
    assert_eq!(reply["message"], "Key set successfully");

    // The write really happened.
    let mut c = JsonConn::connect(node.addr).await;
    let reply = c.request(json!({"command": "GET", "key": "half"})).await;
    assert_eq!(reply["value"], "closed");
}

#[tokio::test]
async fn one_object_without_newline_is_answered_while_the_connection_stays_open() {
    let node = node().await;
    let mut c = JsonConn::connect(node.addr).await;
    // Exactly what the spec's Python client does: send the object, then wait in recv.
    c.send_raw(br#"{"command": "PING"}"#).await;
    let reply = c.reply().await;
    assert_eq!(reply["message"], "PONG");
    // Leading whitespace before the first object is fine, too.
    c.send_raw(b"  \n\t{\"command\": \"PING\"}").await;
    assert_eq!(c.reply().await["message"], "PONG");
}

#[tokio::test]
async fn many_objects_in_one_write_with_and_without_newlines_answer_in_order() {
    let node = node().await;
    let mut c = JsonConn::connect(node.addr).await;
    let mut batch = String::new();
    for i in 0..50 {
        batch.push_str(&format!(
            r#"{{"command":"SET","key":"k","value":"v{i}"}}{{"command":"GET","key":"k"}}"#
        ));
        // Alternate between no separator, a newline and other whitespace.
        batch.push_str(["", "\n", " \r\n\t"][i % 3]);
    }
    c.send_raw(batch.as_bytes()).await;
    for i in 0..50 {
        let set = c.reply().await;
        assert_eq!(set["message"], "Key set successfully", "SET #{i}");
        let get = c.reply().await;
        assert_eq!(get["value"], format!("v{i}"), "GET #{i} sees SET #{i}");
    }

    // Braces and quotes inside strings do not confuse the framing.
    let tricky =
        r#"{"command":"SET","key":"br{ace}","value":"}{\"[\\"}{"command":"GET","key":"br{ace}"}"#;
    c.send_raw(tricky.as_bytes()).await;
    assert_eq!(c.reply().await["status"], "success");
    assert_eq!(c.reply().await["value"], "}{\"[\\");
}

#[tokio::test]
async fn an_object_split_across_writes_is_reassembled() {
    let node = node().await;
    let mut c = JsonConn::connect(node.addr).await;
    let request = br#"{"command": "SET", "key": "split", "value": "in pieces"}"#;
    for chunk in request.chunks(5) {
        c.send_raw(chunk).await;
        tokio::task::yield_now().await;
    }
    assert_eq!(c.reply().await["message"], "Key set successfully");
    let reply = c.request(json!({"command": "GET", "key": "split"})).await;
    assert_eq!(reply["value"], "in pieces");
}

// ---------------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bad_requests_get_error_objects_and_the_connection_continues() {
    let node = node().await;
    let mut c = JsonConn::connect(node.addr).await;

    let cases = [
        (json!({"command": "FLY", "key": "k"}), "unknown command"),
        (json!({"command": "GET"}), "missing field 'key'"),
        (json!({"key": "k", "value": "v"}), "missing field 'command'"),
        (
            json!({"command": "SET", "key": "k"}),
            "missing field 'value'",
        ),
        (
            json!({"command": "EXPIRE", "key": "k"}),
            "missing field 'ttl'",
        ),
        (json!({"command": 5}), "field 'command' must be a string"),
        (
            json!({"command": "GET", "key": ["a"]}),
            "field 'key' must be a string",
        ),
        (
            json!({"command": "SET", "key": "k", "value": {"nested": 1}}),
            "field 'value' must be a string",
        ),
        (
            json!({"command": "SET", "key": "k", "value": "v", "ttl": "ten"}),
            "field 'ttl' must be an integer number of seconds",
        ),
        (
            json!({"command": "EXPIRE", "key": "k", "ttl": 1.5}),
            "field 'ttl' must be an integer number of seconds",
        ),
        (
            json!({"command": "KEYS", "pattern": false}),
            "field 'pattern' must be a string",
        ),
    ];
    for (request, message) in cases {
        let reply = c.request(request.clone()).await;
        assert_eq!(reply["status"], "error", "{request} -> {reply}");
        assert_eq!(reply["server_id"], 7, "{request} -> {reply}");
        let text = reply["message"].as_str().unwrap_or_default();
        assert!(
            text.contains(message),
            "{request}: message {text:?} should contain {message:?}"
        );
        // The connection goes on.
        assert_eq!(
            c.request(json!({"command": "PING"})).await["message"],
            "PONG"
        );
    }
    // Nothing was stored by the rejected requests.
    let reply = c.request(json!({"command": "KEYS"})).await;
    assert_eq!(reply["count"], 0);
}

#[tokio::test]
async fn invalid_json_gets_an_error_object_then_the_connection_closes() {
    let node = node().await;
    for garbage in [
        &br#"{"command": nope}"#[..],
        br#"{"command": "GET", "key": "k",}"#,
        b"{\"command\": \"GET\", \"key\": \"\xff\"}",
    ] {
        let mut c = JsonConn::connect(node.addr).await;
        // A good request first, answered normally.
        let mut bytes = br#"{"command":"PING"}"#.to_vec();
        bytes.extend_from_slice(garbage);
        bytes.extend_from_slice(br#"{"command":"PING"}"#);
        c.send_raw(&bytes).await;
        assert_eq!(c.reply().await["message"], "PONG");
        let reply = c.reply().await;
        assert_eq!(reply["status"], "error", "{reply}");
        assert_eq!(reply["server_id"], 7);
        assert!(
            reply["message"]
                .as_str()
                .is_some_and(|m| m.contains("invalid JSON")),
            "{reply}"
        );
        // The stream cannot be re-synchronised: the PING after the garbage is not answered.
        c.expect_closed().await;
    }

    // A JSON connection whose bytes stop being an object at all.
    let mut c = JsonConn::connect(node.addr).await;
    c.send_raw(br#"{"command":"PING"} [1, 2]"#).await;
    assert_eq!(c.reply().await["message"], "PONG");
    assert_eq!(c.reply().await["status"], "error");
    c.expect_closed().await;

    // A half-closed connection in the middle of an object.
    let mut c = JsonConn::connect(node.addr).await;
    c.send_raw(br#"{"command": "SET", "key": "#).await;
    c.shutdown_write().await;
    assert_eq!(c.reply().await["status"], "error");
    c.expect_closed().await;

    // The node keeps serving both protocols.
    let mut c = JsonConn::connect(node.addr).await;
    assert_eq!(
        c.request(json!({"command": "PING"})).await["message"],
        "PONG"
    );
    let mut r = connect(node.addr).await;
    send(&mut r, b"PING\r\n").await;
    common::raw::expect_bytes(&mut r, b"+PONG\r\n").await;
}

#[tokio::test]
async fn the_first_non_space_byte_picks_the_protocol() {
    let node = node().await;
    // Whitespace first, even split across writes, then `{`: JSON.
    let mut c = JsonConn::connect(node.addr).await;
    c.send_raw(b"\r\n  ").await;
    tokio::task::yield_now().await;
    c.send_raw(b"\t{\"command\": \"PING\"}").await;
    assert_eq!(c.reply().await["message"], "PONG");
    // Whitespace first, then anything else: RESP (here an inline command).
    let mut r = connect(node.addr).await;
    send(&mut r, b"\r\n  ").await;
    tokio::task::yield_now().await;
    send(&mut r, b"PING\r\n").await;
    common::raw::expect_bytes(&mut r, b"+PONG\r\n").await;
    // A connection that closes before deciding is simply dropped.
    let mut s = connect(node.addr).await;
    send(&mut s, b"   ").await;
    drop(s);
    let mut c = JsonConn::connect(node.addr).await;
    assert_eq!(
        c.request(json!({"command": "PING"})).await["message"],
        "PONG"
    );
}

#[tokio::test]
async fn an_object_over_the_size_limit_is_refused_and_the_connection_closes() {
    let node = spawn_node(|c| c.json_limits.max_object_len = 1024).await;
    let mut c = JsonConn::connect(node.addr).await;
    // Under the limit: fine.
    let reply = c
        .request(json!({"command": "SET", "key": "k", "value": "x".repeat(500)}))
        .await;
    assert_eq!(reply["status"], "success");
    // Over it, and never finished: refused once the limit is passed.
    c.send_raw(
        format!(
            r#"{{"command": "SET", "key": "k", "value": "{}"#,
            "y".repeat(2000)
        )
        .as_bytes(),
    )
    .await;
    let reply = c.reply().await;
    assert_eq!(reply["status"], "error", "{reply}");
    assert!(
        reply["message"]
            .as_str()
            .is_some_and(|m| m.contains("1024")),
        "{reply}"
    );
    c.expect_closed().await;

    // Over it but complete in one write: refused as well, not stored.
    let mut c = JsonConn::connect(node.addr).await;
    let reply = c
        .request(json!({"command": "SET", "key": "big", "value": "z".repeat(5000)}))
        .await;
    assert_eq!(reply["status"], "error", "{reply}");
    c.expect_closed().await;
    let mut c = JsonConn::connect(node.addr).await;
    let reply = c.request(json!({"command": "GET", "key": "big"})).await;
    assert_eq!(reply["message"], "Key not found");
}

// ---------------------------------------------------------------------------------------------
// Every reply answers its own request (issue 8): CLIENT REPLY, errors, AUTH, MONITOR, pipelines
// ---------------------------------------------------------------------------------------------

const PASSWORD: &str = "s3cret";

fn set_reply(key: &str) -> Value {
    json!({"status": "success", "message": "Key set successfully", "key": key, "server_id": 7})
}

fn get_reply(key: &str, value: &str) -> Value {
    json!({"status": "success", "key": key, "value": value, "ttl": -1, "server_id": 7})
}

fn not_found(key: &str) -> Value {
    json!({"status": "error", "message": "Key not found", "value": null, "key": key,
           "server_id": 7})
}

fn deleted(key: &str) -> Value {
    json!({"status": "success", "message": "Key deleted successfully", "key": key,
           "server_id": 7})
}

fn expired(key: &str, ttl: i64) -> Value {
    json!({"status": "success", "message": "Expiration set successfully", "key": key,
           "ttl": ttl, "server_id": 7})
}

fn result(value: Value) -> Value {
    json!({"status": "success", "result": value, "server_id": 7})
}

fn error(message: &str) -> Value {
    json!({"status": "error", "message": message, "server_id": 7})
}

fn keyed_error(key: &str, message: &str) -> Value {
    json!({"status": "error", "message": message, "key": key, "server_id": 7})
}

fn pong() -> Value {
    json!({"status": "success", "message": "PONG", "server_id": 7})
}

/// Sends every request in one write, back to back.
async fn pipeline(c: &mut JsonConn, requests: &[Value]) {
    let mut bytes = Vec::new();
    for request in requests {
        bytes.extend_from_slice(&serde_json::to_vec(request).expect("serialise request"));
    }
    c.send_raw(&bytes).await;
}

/// Sends `requests` in one write; every one with `Some(reply)` must be answered with exactly
/// that object, in order, and every one with `None` not at all. A PING afterwards proves that
/// nothing else was sent.
async fn expect_replies(c: &mut JsonConn, requests: &[(Value, Option<Value>)]) {
    let sent: Vec<Value> = requests.iter().map(|(r, _)| r.clone()).collect();
    pipeline(c, &sent).await;
    for (i, (request, want)) in requests.iter().enumerate() {
        if let Some(want) = want {
            let got = c.reply().await;
            assert_eq!(&got, want, "reply to request #{i} {request}");
        }
    }
    assert_eq!(c.request(json!({"command": "PING"})).await, pong());
}

fn client_reply(mode: &str) -> Value {
    json!({"command": "CLIENT", "args": ["REPLY", mode]})
}

/// A MONITOR line: generic, its text the command as Redis shows it (`<time> [db addr] "CMD" ...`).
fn is_monitor_line(line: &Value) -> bool {
    let fields = line.as_object().map(|o| o.len());
    let text = line["result"].as_str().unwrap_or_default();
    fields == Some(3)
        && line["status"] == "success"
        && line["server_id"] == 7
        && text.split_once(' ').is_some_and(|(time, rest)| {
            time.parse::<f64>().is_ok() && rest.starts_with('[') && rest.contains("] \"")
        })
}

#[tokio::test]
async fn client_reply_skip_leaves_the_following_replies_with_their_own_requests() {
    // The issue's reproduction, one request per write.
    let node = node().await;
    let mut c = JsonConn::connect(node.addr).await;
    let reply = c
        .request(json!({"command": "SET", "key": "a", "value": "1"}))
        .await;
    assert_eq!(reply, set_reply("a"));
    c.send_raw(&serde_json::to_vec(&client_reply("SKIP")).expect("json"))
        .await;
    c.send_raw(br#"{"command":"SET","key":"b","value":"2"}"#)
        .await;
    let reply = c.request(json!({"command": "GET", "key": "a"})).await;
    assert_eq!(reply, get_reply("a", "1"));
    let reply = c.request(json!({"command": "STATS"})).await;
    assert_eq!(reply["status"], "success", "{reply}");
    assert!(reply.get("key").is_none(), "{reply}");
    assert_eq!(
        reply["stats"]["total_keys"], 2,
        "the skipped SET ran: {reply}"
    );
    let reply = c.request(json!({"command": "GET", "key": "b"})).await;
    assert_eq!(reply, get_reply("b", "2"));
}

#[tokio::test]
async fn client_reply_off_skip_and_on_in_one_pipeline_answer_exactly_the_answered_requests() {
    let node = node().await;
    let mut c = JsonConn::connect(node.addr).await;
    let requests = [
        (
            json!({"command": "SET", "key": "a", "value": "1"}),
            Some(set_reply("a")),
        ),
        (client_reply("SKIP"), None),
        (json!({"command": "GET", "key": "a"}), None),
        (
            json!({"command": "GET", "key": "a"}),
            Some(get_reply("a", "1")),
        ),
        // SKIP skips a request the JSON layer rejects, and an unknown command, too.
        (client_reply("SKIP"), None),
        (json!({"command": "GET"}), None),
        (json!({"command": "DELETE", "key": "a"}), Some(deleted("a"))),
        (client_reply("SKIP"), None),
        (json!({"command": "FOO", "key": "x"}), None),
        (
            json!({"command": "EXPIRE", "key": "missing", "ttl": 5}),
            Some(not_found("missing")),
        ),
        // OFF silences everything, errors included, until ON; SKIP under OFF does nothing.
        (client_reply("OFF"), None),
        (json!({"command": "SET", "key": "c", "value": "3"}), None),
        (json!({"command": "GET", "key": "c"}), None),
        (json!({"command": "GET"}), None),
        (json!({"command": "NOPE"}), None),
        (client_reply("SKIP"), None),
        (client_reply("ON"), Some(result(json!("OK")))),
        (
            json!({"command": "GET", "key": "c"}),
            Some(get_reply("c", "3")),
        ),
        (
            json!({"command": "KEYS"}),
            Some(json!({"status": "success", "count": 1, "keys": ["c"], "server_id": 7})),
        ),
        (json!({"command": "PING"}), Some(pong())),
        // CLIENT REPLY ON right after SKIP is answered, as in Redis.
        (client_reply("SKIP"), None),
        (client_reply("ON"), Some(result(json!("OK")))),
        (json!({"command": "GET", "key": "a"}), Some(not_found("a"))),
    ];
    expect_replies(&mut c, &requests).await;
}

#[tokio::test]
async fn error_replies_answer_their_own_requests() {
    let node = node().await;
    let mut c = JsonConn::connect(node.addr).await;
    let not_integer = "value is not an integer or out of range";
    let requests = [
        (
            json!({"command": "SET", "key": "s", "value": "x"}),
            Some(set_reply("s")),
        ),
        (
            json!({"command": "INCR", "key": "s"}),
            Some(error(not_integer)),
        ),
        (
            json!({"command": "GET", "key": "s", "db": 99}),
            Some(keyed_error("s", "DB index is out of range")),
        ),
        (
            json!({"command": "FOO", "key": "a"}),
            Some(error(
                "unknown command 'FOO', with args beginning with: 'a' ",
            )),
        ),
        (
            json!({"command": "GET"}),
            Some(error("missing field 'key'")),
        ),
        (
            json!({"command": "SET", "key": "t", "value": "v", "ttl": 0}),
            Some(keyed_error("t", "invalid expire time in 'set' command")),
        ),
        (
            json!({"command": "GET", "key": "s"}),
            Some(get_reply("s", "x")),
        ),
        (
            json!({"command": "INCRBY", "args": ["n", "x"]}),
            Some(error(not_integer)),
        ),
        (json!({"command": "GET", "key": "t"}), Some(not_found("t"))),
        (
            json!({"command": "GET", "args": []}),
            Some(error("wrong number of arguments for 'get' command")),
        ),
        (
            json!({"command": "EXPIRE", "key": "s", "ttl": 100}),
            Some(expired("s", 100)),
        ),
        (json!({"command": "DELETE", "key": "s"}), Some(deleted("s"))),
    ];
    expect_replies(&mut c, &requests).await;
}

#[tokio::test]
async fn auth_failures_answer_their_own_requests() {
    let node = spawn_node(|c| {
        c.id = 7;
        c.requirepass = Some(PASSWORD.into());
    })
    .await;
    let mut c = JsonConn::connect(node.addr).await;
    let noauth = "NOAUTH Authentication required.";
    let wrongpass = "WRONGPASS invalid username-password pair or user is disabled.";
    let requests = [
        (
            json!({"command": "SET", "key": "k", "value": "v"}),
            Some(keyed_error("k", noauth)),
        ),
        (
            json!({"command": "GET", "key": "k"}),
            Some(keyed_error("k", noauth)),
        ),
        (
            json!({"command": "AUTH", "password": "wrong"}),
            Some(error(wrongpass)),
        ),
        (
            json!({"command": "GET"}),
            Some(error("missing field 'key'")),
        ),
        // Refused before AUTH, so replies stay on.
        (client_reply("OFF"), Some(error(noauth))),
        (
            json!({"command": "SET", "key": "k", "value": "v", "password": "wrong"}),
            Some(keyed_error("k", wrongpass)),
        ),
        (
            json!({"command": "SET", "key": "k", "value": "v", "password": PASSWORD}),
            Some(set_reply("k")),
        ),
        // A failed password after SKIP is the skipped reply; the connection stays
        // authenticated.
        (client_reply("SKIP"), None),
        (
            json!({"command": "GET", "key": "k", "password": "wrong"}),
            None,
        ),
        (
            json!({"command": "AUTH", "password": "wrong"}),
            Some(error(wrongpass)),
        ),
        (
            json!({"command": "GET", "key": "k"}),
            Some(get_reply("k", "v")),
        ),
        (
            json!({"command": "EXPIRE", "key": "k", "ttl": 100}),
            Some(expired("k", 100)),
        ),
    ];
    expect_replies(&mut c, &requests).await;
}

#[tokio::test]
async fn monitor_lines_on_a_json_connection_are_generic_and_take_no_reply_from_its_requests() {
    let node = node().await;
    let mut m = JsonConn::connect(node.addr).await;
    let mut other = JsonConn::connect(node.addr).await;
    assert_eq!(
        m.request(json!({"command": "MONITOR"})).await,
        result(json!("OK"))
    );

    let reply = other
        .request(json!({"command": "SET", "key": "x", "value": "1"}))
        .await;
    assert_eq!(reply, set_reply("x"));
    let line = m.reply().await;
    assert!(is_monitor_line(&line), "{line}");
    assert!(line["result"]
        .as_str()
        .is_some_and(|t| t.ends_with(r#""SET" "x" "1""#)));

    // A skipped request on the monitoring connection leaves nothing for a MONITOR line to
    // take: the next line is still generic.
    pipeline(
        &mut m,
        &[
            client_reply("SKIP"),
            json!({"command": "SET", "key": "y", "value": "2"}),
        ],
    )
    .await;
    loop {
        let reply = other
            .request(json!({"command": "EXISTS", "key": "y"}))
            .await;
        if reply == result(json!(1)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    other
        .request(json!({"command": "SET", "key": "z", "value": "3"}))
        .await;
    loop {
        let line = m.reply().await;
        assert!(is_monitor_line(&line), "{line}");
        if line["result"]
            .as_str()
            .is_some_and(|t| t.ends_with(r#""SET" "z" "3""#))
        {
            break;
        }
    }

    // The monitoring connection's own requests, interleaved with another client's commands:
    // each of its replies comes in its own shape, in order, and every other line is a
    // generic MONITOR line.
    pipeline(
        &mut m,
        &[
            json!({"command": "GET", "key": "x"}),
            json!({"command": "SET", "key": "w", "value": "4"}),
            json!({"command": "GET", "key": "nope"}),
            json!({"command": "PING"}),
        ],
    )
    .await;
    for i in 0..20 {
        other
            .request(json!({"command": "SET", "key": format!("o{i}"), "value": "5"}))
            .await;
    }
    let want = [
        get_reply("x", "1"),
        set_reply("w"),
        not_found("nope"),
        pong(),
    ];
    let mut replies = Vec::new();
    let mut monitored = 0;
    while replies.len() < want.len() || monitored < 20 {
        let line = m.reply().await;
        if is_monitor_line(&line) {
            monitored += 1;
        } else {
            replies.push(line);
        }
    }
    assert_eq!(replies, want);
    assert_eq!(
        monitored, 20,
        "one MONITOR line per command of the other client"
    );
}

#[tokio::test]
async fn pipelined_requests_each_get_the_reply_of_their_own_request() {
    let node = node().await;
    let mut c = JsonConn::connect(node.addr).await;
    let mut requests = Vec::new();
    let mut counter = 0;
    for i in 0..60 {
        let key = format!("k{i}");
        requests.push((
            json!({"command": "SET", "key": key, "value": format!("v{i}")}),
            Some(set_reply(&key)),
        ));
        match i % 6 {
            0 => requests.push((
                json!({"command": "GET", "key": key}),
                Some(get_reply(&key, &format!("v{i}"))),
            )),
            1 => requests.push((
                json!({"command": "EXPIRE", "key": key, "ttl": 1000 + i}),
                Some(expired(&key, 1000 + i)),
            )),
            2 => {
                requests.push((
                    json!({"command": "DELETE", "key": key}),
                    Some(deleted(&key)),
                ));
                requests.push((json!({"command": "GET", "key": key}), Some(not_found(&key))));
            }
            3 => {
                counter += 1;
                requests.push((
                    json!({"command": "INCR", "key": "counter"}),
                    Some(result(json!(counter))),
                ));
            }
            4 => {
                requests.push((json!({"command": "PING"}), Some(pong())));
                requests.push((
                    json!({"command": "GET"}),
                    Some(error("missing field 'key'")),
                ));
            }
            _ => {
                requests.push((client_reply("SKIP"), None));
                requests.push((json!({"command": "DELETE", "key": key}), None));
                requests.push((
                    json!({"command": "KEYS", "pattern": key}),
                    Some(json!({"status": "success", "count": 0, "keys": [], "server_id": 7})),
                ));
            }
        }
    }
    expect_replies(&mut c, &requests).await;
}
