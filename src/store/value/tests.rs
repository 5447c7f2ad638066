use super::*;

#[test]
fn kinds_are_named_as_redis_names_them() {
    let v = Value::String(Bytes::from_static(b"x"));
    assert_eq!(v.kind().name(), "string");
    assert_eq!(Kind::from_name(b"STRING"), Some(Kind::String));
    assert_eq!(Kind::from_name(b"zset"), Some(Kind::ZSet));
    assert_eq!(Kind::from_name(b"stream"), None);
    assert_eq!(
        WrongType.to_string(),
        "WRONGTYPE Operation against a key holding the wrong kind of value"
    );
    assert_eq!(v.clone().into_string(), Ok(Bytes::from_static(b"x")));
    assert_eq!(Value::empty(Kind::Hash).into_string(), Err(WrongType));
    for k in Kind::ALL {
        assert_eq!(Kind::from_code(k.code()), Some(k));
        assert_eq!(Value::empty(k).kind(), k);
    }
}

fn samples() -> Vec<Value> {
    let mut list = List::new();
    list.push_back(b"a");
    list.push_back(b"");
    list.push_front(b"\x00\xff");
    let mut set = Set::new();
    set.insert(b"1");
    set.insert(b"x y");
    let mut hash = Hash::new();
    hash.insert(b"f", b"v");
    hash.insert(b"", b"\r\n");
    let mut zset = ZSet::new();
    zset.insert(b"m", 1.5);
    zset.insert(b"n", f64::NEG_INFINITY);
    zset.insert(b"o", f64::INFINITY);
    vec![
        Value::List(list),
        Value::Set(set),
        Value::Hash(hash),
        Value::ZSet(zset),
    ]
}

#[test]
fn dumps_round_trip_and_refuse_damage() {
    for v in samples() {
        let mut out = Vec::new();
        dump::value(v.as_ref(), &mut out);
        assert_eq!(dump::load(v.kind(), &out).as_ref(), Ok(&v));
        for cut in 0..out.len() {
            assert!(
                dump::load(v.kind(), &out[..cut]).is_err(),
                "{v:?} cut at {cut}"
            );
        }
        let mut long = out.clone();
        long.push(0);
        assert!(dump::load(v.kind(), &long).is_err());
        // Through serde (the effect stream's encodings).
        let json = serde_json::to_vec(&v).expect("encode");
        assert_eq!(serde_json::from_slice::<Value>(&json).ok(), Some(v.clone()));
        let post = postcard::to_allocvec(&v).expect("encode");
        assert_eq!(postcard::from_bytes::<Value>(&post).ok(), Some(v));
    }
    let mut nan = Vec::new();
    let mut z = ZSet::new();
    z.insert(b"m", 0.0);
    dump::value(ValueRef::ZSet(&z), &mut nan);
    let at = nan.len() - 8;
    nan[at..].copy_from_slice(&f64::NAN.to_le_bytes());
    assert_eq!(dump::load(Kind::ZSet, &nan), Err(dump::DumpError::NanScore));
    assert_eq!(
        dump::load(Kind::Set, &[1, 0]),
        Err(dump::DumpError::Empty("set"))
    );
}

#[test]
fn encodings_follow_redis_7_0() {
    assert_eq!(Value::String(Bytes::from_static(b"123")).encoding(), "int");
    assert_eq!(
        Value::String(Bytes::from_static(b"0123")).encoding(),
        "embstr"
    );
    assert_eq!(Value::String(Bytes::from(vec![b'x'; 45])).encoding(), "raw");
    let mut s = Set::new();
    s.insert(b"1");
    assert_eq!(s.encoding(), "intset");
    s.insert(b"a");
    assert_eq!(s.encoding(), "hashtable");
    let mut h = Hash::new();
    h.insert(b"f", b"v");
    assert_eq!(h.encoding(), "listpack");
    assert_eq!(List::new().encoding(), "quicklist");
}
