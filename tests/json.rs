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
