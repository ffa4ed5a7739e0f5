//! The replicated PostgreSQL of the checkout comparison: a primary and two
//! streaming standbys on this machine, with synchronous commit to a quorum
//! (`synchronous_standby_names = 'ANY 1 (s1, s2)'`, `synchronous_commit =
//! on`), so that a commit is flushed on the primary and on one standby before
//! it is acknowledged: the peer of our three nodes, where an entry commits
//! once the leader and a follower have fsynced it.
//!
//! Each server is a [`Postgres`] of its own (temp dir, port, `postgres` user
//! when root; stopped and removed on drop), made the way the single server is
//! and then: the primary gets a replication role and a `pg_hba.conf` that
//! trusts it on loopback for replication, and is loaded; each standby is a
//! `pg_basebackup -R` of the loaded primary whose `primary_conninfo` carries
//! its `application_name`; only then does the primary get
//! `synchronous_standby_names` (before, its commits would wait for standbys
//! that do not exist yet). The set is ready once the primary's
//! `pg_stat_replication` shows both standbys streaming in the quorum. The
//! transaction and the pgbench runs live in `postgres.rs`, not here.

use std::time::{Duration, Instant};

use anyhow::bail;

use super::{check, Postgres};

/// The standbys' `application_name`s, as `synchronous_standby_names` names them.
const STANDBYS: [&str; 2] = ["s1", "s2"];
/// The role the standbys replicate as.
const REPLICATION_USER: &str = "replicator";
/// How long the standbys may take to stream in the quorum after they start.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A primary and its two synchronous standbys, all running; stopped and
/// removed on drop, the primary first.
pub struct Replicated {
    /// Where pgbench connects.
    pub primary: Postgres,
    _standbys: Vec<Postgres>,
}

impl Replicated {
    /// Makes, loads and starts the primary (`products` SKUs of ample stock,
    /// the checkout script picking out of the first `skus`), then the
    /// standbys, and waits until both stream in the quorum. A step that fails
    /// drops what was started so far, which stops and removes it.
    pub fn start(bin: &std::path::Path, products: usize, skus: usize) -> anyhow::Result<Self> {
        let mut primary = Postgres::new(bin)?;
        primary.initdb()?;
        append(&primary.data.join("postgresql.conf"), PRIMARY_CONF)?;
        std::fs::write(primary.data.join("pg_hba.conf"), pg_hba())?;
        primary.run()?;
        primary.psql(&format!(
            "CREATE ROLE {REPLICATION_USER} WITH REPLICATION LOGIN"
        ))?;
        // Loaded before the standbys exist: they copy it. The commits only
        // wait for standbys once they stream (below): until then a commit
        // would wait for ever.
        primary.load(products, skus)?;
        let mut standbys = Vec::new();
        for name in STANDBYS {
            let mut standby = Postgres::new(bin)?;
            let data = standby.data.display().to_string();
            check(
                "pg_basebackup",
                standby.tool(
                    "pg_basebackup",
                    &[
                        "-D",
                        &data,
                        "-d",
                        &conninfo(primary.port, name),
                        "-R",
                        "--checkpoint=fast",
                        "--wal-method=stream",
                        // As initdb's: the copy is throw-away.
                        "--no-sync",
                    ],
                ),
            )?;
            standby.run()?;
            standbys.push(standby);
        }
        // Two statements: ALTER SYSTEM refuses to run in a transaction.
        primary.psql(&format!(
            "ALTER SYSTEM SET synchronous_standby_names = '{}'",
            synchronous_standby_names()
        ))?;
        primary.psql("SELECT pg_reload_conf()")?;
        wait_for_quorum(&primary)?;
        Ok(Replicated {
            primary,
            _standbys: standbys,
        })
    }
}

