//! `ecommerce restore`: seeds an empty data directory from a backup file so
//! that `ecommerce serve` on it starts a new single-node cluster holding the
//! backed-up state (then grow it with `--join`).

use std::path::Path;

use anyhow::{bail, Context};
use ecommerce_raft::NodeInfo;
use ecommerce_storage::{Storage, StorageOptions};

use crate::identity::Identity;
use crate::vault::{self, Kek};

pub fn restore(
    backup: &Path,
    data_dir: &Path,
    node_id: u64,
    info: NodeInfo,
    kek_file: Option<&Path>,
) -> anyhow::Result<()> {
    if !backup.is_file() {
        bail!("backup file {} does not exist", backup.display());
    }
    if data_dir.join("identity.json").exists() || data_dir.join("db").exists() {
        bail!(
            "{} already holds a node's data; restore into an empty directory",
            data_dir.display()
        );
    }
    let mut first = [0u8; 8];
    let encrypted = std::fs::File::open(backup)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut first))
        .map(|()| vault::backup::is_encrypted(&first))
        .unwrap_or(false);
    let kek = match kek_file {
        Some(path) => Some(Kek::read(path)?),
        None if encrypted => bail!(
            "{} is an encrypted backup: give the KEK file it was made under (--kek-file)",
            backup.display()
        ),
        None => None,
    };
    crate::identity::create_data_dir(data_dir)?;
    let result = restore_into_dir(backup, data_dir, node_id, info, kek, kek_file, encrypted);
    if result.is_err() {
        // Leave no half-restored directory behind.
        for part in ["db", "keys", "restoring.snap"] {
            let path = data_dir.join(part);
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
    result
}

fn restore_into_dir(
    backup: &Path,
    data_dir: &Path,
    node_id: u64,
    info: NodeInfo,
    kek: Option<Kek>,
    kek_file: Option<&Path>,
    encrypted: bool,
) -> anyhow::Result<()> {
    // Pass 1: decrypt and authenticate every chunk into a snapshot file in
    // the data directory (its values are still sealed at rest) before
    // anything is imported.
    let (snapshot, data_keys) = if encrypted {
        let kek = kek
            .as_ref()
            .unwrap_or_else(|| unreachable!("checked above"));
        let snapshot = data_dir.join("restoring.snap");
        let input = std::io::BufReader::new(std::fs::File::open(backup)?);
        let output = std::io::BufWriter::new(std::fs::File::create(&snapshot)?);
        let keys = vault::backup::decrypt(kek, input, output)
            .with_context(|| format!("opening {}", backup.display()))?;
        (snapshot, Some(keys))
    } else {
        eprintln!(
            "warning: {} is not encrypted (made before encryption at rest): it is sealed as it is \
             restored; destroy it afterwards",
            backup.display()
        );
        (backup.to_path_buf(), None)
    };
    // The data keys, wrapped under the KEK the restored node will use.
    let kek = match kek {
        Some(kek) => kek,
        None => {
            let path = data_dir.join(vault::GENERATED_KEK);
            std::fs::create_dir_all(data_dir.join("keys"))?;
            vault::kek::append_new_version(&path, None)?;
            Kek::read(&path)?
        }
    };
    let keys = match &data_keys {
        Some(file) => file.unwrap(&kek, &backup.display().to_string())?,
        None => vault::DataKeys::generate(),
    };
    let key_file = keys.wrap(&kek, kek.current())?;
    key_file.write(&data_dir.join(vault::DATA_KEYS_FILE))?;
    if let Some(path) = kek_file {
        // A restored node is a lone node: it finds its KEK here unless it is
        // given storage.kek_file.
        let beside = data_dir.join(vault::GENERATED_KEK);
        std::fs::copy(path, &beside)?;
        std::fs::set_permissions(&beside, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    }
    let vault = vault::Vault::open_offline(data_dir, &data_dir.join(vault::GENERATED_KEK))?;

    let storage = Storage::open(
        &data_dir.join("db"),
        ecommerce_domains::TABLES,
        &StorageOptions::default(),
    )?;
    storage.seal_at_rest(vault.sealer(), ecommerce_domains::BLIND_TABLES)?;
    let meta = ecommerce_raft::restore_into(&storage, &snapshot, node_id, info)
        .with_context(|| format!("restoring {}", backup.display()));
    if encrypted {
        let _ = std::fs::remove_file(&snapshot);
    }
    let meta = meta?;
    let identity = Identity {
        node_id,
        cluster_id: Some(uuid::Uuid::new_v4().to_string()),
    };
    identity.save(data_dir)?;
    println!(
        "restored state up to log index {} into {} (node {node_id}, new cluster {})",
        meta.last_log_id.map_or(0, |l| l.index),
        data_dir.display(),
        identity.cluster_id.as_deref().unwrap_or_default()
    );
    Ok(())
}
