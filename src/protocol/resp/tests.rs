//! Unit tests of the RESP codec on byte slices: framing, Redis's error wording, limits,
//! inline splitting and reply encoding.

use super::*;

fn decode_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, String> {
    let mut codec = RespCodec::new(RespLimits::default());
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(Incoming::Request(r, shape))) => {
                assert_eq!(shape, ReplyShape::generic(), "RESP has one reply layout");
                out.push(r.args.iter().map(|a| a.to_vec()).collect())
            }
            Ok(Some(Incoming::Invalid(e))) => return Err(e),
            Ok(Some(Incoming::CrossProtocol)) => return Err("cross-protocol".into()),
            Ok(None) => return Ok(out),
            Err(e) => return Err(e.to_string()),
        }
    }
}

#[test]
fn decodes_multibulk_and_inline_in_one_buffer() {
    let got = decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\n*0\r\nSET a 'b c'\n");
    let want: Vec<Vec<Vec<u8>>> = vec![
        vec![b"GET".to_vec(), b"k".to_vec()],
        vec![b"PING".to_vec()],
        vec![b"SET".to_vec(), b"a".to_vec(), b"b c".to_vec()],
    ];
    assert_eq!(got, Ok(want));
}

#[test]
fn decodes_a_request_split_at_every_byte() {
    let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";
    let mut codec = RespCodec::new(RespLimits::default());
    let mut buf = BytesMut::new();
    let mut got = None;
    for (i, b) in input.iter().enumerate() {
        buf.put_u8(*b);
        match codec.decode(&mut buf).expect("valid input") {
            Some(Incoming::Request(r, _)) => {
                assert_eq!(i, input.len() - 1, "complete only at the last byte");
                got = Some(r);
            }
            Some(other) => panic!("unexpected {other:?}"),
            None => {}
        }
    }
    let got = got.expect("a request");
    assert_eq!(got.args[2].as_ref(), b"va\r\nl");
    assert!(buf.is_empty());
}

#[test]
fn protocol_errors_use_redis_wording() {
    let cases: [(&[u8], &str); 6] = [
        (b"*abc\r\n", "Protocol error: invalid multibulk length"),
        (b"*1\r\n:1\r\n", "Protocol error: expected '$', got ':'"),
        (b"*1\r\n$-5\r\n", "Protocol error: invalid bulk length"),
        (b"*1\r\n$x\r\n", "Protocol error: invalid bulk length"),
        (
            b"SET \"a\r\n",
            "Protocol error: unbalanced quotes in request",
        ),
        (
            b"*99999999999\r\n",
            "Protocol error: invalid multibulk length",
        ),
    ];
    for (input, want) in cases {
        assert_eq!(decode_all(input), Err(want.to_string()), "input {input:?}");
    }
    let long = vec![b'a'; 70 * 1024];
    assert_eq!(
        decode_all(&long),
        Err("Protocol error: too big inline request".to_string())
    );
}

