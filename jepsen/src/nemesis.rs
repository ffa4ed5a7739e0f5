//! Nemeses: faults injected at random intervals drawn from the run's seed,
//! each recorded in the history as a `nemesis` op whose invocation starts the
//! fault and whose completion heals it (the report draws these windows).
//!
//! Faults act on processes (signals), the network (`net`) or the membership
//! through the same public REST routes an operator uses; never by calling
//! into a node's internals. One fault is active at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ecommerce_testkit::{Probe, Timing};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::sync::Mutex;

use crate::cluster::{Cluster, TIMING};
use crate::history::{Kind, Recorder};

/// A kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Fault {
    /// SIGKILL a node (random or the leader), restart it after a while.
    Kill,
    /// SIGSTOP a node (random or the leader), SIGCONT it after a while.
    Pause,
    /// Network partition: random halves, isolated leader, or a majority
    /// ring / bridge.
    Partition,
    /// Remove a node from the membership, wipe it, add it back under a new id.
    Member,
    /// Skew one node's wall clock by up to ±2 minutes (libfaketime).
    Clock,
    /// Slow one node down: its block I/O throttled to a few operations per
    /// second (cgroup blkio: every fsync crawls) and its link rate-limited
    /// (tc tbf).
    Slow,
    /// Rotate the KEK online: add a version to the cluster's KEK file and
    /// have every running node rewrap its data keys under it.
    Rekey,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Pause => "pause",
            Fault::Partition => "partition",
            Fault::Member => "member",
            Fault::Clock => "clock",
            Fault::Slow => "slow",
            Fault::Rekey => "rekey",
        }
    }
}

/// Timing of the schedule.
#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    /// Quiet time between two faults (uniform in the range), seconds.
    pub gap: (f64, f64),
    /// How long a fault lasts (uniform in the range), seconds.
    pub hold: (f64, f64),
}

pub struct Nemesis {
    pub cluster: Arc<Mutex<Cluster>>,
    pub rec: Recorder,
    pub http: reqwest::Client,
    pub faults: Vec<Fault>,
    pub schedule: Schedule,
    pub rng: StdRng,
}

fn secs(rng: &mut StdRng, (lo, hi): (f64, f64)) -> Duration {
    Duration::from_secs_f64(if hi > lo { rng.gen_range(lo..hi) } else { lo })
}

impl Nemesis {
    pub fn new(
        cluster: Arc<Mutex<Cluster>>,
        rec: Recorder,
        http: reqwest::Client,
        faults: Vec<Fault>,
        schedule: Schedule,
        seed: u64,
    ) -> Nemesis {
        Nemesis {
            cluster,
            rec,
            http,
            faults,
            schedule,
            rng: StdRng::seed_from_u64(seed ^ 0x6e656d65736973),
        }
    }

    /// Injects faults until `until`, then heals everything.
    pub async fn run(mut self, until: Instant) {
        if self.faults.is_empty() {
            return;
        }
        loop {
            let gap = secs(&mut self.rng, self.schedule.gap);
            if Instant::now() + gap >= until {
                break;
            }
            tokio::time::sleep(gap).await;
            let fault = *self.faults.choose(&mut self.rng).expect("faults");
            let hold = secs(&mut self.rng, self.schedule.hold)
                .min(until.saturating_duration_since(Instant::now()));
            if let Err(e) = self.one(fault, hold).await {
                eprintln!("nemesis {}: {e:#}", fault.name());
            }
        }
        self.heal_all().await;
    }

    /// The leader's slot, if a majority names one.
    async fn leader_slot(&self) -> Option<usize> {
        let c = self.cluster.lock().await;
        let probes: Vec<(usize, Probe, u64)> = c
            .slots()
            .map(|(slot, n)| (slot, n.probe().clone(), n.id()))
            .collect();
        drop(c);
        for (_, probe, _) in &probes {
            if let Ok(v) = probe.view().await {
                if let Some(leader) = v.leader_id {
                    return probes.iter().find(|(_, _, id)| *id == leader).map(|u| u.0);
                }
            }
        }
        None
    }

    /// A target: the leader half the time, else a random running slot.
    async fn target(&mut self) -> Option<usize> {
        if self.rng.gen_bool(0.5) {
            if let Some(l) = self.leader_slot().await {
                return Some(l);
            }
        }
        let c = self.cluster.lock().await;
        let live: Vec<usize> = c
            .slots()
            .filter(|(_, n)| n.is_running() && !n.is_paused())
            .map(|(slot, _)| slot)
            .collect();
        live.choose(&mut self.rng).copied()
    }

