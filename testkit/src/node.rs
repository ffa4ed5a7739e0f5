//! One `ecommerce serve` process: [`Settings`] (what every node of a run gets), [`NodeSpec`]
//! (where one node lives) and [`Node`], the handle that spawns, polls, signals and reaps it.
//!
//! A node keeps its directory, data dir and ports for its whole life, so a restart finds its
//! Raft state again. Its stdout and stderr are appended to `<dir>/node.log`, with a
//! `=== testkit:` line for every start and signal. Inherited `ECOMMERCE_*` variables are
//! removed: a node is configured by what its settings say, nothing else. A node is SIGKILLed
//! on drop; when the thread is panicking, the tail of its log is printed.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use rustix::process::{kill_process, kill_process_group, Pid, Signal};
use tempfile::TempDir;

use crate::{Addrs, Certs, Probe, Timing};

/// Lines of a node's log printed when its thread panics.
const PANIC_LOG_LINES: usize = 60;

/// Whether a run's temp directory (data, logs, certificates) outlives it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Keep {
    /// Removed on drop.
    #[default]
    Never,
    /// Kept (and its path printed) when dropped during a panic: a failing test.
    OnPanic,
    /// Kept from the start (the caller reports where).
    Always,
}

/// What every node of a run gets. Build with [`Settings::new`] and struct update syntax, or
/// the chained `arg`/`env` helpers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The `ecommerce` binary (made absolute by [`Settings::new`]: nodes run in their own dir).
    pub bin: PathBuf,
    /// Appended to every `serve` command line, e.g. `--snapshot-logs 20`.
    pub args: Vec<String>,
    /// Set on every node, after `NO_COLOR=1`.
    pub env: Vec<(String, String)>,
    /// Serve REST and client gRPC over TLS with the node's certificate (`--tls-cert`,
    /// `--tls-key`); URLs are `https://` and probes trust only the cluster CA.
    pub client_tls: bool,
    /// Start each node as the leader of its own process group and signal the whole group
    /// (jepsen, bench). Off, a node shares the caller's group, so Ctrl-C reaches it too.
    pub own_process_group: bool,
    pub timing: Timing,
    pub keep: Keep,
}

impl Settings {
    /// Plain settings for `bin`: no extra flags or environment, plain-text clients, the
    /// caller's process group, [`Timing::default`], temp dirs removed.
    pub fn new(bin: impl Into<PathBuf>) -> Settings {
        let bin = bin.into();
        Settings {
            bin: std::fs::canonicalize(&bin).unwrap_or(bin),
            args: Vec::new(),
            env: Vec::new(),
            client_tls: false,
            own_process_group: false,
            timing: Timing::default(),
            keep: Keep::Never,
        }
    }

    pub fn arg(mut self, arg: impl Into<String>) -> Settings {
        self.args.push(arg.into());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Settings
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Settings {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The operator token the nodes accept (`ECOMMERCE_AUTH__OPERATOR_TOKEN`); joining a
    /// cluster needs one.
    pub fn operator_token(self, token: &str) -> Settings {
        self.env("ECOMMERCE_AUTH__OPERATOR_TOKEN", token)
    }
}

/// Where one node lives.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub id: u64,
    pub addrs: Addrs,
    /// The node's directory (`data/`, `node.log`); `None`: a temp dir of its own.
    pub dir: Option<PathBuf>,
    /// The cluster's certificates (`--certs`); `None`: the node makes a CA of its own and can
    /// only be a cluster alone.
    pub certs: Option<Certs>,
    /// A command the binary runs under, e.g. `ip netns exec <ns>`.
    pub launcher: Vec<String>,
}

impl NodeSpec {
    /// Node `id` alone: free loopback ports, a temp dir, no cluster certificates.
    pub fn lone(id: u64) -> anyhow::Result<NodeSpec> {
        Ok(NodeSpec {
            id,
            addrs: Addrs::loopback()?,
            dir: None,
            certs: None,
            launcher: Vec::new(),
        })
    }
}

/// One node: its process (at most one at a time) and everything it keeps across restarts.
pub struct Node {
    id: u64,
    addrs: Addrs,
    dir: PathBuf,
    certs: Option<Certs>,
    launcher: Vec<String>,
    /// This node's own variables, after the settings' ones.
    env: Vec<(String, String)>,
    settings: Arc<Settings>,
    probe: Probe,
    child: Option<Child>,
    paused: bool,
    /// `--join` and `--join-as-learner` of the last spawn, for [`Node::respawn`].
    last_launch: (Option<SocketAddr>, bool),
    /// The node's own temp dir, if it has one. Declared last: removed after the kill.
    temp: Option<TempDir>,
}

impl Node {
    /// Makes the node's directory; starts nothing.
    pub fn new(settings: Arc<Settings>, spec: NodeSpec) -> anyhow::Result<Node> {
        let (dir, temp) = match spec.dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                (dir, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix(&format!("ecommerce-node{}-", spec.id))
                    .tempdir()
                    .context("creating a node temp dir")?;
                match settings.keep {
                    Keep::Always => (temp.keep(), None),
                    _ => (temp.path().to_path_buf(), Some(temp)),
                }
            }
        };
        let ca = match (&spec.certs, settings.client_tls) {
            (Some(certs), true) => Some(certs.ca_cert()),
            (None, true) => bail!(
                "node {}: client TLS needs the cluster certificates",
                spec.id
            ),
            (_, false) => None,
        };
        let scheme = if ca.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", spec.addrs.http);
        let probe = Probe::new(url, ca.as_deref(), settings.timing.request)?;
        Ok(Node {
            id: spec.id,
            addrs: spec.addrs,
            dir,
            certs: spec.certs,
            launcher: spec.launcher,
            env: Vec::new(),
            settings,
            probe,
            child: None,
            paused: false,
            last_launch: (None, false),
            temp,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Gives the node a new id on an empty data dir (not while it runs): what a slot of a
    /// cluster hosts after its old id was removed from the membership.
    pub(crate) fn reassign(&mut self, id: u64) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!(
                "node {} is running; kill it before giving it a new id",
                self.id
            );
        }
        let data = self.data_dir();
        if data.exists() {
            std::fs::remove_dir_all(&data).with_context(|| format!("wiping {}", data.display()))?;
        }
        self.id = id;
        Ok(())
    }

