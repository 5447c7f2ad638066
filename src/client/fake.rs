//! A fake node for the client's routing tests: a TCP listener answering RESP by hand, each
//! reply chosen by a test closure from the command's words, every command recorded.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the fake node does with one command: answer these raw RESP bytes, or close the
/// connection without a reply.
pub enum Answer {
    /// Raw RESP bytes, e.g. `b"+OK\r\n"`.
    Raw(Vec<u8>),
    /// Close the connection, no reply.
    Close,
}

type Handler = Arc<dyn Fn(&[String]) -> Answer + Send + Sync>;

/// A running fake node; it stops when the test's runtime ends.
pub struct FakeNode {
    /// `127.0.0.1:port`.
    pub port: u16,
    /// Every command received, in order, as words.
    pub seen: Arc<Mutex<Vec<Vec<String>>>>,
}

impl FakeNode {
    /// Listens on an ephemeral port and answers each command with `handler`.
    pub async fn start(handler: impl Fn(&[String]) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let seen: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (handler, log) = (handler.clone(), log.clone());
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut read = BufReader::new(read);
                    while let Some(words) = read_command(&mut read).await {
                        log.lock().expect("log lock").push(words.clone());
                        match handler(&words) {
                            Answer::Raw(bytes) => {
                                if write.write_all(&bytes).await.is_err() {
                                    return;
                                }
                            }
                            Answer::Close => return,
                        }
                    }
                });
            }
        });
        FakeNode { port, seen }
    }

    /// The commands received whose first word is `name` (case-insensitive).
    pub fn count(&self, name: &str) -> usize {
        let seen = self.seen.lock().expect("log lock");
        seen.iter()
            .filter(|w| w.first().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .count()
    }
}

/// One RESP array of bulk strings as words; `None` at the end of the stream or on bad input.
async fn read_command<R: tokio::io::AsyncBufRead + Unpin>(read: &mut R) -> Option<Vec<String>> {
    let mut line = String::new();
    read.read_line(&mut line).await.ok()?;
    let count: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
    let mut words = Vec::with_capacity(count);
    for _ in 0..count {
        line.clear();
        read.read_line(&mut line).await.ok()?;
        let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
        let mut data = vec![0; len + 2];
        read.read_exact(&mut data).await.ok()?;
        data.truncate(len);
        words.push(String::from_utf8_lossy(&data).into_owned());
    }
    Some(words)
}

/// RESP bytes of a `CLUSTER SHARDS` reply for nodes on `ports` (all 127.0.0.1), where shard
/// `i` is led by `ports[leaders[i]]` (or has no leader for `None`), every node holds every
/// shard, and the nodes at the indices in `failed` are reported failed. No shard reports
/// slots, as from a server from before slots.
pub fn shards_reply(ports: &[u16], leaders: &[Option<usize>], failed: &[usize]) -> Vec<u8> {
    let shards: Vec<FakeShard> = leaders
        .iter()
        .enumerate()
        .map(|(i, leader)| FakeShard {
            id: i + 1,
            slots: Vec::new(),
            leader: *leader,
        })
        .collect();
    slotted_shards_reply(ports, &shards, failed)
}

/// One shard of [`slotted_shards_reply`].
pub struct FakeShard {
    /// The 1-based shard id.
    pub id: usize,
    /// Inclusive slot ranges.
    pub slots: Vec<(u16, u16)>,
    /// The index in `ports` of the leader, if any.
    pub leader: Option<usize>,
}

/// RESP bytes of a `CLUSTER SHARDS` reply listing `shards` in order, every node on `ports`
/// (all 127.0.0.1) a member of each, the nodes at the indices in `failed` reported failed.
pub fn slotted_shards_reply(ports: &[u16], shards: &[FakeShard], failed: &[usize]) -> Vec<u8> {
    let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());
    let mut out = format!("*{}\r\n", shards.len());
    for shard in shards {
        out += "*6\r\n";
        out += &bulk("slots");
        out += &format!("*{}\r\n", shard.slots.len() * 2);
        for (first, last) in &shard.slots {
            out += &format!(":{first}\r\n:{last}\r\n");
        }
        out += &bulk("shard-index");
        out += &format!(":{}\r\n", shard.id);
        out += &bulk("nodes");
        out += &format!("*{}\r\n", ports.len());
        for (i, port) in ports.iter().enumerate() {
            let role = if shard.leader == Some(i) {
                "master"
            } else {
                "replica"
            };
            out += "*14\r\n";
            out += &bulk("id");
            out += &bulk(&format!("{i}").repeat(40));
            out += &bulk("port");
            out += &format!(":{port}\r\n");
            out += &bulk("ip");
            out += &bulk("127.0.0.1");
            out += &bulk("endpoint");
            out += &bulk("127.0.0.1");
            out += &bulk("role");
            out += &bulk(role);
            out += &bulk("replication-offset");
            out += ":7\r\n";
            out += &bulk("health");
            out += &bulk(if failed.contains(&i) {
                "failed"
            } else {
                "online"
            });
        }
    }
    out.into_bytes()
}

/// RESP bytes of a `CLUSTER SHARDS` reply listing each shard of `owners` (id -> inclusive
/// slot ranges) with its `slots`, every shard led by one node at `127.0.0.1:port`.
pub fn slots_reply(
    owners: &std::collections::BTreeMap<u64, Vec<(u16, u16)>>,
    port: u16,
) -> Vec<u8> {
    let bulk = |s: &str| format!("${}\r\n{s}\r\n", s.len());
    let mut out = format!("*{}\r\n", owners.len());
    for (id, ranges) in owners {
        out += "*6\r\n";
        out += &bulk("slots");
        out += &format!("*{}\r\n", ranges.len() * 2);
        for (start, end) in ranges {
            out += &format!(":{start}\r\n:{end}\r\n");
        }
        out += &bulk("shard-index");
        out += &format!(":{id}\r\n");
        out += &bulk("nodes");
        out += "*1\r\n*10\r\n";
        out += &bulk("id");
        out += &bulk(&format!("{id}").repeat(40));
        out += &bulk("port");
        out += &format!(":{port}\r\n");
        out += &bulk("ip");
        out += &bulk("127.0.0.1");
        out += &bulk("role");
        out += &bulk("master");
        out += &bulk("health");
        out += &bulk("online");
    }
    out.into_bytes()
}