    async fn one(&mut self, fault: Fault, hold: Duration) -> anyhow::Result<()> {
        let n = self.cluster.lock().await.len();
        match fault {
            Fault::Kill | Fault::Pause | Fault::Clock | Fault::Slow => {
                let Some(slot) = self.target().await else {
                    bail!("no target")
                };
                let skew: i64 = self.rng.gen_range(-120..=120);
                let iops: u64 = self.rng.gen_range(5..=40);
                let value = match fault {
                    Fault::Clock => json!({"slot": slot, "skew_secs": skew}),
                    Fault::Slow => json!({"slot": slot, "disk_iops": iops, "link_kbit": 512}),
                    _ => json!({"slot": slot}),
                };
                let p = self
                    .rec
                    .invoke("nemesis", fault.name(), Some(slot), value.clone());
                let started = {
                    let mut c = self.cluster.lock().await;
                    match fault {
                        Fault::Kill => {
                            c.slot_mut(slot).kill();
                            Ok(())
                        }
                        Fault::Pause => c.slot_mut(slot).pause(),
                        Fault::Clock => c.skew_clock(slot, skew),
                        _ => c.slow_disk(slot, iops).and_then(|()| c.net.slow(slot, 512)),
                    }
                };
                if let Err(e) = started {
                    // Undo whatever half of the fault was made.
                    self.heal_all().await;
                    self.rec
                        .complete(p, Kind::Fail, value, Some(format!("{e:#}")));
                    return Err(e);
                }
                tokio::time::sleep(hold).await;
                let healed = {
                    let mut c = self.cluster.lock().await;
                    match fault {
                        Fault::Kill => c.slot_mut(slot).respawn(),
                        Fault::Pause => c.slot_mut(slot).resume(),
                        Fault::Clock => c.skew_clock(slot, 0),
                        _ => {
                            c.unslow_disks();
                            c.net.unslow_all();
                            Ok(())
                        }
                    }
                };
                let (kind, err) = match &healed {
                    Ok(()) => (Kind::Ok, None),
                    Err(e) => (Kind::Info, Some(format!("{e:#}"))),
                };
                self.rec.complete(p, kind, value, err);
                healed
            }
            Fault::Partition => {
                let (shape, cuts) = self.partition_shape(n).await;
                let value = json!({"shape": shape, "cut": cuts});
                let p = self.rec.invoke("nemesis", "partition", None, value.clone());
                let result = {
                    let mut c = self.cluster.lock().await;
                    cuts.iter().try_for_each(|&(a, b)| c.net.cut(a, b))
                };
                if let Err(e) = result {
                    let _ = self.cluster.lock().await.net.heal();
                    self.rec
                        .complete(p, Kind::Fail, value, Some(format!("{e:#}")));
                    return Err(e);
                }
                tokio::time::sleep(hold).await;
                let healed = self.cluster.lock().await.net.heal();
                self.rec.complete(p, Kind::Ok, value, None);
                healed
            }
            Fault::Member => self.member(hold).await,
            Fault::Rekey => self.rekey().await,
        }
    }

    /// A KEK rotation through the operator's route, on every running node
    /// (one that is down or paused keeps the old version, which its KEK file
    /// still holds).
    async fn rekey(&mut self) -> anyhow::Result<()> {
        let (version, urls) = {
            let c = self.cluster.lock().await;
            let version = c.kit.certs().generate_kek()?;
            let urls: Vec<(usize, String)> = c
                .slots()
                .filter(|(_, n)| n.is_running() && !n.is_paused())
                .map(|(slot, n)| (slot, n.url()))
                .collect();
            (version, urls)
        };
        let value = json!({"to": version});
        let p = self.rec.invoke("nemesis", "rekey", None, value.clone());
        let operator = crate::auth::operator_header();
        let mut failed = Vec::new();
        for (slot, url) in urls {
            let reply = self
                .http
                .post(format!("{url}/node/keys/rotate-kek"))
                .header(operator.0, operator.1)
                .json(&value)
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            match reply {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => failed.push(format!("slot {slot}: {}", r.status())),
                Err(e) => failed.push(format!("slot {slot}: {e}")),
            }
        }
        if failed.is_empty() {
            self.rec.complete(p, Kind::Ok, value, None);
            Ok(())
        } else {
            let why = failed.join("; ");
            self.rec.complete(p, Kind::Info, value, Some(why.clone()));
            bail!("rekey: {why}")
        }
    }

