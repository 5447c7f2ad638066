//! Unit tests of the JSON codec on byte slices: framing, field mapping, limits, reply shapes.

use super::*;

fn requests(codec: &mut JsonCodec, input: &[u8]) -> Vec<Incoming> {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(item) = codec.decode(&mut buf).expect("valid") {
        out.push(item);
    }
    out
}

#[test]
fn decodes_back_to_back_objects_with_and_without_newlines() {
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    let input = br#"{"command":"set","key":"a","value":"}{\"x"}{"command":"GET","key":"a"}
        {"command":"ping"}"#;
    let got = requests(&mut codec, input);
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0],
        Incoming::Request(Request::new([&b"SET"[..], b"a", b"}{\"x"]))
    );
    assert_eq!(
        got[1],
        Incoming::Request(Request::new([&b"GETWITHTTL"[..], b"a"]))
    );
}

#[test]
fn decodes_an_object_split_across_reads() {
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    let mut buf = BytesMut::from(&br#"{"command": "DEL", "ke"#[..]);
    assert!(codec.decode(&mut buf).expect("partial").is_none());
    buf.extend_from_slice(br#"y": "k"}"#);
    let got = codec.decode(&mut buf).expect("complete");
    assert_eq!(
        got,
        Some(Incoming::Request(Request::new([&b"DEL"[..], b"k"])))
    );
}

#[test]
fn db_field_and_generic_args_map_to_the_request() {
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    let got = requests(
        &mut codec,
        br#"{"command":"incrby","args":["k","5"],"db":3}{"command":"GET","key":"k","db":"x"}"#,
    );
    let mut want = Request::new([&b"INCRBY"[..], b"k", b"5"]);
    want.db = Some(3);
    assert_eq!(got[0], Incoming::Request(want));
    assert_eq!(
        got[1],
        Incoming::Invalid("field 'db' must be an integer".into())
    );
}

#[test]
fn missing_fields_are_answered_not_fatal() {
    let mut codec = JsonCodec::new(3, JsonLimits::default());
    let got = requests(&mut codec, br#"{"command":"GET"}{"value":1}"#);
    assert_eq!(
        got,
        vec![
            Incoming::Invalid("missing field 'key'".into()),
            Incoming::Invalid("missing field 'command'".into())
        ]
    );
    let mut out = BytesMut::new();
    codec
        .encode(Reply::error("missing field 'key'"), &mut out)
        .expect("encodes");
    let v: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(v["status"], "error");
    assert_eq!(v["server_id"], 3);
}

#[test]
fn auth_and_password_fields_map_to_credentials() {
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    let got = requests(
        &mut codec,
        br#"{"command":"AUTH","password":"s3cret"}{"command":"auth","username":"default","password":"p"}{"command":"GET","key":"k","password":"p"}{"command":"AUTH"}"#,
    );
    assert_eq!(
        got[0],
        Incoming::Request(Request::new([&b"AUTH"[..], b"s3cret"]))
    );
    assert_eq!(
        got[1],
        Incoming::Request(Request::new([&b"AUTH"[..], b"default", b"p"]))
    );
    let mut want = Request::new([&b"GETWITHTTL"[..], b"k"]);
    want.password = Some(Bytes::from_static(b"p"));
    assert_eq!(got[2], Incoming::Request(want));
    assert_eq!(got[3], Incoming::Invalid("missing field 'password'".into()));
}

#[test]
fn unauthenticated_objects_are_held_to_a_small_size() {
    let big = format!(
        r#"{{"command":"SET","key":"k","value":"{}"}}"#,
        "v".repeat(200_000)
    );
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    codec.unauthenticated = true;
    let err = codec
        .decode(&mut BytesMut::from(big.as_bytes()))
        .expect_err("too big before AUTH");
    assert_eq!(
        err.to_string(),
        "invalid JSON: unauthenticated request object larger than 163840 bytes"
    );
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    assert!(codec
        .decode(&mut BytesMut::from(big.as_bytes()))
        .expect("fine once authenticated")
        .is_some());
}

#[test]
fn invalid_json_and_deep_nesting_are_protocol_errors() {
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    let mut buf = BytesMut::from(&b"[1]"[..]);
    assert!(codec.decode(&mut buf).is_err());
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    let deep = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
    let mut buf = BytesMut::from(deep.as_bytes());
    assert!(codec.decode(&mut buf).is_err());
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    let mut buf = BytesMut::from(&b"{\"command\": nope}"[..]);
    assert!(codec.decode(&mut buf).is_err());
}

#[test]
fn renders_spec_shaped_replies() {
    let mut codec = JsonCodec::new(2, JsonLimits::default());
    requests(
        &mut codec,
        br#"{"command":"GET","key":"k"}{"command":"GET","key":"b"}{"command":"SET","key":"k","value":"v"}"#,
    );
    let mut out = BytesMut::new();
    codec
        .encode(
            Reply::Array(vec![Reply::bulk("Alice"), Reply::Int(-1)]),
            &mut out,
        )
        .expect("encodes");
    codec
        .encode(
            Reply::Array(vec![Reply::bulk(b"\xff\x00"), Reply::Int(5)]),
            &mut out,
        )
        .expect("encodes");
    codec.encode(Reply::ok(), &mut out).expect("encodes");
    let lines: Vec<Value> = out
        .as_ref()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("json line"))
        .collect();
    assert_eq!(
        lines[0],
        json!({"status":"success","key":"k","value":"Alice","ttl":-1,"server_id":2})
    );
    assert_eq!(lines[1]["value_base64"], "/wA=");
    assert_eq!(lines[2]["message"], "Key set successfully");
}