/// Polls the primary's `pg_stat_replication` until every standby streams in
/// the quorum, or fails with what it last showed.
fn wait_for_quorum(primary: &Postgres) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        let shown = primary.psql(
            "SELECT application_name, state, sync_state FROM pg_stat_replication \
             ORDER BY application_name",
        )?;
        if in_quorum(&parse_replication(&shown)) {
            return Ok(());
        }
        if started.elapsed() > READY_WITHIN {
            bail!(
                "the standbys {STANDBYS:?} did not all stream in the quorum within {} s; \
                 pg_stat_replication (application_name|state|sync_state):\n{shown}",
                READY_WITHIN.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn append(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Appended to the primary's `postgresql.conf` (and so copied to the
/// standbys, where it does nothing). `wal_level` and `max_wal_senders` are
/// the defaults, stated because replication needs them. Not
/// `synchronous_standby_names`: set once the standbys stream.
const PRIMARY_CONF: &str = "
# ecommerce-bench: a primary of two streaming standbys
wal_level = replica
max_wal_senders = 10
synchronous_commit = on
";

/// A commit waits until any one of the standbys has flushed it.
fn synchronous_standby_names() -> String {
    format!("ANY 1 ({})", STANDBYS.join(", "))
}

/// The primary's whole `pg_hba.conf`: trust on loopback, for replication
/// only the replication role. The standbys copy it; nobody replicates from them.
fn pg_hba() -> String {
    format!(
        "# ecommerce-bench: loopback only\n\
         local all         all                    trust\n\
         host  all         all                    127.0.0.1/32 trust\n\
         host  replication {REPLICATION_USER} 127.0.0.1/32 trust\n"
    )
}

/// How standby `name` reaches the primary; `pg_basebackup -R` writes it to
/// the standby's `primary_conninfo`, `application_name` included.
fn conninfo(primary_port: u16, name: &str) -> String {
    format!("host=127.0.0.1 port={primary_port} user={REPLICATION_USER} application_name={name}")
}

/// One row of `pg_stat_replication`.
#[derive(Debug, PartialEq)]
struct Walsender {
    application_name: String,
    state: String,
    sync_state: String,
}

/// psql's unaligned, tuples-only output of `application_name, state,
/// sync_state`: one `s1|streaming|quorum` per line.
fn parse_replication(text: &str) -> Vec<Walsender> {
    text.lines()
        .filter_map(|line| {
            let mut cols = line.trim().split('|');
            let (name, state, sync) = (cols.next()?, cols.next()?, cols.next()?);
            (!name.is_empty()).then(|| Walsender {
                application_name: name.to_string(),
                state: state.to_string(),
                sync_state: sync.to_string(),
            })
        })
        .collect()
}

/// Every standby is connected, streaming, and a candidate of the quorum.
fn in_quorum(senders: &[Walsender]) -> bool {
    STANDBYS.iter().all(|name| {
        senders.iter().any(|s| {
            s.application_name == *name && s.state == "streaming" && s.sync_state == "quorum"
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_primary_waits_for_any_one_of_the_two_standbys() {
        assert_eq!(synchronous_standby_names(), "ANY 1 (s1, s2)");
        assert!(PRIMARY_CONF.contains("\nsynchronous_commit = on\n"));
        assert!(PRIMARY_CONF.contains("\nwal_level = replica\n"));
        // Not before the standbys stream: the load's commits would hang.
        assert!(!PRIMARY_CONF.contains("synchronous_standby_names"));
        // Appended to initdb's file: starts on a line of its own.
        assert!(PRIMARY_CONF.starts_with('\n'));
    }

    #[test]
    fn replication_is_trusted_on_loopback_for_the_replication_role_only() {
        let hba = pg_hba();
        let rules: Vec<Vec<&str>> = hba
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(rules.contains(&vec![
            "host",
            "replication",
            "replicator",
            "127.0.0.1/32",
            "trust"
        ]));
        assert!(rules
            .iter()
            .filter(|r| r[0] == "host")
            .all(|r| r[3] == "127.0.0.1/32"));
        assert_eq!(
            rules.iter().filter(|r| r[1] == "replication").count(),
            1,
            "{hba}"
        );
    }

    #[test]
    fn each_standby_names_itself_to_the_primary() {
        assert_eq!(
            conninfo(5433, "s2"),
            "host=127.0.0.1 port=5433 user=replicator application_name=s2"
        );
    }

    #[test]
    fn parses_psql_unaligned_rows() {
        let rows = parse_replication("s1|streaming|quorum\ns2|catchup|potential\n\n");
        assert_eq!(
            rows,
            vec![
                Walsender {
                    application_name: "s1".into(),
                    state: "streaming".into(),
                    sync_state: "quorum".into(),
                },
                Walsender {
                    application_name: "s2".into(),
                    state: "catchup".into(),
                    sync_state: "potential".into(),
                },
            ]
        );
        assert!(parse_replication("").is_empty());
        assert!(parse_replication("s1|streaming").is_empty());
    }

    #[test]
    fn ready_once_both_standbys_stream_in_the_quorum() {
        let ready = |text: &str| in_quorum(&parse_replication(text));
        assert!(ready("s1|streaming|quorum\ns2|streaming|quorum\n"));
        assert!(!ready(""));
        assert!(!ready("s1|streaming|quorum\n"));
        assert!(!ready("s1|streaming|quorum\ns2|catchup|quorum\n"));
        assert!(!ready("s1|streaming|quorum\ns2|streaming|async\n"));
        // A standby that connected without its name does not count.
        assert!(!ready("s1|streaming|quorum\nwalreceiver|streaming|async\n"));
    }
}
