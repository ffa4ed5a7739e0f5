//! The architecture invariants of docs/ARCHITECTURE.md that a grep can
//! check, checked over the workspace's sources and manifests (tests only).
//!
//! Each test names the rule it keeps; a failure lists every offending file.
//! The words searched for are split (`concat!`) so this file never matches
//! itself.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir` (relative to the workspace).
fn rust_files(dir: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&workspace().join(dir), &mut files);
    assert!(!files.is_empty(), "no source under {dir}");
    files
}

/// Test-only files: a `tests.rs`, anything under a `tests/` folder, the
/// fuzzer, this file.
fn is_test_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == "tests.rs" || n == "fuzz.rs" || n == "architecture.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

/// `file names word` for each file of `dirs` containing one of `words`.
fn offenders(dirs: &[&str], words: &[&str], skip: impl Fn(&Path) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for dir in dirs {
        for file in rust_files(dir) {
            if skip(&file) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            for word in words {
                if text.contains(word) {
                    found.push(format!("{} names {word}", file.display()));
                }
            }
        }
    }
    found
}

/// The `[dependencies]` table of a crate's manifest, as text.
fn dependencies(manifest: &str) -> String {
    let text = std::fs::read_to_string(workspace().join(manifest)).unwrap();
    let table: toml::Table = text.parse().unwrap();
    table
        .get("dependencies")
        .map(|d| d.to_string())
        .unwrap_or_default()
}

/// The transports reach the replicated state only through `App`: no file of
/// `api/` or `grpc/` names the Raft node, openraft, RocksDB or the storage
/// crate.
#[test]
fn the_transports_never_name_the_node_openraft_or_rocksdb() {
    let words = [
        concat!("Raft", "Node"),
        concat!("open", "raft"),
        concat!("rocks", "db"),
        concat!("ecommerce_", "storage"),
    ];
    let found = offenders(&["src/api", "src/grpc"], &words, |_| false);
    assert!(found.is_empty(), "{found:#?}");
}

/// REST and gRPC are two adapters over `App`, neither built on the other;
/// and `app/` knows neither of them.
#[test]
fn the_transports_never_name_each_other_and_app_names_neither() {
    let api = concat!("crate::", "api");
    let grpc = concat!("crate::", "grpc");
    let mut found = offenders(&["src/grpc"], &[api], |_| false);
    found.extend(offenders(&["src/api"], &[grpc], |_| false));
    found.extend(offenders(&["src/app"], &[api, grpc], |_| false));
    assert!(found.is_empty(), "{found:#?}");
}

/// Applying a command is deterministic: outside its tests, `domains/` reads
/// no clock, no random source, no file, socket or environment.
#[test]
fn the_domains_read_no_clock_randomness_or_io() {
    let words = [
        concat!("System", "Time"),
        concat!("Instant", "::"),
        concat!("rand", "::"),
        concat!("std::", "fs"),
        concat!("std::", "net"),
        concat!("std::", "env"),
        concat!("std::", "thread"),
        concat!("tok", "io::"),
    ];
    let found = offenders(&["domains/src"], &words, is_test_file);
    assert!(found.is_empty(), "{found:#?}");
}

/// Each outside technology lives in one crate: RocksDB in `storage/`,
/// openraft in `raft/`; `domains/` is pure; the runners of the built binary
/// (`testkit/`, `jepsen/`, `bench/`) depend on no crate of the node, and the
/// node takes `testkit` for its tests only.
#[test]
fn each_crate_depends_only_on_what_its_layer_may() {
    let mut found = Vec::new();
    let mut refuse = |manifest: &str, names: &[&str]| {
        let deps = dependencies(manifest);
        for name in names {
            if deps.contains(name) {
                found.push(format!("{manifest} depends on {name}"));
            }
        }
    };
    let node = ["ecommerce-storage", "ecommerce-raft", "ecommerce-domains"];
    refuse("raft/Cargo.toml", &["rocksdb ="]);
    refuse(
        "Cargo.toml",
        &["rocksdb =", "openraft =", "ecommerce-testkit"],
    );
    refuse(
        "domains/Cargo.toml",
        &[
            "rocksdb", "openraft", "tokio", "axum", "tonic", "hyper", "reqwest", "anyhow",
        ],
    );
    refuse("storage/Cargo.toml", &["openraft", "anyhow", "tokio"]);
    refuse(
        "codec/Cargo.toml",
        &["rocksdb", "openraft", "tokio", "anyhow", "ecommerce-"],
    );
    refuse("raft/Cargo.toml", &["anyhow"]);
    for runner in [
        "testkit/Cargo.toml",
        "jepsen/Cargo.toml",
        "bench/Cargo.toml",
    ] {
        refuse(runner, &node);
    }
    assert!(found.is_empty(), "{found:#?}");
}

/// Errors are typed below the binary's start-up: `anyhow` appears only in
/// what runs before the node serves and ends in an exit message (settings,
/// certificates, the data directory's identity, start-up, restore, `main`).
#[test]
fn anyhow_is_only_in_start_up_code() {
    let word = concat!("any", "how");
    let start_up = [
        "src/config",
        "src/tls.rs",
        "src/identity.rs",
        "src/startup.rs",
        "src/restore.rs",
        "src/main.rs",
    ];
    let is_start_up = |path: &Path| {
        start_up
            .iter()
            .any(|s| path.starts_with(workspace().join(s)))
    };
    let mut found = offenders(&["src"], &[word], |p| is_start_up(p) || is_test_file(p));
    found.extend(offenders(
        &["domains/src", "raft/src", "storage/src", "codec/src"],
        &[word],
        is_test_file,
    ));
    assert!(found.is_empty(), "{found:#?}");
}

/// Derived state only reads the replica: the search index, the product
/// cache and the media fetcher propose nothing.
#[test]
fn derived_state_proposes_nothing() {
    let words = [concat!(".pro", "pose("), concat!("Envel", "ope {")];
    // (`tests.rs` files may build envelopes for their fixtures.)
    let found = offenders(
        &["src/search", "src/projections", "src/media"],
        &words,
        is_test_file,
    );
    assert!(found.is_empty(), "{found:#?}");
}

/// Key material is handled in one place: no file outside `src/vault/`
/// names a cipher or a MAC, and no crate below the node does (the storage
/// seals through the `Sealer` the node gives it).
#[test]
fn only_the_vault_touches_key_material() {
    let words = [
        concat!("aes", "_gcm"),
        concat!("hm", "ac::"),
        concat!("Ke", "k::"),
    ];
    let found = offenders(
        &[
            "src/api",
            "src/app",
            "src/auth",
            "src/grpc",
            "src/media",
            "src/search",
            "src/payments",
            "src/projections",
            "domains/src",
            "storage/src",
            "raft/src",
        ],
        &words,
        |_| false,
    );
    assert!(found.is_empty(), "{found:#?}");
}

/// A panic while applying one envelope is caught (`catch_unwind`) and
/// refuses that envelope only; that needs panics to unwind in every profile.
#[test]
fn no_profile_aborts_on_panic() {
    let text = std::fs::read_to_string(workspace().join("Cargo.toml")).unwrap();
    let table: toml::Table = text.parse().unwrap();
    if let Some(profiles) = table.get("profile").and_then(|p| p.as_table()) {
        for (name, profile) in profiles {
            assert_ne!(
                profile.get("panic").and_then(|p| p.as_str()),
                Some("abort"),
                "profile {name} aborts on panic"
            );
        }
    }
}
