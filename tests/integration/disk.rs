//! A nearly full disk: below the free-space watermark a node refuses writes
//! with 507 `insufficient_storage` before RocksDB runs out of room, keeps
//! answering reads and operators, does not exit, and takes writes again
//! once space is freed.
//!
//! The node's directory is a small tmpfs the test mounts (root only), filled
//! and emptied with a ballast file. Where mounting is not allowed, the test
//! runs the half it can: a watermark above the disk's size refuses every
//! write while reads go on.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::client::{Client, Reply};
use crate::harness::{config_file, eventually, Node};

const MIB: u64 = 1 << 20;

/// A mounted tmpfs of `size` bytes, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: u64) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        status.success().then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

async fn write(admin: &Client, name: &str) -> Reply {
    admin
        .put(
            &format!("/api/v1/warehouses/{name}"),
            &json!({"name": name, "location": {"lat": 1.0, "lon": 2.0}, "priority": 1}),
        )
        .await
        .expect("PUT warehouse")
}

/// Free bytes of `path`'s filesystem.
fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df's available bytes")
}

#[tokio::test]
async fn a_nearly_full_disk_refuses_writes_keeps_reads_and_recovers() {
    let Some(tmpfs) = Tmpfs::mount(256 * MIB) else {
        eprintln!("cannot mount a tmpfs here (not root?): checking refusals with an impossible watermark only");
        return refusal_only().await;
    };
    let (_config_dir, config) = config_file(&format!(
        "[storage]\nmin_free_bytes = {}\nmin_free_percent = 100\n",
        64 * MIB
    ));
    let mut node = Node::in_dir(1, &["--config", &config], tmpfs.path().to_path_buf());
    node.start(None, false).await;
    let admin = crate::harness::access_token(&node.client(), "admin", "disk-admin").await;
    let admin = node.client().with_bearer(&admin.token);
    write(&admin, "wh-before")
        .await
        .ok("a write with room to spare");

    // Fill the disk to 32 MiB free: below the 64 MiB watermark.
    let ballast = tmpfs.path().join("ballast");
    let fill = free_bytes(tmpfs.path()).saturating_sub(32 * MIB);
    std::fs::write(&ballast, vec![0u8; fill as usize]).expect("write the ballast");
    let refused = eventually("writes refused", Duration::from_secs(10), || async {
        let reply = write(&admin, "wh-full").await;
        if reply.status == 507 {
            Ok(reply)
        } else {
            Err(format!("still answered {reply}"))
        }
    })
    .await;
    refused.expect_error(507, "insufficient_storage", "a write on a nearly full disk");

    // Reads and operators go on; the node did not exit.
    admin
        .get("/api/v1/warehouses/wh-before")
        .await
        .unwrap()
        .ok("a read on a nearly full disk");
    node.client().health().await.unwrap().ok("health");
    let metrics = node.client().get("/metrics").await.unwrap();
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    assert!(text.contains("storage_writes_refused 1"), "{text}");
    assert!(node.is_running());

    // Space comes back: so do writes.
    std::fs::remove_file(&ballast).expect("remove the ballast");
    eventually("writes accepted again", Duration::from_secs(10), || async {
        let reply = write(&admin, "wh-after").await;
        if reply.status == 200 {
            Ok(())
        } else {
            Err(format!("still answered {reply}"))
        }
    })
    .await;
    drop(node);
}

/// Where no filesystem can be mounted: a watermark no disk can meet.
async fn refusal_only() {
    let (_config_dir, config) = config_file(&format!(
        "[storage]\nmin_free_bytes = {}\nmin_free_percent = 100\n",
        u64::MAX
    ));
    let mut node = Node::new(1, &["--config", &config]);
    node.start(None, false).await;
    let registered = node
        .client()
        .post(
            "/auth/register",
            &json!({"email": "full@example.test", "password": "a long enough password", "name": "F"}),
        )
        .await
        .unwrap();
    registered.expect_error(507, "insufficient_storage", "a write below the watermark");
    node.client().health().await.unwrap().ok("health");
    assert!(node.is_running());
}
