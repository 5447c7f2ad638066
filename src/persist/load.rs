//! Restoring a snapshot: a streaming serde visitor that checks the header and inserts each
//! entry as it is parsed, strings borrowed from the file's bytes wherever they need no
//! unescaping. Reads format versions 1 (untyped: every value a string), 2 (a `"type"` per
//! entry) and 3 (collections as JSON arrays).

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine as _;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use tokio::time::Instant;

use super::{FORMAT, VERSION};
use crate::store::{clock, Hash, Kind, List, Prepared, Set, Store, Value, ZSet};

/// What a snapshot held besides its entries.
pub(super) struct Loaded {
    /// Keys inserted.
    pub keys: usize,
    /// The append-only log offset the snapshot covers.
    pub aof_offset: u64,
}

/// How often a long restore logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Parses `data` (the file `name`) into `store`; the error is the reason the file is
/// corrupt. A restore that takes longer than a second logs its progress every second.
pub(super) fn snapshot(
    data: &[u8],
    name: &str,
    store: &Store,
    server_id: u64,
) -> Result<Loaded, String> {
    let mut loader = Loader {
        store,
        server_id,
        aof_offset: 0,
        version: 0,
        now: Instant::now(),
        loaded: 0,
        progress: Progress::new(data, PROGRESS_EVERY),
        name,
    };
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err("the file is empty".to_string());
    }
    let mut de = serde_json::Deserializer::from_slice(data);
    (&mut loader)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| reason(&e))?;
    Ok(Loaded {
        keys: loader.loaded,
        aof_offset: loader.aof_offset,
    })
}

/// Why the file was refused, as a sentence with the place in the file: serde_json's message
/// without its `at line L column C` tail, which is reworded.
fn reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let tail = format!(" at line {} column {}", e.line(), e.column());
    let what = text.strip_suffix(&tail).unwrap_or(&text);
    let (line, column) = (e.line(), e.column());
    match e.classify() {
        serde_json::error::Category::Eof => {
            format!("it ends early, at line {line}, column {column} (cut short?)")
        }
        serde_json::error::Category::Syntax => {
            format!("it is not valid JSON ({what}, at line {line}, column {column})")
        }
        _ => format!("{what} (at line {line}, column {column})"),
    }
}

/// Streams a snapshot into a store: checks the header, then inserts each entry as it is
/// parsed. `"format"` and `"version"` must come before `"databases"`, and each database's
/// `"db"` before its `"entries"` (as minikv writes them).
struct Loader<'s> {
    store: &'s Store,
    server_id: u64,
    aof_offset: u64,
    /// The file's format version, known once the header was checked.
    version: u32,
    now: Instant,
    loaded: usize,
    progress: Progress,
    /// The file's name, for the progress lines.
    name: &'s str,
}

/// When a restore reports its progress, and how far it is: the position in the file is read
/// from where a key borrowed from the file's bytes starts (most keys are; one with escapes is
/// copied and skipped).
struct Progress {
    start: usize,
    len: usize,
    every: Duration,
    next: std::time::Instant,
    /// Entries since the clock was last read (read every [`Progress::CHECK`] entries).
    since_check: u32,
    /// Whether a report was due yet: the restore is a long one.
    long: bool,
}

impl Progress {
    const CHECK: u32 = 4096;

    fn new(data: &[u8], every: Duration) -> Progress {
        Progress {
            start: data.as_ptr() as usize,
            len: data.len().max(1),
            every,
            next: std::time::Instant::now() + every,
            since_check: 0,
            long: false,
        }
    }

    /// Called with each entry's key: `Some(percent)` of the file read when a report is due.
    fn tick(&mut self, key: Option<&Cow<'_, str>>) -> Option<u64> {
        self.since_check += 1;
        if self.since_check < Self::CHECK {
            return None;
        }
        let Some(Cow::Borrowed(key)) = key else {
            return None;
        };
        self.since_check = 0;
        let now = std::time::Instant::now();
        if now < self.next {
            return None;
        }
        self.next = now + self.every;
        self.long = true;
        let at = (key.as_ptr() as usize)
            .saturating_sub(self.start)
            .min(self.len);
        Some((at as u64 * 100) / self.len as u64)
    }
}

