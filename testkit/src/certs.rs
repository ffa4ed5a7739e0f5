//! The cluster CA and node certificates, made by the binary under test (`ecommerce certs
//! init` / `ecommerce certs issue`, as in the README's 3-node recipe), so the runners need no
//! TLS code of their own. File names follow `src/tls.rs` (`ca.pem`, `node-<id>.pem`,
//! `node-<id>.key`); this crate does not link the node to ask it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

use crate::node::scrub_env;

/// A directory made by `ecommerce certs init`, and the binary that issues more.
#[derive(Clone, Debug)]
pub struct Certs {
    bin: PathBuf,
    dir: PathBuf,
}

impl Certs {
    /// `bin certs init`: a new cluster CA in `dir` (which must not hold one) and a
    /// certificate for each of `ids`, naming `hosts` (IP addresses or DNS names clients use
    /// for HTTPS) besides the node's own names.
    pub fn init(bin: &Path, dir: &Path, ids: &[u64], hosts: &[String]) -> anyhow::Result<Certs> {
        let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
        let mut args = vec![
            "init".to_string(),
            "--dir".into(),
            dir.display().to_string(),
            "--nodes".into(),
            ids.join(","),
        ];
        if !hosts.is_empty() {
            args.extend(["--hosts".to_string(), hosts.join(",")]);
        }
        run_certs(bin, &args)?;
        let certs = Certs::open(bin, dir);
        match certs.generate_kek() {
            Ok(_) => {}
            // A binary from before encryption at rest (a benchmark's
            // baseline): its nodes take no KEK.
            Err(e) if format!("{e:#}").contains("unrecognized subcommand") => {}
            Err(e) => return Err(e),
        }
        Ok(certs)
    }

    /// The cluster's key-encryption key file (`--kek-file`), next to the CA:
    /// every node of one cluster needs the same one.
    pub fn kek_file(&self) -> PathBuf {
        self.dir.join("kek")
    }

    /// `bin keys generate-kek`: adds a KEK version to [`Certs::kek_file`]
    /// (the first one, or the next for a rotation) and returns it.
    pub fn generate_kek(&self) -> anyhow::Result<u32> {
        let before = std::fs::read_to_string(self.kek_file()).unwrap_or_default();
        let mut command = Command::new(&self.bin);
        command
            .args(["keys", "generate-kek", "--file"])
            .arg(self.kek_file());
        scrub_env(&mut command);
        let out = command
            .output()
            .with_context(|| format!("running {} keys generate-kek", self.bin.display()))?;
        if !out.status.success() {
            bail!(
                "{} keys generate-kek: {}",
                self.bin.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let after = std::fs::read_to_string(self.kek_file())?;
        let added = after
            .lines()
            .filter(|l| !before.lines().any(|b| b == *l))
            .find_map(|l| l.split_whitespace().next()?.parse().ok());
        added.context("keys generate-kek added no version")
    }

    /// A directory made earlier (by [`Certs::init`] or by hand).
    pub fn open(bin: &Path, dir: &Path) -> Certs {
        Certs {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
        }
    }

    /// The directory nodes get as `--certs`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cluster CA's certificate, what HTTPS clients of the cluster trust.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn node_cert(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}.pem"))
    }

    pub fn node_key(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}.key"))
    }

    /// `bin certs issue`: a certificate for node `id` from the CA, naming `hosts`.
    pub fn issue(&self, id: u64, hosts: &[String]) -> anyhow::Result<()> {
        let mut args = vec![
            "issue".to_string(),
            "--dir".into(),
            self.dir.display().to_string(),
            "--node-id".into(),
            id.to_string(),
        ];
        if !hosts.is_empty() {
            args.extend(["--hosts".to_string(), hosts.join(",")]);
        }
        run_certs(&self.bin, &args)
    }

    /// [`Certs::issue`] unless node `id` has a certificate already.
    pub fn ensure(&self, id: u64, hosts: &[String]) -> anyhow::Result<()> {
        if self.node_cert(id).exists() {
            return Ok(());
        }
        self.issue(id, hosts)
    }

    /// The CA as a certificate for a `reqwest` client to trust.
    pub fn reqwest_ca(&self) -> anyhow::Result<reqwest::Certificate> {
        let pem = std::fs::read(self.ca_cert())
            .with_context(|| format!("reading {}", self.ca_cert().display()))?;
        Ok(reqwest::Certificate::from_pem(&pem)?)
    }
}

/// Runs `bin certs <args>`, failing with its stderr.
fn run_certs(bin: &Path, args: &[String]) -> anyhow::Result<()> {
    let mut command = Command::new(bin);
    command.arg("certs").args(args);
    scrub_env(&mut command);
    let out = command
        .output()
        .with_context(|| format!("running {} certs", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} certs {}: {}",
            bin.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
