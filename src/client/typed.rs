//! Typed calls for the collection types and pub/sub: hashes, lists, sets, sorted sets and
//! PUBLISH, each a method of [`ClusterClient`] that sends one command to the key's shard
//! leader and turns the reply into Rust values.
//!
//! They go through the same request loop as [`ClusterClient::get`] (routing by slot or MD5,
//! `MOVED`/`ASK`, retries). Whether a command is sent again after its reply was lost is
//! [`super::retry::is_idempotent`]'s call: HSET, HDEL, SADD, SREM, ZADD, ZREM and the reads
//! are (a repeat leaves the same state, though its count then says 0: the first run made the
//! change), LPUSH, RPUSH, LPOP, RPOP and PUBLISH are not (a repeat would add, remove or deliver
//! twice): they fail with [`ClientError::OutcomeUnknown`] instead.
//!
//! Replies are read as RESP2 sends them (the client speaks RESP2), and as RESP3 would, so a
//! node's reply type never matters: a map or a flat array of pairs, a double or a bulk string.
//! No parsing of arguments or replies beyond that happens here.
//!
//! ```no_run
//! # async fn demo() -> Result<(), minikv::client::ClientError> {
//! use minikv::{ClientConfig, ClusterClient};
//! let client = ClusterClient::new(ClientConfig::default());
//! client.hset(b"user:1", &[(b"name", b"Alice"), (b"lang", b"en")]).await?;
//! client.rpush(b"jobs", &[b"a", b"b"]).await?;
//! client.zadd(b"board", &[(12.5, b"alice"), (9.0, b"bob")]).await?;
//! let top = client.zrange_withscores(b"board", 0, -1).await?;
//! assert_eq!(top[0].1, 9.0);
//! # Ok(()) }
//! ```

use bytes::Bytes;

use super::{b, copy, int_reply, unexpected, ClientError, ClusterClient};
use crate::protocol::Reply;

impl ClusterClient {
    // -----------------------------------------------------------------------------------------
    // Hashes
    // -----------------------------------------------------------------------------------------

    /// HSET: sets `fields` (field, value) in the hash at `key`, creating it; the number of
    /// fields that were new.
    ///
    /// # Errors
    /// Node unreachable, or an error reply (`WRONGTYPE` for a key of another type; no fields
    /// is the node's arity error).
    pub async fn hset(&self, key: &[u8], fields: &[(&[u8], &[u8])]) -> Result<u64, ClientError> {
        let mut args = vec![b("HSET"), copy(key)];
        for (field, value) in fields {
            args.extend([copy(field), copy(value)]);
        }
        count(self.keyed(key, args).await?)
    }

    /// HGET: the value of `field` in the hash at `key`, or `None` (no such field or key).
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn hget(&self, key: &[u8], field: &[u8]) -> Result<Option<Bytes>, ClientError> {
        let args = vec![b("HGET"), copy(key), copy(field)];
        optional_bulk(self.keyed(key, args).await?)
    }