impl<'de> DeserializeSeed<'de> for &mut Loader<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(SnapshotVisitor(self))
    }
}

struct SnapshotVisitor<'a, 's>(&'a mut Loader<'s>);

impl<'de> Visitor<'de> for SnapshotVisitor<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a minikv snapshot object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (mut format, mut version) = (None, None);
        let mut saw_databases = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "format" => format = Some(map.next_value::<Cow<'de, str>>()?.into_owned()),
                "version" => version = Some(map.next_value::<Version>()?.0),
                "aof_offset" => self.0.aof_offset = map.next_value::<u64>()?,
                "server_id" => {
                    let id = map.next_value::<u64>()?;
                    if id != self.0.server_id {
                        // Allowed (nodes may be renumbered on purpose), but keys routed by MD5
                        // to another node will not be found here: say so.
                        tracing::warn!(
                            "snapshot was written by node {id}, loading it into node {}",
                            self.0.server_id
                        );
                    }
                }
                "databases" => {
                    self.0.version = check_header(format.as_deref(), version)?;
                    saw_databases = true;
                    map.next_value_seed(DatabasesSeed(&mut *self.0))?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        check_header::<A::Error>(format.as_deref(), version)?;
        if !saw_databases {
            return Err(de::Error::custom(
                "it has no \"databases\" field: not a complete snapshot",
            ));
        }
        Ok(())
    }
}

/// Checks the header fields; returns the format version.
fn check_header<E: de::Error>(format: Option<&str>, version: Option<u64>) -> Result<u32, E> {
    match (format, version) {
        (Some(FORMAT), Some(v)) if (1..=u64::from(VERSION)).contains(&v) => {
            // In 1..=VERSION, so it fits.
            Ok(u32::try_from(v).unwrap_or(VERSION))
        }
        (None, _) => Err(E::custom(
            "it has no \"format\" field before its data: not a minikv snapshot",
        )),
        (Some(FORMAT), None) => Err(E::custom("it has no \"version\" field before its data")),
        (Some(FORMAT), Some(0)) => Err(E::custom(
            "it says it is version 0 of the format, which does not exist",
        )),
        (Some(FORMAT), Some(v)) => Err(E::custom(format!(
            "it is version {v} of the format, written by a newer minikv: this one reads \
             versions 1 to {VERSION}"
        ))),
        (Some(f), _) => Err(E::custom(format!(
            "its \"format\" is \"{}\", not \"{FORMAT}\"",
            f.escape_debug()
        ))),
    }
}

/// The `"version"` field: any whole number, checked by [`check_header`] (so that a version
/// too large for a u32 reads as "written by a newer minikv", not as a type error).
struct Version(u64);

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        struct WholeNumber;
        impl Visitor<'_> for WholeNumber {
            type Value = Version;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a whole number as \"version\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Version, E> {
                Ok(Version(v))
            }
        }
        d.deserialize_u64(WholeNumber)
    }
}

struct DatabasesSeed<'a, 's>(&'a mut Loader<'s>);

impl<'de> DeserializeSeed<'de> for DatabasesSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for DatabasesSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of databases")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(DbSeed(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

struct DbSeed<'a, 's>(&'a mut Loader<'s>);

impl<'de> DeserializeSeed<'de> for DbSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DbSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a database object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut db = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "db" => {
                    let index = map.next_value::<usize>()?;
                    if self.0.store.db(index).is_none() {
                        return Err(de::Error::custom(format!(
                            "database {index} exceeds the configured count"
                        )));
                    }
                    db = Some(index);
                }
                "entries" => {
                    let db =
                        db.ok_or_else(|| de::Error::custom("\"db\" must precede \"entries\""))?;
                    map.next_value_seed(EntriesSeed {
                        loader: &mut *self.0,
                        db,
                    })?;
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "a database has a field \"{}\"; only \"db\" and \"entries\" belong \
                         there",
                        other.escape_debug()
                    )))
                }
            }
        }
        Ok(())
    }
}