#[test]
fn unauthenticated_requests_are_held_to_redis_pre_auth_limits() {
    let decode = |input: &[u8]| {
        let mut codec = RespCodec::new(RespLimits::default());
        codec.unauthenticated = true;
        codec
            .decode(&mut BytesMut::from(input))
            .map(|r| r.is_some())
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        decode(b"*11\r\n"),
        Err("Protocol error: unauthenticated multibulk length".into())
    );
    assert_eq!(decode(b"*10\r\n$4\r\nAUTH\r\n"), Ok(false));
    assert_eq!(
        decode(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"),
        Err("Protocol error: unauthenticated bulk length".into())
    );
    let mut full = b"*2\r\n$4\r\nECHO\r\n$16384\r\n".to_vec();
    full.extend_from_slice(&[b'a'; 16384]);
    full.extend_from_slice(b"\r\n");
    assert_eq!(decode(&full), Ok(true));
    // Limits of an authenticated connection are the usual ones.
    let mut codec = RespCodec::new(RespLimits::default());
    let mut buf = BytesMut::from(&b"*11\r\n$100000\r\n"[..]);
    assert!(codec.decode(&mut buf).expect("within limits").is_none());
}

#[test]
fn huge_bulk_claim_allocates_nothing_up_front() {
    let mut codec = RespCodec::new(RespLimits::default());
    let mut buf = BytesMut::from(&b"*1\r\n$536870912\r\nab"[..]);
    assert!(codec.decode(&mut buf).expect("within limits").is_none());
    assert!(buf.capacity() <= 2 << 20, "capacity {}", buf.capacity());
}

#[test]
fn split_args_follows_sdssplitargs() {
    let parsed = split_args(br#"set "a\x41\n" 'it\'s' plain"#).expect("balanced");
    assert_eq!(
        parsed,
        vec![
            b"set".to_vec(),
            b"aA\n".to_vec(),
            b"it's".to_vec(),
            b"plain".to_vec()
        ]
    );
    assert_eq!(
        split_args(b"\"a\"b"),
        None,
        "closing quote must end the argument"
    );
    assert_eq!(split_args(b"'abc"), None);
    assert_eq!(split_args(b"   "), Some(vec![]));
}

#[test]
fn parse_int_is_strict() {
    assert_eq!(parse_int(b"123"), Some(123));
    assert_eq!(parse_int(b"-5"), Some(-5));
    for bad in [
        &b""[..],
        b"+1",
        b"01",
        b"-0",
        b"1 ",
        b"99999999999999999999",
    ] {
        assert_eq!(parse_int(bad), None, "{bad:?}");
    }
}

#[test]
fn encodes_resp2_and_resp3() {
    let reply = Reply::Map(vec![(Reply::bulk("a"), Reply::Nil)]);
    let mut out = BytesMut::new();
    encode_reply(&reply, false, &mut out);
    assert_eq!(&out[..], b"*2\r\n$1\r\na\r\n$-1\r\n");
    out.clear();
    encode_reply(&reply, true, &mut out);
    assert_eq!(&out[..], b"%1\r\n$1\r\na\r\n_\r\n");
    out.clear();
    encode_reply(&Reply::Double(1.5), true, &mut out);
    encode_reply(&Reply::Bool(true), true, &mut out);
    encode_reply(&Reply::Verbatim(Bytes::from_static(b"x")), true, &mut out);
    assert_eq!(&out[..], b",1.5\r\n#t\r\n=5\r\ntxt:x\r\n");
}

#[test]
fn pushes_are_arrays_in_resp2_and_push_frames_in_resp3() {
    let push = Reply::Push(vec![
        Reply::bulk("message"),
        Reply::bulk("c"),
        Reply::bulk("m"),
    ]);
    let mut out = BytesMut::new();
    encode_reply(&push, false, &mut out);
    assert_eq!(&out[..], b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
    out.clear();
    encode_reply(&push, true, &mut out);
    assert_eq!(&out[..], b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n");
}

#[test]
fn encoded_replies_decode_with_redis_protocol() {
    use redis_protocol::resp2::decode::decode;
    use redis_protocol::resp2::types::OwnedFrame;
    let reply = Reply::Array(vec![
        Reply::ok(),
        Reply::Int(-3),
        Reply::bulk(b"bin\r\n\x00"),
        Reply::Nil,
        Reply::error("ERR syntax error"),
    ]);
    let mut out = BytesMut::new();
    encode_reply(&reply, false, &mut out);
    let (frame, used) = decode(&out).expect("valid").expect("complete");
    assert_eq!(used, out.len());
    assert_eq!(
        frame,
        OwnedFrame::Array(vec![
            OwnedFrame::SimpleString(b"OK".to_vec()),
            OwnedFrame::Integer(-3),
            OwnedFrame::BulkString(b"bin\r\n\x00".to_vec()),
            OwnedFrame::Null,
            OwnedFrame::Error("ERR syntax error".into()),
        ])
    );
}

#[test]
fn http_is_decoded_as_cross_protocol_and_nothing_after_it() {
    let cases: [&[u8]; 10] = [
        b"POST / HTTP/1.1\r\nHost: x\r\n\r\nset httpkey b\r\n",
        b"Host: 127.0.0.1:7001\r\nPING\r\n",
        b"host: x\r\n",
        b"*1\r\n$4\r\nPOST\r\n*1\r\n$4\r\nPING\r\n",
        b"*2\r\n$5\r\nhOsT:\r\n$1\r\nx\r\n",
        b"GET / HTTP/1.1\r\n",
        b"OPTIONS * HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"SET /index.html HTTP/1.0\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\n",
    ];
    for input in cases {
        let mut codec = RespCodec::new(RespLimits::default());
        let mut buf = BytesMut::from(input);
        let got = codec.decode(&mut buf).expect("framed");
        assert_eq!(got, Some(Incoming::CrossProtocol), "{input:?}");
    }
    // What came before is decoded as usual.
    let mut codec = RespCodec::new(RespLimits::default());
    let mut buf = BytesMut::from(&b"PING\r\nPOST / HTTP/1.1\r\n"[..]);
    let ping = codec.decode(&mut buf).expect("framed");
    assert!(matches!(ping, Some(Incoming::Request(r, _)) if r.args[0] == "PING"));
    assert_eq!(
        codec.decode(&mut buf).expect("framed"),
        Some(Incoming::CrossProtocol)
    );
}

#[test]
fn redis_commands_that_only_resemble_http_are_requests() {
    let got = decode_all(
        b"SET post 1\r\nGET post\r\n*2\r\n$3\r\nGET\r\n$5\r\nHost:\r\n\
          SET key HTTP/1.1\r\nGET / HTTP/1.1 extra\r\nget / http/1.1\r\n\
          *3\r\n$3\r\nGET\r\n$1\r\n/\r\n$8\r\nHTTP/1.1\r\nSET / HTTP/x\r\n",
    );
    let names: Vec<Vec<u8>> = got
        .expect("all requests")
        .into_iter()
        .map(|args| args.concat())
        .collect();
    assert_eq!(
        names,
        [
            &b"SETpost1"[..],
            b"GETpost",
            b"GETHost:",
            b"SETkeyHTTP/1.1",
            b"GET/HTTP/1.1extra",
            b"get/http/1.1",
            b"GET/HTTP/1.1",
            b"SET/HTTP/x",
        ]
    );
}

/// `%.17g` as C (and so Redis 7.0) prints it; the expected texts come from C's printf.
#[test]
fn doubles_format_as_c_printf_17g() {
    let cases: &[(f64, &str)] = &[
        (1.1, "1.1000000000000001"),
        (3.0, "3"),
        (1e+20, "1e+20"),
        (0.0001, "0.0001"),
        (1e-05, "1.0000000000000001e-05"),
        (1.2345678901234568e+17, "1.2345678901234568e+17"),
        (1e+16, "10000000000000000"),
        (1e+17, "1e+17"),
        (-2.5, "-2.5"),
        (0.1, "0.10000000000000001"),
        (0.3333333333333333, "0.33333333333333331"),
        (9007199254740992.0, "9007199254740992"),
        (1e-300, "1e-300"),
        (5e-324, "4.9406564584124654e-324"),
        (1.7976931348623157e+308, "1.7976931348623157e+308"),
        (-0.0001, "-0.0001"),
        (1e+17, "1e+17"),
        (12345.678, "12345.678"),
        (-2.522753946247637e-223, "-2.522753946247637e-223"),
        (-5.674664918136216e+64, "-5.6746649181362161e+64"),
        (7.654927133881691e-231, "7.6549271338816906e-231"),
        (2.7715077941825975e-163, "2.7715077941825975e-163"),
        (-66926478731690.96, "-66926478731690.961"),
        (2.2790121708605243e+274, "2.2790121708605243e+274"),
        (1.3383932992236106e+160, "1.3383932992236106e+160"),
        (8.445496795513092e-50, "8.4454967955130918e-50"),
        (4.026380313612261e+293, "4.0263803136122613e+293"),
        (-1.039999246087972e+177, "-1.039999246087972e+177"),
        (5.122439992692798e+172, "5.1224399926927982e+172"),
        (-3.367304008780077e-176, "-3.3673040087800771e-176"),
        (-3.0168212434893705e+21, "-3.0168212434893705e+21"),
        (-3.3573703852372156e-67, "-3.3573703852372156e-67"),
        (2.7890840981819507e+20, "2.7890840981819507e+20"),
        (-1.6860668391509668e+64, "-1.6860668391509668e+64"),
        (-2.9205048131065683e-196, "-2.9205048131065683e-196"),
        (1.2971714304409807e-182, "1.2971714304409807e-182"),
        (2.8940701966505206e+83, "2.8940701966505206e+83"),
        (3.942716995897388e-281, "3.942716995897388e-281"),
        (-2.9138649815953417e-124, "-2.9138649815953417e-124"),
        (2.60464476415712e-297, "2.6046447641571202e-297"),
        (-1.380176098350245e+162, "-1.380176098350245e+162"),
        (-9.920174193947555e-79, "-9.9201741939475546e-79"),
        (-2.5157234196648135e+270, "-2.5157234196648135e+270"),
        (-3.44654920223904e-30, "-3.4465492022390403e-30"),
        (-1.3518464599291115e-274, "-1.3518464599291115e-274"),
        (-1.6130484589462314e+17, "-1.6130484589462314e+17"),
        (-3.632860948069635e+233, "-3.6328609480696349e+233"),
        (-1.772486265902276e-243, "-1.7724862659022759e-243"),
    ];
    for (d, want) in cases {
        assert_eq!(format_double(*d), *want, "{d:e}");
    }
    assert_eq!(format_double(-0.0), "-0");
    assert_eq!(format_double(f64::NEG_INFINITY), "-inf");
}
