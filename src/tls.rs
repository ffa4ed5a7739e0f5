//! Certificates and TLS configurations of a node.
//!
//! The peer protocol always runs over mutual TLS with the cluster's CA
//! (`ecommerce_raft::peer_auth` says what a node certificate names). This
//! module makes that CA and the node certificates (`ecommerce certs init`,
//! `ecommerce certs issue`), loads them for a node, and, for a node started
//! without any (the single-node default), makes a private CA of its own in
//! `<data_dir>/tls/` so that its peer port is closed to every other process
//! from the first start.
//!
//! Client-facing TLS (REST and client gRPC) uses any certificate and key
//! the operator gives (`tls.cert`, `tls.key`); a node certificate made here
//! also works for it, with the host names given to `certs init --hosts`.
//! REST serves a renewed certificate without a restart ([`ReloadingCert`]:
//! the files are checked every [`RELOAD_CHECK_INTERVAL`]); client gRPC reads
//! them at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, ensure, Context};
use ecommerce_raft::peer_auth::{member_dns_name, node_dns_name, valid_cluster_id, PeerIdentity};
use ecommerce_raft::PeerTls;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// File names in a certificate directory.
pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";

pub fn node_cert_file(node_id: u64) -> String {
    format!("node-{node_id}.pem")
}

pub fn node_key_file(node_id: u64) -> String {
    format!("node-{node_id}.key")
}

/// Installs ring as the process's rustls provider (idempotent): every TLS
/// user in the process (tonic, the REST listener, reqwest) shares it.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Writes `contents` to `path` (only the owner may read a key).
fn write_file(path: &Path, contents: &str, secret: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Creates a cluster CA in `dir` (`ca.pem`, `ca.key`) for `cluster_id`, or
/// a new cluster id; returns the id.
pub fn create_ca(dir: &Path, cluster_id: Option<&str>) -> anyhow::Result<String> {
    let cluster_id = cluster_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string);
    ensure!(
        valid_cluster_id(&cluster_id),
        "cluster id {cluster_id:?} must be lower-case letters, digits and inner hyphens (at most 63)"
    );
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = KeyPair::generate()?;
    let cert = ca_params(&cluster_id)?.self_signed(&key)?;
    write_file(&dir.join(CA_KEY), &key.serialize_pem(), true)?;
    write_file(&dir.join(CA_CERT), &cert.pem(), false)?;
    Ok(cluster_id)
}

fn ca_params(cluster_id: &str) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(
        DnType::CommonName,
        format!("ecommerce cluster {cluster_id} CA"),
    );
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// The cluster id a CA certificate was made for.
pub fn cluster_id_of_ca(ca_pem: &[u8]) -> anyhow::Result<String> {
    let der = CertificateDer::from_pem_slice(ca_pem).context("parsing the CA certificate")?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).context("parsing the CA certificate")?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default();
    cn.strip_prefix("ecommerce cluster ")
        .and_then(|rest| rest.strip_suffix(" CA"))
        .map(str::to_string)
        .context("the CA certificate is not a cluster CA made by `ecommerce certs init`")
}

/// Issues a certificate and key for node `node_id` from the CA in `dir`,
/// written as `node-<id>.pem` and `node-<id>.key` beside it. `hosts` (DNS
/// names or IP addresses) are added so that clients can use the same
/// certificate for HTTPS.
pub fn issue_node(dir: &Path, node_id: u64, hosts: &[String]) -> anyhow::Result<()> {
    ensure!(node_id > 0, "node ids start at 1");
    let ca_pem = read(&dir.join(CA_CERT))?;
    let cluster_id = cluster_id_of_ca(&ca_pem)?;
    let ca_key = KeyPair::from_pem(&String::from_utf8_lossy(&read(&dir.join(CA_KEY))?))
        .context("parsing the CA key")?;
    let issuer = Issuer::from_ca_cert_pem(&String::from_utf8_lossy(&ca_pem), ca_key)
        .context("reading the CA certificate")?;
    let mut names = vec![
        node_dns_name(node_id, &cluster_id),
        member_dns_name(&cluster_id),
    ];
    names.extend(hosts.iter().cloned());
    let mut params = CertificateParams::new(names).context("a host name is not valid")?;
    params
        .distinguished_name
        .push(DnType::CommonName, format!("ecommerce node {node_id}"));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    write_file(
        &dir.join(node_key_file(node_id)),
        &key.serialize_pem(),
        true,
    )?;
    write_file(&dir.join(node_cert_file(node_id)), &cert.pem(), false)?;
    Ok(())
}