struct EntriesSeed<'a, 's> {
    loader: &'a mut Loader<'s>,
    db: usize,
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some(db) = self.loader.store.db(self.db) else {
            return Err(de::Error::custom("database vanished"));
        };
        let now = self.loader.now;
        let typed = self.loader.version >= 2;
        // Entries are grouped by shard and inserted shard by shard afterwards: each table is
        // sized once and filled while it is in cache.
        let mut by_shard: Vec<Vec<Prepared>> = (0..db.shard_count()).map(|_| Vec::new()).collect();
        while let Some(e) = seq.next_element::<EntryIn<'de>>()? {
            if let Some(percent) = self.loader.progress.tick(e.key.as_ref()) {
                tracing::info!(
                    "restoring {}: {} keys, {percent}%",
                    self.loader.name,
                    self.loader.loaded
                );
            }
            let key = decode_field(e.key, e.key_base64, "key").map_err(de::Error::custom)?;
            let kind = match (e.kind, typed) {
                (Some(name), true) => Kind::from_name(name.as_bytes()).ok_or_else(|| {
                    de::Error::custom(format!(
                        "an entry has the unknown type \"{}\"",
                        name.escape_debug()
                    ))
                })?,
                (None, false) => Kind::String,
                (None, true) => return Err(de::Error::custom("an entry without \"type\"")),
                (Some(_), false) => {
                    return Err(de::Error::custom("\"type\" in a version 1 snapshot"))
                }
            };

            let deadline = match e.expires_at_ms {
                None => None,
                Some(at) => match clock::instant_at_unix_ms(at) {
                    Some(d) if d <= now => continue,
                    Some(d) => Some(d),
                    None => {
                        return Err(de::Error::custom(format!(
                            "expires_at_ms {at} is out of range"
                        )))
                    }
                },
            };
            let what = |e: String| {
                de::Error::custom(format!(
                    "the {} at key \"{}\": {e}",
                    kind.name(),
                    String::from_utf8_lossy(&key).escape_debug()
                ))
            };
            let (shard, prepared) = match e.value {
                Some(ValueIn::Elements(items)) => {
                    if kind == Kind::String || self.loader.version < 3 || e.value_base64.is_some() {
                        return Err(what(
                            "a list of elements where a text value belongs".to_string(),
                        ));
                    }
                    let value = collection(kind, items).map_err(what)?;
                    db.prepare_value(&key, value, deadline)
                }
                text => {
                    let text = match text {
                        Some(ValueIn::Text(t)) => Some(t),
                        _ => None,
                    };
                    let data =
                        decode_field(text, e.value_base64, "value").map_err(de::Error::custom)?;
                    // A collection as text: its binary dump (written only by development
                    // builds between versions 2 and 3; read, never written).
                    db.prepare(&key, kind, &data, deadline)
                        .map_err(|e| what(e.to_string()))?
                }
            };
            by_shard[shard].push(prepared);
            self.loader.loaded += 1;
        }
        if self.loader.progress.long {
            tracing::info!(
                "restoring {}: {} keys read, filling database {}",
                self.loader.name,
                self.loader.loaded,
                self.db
            );
        }
        db.load(by_shard);
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryIn<'a> {
    /// Borrowed from the file when it needs no unescaping (serde's own `Option<Cow>` always
    /// copies): no allocation per key, and [`Progress`] reads the position from it.
    #[serde(borrow, default, deserialize_with = "borrowed_text")]
    key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    key_base64: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    value: Option<ValueIn<'a>>,
    #[serde(borrow)]
    value_base64: Option<Cow<'a, str>>,
    expires_at_ms: Option<i64>,
}

/// An optional string, borrowed from the input when it can be.
fn borrowed_text<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(V)
        }
        fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Borrowed(v)))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(Cow::Owned(v)))
        }
    }
    d.deserialize_option(V)
}

/// An entry's `"value"`: a string's text, or (version 3) a collection's elements.
enum ValueIn<'a> {
    Text(Cow<'a, str>),
    Elements(Vec<serde_json::Value>),
}