    /// HGETALL: every (field, value) of the hash at `key`, in the node's order; empty for a
    /// missing key.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn hgetall(&self, key: &[u8]) -> Result<Vec<(Bytes, Bytes)>, ClientError> {
        let reply = self.keyed(key, vec![b("HGETALL"), copy(key)]).await?;
        pairs(reply)?
            .into_iter()
            .map(|(field, value)| Ok((bulk(field)?, bulk(value)?)))
            .collect()
    }

    /// HDEL: removes `fields` from the hash at `key`; the number that existed. The node
    /// deletes a hash left empty.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn hdel(&self, key: &[u8], fields: &[&[u8]]) -> Result<u64, ClientError> {
        count(self.keyed(key, with_key("HDEL", key, fields)).await?)
    }

    /// HLEN: the number of fields in the hash at `key` (0 for a missing key).
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn hlen(&self, key: &[u8]) -> Result<u64, ClientError> {
        count(self.keyed(key, vec![b("HLEN"), copy(key)]).await?)
    }

    // -----------------------------------------------------------------------------------------
    // Lists
    // -----------------------------------------------------------------------------------------

    /// LPUSH: pushes `values` at the head of the list at `key`, one after the other (so the
    /// last ends up first), creating it; the list's new length. Not sent again after a lost
    /// reply.
    ///
    /// # Errors
    /// Node unreachable, [`ClientError::OutcomeUnknown`], or an error reply.
    pub async fn lpush(&self, key: &[u8], values: &[&[u8]]) -> Result<u64, ClientError> {
        count(self.keyed(key, with_key("LPUSH", key, values)).await?)
    }

    /// RPUSH: appends `values` to the list at `key`, creating it; the list's new length. Not
    /// sent again after a lost reply.
    ///
    /// # Errors
    /// Node unreachable, [`ClientError::OutcomeUnknown`], or an error reply.
    pub async fn rpush(&self, key: &[u8], values: &[&[u8]]) -> Result<u64, ClientError> {
        count(self.keyed(key, with_key("RPUSH", key, values)).await?)
    }

    /// LPOP: removes and returns the list's first element, `None` for a missing key. Not sent
    /// again after a lost reply.
    ///
    /// # Errors
    /// Node unreachable, [`ClientError::OutcomeUnknown`], or an error reply.
    pub async fn lpop(&self, key: &[u8]) -> Result<Option<Bytes>, ClientError> {
        optional_bulk(self.keyed(key, vec![b("LPOP"), copy(key)]).await?)
    }

    /// RPOP: removes and returns the list's last element, `None` for a missing key. Not sent
    /// again after a lost reply.
    ///
    /// # Errors
    /// Node unreachable, [`ClientError::OutcomeUnknown`], or an error reply.
    pub async fn rpop(&self, key: &[u8]) -> Result<Option<Bytes>, ClientError> {
        optional_bulk(self.keyed(key, vec![b("RPOP"), copy(key)]).await?)
    }

    /// LRANGE: the elements from index `start` to `stop`, both included; negative indexes
    /// count from the end (-1 is the last), as in Redis.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn lrange(
        &self,
        key: &[u8],
        start: i64,
        stop: i64,
    ) -> Result<Vec<Bytes>, ClientError> {
        let args = vec![b("LRANGE"), copy(key), number(start), number(stop)];
        bulks(self.keyed(key, args).await?)
    }

    /// LLEN: the length of the list at `key` (0 for a missing key).
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn llen(&self, key: &[u8]) -> Result<u64, ClientError> {
        count(self.keyed(key, vec![b("LLEN"), copy(key)]).await?)
    }

    // -----------------------------------------------------------------------------------------
    // Sets
    // -----------------------------------------------------------------------------------------

    /// SADD: adds `members` to the set at `key`, creating it; the number that were new.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn sadd(&self, key: &[u8], members: &[&[u8]]) -> Result<u64, ClientError> {
        count(self.keyed(key, with_key("SADD", key, members)).await?)
    }

    /// SREM: removes `members` from the set at `key`; the number that were there. The node
    /// deletes a set left empty.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn srem(&self, key: &[u8], members: &[&[u8]]) -> Result<u64, ClientError> {
        count(self.keyed(key, with_key("SREM", key, members)).await?)
    }

    /// SMEMBERS: the members of the set at `key`, in the node's order (none for a missing
    /// key).
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn smembers(&self, key: &[u8]) -> Result<Vec<Bytes>, ClientError> {
        bulks(self.keyed(key, vec![b("SMEMBERS"), copy(key)]).await?)
    }

    /// SISMEMBER: whether `member` is in the set at `key`.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn sismember(&self, key: &[u8], member: &[u8]) -> Result<bool, ClientError> {
        let args = vec![b("SISMEMBER"), copy(key), copy(member)];
        flag(self.keyed(key, args).await?)
    }

    /// SCARD: the number of members of the set at `key` (0 for a missing key).
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn scard(&self, key: &[u8]) -> Result<u64, ClientError> {
        count(self.keyed(key, vec![b("SCARD"), copy(key)]).await?)
    }

    // -----------------------------------------------------------------------------------------
    // Sorted sets
    // -----------------------------------------------------------------------------------------

    /// ZADD: adds (score, member) pairs to the sorted set at `key` or updates their scores,
    /// creating it; the number of members that were new. Scores travel as their shortest
    /// exact decimal form (`inf` and `-inf` included; NaN is the node's error).
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn zadd(&self, key: &[u8], members: &[(f64, &[u8])]) -> Result<u64, ClientError> {
        let mut args = vec![b("ZADD"), copy(key)];
        for (score, member) in members {
            args.extend([score_arg(*score), copy(member)]);
        }
        count(self.keyed(key, args).await?)
    }

    /// ZREM: removes `members` from the sorted set at `key`; the number that were there. The
    /// node deletes a sorted set left empty.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn zrem(&self, key: &[u8], members: &[&[u8]]) -> Result<u64, ClientError> {
        count(self.keyed(key, with_key("ZREM", key, members)).await?)
    }

    /// ZSCORE: the score of `member`, or `None` (no such member or key).
    ///
    /// # Errors
    /// Node unreachable, an error reply, or a score that is not a number.
    pub async fn zscore(&self, key: &[u8], member: &[u8]) -> Result<Option<f64>, ClientError> {
        let args = vec![b("ZSCORE"), copy(key), copy(member)];
        match self.keyed(key, args).await? {
            Reply::Nil => Ok(None),
            reply => score(reply).map(Some),
        }
    }

    /// ZRANGE by rank: the members from rank `start` to `stop`, both included, lowest score
    /// first; negative ranks count from the end.
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn zrange(
        &self,
        key: &[u8],
        start: i64,
        stop: i64,
    ) -> Result<Vec<Bytes>, ClientError> {
        let args = vec![b("ZRANGE"), copy(key), number(start), number(stop)];
        bulks(self.keyed(key, args).await?)
    }

    /// ZRANGE by rank `WITHSCORES`: (member, score) pairs, as [`ClusterClient::zrange`].
    ///
    /// # Errors
    /// Node unreachable, an error reply, or a score that is not a number.
    pub async fn zrange_withscores(
        &self,
        key: &[u8],
        start: i64,
        stop: i64,
    ) -> Result<Vec<(Bytes, f64)>, ClientError> {
        let args = vec![
            b("ZRANGE"),
            copy(key),
            number(start),
            number(stop),
            b("WITHSCORES"),
        ];
        pairs(self.keyed(key, args).await?)?
            .into_iter()
            .map(|(member, value)| Ok((bulk(member)?, score(value)?)))
            .collect()
    }

    /// ZCARD: the number of members of the sorted set at `key` (0 for a missing key).
    ///
    /// # Errors
    /// Node unreachable, or an error reply.
    pub async fn zcard(&self, key: &[u8]) -> Result<u64, ClientError> {
        count(self.keyed(key, vec![b("ZCARD"), copy(key)]).await?)
    }

    // -----------------------------------------------------------------------------------------
    // Pub/sub
    // -----------------------------------------------------------------------------------------

    /// PUBLISH: sends `message` to the subscribers of `channel`; the number that received it,
    /// as the node counts them. Sent to the node a key named `channel` would go to: in a
    /// replicated cluster a message published on one node reaches the subscribers of every
    /// node; the plain (spec's) cluster's nodes are independent, so there subscribers listen
    /// on server [`ClusterClient::index_for`]`(channel)`. Not sent again after a lost reply
    /// (it could be delivered twice).
    ///
    /// # Errors
    /// Node unreachable, [`ClientError::OutcomeUnknown`], or an error reply.
    pub async fn publish(&self, channel: &[u8], message: &[u8]) -> Result<u64, ClientError> {
        let args = vec![b("PUBLISH"), copy(channel), copy(message)];
        count(self.keyed(channel, args).await?)
    }
}