/// `ecommerce certs init`: a new CA and certificates for `nodes`.
pub fn init_dir(
    dir: &Path,
    cluster_id: Option<&str>,
    nodes: &[u64],
    hosts: &[String],
) -> anyhow::Result<String> {
    if dir.join(CA_CERT).exists() {
        bail!(
            "{} already holds a CA; issue more node certificates with `ecommerce certs issue`",
            dir.display()
        );
    }
    let cluster_id = create_ca(dir, cluster_id)?;
    for node in nodes {
        issue_node(dir, *node, hosts)?;
    }
    Ok(cluster_id)
}

/// Where a node's peer credentials are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl PeerFiles {
    /// The files of node `node_id` in a directory made by `certs init`.
    pub fn in_dir(dir: &Path, node_id: u64) -> Self {
        Self {
            ca: dir.join(CA_CERT),
            cert: dir.join(node_cert_file(node_id)),
            key: dir.join(node_key_file(node_id)),
        }
    }

    /// Loads them and checks that the certificate is node `node_id`'s.
    pub fn load(&self, node_id: u64) -> anyhow::Result<PeerTls> {
        let ca_pem = read(&self.ca)?;
        let cert_pem = read(&self.cert)?;
        let key_pem = read(&self.key)?;
        PrivateKeyDer::from_pem_slice(&key_pem)
            .with_context(|| format!("{} holds no private key", self.key.display()))?;
        let der = CertificateDer::from_pem_slice(&cert_pem)
            .with_context(|| format!("{} holds no certificate", self.cert.display()))?;
        let identity = PeerIdentity::from_der(&der).with_context(|| {
            format!(
                "{} is not a node certificate (make one with `ecommerce certs issue`)",
                self.cert.display()
            )
        })?;
        ensure!(
            identity.node_id == node_id,
            "{} is the certificate of node {}, not of node {node_id}",
            self.cert.display(),
            identity.node_id
        );
        Ok(PeerTls {
            ca_pem,
            cert_pem,
            key_pem,
            cluster_id: identity.cluster_id,
        })
    }
}

