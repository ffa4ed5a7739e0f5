//! The `ecommerce` binary: parse the command line, then build and run.

use anyhow::Context;
use clap::Parser;
use ecommerce::config::{
    Overrides, PeerTlsOverrides, RaftOverrides, Settings, StorageOverrides, TlsOverrides,
};
use ecommerce::{startup, telemetry, Application};
use ecommerce_cli::{CertsCommand, Cli, Command, KeysCommand, ServeArgs};

/// jemalloc, not glibc's malloc: under load glibc keeps what each thread's
/// arena once held (RSS only grows); jemalloc's background threads return
/// freed pages to the system after a few seconds.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli) {
        // For errors from a node this is "<code>: <message>".
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    ecommerce::tls::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
        Command::Cluster(args) => runtime.block_on(ecommerce_cli::run_cluster(args)),
        Command::Backup(args) => runtime.block_on(ecommerce_cli::run_backup(args)),
        Command::User(args) => runtime.block_on(ecommerce_cli::run_user(args)),
        Command::Catalog(command) => runtime.block_on(ecommerce_cli::run_catalog(command)),
        Command::Restore(args) => {
            let info = ecommerce_raft::NodeInfo {
                http_addr: args.http_addr,
                peer_addr: args.peer_addr,
            };
            ecommerce::restore::restore(
                &args.file,
                &args.data_dir,
                args.node_id,
                info,
                args.kek_file.as_deref(),
            )
        }
        Command::Certs(command) => certs(command),
        Command::Keys(KeysCommand::Online(command)) => {
            runtime.block_on(ecommerce_cli::run_keys(command))
        }
        Command::Keys(KeysCommand::GenerateKek { file, version }) => generate_kek(&file, version),
        Command::Keys(KeysCommand::InitDataKeys { data_dir, kek_file }) => {
            let path = ecommerce::vault::init_data_keys(&data_dir, &kek_file)?;
            println!(
                "made the cluster's data keys in {}: copy this file into every other node's \
                 data directory (same path) before starting it",
                path.display()
            );
            Ok(())
        }
    }
}

/// `ecommerce keys generate-kek`: adds a random version to a KEK file.
fn generate_kek(file: &std::path::Path, version: Option<u32>) -> anyhow::Result<()> {
    let version = ecommerce::vault::kek::append_new_version(file, version)?;
    println!(
        "added KEK version {version} to {}: give the same file to every node (storage.kek_file), \
         then `ecommerce keys rotate-kek --to {version}`; keep a copy apart from the backups",
        file.display()
    );
    Ok(())
}

fn certs(command: CertsCommand) -> anyhow::Result<()> {
    use ecommerce::tls;
    match command {
        CertsCommand::Init {
            dir,
            nodes,
            hosts,
            cluster_id,
        } => {
            let id = tls::init_dir(&dir, cluster_id.as_deref(), &nodes, &hosts)?;
            println!(
                "cluster {id}: CA and {} node certificate(s) in {}; keep {} with the operator",
                nodes.len(),
                dir.display(),
                tls::CA_KEY
            );
        }
        CertsCommand::Issue {
            dir,
            node_id,
            hosts,
        } => {
            tls::issue_node(&dir, node_id, &hosts)?;
            println!(
                "node {node_id}: {} and {} in {}",
                tls::node_cert_file(node_id),
                tls::node_key_file(node_id),
                dir.display()
            );
        }
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let overrides = Overrides {
        node_id: args.node_id,
        data_dir: args.data_dir,
        http_addr: args.http_addr,
        grpc_addr: args.grpc_addr,
        peer_addr: args.peer_addr,
        join: args.join,
        tls: args.tls_cert.map(|cert| TlsOverrides {
            cert: Some(cert),
            key: args.tls_key,
        }),
        peer_tls: args.certs.map(|dir| PeerTlsOverrides { dir: Some(dir) }),
        insecure_plaintext: args.insecure_plaintext.then_some(true),
        join_as_learner: args.join_as_learner.then_some(true),
        log_format: args.log_format.as_deref().map(|f| {
            if f == "json" {
                ecommerce::config::LogFormat::Json
            } else {
                ecommerce::config::LogFormat::Text
            }
        }),
        raft: args.snapshot_logs.map(|n| RaftOverrides {
            snapshot_logs: Some(n),
        }),
        storage: args.kek_file.map(|file| StorageOverrides {
            kek_file: Some(file),
        }),
    };
    let settings =
        Settings::load(args.config.as_deref(), &overrides).context("loading configuration")?;
    telemetry::init_logging(settings.log_format);
    // Every client and peer connection is a descriptor: take all the
    // descriptors the hard limit allows (as Go servers do at start).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open file limit"),
    }
    let app = Application::build(settings).await?;
    app.run_until(startup::shutdown_signal()).await
}
