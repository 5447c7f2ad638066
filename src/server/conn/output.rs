//! Writing replies out: bounded by CLIENT KILL, shutdown and the idle timeout, and from several
//! buffers at once, so a large value goes to the socket from where it lies.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::Transport;

/// The most buffers one write is given.
const MAX_SLICES: usize = 4;

/// Writes `parts`, in order, to the client (one `writev` for all of them where the socket
/// takes it). What the socket takes at once is always written; but a client that takes nothing
/// (it stopped reading and the socket buffers are full) is not waited for past CLIENT KILL or
/// shutdown (`stopped`), nor, with a `stall_limit` (the idle `timeout`), for longer than that
/// without progress: Redis counts a client whose replies do not move as idle too. The node
/// buffers nothing more meanwhile (it reads no new requests while a write is pending), but
/// without this such a client would hold its connection and its buffers for ever, out of reach
/// of CLIENT KILL, and make shutdown wait out its drain timeout.
///
/// # Errors
/// The write failed, or was abandoned for one of the reasons above.
pub(super) async fn write_out<S: Transport, F: Future<Output = ()>>(
    stream: &mut S,
    parts: &[&[u8]],
    mut stopped: Pin<&mut F>,
    stall_limit: Option<Duration>,
) -> std::io::Result<()> {
    // The first part not yet written whole, and how much of it was.
    let (mut part, mut offset) = (0, 0);
    loop {
        while part < parts.len() && offset == parts[part].len() {
            (part, offset) = (part + 1, 0);
        }
        if part == parts.len() {
            break;
        }
        // The parts left, up to `MAX_SLICES` of them (the rest go in a later round).
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        slices[0] = IoSlice::new(&parts[part][offset..]);
        let mut count = 1;
        for p in parts[part + 1..].iter().take(MAX_SLICES - 1) {
            slices[count] = IoSlice::new(p);
            count += 1;
        }
        let slices = &slices[..count];
        // Biased, the write first: replies the socket can take go out even when the
        // connection is being stopped, so stopping between batches still answers everything
        // already read to any client that reads. The sleep is new each round: progress
        // restarts the stall limit.
        let mut n = tokio::select! {
            biased;
            r = stream.write_vectored(slices) => match r? {
                0 => return Err(std::io::ErrorKind::WriteZero.into()),
                n => n,
            },
            () = &mut stopped => return Err(stopped_error()),
            () = sleep_or_never(stall_limit) => return Err(stalled_error()),
        };
        while n > 0 {
            let step = n.min(parts[part].len() - offset);
            offset += step;
            n -= step;
            if offset == parts[part].len() && n > 0 {
                (part, offset) = (part + 1, 0);
            }
        }
    }
    // TLS keeps records in its session until flushed; for TCP this is a no-op. Same guards:
    // a client that stops reading can stall the flush as it can stall a write.
    tokio::select! {
        biased;
        r = stream.flush() => r?,
        () = &mut stopped => return Err(stopped_error()),
        () = sleep_or_never(stall_limit) => return Err(stalled_error()),
    }
    Ok(())
}

fn stopped_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "stopped (CLIENT KILL or shutdown) while the client was not reading",
    )
}

fn stalled_error() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the client read no reply within the timeout",
    )
}

/// Waits `limit`, or forever when there is none.
pub(super) async fn sleep_or_never(limit: Option<Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}