impl<'de: 'a, 'a> Deserialize<'de> for ValueIn<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = ValueIn<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, or an array of elements")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ValueIn::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ValueIn::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ValueIn::Text(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(ValueIn::Elements(items))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A collection of `kind` from its JSON elements (format in `docs/persistence.md`).
fn collection(kind: Kind, items: Vec<serde_json::Value>) -> Result<Value, String> {
    if items.is_empty() {
        return Err("it has no elements (a key never holds an empty collection)".into());
    }
    let pair = |item: serde_json::Value| -> Result<(serde_json::Value, serde_json::Value), String> {
        match item {
            serde_json::Value::Array(mut two) if two.len() == 2 => {
                let second = two.pop().unwrap_or_default();
                let first = two.pop().unwrap_or_default();
                Ok((first, second))
            }
            other => Err(format!("{other} where a [first, second] pair belongs")),
        }
    };
    Ok(match kind {
        Kind::String => return Err("a string has no elements".into()),
        Kind::List => {
            let mut l = List::new();
            for item in items {
                l.push_back(&element(item)?);
            }
            Value::List(l)
        }
        Kind::Set => {
            let mut s = Set::new();
            for item in items {
                s.insert(&element(item)?);
            }
            Value::Set(s)
        }
        Kind::Hash => {
            let mut h = Hash::new();
            for item in items {
                let (field, value) = pair(item)?;
                h.insert(&element(field)?, &element(value)?);
            }
            Value::Hash(h)
        }
        Kind::ZSet => {
            let mut z = ZSet::new();
            for item in items {
                let (member, score) = pair(item)?;
                let score = match &score {
                    serde_json::Value::Number(n) => n.as_f64(),
                    serde_json::Value::String(s) if s == "inf" || s == "+inf" => {
                        Some(f64::INFINITY)
                    }
                    serde_json::Value::String(s) if s == "-inf" => Some(f64::NEG_INFINITY),
                    _ => None,
                }
                .ok_or_else(|| format!("{score} is not a score"))?;
                z.insert(&element(member)?, score);
            }
            Value::ZSet(z)
        }
    })
}

