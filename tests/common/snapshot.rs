//! Snapshot files as a test reads them: parsed JSON with the envelope checked, and the text
//! entries they hold.

use std::path::Path;

use serde_json::Value;

/// Reads and parses a snapshot file that must exist, checking its envelope.
pub fn read_snapshot(path: &Path) -> Value {
    let data = std::fs::read(path)
        .unwrap_or_else(|e| panic!("snapshot {} unreadable: {e}", path.display()));
    parse(path, &data)
}

/// The snapshot file parsed (envelope checked), or `None` if it does not exist (yet).
pub fn read_snapshot_if_written(path: &Path) -> Option<Value> {
    let data = std::fs::read(path).ok()?;
    Some(parse(path, &data))
}

/// Every `(db, key, value)` with a text key and value in a parsed snapshot, in file order
/// (binary keys and values, stored base64-encoded, are left out).
pub fn snapshot_entries(snapshot: &Value) -> Vec<(u64, String, String)> {
    let mut out = Vec::new();
    for db in snapshot["databases"].as_array().expect("databases array") {
        let index = db["db"].as_u64().expect("db index");
        for e in db["entries"].as_array().expect("entries array") {
            if let (Some(k), Some(v)) = (e["key"].as_str(), e["value"].as_str()) {
                out.push((index, k.to_string(), v.to_string()));
            }
        }
    }
    out
}

fn parse(path: &Path, data: &[u8]) -> Value {
    let value: Value = serde_json::from_slice(data).unwrap_or_else(|e| {
        panic!(
            "snapshot {} is not valid JSON ({e}); {} bytes",
            path.display(),
            data.len()
        )
    });
    assert_eq!(value["format"], "minikv-snapshot", "{}", path.display());
    assert_eq!(value["version"], 3);
    for db in value["databases"].as_array().expect("databases array") {
        for e in db["entries"].as_array().expect("entries array") {
            assert_eq!(e["type"], "string", "every entry names its type: {e}");
        }
    }
    value
}
