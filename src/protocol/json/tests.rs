//! Unit tests of the JSON codec on byte slices: framing, field mapping, limits, reply shapes.

use super::*;
use crate::protocol::Codec as _;

fn requests(codec: &mut JsonCodec, input: &[u8]) -> Vec<Incoming> {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(item) = codec.decode(&mut buf).expect("valid") {
        out.push(item);
    }
    out
}

/// A decoded request with the reply shape it must carry.
fn shaped(args: &[&[u8]], shape: Shape) -> Incoming {
    Incoming::Request(
        Request::new(args.iter().copied().map(Bytes::copy_from_slice)),
        ReplyShape::json(shape),
    )
}

/// A decoded request whose reply is generic.
fn generic(request: Request) -> Incoming {
    Incoming::Request(request, ReplyShape::generic())
}

/// Encodes `reply` in `shape` and parses the one line it makes.
fn render(codec: &mut JsonCodec, reply: &Reply, shape: &ReplyShape) -> Value {
    let mut out = BytesMut::new();
    codec.encode(reply, shape, &mut out).expect("encodes");
    let line = out
        .strip_suffix(b"\n")
        .expect("one line ending in a newline");
    assert!(!line.contains(&b'\n'), "exactly one line");
    serde_json::from_slice(line).expect("json")
}

/// The shape a decoded request carries.
fn shape_of(item: &Incoming) -> &ReplyShape {
    match item {
        Incoming::Request(_, shape) => shape,
        other => panic!("not a request: {other:?}"),
    }
}

#[test]
fn decodes_back_to_back_objects_with_and_without_newlines() {
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    let input = br#"{"command":"set","key":"a","value":"}{\"x"}{"command":"GET","key":"a"}
        {"command":"ping"}"#;
    let got = requests(&mut codec, input);
    assert_eq!(got.len(), 3);
    let a = Bytes::from_static(b"a");
    assert_eq!(
        got[0],
        shaped(
            &[b"SET", b"a", b"}{\"x"],
            Shape::Set {
                key: a.clone(),
                ttl: None
            }
        )
    );
    assert_eq!(
        got[1],
        shaped(&[b"GETWITHTTL", b"a"], Shape::Get { key: a })
    );
    assert_eq!(got[2], shaped(&[b"PING"], Shape::Ping));
}