    /// Picks a partition: (description, cut links).
    async fn partition_shape(&mut self, n: usize) -> (String, Vec<(usize, usize)>) {
        let slots: Vec<usize> = (1..=n).collect();
        let leader = self.leader_slot().await;
        let choice = self.rng.gen_range(0..3);
        let mut cuts = Vec::new();
        let shape = match (choice, leader) {
            (0, Some(l)) => {
                for &s in &slots {
                    if s != l {
                        cuts.push((l, s));
                    }
                }
                format!("isolate leader (slot {l})")
            }
            (1, _) => {
                // Majority ring (5 nodes: each sees its two neighbours, a
                // majority, but no two see the same majority) or bridge
                // (3 nodes: the middle one sees both ends, the ends are cut).
                if n >= 5 {
                    for a in 1..=n {
                        for b in a + 1..=n {
                            let d = (b - a).min(n - (b - a));
                            if d > 1 {
                                cuts.push((a, b));
                            }
                        }
                    }
                    "majority ring".to_string()
                } else {
                    let mut s = slots.clone();
                    s.shuffle(&mut self.rng);
                    cuts.push((s[0], s[2]));
                    format!("bridge through slot {}", s[1])
                }
            }
            _ => {
                let mut s = slots.clone();
                s.shuffle(&mut self.rng);
                let (a, b) = s.split_at(n / 2);
                for &x in a {
                    for &y in b {
                        cuts.push((x, y));
                    }
                }
                format!("halves {a:?} | {b:?}")
            }
        };
        (shape, cuts)
    }

    /// Removes a node (through the REST membership routes), wipes it, and
    /// adds it back under a new id.
    async fn member(&mut self, hold: Duration) -> anyhow::Result<()> {
        let slot = {
            let c = self.cluster.lock().await;
            let live: Vec<usize> = c
                .slots()
                .filter(|(slot, n)| n.is_running() && !n.is_paused() && !c.is_removed(*slot))
                .map(|(slot, _)| slot)
                .collect();
            if live.len() < c.len() {
                bail!("not every node is up; skipping a membership change");
            }
            *live.choose(&mut self.rng).context("no node")?
        };
        let (old_id, via, via_peer) = {
            let c = self.cluster.lock().await;
            let (_, via) = c.slots().find(|(s, _)| *s != slot).context("peer")?;
            (c.slot(slot).id(), via.probe().clone(), via.peer_addr())
        };
        let p = self
            .rec
            .invoke("nemesis", "member", Some(slot), json!({"remove": old_id}));
        // Membership routes are the operator's.
        let operator = crate::auth::operator_header();
        let removed = self
            .http
            .post(format!("{}/cluster/remove", via.url()))
            .header(operator.0, operator.1)
            .json(&json!({"node_id": old_id}))
            .timeout(Duration::from_secs(20))
            .send()
            .await;
        match removed {
            Ok(r) if r.status().is_success() => {}
            other => {
                let why = match other {
                    Ok(r) => format!("{} {}", r.status(), r.text().await.unwrap_or_default()),
                    Err(e) => e.to_string(),
                };
                // The removal may still happen; wait and look.
                tokio::time::sleep(Duration::from_secs(2)).await;
                let briefly = Timing {
                    timeout: Duration::from_secs(5),
                    ..TIMING
                };
                let still = via
                    .wait_for("the node to be a voter still", briefly, |v| {
                        v.voters().contains(&old_id)
                    })
                    .await
                    .is_ok();
                if still {
                    self.rec
                        .complete(p, Kind::Fail, json!({"remove": old_id}), Some(why));
                    return Ok(());
                }
            }
        }
        let new_id = {
            let mut c = self.cluster.lock().await;
            let id = c.replace_id(slot)?;
            c.set_removed(slot, true);
            id
        };
        tokio::time::sleep(hold).await;
        let joined = {
            let mut c = self.cluster.lock().await;
            c.set_removed(slot, false);
            c.slot_mut(slot).spawn(Some(via_peer), false)
        };
        let result = match joined {
            Ok(()) => via
                .wait_for("the new node to be a voter", TIMING, |v| {
                    v.voters().contains(&new_id)
                })
                .await
                .map(drop),
            Err(e) => Err(e),
        };
        let value = json!({"remove": old_id, "add": new_id});
        match &result {
            Ok(()) => self.rec.complete(p, Kind::Ok, value, None),
            Err(e) => self
                .rec
                .complete(p, Kind::Info, value, Some(format!("{e:#}"))),
        }
        result
    }

    /// Ends every fault: network healed, clocks reset, every node resumed
    /// and running.
    pub async fn heal_all(&self) {
        let mut c = self.cluster.lock().await;
        let _ = c.net.heal();
        c.net.unslow_all();
        c.unslow_disks();
        for slot in 1..=c.len() {
            let _ = c.skew_clock(slot, 0);
            let node = c.slot_mut(slot);
            if node.is_paused() {
                let _ = node.resume();
            }
            if !node.is_running() {
                let _ = node.respawn();
            }
        }
    }
}
