//! The open-files limit. Every virtual user of the load scenarios holds one
//! TCP connection, so the benchmark holds one descriptor per user and each
//! node one per connection it accepted; 50,000 connections do not fit in a
//! usual limit (20,000 on the development machine). Raised here, in the
//! benchmark's own process and before any node is spawned: the nodes inherit
//! it. Only the limit: nothing here touches the machine's other settings.
//! Where the hard limit stops the raise (no `CAP_SYS_RESOURCE`), the spike
//! spreads its users over worker processes (`scenarios/worker.rs`), each
//! under the same limit, as is each node.

use rlimit::Resource;

/// Descriptors wanted: the spike's 50,000 connections, once on the
/// benchmark's side and spread over the nodes, plus RocksDB's files, with room.
pub const WANTED: u64 = 262_144;

/// What the raise gave.
pub struct OpenFiles {
    pub before: u64,
    pub now: u64,
}

/// Raises the soft and hard `RLIMIT_NOFILE` to `want` when allowed (root may
/// raise the hard limit; others only the soft one, up to the hard limit).
/// Never lowers it. A refusal is not an error: the limit stays, and the
/// scenarios say how many connections it allows.
pub fn raise_open_files(want: u64) -> OpenFiles {
    let (soft, hard) = Resource::NOFILE.get().unwrap_or((0, 0));
    if soft >= want {
        return OpenFiles {
            before: soft,
            now: soft,
        };
    }
    let now = if Resource::NOFILE.set(want, want.max(hard)).is_ok() {
        want
    } else if soft < hard && Resource::NOFILE.set(hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    OpenFiles { before: soft, now }
}
