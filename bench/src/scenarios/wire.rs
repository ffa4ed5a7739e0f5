//! The JSON a spike worker and its parent exchange (`worker.rs`): a
//! scenario's [`Stats`] and [`Timeline`] as plain values. Pure: no I/O.
//!
//! Histograms go as `[[value, count], ...]`, one pair per recorded bucket,
//! and are rebuilt with the same bounds and precision, so nothing is lost
//! at the histograms' own precision. Not hdrhistogram's V2 serializer: it
//! needs the crate's `serialization` feature (flate2, nom, base64) in the
//! lock file, for a few kilobytes a worker sends once. Not serde derives
//! either: this crate has only `serde_json`, and the few fields read back by
//! hand are checked as they are read.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use super::stats::{histogram, Kind, Shed, Stats};
use super::user::Step;
use crate::timeline::{Bucket, Timeline};

pub fn histogram_json(h: &Histogram<u64>) -> Value {
    h.iter_recorded()
        .map(|v| json!([v.value_iterated_to(), v.count_at_value()]))
        .collect()
}

/// Records the pairs of [`histogram_json`] into `h`.
fn read_histogram(v: &Value, h: &mut Histogram<u64>) -> anyhow::Result<()> {
    for pair in array(v)? {
        match pair.as_array().map(Vec::as_slice) {
            Some([value, count]) => {
                let (value, count) = (number(value)?, number(count)?);
                h.record_n(value, count)
                    .with_context(|| format!("histogram value {value}"))?;
            }
            _ => bail!("a histogram pair is [value, count], not {pair}"),
        }
    }
    Ok(())
}

fn number(v: &Value) -> anyhow::Result<u64> {
    v.as_u64()
        .with_context(|| format!("expected a count, got {v}"))
}

fn array(v: &Value) -> anyhow::Result<&Vec<Value>> {
    v.as_array()
        .with_context(|| format!("expected an array, got {v}"))
}

fn object(v: &Value) -> anyhow::Result<&Map<String, Value>> {
    v.as_object()
        .with_context(|| format!("expected an object, got {v}"))
}

/// Field `key` of object `v`.
pub fn field<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a Value> {
    v.get(key).with_context(|| format!("field `{key}` missing"))
}

pub fn u64_field(v: &Value, key: &str) -> anyhow::Result<u64> {
    number(field(v, key)?).with_context(|| format!("field `{key}`"))
}

fn counts_json(m: &BTreeMap<String, u64>) -> Value {
    m.iter().map(|(k, n)| (k.clone(), json!(n))).collect()
}

fn read_counts(v: &Value) -> anyhow::Result<BTreeMap<String, u64>> {
    object(v)?
        .iter()
        .map(|(k, n)| Ok((k.clone(), number(n)?)))
        .collect()
}

fn micros(d: Duration) -> Value {
    json!(d.as_micros() as u64)
}

fn duration_field(v: &Value, key: &str) -> anyhow::Result<Duration> {
    Ok(Duration::from_micros(u64_field(v, key)?))
}

/// The request kind of that name (the kinds are the journey's).
fn kind_name(name: &str) -> anyhow::Result<&'static str> {
    Step::JOURNEY
        .iter()
        .map(|s| s.kind())
        .find(|k| *k == name)
        .with_context(|| format!("unknown request kind `{name}`"))
}

pub fn stats_json(s: &Stats) -> Value {
    let kinds: Map<String, Value> = s
        .kinds
        .iter()
        .map(|(name, k)| {
            let shed: Map<String, Value> = k
                .shed
                .iter()
                .map(|(code, sh)| {
                    let v = json!({
                        "latency": histogram_json(&sh.latency),
                        "with_retry_after": sh.with_retry_after,
                    });
                    (code.clone(), v)
                })
                .collect();
            let v = json!({
                "ok": histogram_json(&k.series.ok),
                "errors": counts_json(&k.series.errors),
                "shed": shed,
            });
            ((*name).to_string(), v)
        })
        .collect();
    json!({
        "kinds": kinds,
        "connect": histogram_json(&s.connect),
        "connect_errors": counts_json(&s.connect_errors),
        "reconnects": s.reconnects,
        "connected_users": s.connected_users,
        "last_first_connect_us": micros(s.last_first_connect),
        "customer_waits": s.customer_waits,
        "longest_customer_wait_us": micros(s.longest_customer_wait),
    })
}

