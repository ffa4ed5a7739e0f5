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
    let mut node = Node::in_dir(1, &["--config", &config], tmpfs.path().to_path_buf(), None);
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

/// A follower with room forwards writes to a leader without: the leader
/// refuses them before its log grows, and the follower answers 507 too.
#[tokio::test]
async fn a_leader_low_on_disk_refuses_forwarded_writes() {
    let Some(tmpfs) = Tmpfs::mount(256 * MIB) else {
        eprintln!("cannot mount a tmpfs here (not root?): the leader's gate is not checked");
        return;
    };
    let certs = tempfile::tempdir().expect("certs dir");
    ecommerce::tls::init_dir(certs.path(), None, &[1, 2], &["127.0.0.1".to_string()])
        .expect("certs init");
    let (_config_dir, config) = config_file(&format!(
        "[storage]\nmin_free_bytes = {}\nmin_free_percent = 100\n",
        64 * MIB
    ));
    let args = ["--config", config.as_str()];
    let mut leader = Node::in_dir(
        1,
        &args,
        tmpfs.path().to_path_buf(),
        Some(certs.path().to_path_buf()),
    );
    leader.start(None, false).await;
    let mut follower = Node::with_certs(2, &args, Some(certs.path().to_path_buf()));
    follower
        .start(Some(&leader.peer_addr().to_string()), false)
        .await;
    eventually("node 2 a voter", Duration::from_secs(30), || async {
        let view = crate::harness::cluster_view(&leader.client()).await?;
        let voters = view.members.iter().filter(|(_, r)| r == "voter").count();
        if voters == 2 && view.leader_id == Some(1) {
            Ok(())
        } else {
            Err(format!("{}", view.raw))
        }
    })
    .await;
    let token = crate::harness::access_token(&leader.client(), "admin", "disk-admin").await;
    let via_follower = follower.client().with_bearer(&token.token);
    write(&via_follower, "wh-before")
        .await
        .ok("a forwarded write with room");

    let fill = free_bytes(tmpfs.path()).saturating_sub(32 * MIB);
    std::fs::write(tmpfs.path().join("ballast"), vec![0u8; fill as usize]).expect("ballast");
    let refused = eventually(
        "forwarded writes refused",
        Duration::from_secs(10),
        || async {
            let reply = write(&via_follower, "wh-full").await;
            if reply.status == 507 {
                Ok(reply)
            } else {
                Err(format!("still answered {reply}"))
            }
        },
    )
    .await;
    refused.expect_error(
        507,
        "insufficient_storage",
        "a write forwarded to a nearly full leader",
    );
    via_follower
        .get("/api/v1/warehouses/wh-before")
        .await
        .unwrap()
        .ok("reads go on");
    assert!(leader.is_running() && follower.is_running());
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