    pub fn addrs(&self) -> Addrs {
        self.addrs
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.addrs.http
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.addrs.grpc
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.addrs.peer
    }

    /// Base URL of the REST API, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        self.probe.url().to_string()
    }

    /// The handle that asks this node for its status.
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// The node's directory: its data dir, its log, whatever else a runner puts there.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/data` (created by the node itself).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `<dir>/node.log`: the process's stdout and stderr, across restarts.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    pub fn certs(&self) -> Option<&Certs> {
        self.certs.as_ref()
    }

    /// Sets a variable on this node's future processes (after the settings' ones).
    pub fn set_env(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.env.push((key.into(), value.into()));
    }

    /// The process id while started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Started and neither killed nor reaped ([`Node::reap`]); it may have exited meanwhile.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGSTOPped and not resumed since.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Starts `ecommerce serve` on the node's dir and ports, with `--join <join>` and
    /// `--join-as-learner` when asked; does not wait for it.
    pub fn spawn(&mut self, join: Option<SocketAddr>, as_learner: bool) -> anyhow::Result<()> {
        if self.child.is_some() {
            bail!("node {} is already running", self.id);
        }
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--node-id".into(),
            self.id.to_string(),
            "--data-dir".into(),
            self.data_dir().display().to_string(),
            "--http-addr".into(),
            self.addrs.http.to_string(),
            "--grpc-addr".into(),
            self.addrs.grpc.to_string(),
            "--peer-addr".into(),
            self.addrs.peer.to_string(),
        ];
        if let Some(certs) = &self.certs {
            args.extend(["--certs".into(), certs.dir().display().to_string()]);
            if certs.kek_file().exists() {
                args.extend(["--kek-file".into(), certs.kek_file().display().to_string()]);
            }
            if self.settings.client_tls {
                args.extend([
                    "--tls-cert".into(),
                    certs.node_cert(self.id).display().to_string(),
                    "--tls-key".into(),
                    certs.node_key(self.id).display().to_string(),
                ]);
            }
        }
        if let Some(join) = join {
            args.extend(["--join".into(), join.to_string()]);
        }
        if as_learner {
            args.push("--join-as-learner".into());
        }
        args.extend(self.settings.args.iter().cloned());

        let bin = &self.settings.bin;
        let mut command = match self.launcher.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut log = self.open_log()?;
        writeln!(
            log,
            "=== testkit: starting node {}: {} {}",
            self.id,
            bin.display(),
            args.join(" ")
        )?;
        command
            .args(&args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        scrub_env(&mut command);
        // Plain log files: no ANSI colour codes.
        command.env("NO_COLOR", "1");
        command.envs(self.settings.env.iter().map(|(k, v)| (k, v)));
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        if self.settings.own_process_group {
            command.process_group(0);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting node {}: {} {args:?}", self.id, bin.display()))?;
        self.child = Some(child);
        self.paused = false;
        self.last_launch = (join, as_learner);
        Ok(())
    }

    /// [`Node::spawn`] with the `--join` and `--join-as-learner` of the last spawn: how a
    /// supervisor restarts a node (joining is idempotent), so a wiped node never bootstraps
    /// a cluster of its own.
    pub fn respawn(&mut self) -> anyhow::Result<()> {
        let (join, as_learner) = self.last_launch;
        self.spawn(join, as_learner)
    }

    /// Polls until `GET /health` and `GET /cluster` both answer 200, failing at once (with
    /// the log's end) if the process exits.
    pub async fn wait_up(&mut self) -> anyhow::Result<()> {
        let timing = self.settings.timing;
        let deadline = Instant::now() + timing.timeout;
        loop {
            if let Some(status) = self.reap() {
                bail!(
                    "node {} exited with {status} before it was up; its log ends:\n{}",
                    self.id,
                    self.log_tail(PANIC_LOG_LINES)
                );
            }
            let last = match (self.probe.health().await, self.probe.view().await) {
                (Ok(()), Ok(_)) => return Ok(()),
                (h, c) => format!(
                    "/health: {}; /cluster: {}",
                    h.map_or_else(|e| format!("{e:#}"), |()| "200".into()),
                    c.map_or_else(|e| format!("{e:#}"), |_| "200".into())
                ),
            };
            if Instant::now() >= deadline {
                bail!(
                    "node {} at {} not up within {:?}; last: {last}; its log ends:\n{}",
                    self.id,
                    self.url(),
                    timing.timeout,
                    self.log_tail(PANIC_LOG_LINES)
                );
            }
            tokio::time::sleep(timing.interval).await;
        }
    }

    /// [`Node::spawn`] then [`Node::wait_up`].
    pub async fn start(
        &mut self,
        join: Option<SocketAddr>,
        as_learner: bool,
    ) -> anyhow::Result<()> {
        self.spawn(join, as_learner)?;
        self.wait_up().await
    }

    /// SIGKILLs the process (its group, if it leads one; SIGCONT first, in case it is
    /// paused) and reaps it: no graceful shutdown. No-op when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.settings.own_process_group {
                let pid = Pid::from_child(&child);
                let _ = kill_process_group(pid, Signal::CONT);
                let _ = kill_process_group(pid, Signal::KILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            self.note("SIGKILLed");
        }
        self.paused = false;
    }

    /// SIGSTOPs the process (its group, if it leads one). No-op when not running.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.signal(Signal::STOP)?;
            self.paused = true;
            self.note("SIGSTOPped");
        }
        Ok(())
    }

    /// SIGCONTs the process (its group, if it leads one). No-op when not running.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        if self.child.is_some() {
            self.signal(Signal::CONT)?;
            self.note("SIGCONTinued");
        }
        self.paused = false;
        Ok(())
    }

    fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let Some(child) = &self.child else {
            return Ok(());
        };
        let pid = Pid::from_child(child);
        let sent = match self.settings.own_process_group {
            true => kill_process_group(pid, signal),
            false => kill_process(pid, signal),
        };
        sent.with_context(|| format!("signalling node {} ({pid:?})", self.id))
    }

    /// How the process ended, if it exited by itself (a crash: nodes are only killed through
    /// this handle). The handle is kept, so asking again gives the same answer.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// [`Node::exit_status`], and if it exited, forgets the process: the node counts as
    /// stopped and can be spawned again.
    pub fn reap(&mut self) -> Option<ExitStatus> {
        let status = self.exit_status()?;
        self.child = None;
        self.paused = false;
        Some(status)
    }

    /// The last `lines` lines of the node's log.
    pub fn log_tail(&self, lines: usize) -> String {
        match std::fs::read(self.log_path()) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let all: Vec<&str> = text.lines().collect();
                all[all.len().saturating_sub(lines)..].join("\n")
            }
            Err(e) => format!("(no log at {}: {e})", self.log_path().display()),
        }
    }

    fn open_log(&self) -> anyhow::Result<std::fs::File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("opening {}", self.log_path().display()))
    }

    /// Appends a `=== testkit:` line to the log (best effort).
    fn note(&self, what: &str) {
        if let Ok(mut log) = self.open_log() {
            let _ = writeln!(log, "=== testkit: node {} {what}", self.id);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "----- node {} ({}) log tail, {} -----\n{}\n----- end of node {} log -----",
                self.id,
                self.url(),
                self.log_path().display(),
                self.log_tail(PANIC_LOG_LINES),
                self.id
            );
            if self.settings.keep == Keep::OnPanic {
                if let Some(dir) = self.temp.take() {
                    eprintln!("kept node {} dir {}", self.id, dir.keep().display());
                }
            }
        }
    }
}

/// Removes the `ECOMMERCE_*` variables inherited from the caller's shell from `command`.
pub fn scrub_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ECOMMERCE_") {
            command.env_remove(key);
        }
    }
}
