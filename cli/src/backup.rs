//! `ecommerce backup FILE`: streams `GET /cluster/backup` to disk with a progress bar.
//!
//! Architecture invariant: FILE is only ever replaced by a complete, fsynced download. The
//! body goes to `FILE.tmp`, which is synced and then renamed over FILE (and the directory
//! synced); on any error the temporary file is removed and FILE is left untouched. It is
//! created readable by its owner only (0600).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures::StreamExt as _;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use tokio::fs::{self, File};
use tokio::io::{AsyncWriteExt as _, BufWriter};

use crate::client::NodeClient;
use crate::BackupArgs;

/// Runs `ecommerce backup`: downloads the backup, then prints its size on stdout.
///
/// The progress bar goes to stderr and is drawn only when stderr is a terminal.
pub async fn run_backup(args: BackupArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let size = download(&args).await?;
    println!(
        "wrote {} ({size} bytes) to {} in {:.1}s",
        HumanBytes(size),
        args.file.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Downloads the backup into `args.file` atomically and returns its size in bytes.
async fn download(args: &BackupArgs) -> anyhow::Result<u64> {
    let target = &args.file;
    let tmp = tmp_path(target)?;
    if fs::metadata(target).await.is_ok_and(|m| m.is_dir()) {
        bail!("{} is a directory; give a file path", target.display());
    }

    let client = NodeClient::new(&args.node)?;
    let response = client.get("/cluster/backup").await?;
    let expected = response.content_length();
    let progress = progress_bar(expected);

    let written = async {
        let mut body = response.bytes_stream();
        // The backup is the whole shop: readable by its owner only (0600).
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        options.mode(0o600);
        let file: File = options
            .open(&tmp)
            .await
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut out = BufWriter::new(file);
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("the download was interrupted")?;
            out.write_all(&chunk)
                .await
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            written += chunk.len() as u64;
            progress.inc(chunk.len() as u64);
        }
        if let Some(expected) = expected.filter(|&e| e != written) {
            bail!("the download was cut short: got {written} of {expected} bytes");
        }
        out.flush().await?;
        out.get_ref()
            .sync_all()
            .await
            .with_context(|| format!("cannot sync {}", tmp.display()))?;
        anyhow::Ok(written)
    }
    .await;
    progress.finish_and_clear();

    let result = match written {
        Ok(written) => replace(&tmp, target).await.map(|()| written),
        Err(e) => Err(e),
    };
    if result.is_err() {
        // Best effort: the error at hand matters more than a leftover temporary file.
        let _ = fs::remove_file(&tmp).await;
    }
    result
}

/// `FILE.tmp`, next to FILE so that the rename stays on one file system.
fn tmp_path(target: &Path) -> anyhow::Result<PathBuf> {
    let Some(name) = target.file_name() else {
        bail!("{} is not a file path", target.display());
    };
    let mut tmp = name.to_os_string();
    tmp.push(".tmp");
    Ok(target.with_file_name(tmp))
}

/// Renames `tmp` over `target` and syncs the directory so the rename survives a crash.
async fn replace(tmp: &Path, target: &Path) -> anyhow::Result<()> {
    fs::rename(tmp, target)
        .await
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), target.display()))?;
    #[cfg(unix)]
    {
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let sync = async { File::open(dir).await?.sync_all().await };
        sync.await
            .with_context(|| format!("cannot sync directory {}", dir.display()))?;
    }
    Ok(())
}

/// A byte progress bar when the size is known, a byte-counting spinner otherwise.
fn progress_bar(total: Option<u64>) -> ProgressBar {
    match total {
        Some(total) => ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid progress template"),
        ),
        None => {
            let spinner = ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
                    .expect("valid progress template"),
            );
            spinner.enable_steady_tick(Duration::from_millis(100));
            spinner
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;

    use super::*;
    use crate::testing::{node_opts, serve};

    fn args(base: &str, file: PathBuf) -> BackupArgs {
        BackupArgs {
            file,
            node: node_opts(base, 5),
        }
    }

    fn snapshot() -> Vec<u8> {
        (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect()
    }

    #[tokio::test]
    async fn downloads_with_a_known_length() {
        let router = Router::new().route("/cluster/backup", get(|| async { snapshot() }));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snap.bin");
        std::fs::write(&file, b"older backup").unwrap();

        let size = download(&args(&serve(router).await, file.clone()))
            .await
            .unwrap();

        assert_eq!(size, snapshot().len() as u64);
        assert_eq!(std::fs::read(&file).unwrap(), snapshot());
        assert!(!dir.path().join("snap.bin.tmp").exists());
    }

    #[tokio::test]
    async fn downloads_a_chunked_stream() {
        let router = Router::new().route(
            "/cluster/backup",
            get(|| async {
                let chunks = snapshot()
                    .chunks(10_000)
                    .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                    .collect::<Vec<_>>();
                Body::from_stream(futures::stream::iter(chunks))
            }),
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snap.bin");

        let size = download(&args(&serve(router).await, file.clone()))
            .await
            .unwrap();

        assert_eq!(size, snapshot().len() as u64);
        assert_eq!(std::fs::read(&file).unwrap(), snapshot());
    }

    #[tokio::test]
    async fn a_failed_download_leaves_the_old_file_alone() {
        let router = Router::new().route(
            "/cluster/backup",
            get(|| async {
                let body = json!({"code": "internal", "message": "snapshot failed"});
                (StatusCode::INTERNAL_SERVER_ERROR, Json(body))
            }),
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snap.bin");
        std::fs::write(&file, b"older backup").unwrap();

        let err = download(&args(&serve(router).await, file.clone()))
            .await
            .unwrap_err();

        assert_eq!(err.to_string(), "internal: snapshot failed");
        assert_eq!(std::fs::read(&file).unwrap(), b"older backup");
        assert!(!dir.path().join("snap.bin.tmp").exists());
    }

    #[tokio::test]
    async fn an_interrupted_stream_leaves_no_file() {
        let router = Router::new().route(
            "/cluster/backup",
            get(|| async {
                // The failure comes after a pause, so the headers and the first chunk
                // have been sent: the client sees a body cut short, not a refused request.
                let first = futures::stream::once(async { Ok(vec![1u8; 1000]) });
                let failure = futures::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err(std::io::Error::other("disk on fire"))
                });
                Body::from_stream(first.chain(failure))
            }),
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snap.bin");

        let err = download(&args(&serve(router).await, file.clone()))
            .await
            .unwrap_err();

        assert!(err.to_string().contains("interrupted"), "{err:#}");
        assert!(!file.exists());
        assert!(!dir.path().join("snap.bin.tmp").exists());
    }

    #[test]
    fn the_temporary_file_sits_next_to_the_target() {
        assert_eq!(
            tmp_path(Path::new("a/b.bin")).unwrap(),
            Path::new("a/b.bin.tmp")
        );
        assert_eq!(tmp_path(Path::new("b")).unwrap(), Path::new("b.tmp"));
        assert!(tmp_path(Path::new("a/..")).is_err());
    }
}