/// `name key items...`.
fn with_key(name: &'static str, key: &[u8], items: &[&[u8]]) -> Vec<Bytes> {
    let mut args = Vec::with_capacity(items.len() + 2);
    args.extend([b(name), copy(key)]);
    args.extend(items.iter().map(|item| copy(item)));
    args
}

fn number(n: i64) -> Bytes {
    Bytes::from(n.to_string())
}

/// A score as an argument: Rust's shortest round-trip form (`1.1`, `1e300`), `inf`/`-inf` for
/// the infinities, which Redis's `strtod` reads back exactly.
fn score_arg(score: f64) -> Bytes {
    Bytes::from(format!("{score:?}"))
}

/// An integer reply that counts something, so is never negative.
fn count(reply: Reply) -> Result<u64, ClientError> {
    let n = int_reply(reply)?;
    u64::try_from(n).map_err(|_| ClientError::UnexpectedReply(format!("the negative count {n}")))
}

/// An integer reply 0 or 1 (RESP3 may send a boolean).
fn flag(reply: Reply) -> Result<bool, ClientError> {
    match reply {
        Reply::Int(0) | Reply::Bool(false) => Ok(false),
        Reply::Int(1) | Reply::Bool(true) => Ok(true),
        other => Err(unexpected(&other)),
    }
}