pub fn read_stats(v: &Value) -> anyhow::Result<Stats> {
    let mut s = Stats::default();
    for (name, k) in object(field(v, "kinds")?)? {
        let mut kind = Kind::new();
        read_histogram(field(k, "ok")?, &mut kind.series.ok)?;
        kind.series.errors = read_counts(field(k, "errors")?)?;
        for (code, sh) in object(field(k, "shed")?)? {
            let mut latency = histogram();
            read_histogram(field(sh, "latency")?, &mut latency)?;
            let shed = Shed {
                latency,
                with_retry_after: u64_field(sh, "with_retry_after")?,
            };
            kind.shed.insert(code.clone(), shed);
        }
        s.kinds.insert(kind_name(name)?, kind);
    }
    read_histogram(field(v, "connect")?, &mut s.connect)?;
    s.connect_errors = read_counts(field(v, "connect_errors")?)?;
    s.reconnects = u64_field(v, "reconnects")?;
    s.connected_users = u64_field(v, "connected_users")?;
    s.last_first_connect = duration_field(v, "last_first_connect_us")?;
    s.customer_waits = u64_field(v, "customer_waits")?;
    s.longest_customer_wait = duration_field(v, "longest_customer_wait_us")?;
    Ok(s)
}

/// A worker's seconds: answers, latencies and its open connections (the
/// nodes' RSS and the phase are the parent's to sample).
pub fn timeline_json(t: &Timeline) -> Value {
    t.buckets()
        .iter()
        .map(|b| {
            json!({
                "requests": b.requests,
                "errors": b.errors,
                "shed": b.shed,
                "ok": histogram_json(&b.ok),
                "open": b.open,
            })
        })
        .collect()
}

pub fn read_timeline(v: &Value) -> anyhow::Result<Timeline> {
    let buckets = array(v)?
        .iter()
        .map(|b| {
            let mut bucket = Bucket::new();
            bucket.requests = u64_field(b, "requests")?;
            bucket.errors = u64_field(b, "errors")?;
            bucket.shed = u64_field(b, "shed")?;
            read_histogram(field(b, "ok")?, &mut bucket.ok)?;
            bucket.open = match field(b, "open")? {
                Value::Null => None,
                open => Some(number(open)?),
            };
            Ok(bucket)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Timeline::from_buckets(buckets))
}

#[cfg(test)]
mod tests {
    use super::{read_stats, read_timeline, stats_json, timeline_json};
    use crate::scenarios::conn::Answer;
    use crate::scenarios::stats::Stats;
    use crate::timeline::{Outcome, Timeline};
    use std::time::Duration;

    #[test]
    fn stats_and_timelines_survive_the_trip() {
        let ms = Duration::from_millis;
        let mut s = Stats::default();
        for i in 1..=500 {
            let ok = Answer::Http {
                status: 200,
                code: None,
                retry_after: false,
            };
            s.record("browse", &ok, ms(i));
        }
        let shed = Answer::Http {
            status: 503,
            code: Some("overloaded".into()),
            retry_after: true,
        };
        s.record("checkout", &shed, ms(2));
        s.record("cart", &Answer::Timeout, ms(30_000));
        s.connect.record(1234).unwrap();
        s.connect_errors.insert("connect timeout".into(), 2);
        s.connected_users = 7;
        s.last_first_connect = ms(9_500);
        s.longest_customer_wait = ms(12);

        // Through text, as it crosses the pipe.
        let text = stats_json(&s).to_string();
        let back = read_stats(&serde_json::from_str(&text).unwrap()).unwrap();
        let (a, b) = (s.overall(), back.overall());
        assert_eq!(b.requests(), a.requests());
        for q in [0.5, 0.95, 0.99, 1.0] {
            assert_eq!(b.series.at(q), a.series.at(q));
        }
        assert_eq!(b.series.errors_text(), "timeout × 1");
        assert_eq!(back.shed_by_code()["503 overloaded"], (1, 1));
        assert_eq!(back.connect.max(), s.connect.max());
        assert_eq!(back.connect_errors["connect timeout"], 2);
        assert_eq!(back.connected_users, 7);
        assert_eq!(back.last_first_connect, ms(9_500));
        assert_eq!(back.longest_customer_wait, ms(12));

        let mut t = Timeline::default();
        t.record(ms(100), Outcome::Ok, ms(40));
        t.record(ms(2100), Outcome::Shed, ms(1));
        t.sample_open(ms(2000), 5);
        let back = read_timeline(&timeline_json(&t)).unwrap();
        assert_eq!(back.csv(0), t.csv(0));

        assert!(read_stats(&serde_json::json!({"kinds": {}})).is_err());
    }
}
