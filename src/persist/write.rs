//! Serialising a snapshot: the JSON format of `docs/persistence.md`, written straight from the
//! shards' dumps with no intermediate tree (plain ASCII copied as is, anything else escaped by
//! serde_json or base64-encoded).

use std::io::Write;

use base64::Engine as _;

use super::{FORMAT, VERSION};
use crate::store::value::dump::{self, Element};
use crate::store::{clock, dump_entries, Kind};

/// Writes the snapshot JSON (format in `docs/persistence.md`) for the dumped shards; returns
/// the number of entries written.
pub(super) fn snapshot(
    w: &mut impl Write,
    server_id: u64,
    aof_offset: u64,
    dumps: &[(usize, Vec<Vec<u8>>)],
    between_shards: &dyn Fn(),
) -> std::io::Result<usize> {
    write!(
        w,
        "{{\"format\":\"{FORMAT}\",\"version\":{VERSION},\"server_id\":{server_id},\
         \"saved_at_ms\":{},\"aof_offset\":{aof_offset},\"databases\":[",
        clock::unix_ms()
    )?;
    let mut count = 0;
    for (n, (db, shards)) in dumps.iter().enumerate() {
        if n > 0 {
            w.write_all(b",")?;
        }
        write!(w, "{{\"db\":{db},\"entries\":[")?;
        let mut first = true;
        for entry in shards
            .iter()
            .inspect(|_| between_shards())
            .flat_map(|d| dump_entries(d))
        {
            w.write_all(if first { b"\n{" } else { b",\n{" })?;
            first = false;
            write_bytes_field(w, "key", entry.key)?;
            w.write_all(b",\"type\":\"")?;
            w.write_all(entry.kind.name().as_bytes())?;
            w.write_all(b"\",")?;
            if entry.kind == Kind::String {
                write_bytes_field(w, "value", entry.data)?;
            } else {
                write_collection(w, entry.kind, entry.data)?;
            }
            if let Some(d) = entry.deadline {
                w.write_all(b",\"expires_at_ms\":")?;
                w.write_all(itoa::Buffer::new().format(clock::unix_ms_at(d)).as_bytes())?;
            }
            w.write_all(b"}")?;
            count += 1;
        }
        w.write_all(b"]}")?;
    }
    w.write_all(b"]}\n")?;
    Ok(count)
}

/// `"value":[...]` for a collection from its dump (format in `docs/persistence.md`): list and
/// set elements as strings, hash fields as `[field, value]`, sorted-set members as
/// `[member, score]`; a non-UTF-8 element as `{"base64":"..."}`; scores as JSON numbers (the
/// shortest text that reads back as the same double) or `"inf"`/`"-inf"`.
fn write_collection(w: &mut impl Write, kind: Kind, data: &[u8]) -> std::io::Result<()> {
    w.write_all(b"\"value\":[")?;
    let mut first = true;
    let mut failed = Ok(());
    let visited = dump::visit(kind, data, |e| {
        if failed.is_err() {
            return;
        }
        let sep: &[u8] = if first { b"" } else { b"," };
        first = false;
        failed = w.write_all(sep).and_then(|()| match e {
            Element::Item(item) => write_element(w, item),
            Element::Pair(field, value) => {
                w.write_all(b"[")?;
                write_element(w, field)?;
                w.write_all(b",")?;
                write_element(w, value)?;
                w.write_all(b"]")
            }
            Element::Scored(member, score) => {
                w.write_all(b"[")?;
                write_element(w, member)?;
                w.write_all(b",")?;
                if score.is_infinite() {
                    w.write_all(if score > 0.0 { b"\"inf\"" } else { b"\"-inf\"" })?;
                } else {
                    serde_json::to_writer(&mut *w, &score).map_err(std::io::Error::from)?;
                }
                w.write_all(b"]")
            }
        });
    });
    failed?;
    // The dump was made from the store a moment ago; a failure here is a bug, not bad input.
    visited.map_err(|e| std::io::Error::other(format!("a value to save does not decode: {e}")))?;
    w.write_all(b"]")
}

/// One collection element: a JSON string for UTF-8, else `{"base64":"..."}`.
fn write_element(w: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    match std::str::from_utf8(data) {
        Ok(text) => serde_json::to_writer(&mut *w, text).map_err(std::io::Error::from),
        Err(_) => {
            w.write_all(b"{\"base64\":\"")?;
            w.write_all(
                base64::engine::general_purpose::STANDARD
                    .encode(data)
                    .as_bytes(),
            )?;
            w.write_all(b"\"}")
        }
    }
}

/// `"name":"text"` for UTF-8 data, else `"name_base64":"..."`. Plain printable ASCII (the
/// common case) is copied as is; anything needing escapes goes through serde_json.
fn write_bytes_field(w: &mut impl Write, name: &str, data: &[u8]) -> std::io::Result<()> {
    let plain = data
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    w.write_all(b"\"")?;
    w.write_all(name.as_bytes())?;
    if plain {
        w.write_all(b"\":\"")?;
        w.write_all(data)?;
        return w.write_all(b"\"");
    }
    match std::str::from_utf8(data) {
        Ok(text) => {
            w.write_all(b"\":")?;
            serde_json::to_writer(&mut *w, text).map_err(std::io::Error::from)
        }
        Err(_) => {
            w.write_all(b"_base64\":\"")?;
            w.write_all(
                base64::engine::general_purpose::STANDARD
                    .encode(data)
                    .as_bytes(),
            )?;
            w.write_all(b"\"")
        }
    }
}