/// One element: a JSON string, or `{"base64": "..."}` for bytes that are not UTF-8.
fn element(item: serde_json::Value) -> Result<Vec<u8>, String> {
    match item {
        serde_json::Value::String(s) => Ok(s.into_bytes()),
        serde_json::Value::Object(map) if map.len() == 1 => match map.get("base64") {
            Some(serde_json::Value::String(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.as_bytes())
                .map_err(|e| format!("an element's base64 does not decode: {e}")),
            _ => Err("an element object other than {\"base64\": \"...\"}".into()),
        },
        other => Err(format!("{other} where an element (a string) belongs")),
    }
}

fn decode_field<'a>(
    text: Option<Cow<'a, str>>,
    b64: Option<Cow<'a, str>>,
    name: &str,
) -> Result<Cow<'a, [u8]>, String> {
    match (text, b64) {
        (Some(Cow::Borrowed(t)), None) => Ok(Cow::Borrowed(t.as_bytes())),
        (Some(Cow::Owned(t)), None) => Ok(Cow::Owned(t.into_bytes())),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.as_bytes())
            .map(Cow::Owned)
            .map_err(|e| format!("{name}_base64 is not base64: {e}")),
        _ => Err(format!(
            "an entry needs exactly one of {name} and {name}_base64"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reason `data` is refused.
    fn refusal(data: &str) -> String {
        match snapshot(data.as_bytes(), "test.json", &Store::new(16, 4), 1) {
            Ok(_) => panic!("accepted: {data}"),
            Err(reason) => reason,
        }
    }

    #[test]
    fn bad_collections_are_refused_with_a_sentence() {
        let file = |entry: &str| {
            format!(
                r#"{{"format":"minikv-snapshot","version":3,"databases":[{{"db":0,"entries":[{entry}]}}]}}"#
            )
        };
        let cases = [
            (r#"{"key":"l","type":"list","value":[]}"#, "has no elements"),
            (
                r#"{"key":"h","type":"hash","value":[["f"]]}"#,
                "pair belongs",
            ),
            (
                r#"{"key":"z","type":"zset","value":[["m","x"]]}"#,
                "is not a score",
            ),
            (
                r#"{"key":"s","type":"set","value":[1]}"#,
                "where an element",
            ),
            (
                r#"{"key":"s","type":"set","value":[{"hex":"00"}]}"#,
                "element object",
            ),
            (
                r#"{"key":"s","type":"set","value":[{"base64":"*"}]}"#,
                "does not decode",
            ),
            (
                r#"{"key":"k","type":"string","value":["a"]}"#,
                "a text value belongs",
            ),
        ];
        for (entry, want) in cases {
            let got = refusal(&file(entry));
            assert!(got.contains(want), "{entry}: {got}");
        }
        let v2 = r#"{"format":"minikv-snapshot","version":2,"databases":[{"db":0,"entries":[{"key":"l","type":"list","value":["a"]}]}]}"#;
        assert!(refusal(v2).contains("a text value belongs"));
        let good = file(r#"{"key":"z","type":"zset","value":[["m",1.5],["n","+inf"]]}"#);
        let store = Store::new(16, 4);
        assert_eq!(
            snapshot(good.as_bytes(), "test.json", &store, 1).map(|l| l.keys),
            Ok(1)
        );
    }

    #[test]
    fn every_bad_header_is_refused_with_a_sentence() {
        let cases = [
            ("", "the file is empty"),
            (" \n", "the file is empty"),
            (
                r#"{"format": "minikv-snapshot", "version": 2, "datab"#,
                "it ends early, at line 1, column 50 (cut short?)",
            ),
            (
                "this is not json",
                "it is not valid JSON (expected ident, at line 1, column 2)",
            ),
            (
                r#"{"format": "other", "version": 2, "databases": []}"#,
                r#"its "format" is "other", not "minikv-snapshot" (at line 1, column 45)"#,
            ),
            (
                r#"{"version": 2, "databases": []}"#,
                "it has no \"format\" field before its data: not a minikv snapshot (at line 1, \
                 column 26)",
            ),
            (
                r#"{"format": "minikv-snapshot", "databases": []}"#,
                r#"it has no "version" field before its data (at line 1, column 41)"#,
            ),
            (
                r#"{"format": "minikv-snapshot", "version": 0, "databases": []}"#,
                "it says it is version 0 of the format, which does not exist (at line 1, \
                 column 55)",
            ),
            (
                r#"{"format": "minikv-snapshot", "version": 4, "databases": []}"#,
                "it is version 4 of the format, written by a newer minikv: this one reads \
                 versions 1 to 3 (at line 1, column 55)",
            ),
            (
                r#"{"format": "minikv-snapshot", "version": 99999999999, "databases": []}"#,
                "it is version 99999999999 of the format, written by a newer minikv: this one \
                 reads versions 1 to 3 (at line 1, column 65)",
            ),
            (
                r#"{"format": "minikv-snapshot", "version": "2", "databases": []}"#,
                "invalid type: string \"2\", expected a whole number as \"version\" (at line 1, \
                 column 44)",
            ),
            (
                r#"{"format": "minikv-snapshot", "version": 2}"#,
                r#"it has no "databases" field: not a complete snapshot (at line 1, column 43)"#,
            ),
            (
                r#"{"format": "minikv-snapshot", "version": 2, "databases": [{"index": 0}]}"#,
                "a database has a field \"index\"; only \"db\" and \"entries\" belong there (at \
                 line 1, column 66)",
            ),
        ];
        for (data, want) in cases {
            let got = refusal(data);
            assert_eq!(got, want, "for {data:?}");
            assert!(!got.contains("Some("), "Rust debug output: {got}");
        }
    }

    #[test]
    fn progress_reports_the_share_of_the_file_read() {
        let data = "x".repeat(1000);
        let mut progress = Progress::new(data.as_bytes(), Duration::ZERO);
        let at = |i: usize| Some(Cow::Borrowed(&data[i..i + 1]));
        // Checked every CHECK entries only.
        for _ in 1..Progress::CHECK {
            assert_eq!(progress.tick(at(10).as_ref()), None);
        }
        assert_eq!(progress.tick(at(250).as_ref()), Some(25));
        // A copied key says nothing of the place: the next borrowed one does.
        for _ in 1..Progress::CHECK {
            progress.tick(at(0).as_ref());
        }
        assert_eq!(progress.tick(Some(&Cow::Owned("k".into()))), None);
        assert_eq!(progress.tick(at(999).as_ref()), Some(99));
        // With a real interval, nothing is due at once.
        let mut slow = Progress::new(data.as_bytes(), Duration::from_secs(3600));
        for _ in 0..2 * Progress::CHECK {
            assert_eq!(slow.tick(at(500).as_ref()), None);
        }
    }
}