fn bulk(reply: Reply) -> Result<Bytes, ClientError> {
    match reply {
        Reply::Bulk(v) => Ok(v),
        Reply::Simple(s) => Ok(Bytes::from(s.into_owned())),
        other => Err(unexpected(&other)),
    }
}

fn optional_bulk(reply: Reply) -> Result<Option<Bytes>, ClientError> {
    match reply {
        Reply::Nil => Ok(None),
        reply => bulk(reply).map(Some),
    }
}

/// An array or set of bulk strings.
fn bulks(reply: Reply) -> Result<Vec<Bytes>, ClientError> {
    match reply {
        Reply::Array(items) | Reply::Set(items) => items.into_iter().map(bulk).collect(),
        other => Err(unexpected(&other)),
    }
}

/// Pairs: a map, a flat array of even length (RESP2), or an array of 2-element arrays (RESP3's
/// ZRANGE WITHSCORES).
fn pairs(reply: Reply) -> Result<Vec<(Reply, Reply)>, ClientError> {
    match reply {
        Reply::Map(pairs) => Ok(pairs),
        Reply::Array(items)
            if items
                .iter()
                .all(|i| matches!(i, Reply::Array(p) if p.len() == 2)) =>
        {
            Ok(items
                .into_iter()
                .filter_map(|item| match item {
                    Reply::Array(pair) => {
                        let mut pair = pair.into_iter();
                        Some((pair.next()?, pair.next()?))
                    }
                    _ => None,
                })
                .collect())
        }
        Reply::Array(items) if items.len() % 2 == 0 => {
            let mut items = items.into_iter();
            let mut out = Vec::with_capacity(items.len() / 2);
            while let (Some(a), Some(b)) = (items.next(), items.next()) {
                out.push((a, b));
            }
            Ok(out)
        }
        Reply::Array(items) => Err(ClientError::UnexpectedReply(format!(
            "an array of {} items, not pairs",
            items.len()
        ))),
        other => Err(unexpected(&other)),
    }
}

/// A score: a double (RESP3) or its text (`1.1000000000000001`, `inf`, `-inf`).
fn score(reply: Reply) -> Result<f64, ClientError> {
    match reply {
        Reply::Double(x) => Ok(x),
        Reply::Bulk(text) => std::str::from_utf8(&text)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or_else(|| {
                ClientError::UnexpectedReply(format!(
                    "the score {:?}, not a number",
                    String::from_utf8_lossy(&text)
                ))
            }),
        other => Err(unexpected(&other)),
    }
}

#[cfg(test)]
mod tests;