#[test]
fn decodes_an_object_split_across_reads() {
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    let mut buf = BytesMut::from(&br#"{"command": "DEL", "ke"#[..]);
    assert!(codec.decode(&mut buf).expect("partial").is_none());
    buf.extend_from_slice(br#"y": "k"}"#);
    let got = codec.decode(&mut buf).expect("complete");
    let key = Bytes::from_static(b"k");
    assert_eq!(got, Some(shaped(&[b"DEL", b"k"], Shape::Delete { key })));
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
    assert_eq!(got[0], generic(want));
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
    let v = render(
        &mut codec,
        &Reply::error("missing field 'key'"),
        &ReplyShape::generic(),
    );
    assert_eq!(
        v,
        json!({"status": "error", "message": "missing field 'key'", "server_id": 3})
    );
}

#[test]
fn auth_and_password_fields_map_to_credentials() {
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    let got = requests(
        &mut codec,
        br#"{"command":"AUTH","password":"s3cret"}{"command":"auth","username":"default","password":"p"}{"command":"GET","key":"k","password":"p"}{"command":"AUTH"}"#,
    );
    assert_eq!(got[0], generic(Request::new([&b"AUTH"[..], b"s3cret"])));
    assert_eq!(
        got[1],
        generic(Request::new([&b"AUTH"[..], b"default", b"p"]))
    );
    let mut want = Request::new([&b"GETWITHTTL"[..], b"k"]);
    want.password = Some(Bytes::from_static(b"p"));
    let key = Bytes::from_static(b"k");
    assert_eq!(
        got[2],
        Incoming::Request(want, ReplyShape::json(Shape::Get { key }))
    );
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
    let got = requests(
        &mut codec,
        br#"{"command":"GET","key":"k"}{"command":"GET","key":"b"}{"command":"SET","key":"k","value":"v"}"#,
    );
    let alice = Reply::Array(vec![Reply::bulk("Alice"), Reply::Int(-1)]);
    assert_eq!(
        render(&mut codec, &alice, shape_of(&got[0])),
        json!({"status":"success","key":"k","value":"Alice","ttl":-1,"server_id":2})
    );
    let binary = Reply::Array(vec![Reply::bulk(b"\xff\x00"), Reply::Int(5)]);
    let v = render(&mut codec, &binary, shape_of(&got[1]));
    assert_eq!(v["value_base64"], "/wA=");
    assert_eq!(v["key"], "b");
    let v = render(&mut codec, &Reply::ok(), shape_of(&got[2]));
    assert_eq!(
        v,
        json!({"status":"success","message":"Key set successfully","key":"k","server_id":2})
    );
}

#[test]
fn each_reply_is_rendered_in_the_shape_it_is_given_whatever_came_before() {
    let mut codec = JsonCodec::new(4, JsonLimits::default());
    let got = requests(
        &mut codec,
        br#"{"command":"SET","key":"a","value":"1"}{"command":"SET","key":"b","value":"2"}{"command":"GET","key":"a"}{"command":"STATS"}"#,
    );
    // The second SET's reply is never encoded (CLIENT REPLY SKIP): nothing is left waiting
    // in the codec, so GET and STATS still get their own shapes, in any order.
    let stats = Reply::Map(vec![(Reply::bulk("total_requests"), Reply::Int(3))]);
    assert_eq!(
        render(&mut codec, &stats, shape_of(&got[3])),
        json!({"status":"success","stats":{"total_requests":3},"server_id":4})
    );
    let one = Reply::Array(vec![Reply::bulk("1"), Reply::Int(-1)]);
    assert_eq!(
        render(&mut codec, &one, shape_of(&got[2])),
        json!({"status":"success","key":"a","value":"1","ttl":-1,"server_id":4})
    );
    // A reply that answers no request (a MONITOR line) is generic, and takes nothing from
    // any request's shape.
    let line = Reply::Simple("1700000000.000000 [0 127.0.0.1:5000] \"PING\"".into());
    assert_eq!(
        render(&mut codec, &line, &ReplyShape::generic()),
        json!({"status":"success","result":"1700000000.000000 [0 127.0.0.1:5000] \"PING\"",
               "server_id":4})
    );
    assert_eq!(
        render(&mut codec, &Reply::ok(), shape_of(&got[0])),
        json!({"status":"success","message":"Key set successfully","key":"a","server_id":4})
    );
}

#[test]
fn error_replies_keep_the_key_of_their_request_and_protocol_errors_are_generic() {
    let mut codec = JsonCodec::new(5, JsonLimits::default());
    let got = requests(&mut codec, br#"{"command":"GET","key":"k"}"#);
    let noauth = Reply::error("NOAUTH Authentication required.");
    assert_eq!(
        render(&mut codec, &noauth, shape_of(&got[0])),
        json!({"status":"error","message":"NOAUTH Authentication required.","key":"k",
               "server_id":5})
    );
    let mut out = BytesMut::new();
    let error = ProtocolError::Json("request is not an object".into());
    codec.encode_protocol_error(&error, &mut out);
    let v: Value = serde_json::from_slice(&out).expect("json");
    assert_eq!(
        v,
        json!({"status":"error","message":"invalid JSON: request is not an object",
               "server_id":5})
    );
}

#[test]
fn infinite_and_nan_doubles_render_as_redis_spells_them() {
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    let reply = Reply::Array(vec![
        Reply::Double(f64::INFINITY),
        Reply::Double(f64::NEG_INFINITY),
        Reply::Double(1.5),
    ]);
    let got = render(&mut codec, &reply, &ReplyShape::generic());
    assert_eq!(
        got["result"],
        serde_json::json!(["inf", "-inf", 1.5]),
        "{got}"
    );
}

#[test]
fn pushes_render_as_one_object_per_event() {
    let mut codec = JsonCodec::new(1, JsonLimits::default());
    let generic = ReplyShape::generic();
    let push = |items: Vec<Reply>| Reply::Push(items);
    assert_eq!(
        render(
            &mut codec,
            &push(vec![
                Reply::bulk("subscribe"),
                Reply::bulk("news"),
                Reply::Int(1)
            ]),
            &generic
        ),
        json!({"push":"subscribe","channel":"news","count":1})
    );
    assert_eq!(
        render(
            &mut codec,
            &push(vec![
                Reply::bulk("message"),
                Reply::bulk("news"),
                Reply::bulk("hi")
            ]),
            &generic
        ),
        json!({"push":"message","channel":"news","message":"hi"})
    );
    assert_eq!(
        render(
            &mut codec,
            &push(vec![
                Reply::bulk("pmessage"),
                Reply::bulk("n*"),
                Reply::bulk("news"),
                Reply::bulk(b"\xff\x00"),
            ]),
            &generic
        ),
        json!({"push":"pmessage","pattern":"n*","channel":"news","message_base64":"/wA="})
    );
    assert_eq!(
        render(
            &mut codec,
            &push(vec![Reply::bulk("unsubscribe"), Reply::Nil, Reply::Int(0)]),
            &generic
        ),
        json!({"push":"unsubscribe","channel":null,"count":0})
    );
    assert_eq!(
        render(
            &mut codec,
            &push(vec![
                Reply::bulk("psubscribe"),
                Reply::bulk("a?"),
                Reply::Int(2)
            ]),
            &generic
        ),
        json!({"push":"psubscribe","pattern":"a?","count":2})
    );
}