/// The private CA of a node started without peer certificates: made on
/// first start in `<data_dir>/tls/` for `cluster_id`, kept afterwards.
/// Nobody else holds a certificate of it unless the operator issues one
/// (`ecommerce certs issue --dir <data_dir>/tls ...`), so the peer port
/// accepts nobody.
pub fn own_ca(data_dir: &Path, node_id: u64, cluster_id: &str) -> anyhow::Result<PeerFiles> {
    let dir = data_dir.join("tls");
    let files = PeerFiles::in_dir(&dir, node_id);
    if !files.ca.exists() {
        // A half-made directory from a crash during the first start.
        let _ = std::fs::remove_dir_all(&dir);
        let tmp = data_dir.join("tls.tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        create_ca(&tmp, Some(cluster_id))?;
        issue_node(&tmp, node_id, &["127.0.0.1".into(), "localhost".into()])?;
        std::fs::rename(&tmp, &dir)?;
    } else if !files.cert.exists() {
        issue_node(&dir, node_id, &["127.0.0.1".into(), "localhost".into()])?;
    }
    Ok(files)
}

/// How often the client-facing certificate files are checked for a change.
pub const RELOAD_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// A rustls server configuration for client-facing HTTPS (HTTP/2 and 1.1),
/// serving the certificate of `resolver`.
pub fn rest_server_config(resolver: Arc<ReloadingCert>) -> Arc<rustls::ServerConfig> {
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// The client-facing certificate and key, read again from their files when
/// they change, so that a renewed certificate (certbot, cert-manager) is
/// served to new connections without a restart. A change that does not load
/// (a half-written file, a key that does not match) is logged and the
/// previous certificate kept.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: std::sync::RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<rustls::sign::CertifiedKey>,
    /// Modification times of (cert, key) when loaded.
    stamp: (Option<std::time::SystemTime>, Option<std::time::SystemTime>),
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn certified_key(cert: &Path, key: &Path) -> anyhow::Result<rustls::sign::CertifiedKey> {
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    ensure!(!certs.is_empty(), "{} holds no certificate", cert.display());
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading a private key from {}", key.display()))?;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    rustls::sign::CertifiedKey::from_der(certs, key, &provider)
        .context("the TLS certificate and key do not match")
}

impl ReloadingCert {
    /// Loads the certificate and key; fails if they do not load.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let stamp = (modified(cert), modified(key));
        let loaded = certified_key(cert, key)?;
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: std::sync::RwLock::new(Loaded {
                key: Arc::new(loaded),
                stamp,
            }),
        })
    }

    /// Loads the files again if either changed since the last load. True
    /// when a new certificate is now served.
    pub fn reload_if_changed(&self) -> bool {
        let stamp = (modified(&self.cert), modified(&self.key));
        let unchanged = self.current.read().map_or(true, |c| c.stamp == stamp);
        if unchanged {
            return false;
        }
        match certified_key(&self.cert, &self.key) {
            Ok(key) => {
                if let Ok(mut current) = self.current.write() {
                    *current = Loaded {
                        key: Arc::new(key),
                        stamp,
                    };
                }
                tracing::info!(cert = %self.cert.display(), "client TLS certificate reloaded");
                metrics::counter!("tls_certificate_reloads_total").increment(1);
                true
            }
            Err(e) => {
                // Keep serving the previous one; try again at the next change.
                if let Ok(mut current) = self.current.write() {
                    current.stamp = stamp;
                }
                tracing::warn!(error = %format!("{e:#}"), "the changed TLS certificate does not load; keeping the previous one");
                false
            }
        }
    }

    /// Checks the files every `interval` for as long as the node runs.
    pub async fn watch(self: Arc<Self>, interval: std::time::Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let this = self.clone();
            // File reads and key parsing: off the runtime's threads.
            let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
        }
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.current.read().ok().map(|c| c.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_ca_issues_node_certificates_that_name_their_node() {
        let dir = tempfile::tempdir().unwrap();
        let id = init_dir(dir.path(), None, &[1, 2], &["127.0.0.1".into()]).unwrap();
        let tls = PeerFiles::in_dir(dir.path(), 2).load(2).unwrap();
        assert_eq!(tls.cluster_id, id);
        assert_eq!(cluster_id_of_ca(&tls.ca_pem).unwrap(), id);
        // Node 2's files are not node 1's.
        let e = PeerFiles {
            cert: dir.path().join(node_cert_file(2)),
            ..PeerFiles::in_dir(dir.path(), 1)
        }
        .load(1)
        .unwrap_err();
        assert!(e.to_string().contains("not of node 1"), "{e}");
        // More nodes later, from the same CA; never over an existing one.
        issue_node(dir.path(), 7, &[]).unwrap();
        assert_eq!(
            PeerFiles::in_dir(dir.path(), 7).load(7).unwrap().cluster_id,
            id
        );
        assert!(issue_node(dir.path(), 7, &[]).is_err());
        assert!(init_dir(dir.path(), None, &[1], &[]).is_err());
    }

    #[test]
    fn a_node_without_certificates_makes_its_own_ca_once() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
        let files = own_ca(dir.path(), 3, cluster).unwrap();
        let first = files.load(3).unwrap();
        assert_eq!(first.cluster_id, cluster);
        let again = own_ca(dir.path(), 3, cluster).unwrap().load(3).unwrap();
        assert_eq!(again.cert_pem, first.cert_pem, "kept across restarts");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&files.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is readable by its owner only");
        }
    }

    #[test]
    fn a_renewed_client_certificate_is_served_without_a_restart() {
        use rustls::server::ResolvesServerCert as _;
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        init_dir(dir.path(), None, &[1, 2], &["127.0.0.1".into()]).unwrap();
        let (cert, key) = (dir.path().join("serve.pem"), dir.path().join("serve.key"));
        let install = |node: u64| {
            std::fs::copy(dir.path().join(node_cert_file(node)), &cert).unwrap();
            std::fs::copy(dir.path().join(node_key_file(node)), &key).unwrap();
        };
        install(1);
        let resolver = ReloadingCert::load(&cert, &key).unwrap();
        let served = |r: &ReloadingCert| r.current.read().unwrap().key.cert[0].clone();
        let first = served(&resolver);
        assert!(!resolver.reload_if_changed(), "nothing changed");
        // Renewed: another certificate and key. (Coarse file times: make sure
        // the modification time moves.)
        std::thread::sleep(std::time::Duration::from_millis(1100));
        install(2);
        assert!(resolver.reload_if_changed());
        assert_ne!(served(&resolver), first);
        // A broken renewal keeps the previous certificate.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        std::fs::write(&key, b"not a key").unwrap();
        assert!(!resolver.reload_if_changed());
        assert_ne!(served(&resolver), first);
        let _ = resolver.only_raw_public_keys();
    }

    #[test]
    fn bad_cluster_ids_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(create_ca(dir.path(), Some("Not A Label")).is_err());
    }
}
