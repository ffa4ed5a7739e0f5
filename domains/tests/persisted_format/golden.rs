//! Samples and the golden file: encoding a sample as production does, and
//! comparing every sample with its line in `tests/golden/persisted_format.txt`
//! (`name<TAB>hex`), or rewriting the file under `UPDATE_GOLDEN=1`.

use std::collections::BTreeMap;
use std::fmt::{self, Write};
use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};

use super::enums::Enums;

/// What a failure says, whatever changed.
pub const RULE: &str = "persisted enums are append-only: add new variants at the end, never \
reorder, never change a field of an existing variant; if this change is intended and no stored \
data exists, regenerate with `UPDATE_GOLDEN=1 cargo test -p ecommerce-domains --test \
persisted_format`";

const REGENERATE: &str = "UPDATE_GOLDEN=1 cargo test -p ecommerce-domains --test persisted_format";

const HEADER: &str = "\
# Golden encodings of what the replicated state machine persists: Raft log
# entries, snapshots and backups, idempotency records, events, table records.
# One value per line: `name<TAB>hex` of its bincode encoding (serde,
# bincode::config::standard(), as domains::store::encode and
# ecommerce_storage::codec do). Checked by domains/tests/persisted_format.rs.
# Persisted enums are append-only. Regenerate only when no stored data depends
# on the old bytes:
#   UPDATE_GOLDEN=1 cargo test -p ecommerce-domains --test persisted_format
";

type Reread = Box<dyn Fn(&[u8]) -> Result<String, String>>;

/// One value as it is stored.
pub struct Sample {
    pub name: String,
    pub bytes: Vec<u8>,
    /// The enums the value holds.
    pub enums: Enums,
    /// Decodes bytes as the sample's type, all of them: the value (`Debug`),
    /// or why not. `None` when the type is private to the domains crate.
    pub reread: Option<Reread>,
}

impl Sample {
    /// `value` encoded with the production codec; it must decode back to itself.
    pub fn new<T>(name: impl Into<String>, value: &T) -> Self
    where
        T: Serialize + DeserializeOwned + PartialEq + fmt::Debug + 'static,
    {
        let name = name.into();
        let bytes = ecommerce_domains::store::encode(value)
            .unwrap_or_else(|e| panic!("{name} does not encode: {e}"));
        let back: T = ecommerce_domains::store::decode(&bytes)
            .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
        assert_eq!(&back, value, "{name} does not decode back to itself");
        Self {
            name,
            bytes,
            enums: Enums::of(value),
            reread: Some(Box::new(reread::<T>)),
        }
    }

    /// Bytes the test cannot name the type of (a private index entry),
    /// captured from what `apply` wrote.
    pub fn opaque(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Self {
            name: name.into(),
            bytes,
            enums: Enums::default(),
            reread: None,
        }
    }
}

fn reread<T: DeserializeOwned + fmt::Debug>(bytes: &[u8]) -> Result<String, String> {
    match bincode::serde::decode_from_slice::<T, _>(bytes, bincode::config::standard()) {
        Ok((value, read)) if read == bytes.len() => Ok(format!("{value:?}")),
        Ok((value, read)) => Err(format!(
            "{} bytes are left over after {}",
            bytes.len() - read,
            shorten(&format!("{value:?}"))
        )),
        Err(e) => Err(format!("fails: {e}")),
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 240;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Compares `samples` with the golden file at `path`, or rewrites it when
/// `UPDATE_GOLDEN=1`. Panics with every difference and what to do about it.
pub fn check(path: &Path, samples: &[&Sample]) {
    let mut names = std::collections::BTreeSet::new();
    for s in samples {
        assert!(names.insert(&s.name), "two samples are named {}", s.name);
    }
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        let mut text = HEADER.to_string();
        for s in samples {
            writeln!(text, "{}\t{}", s.name, hex::encode(&s.bytes)).unwrap();
        }
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        eprintln!("wrote {} values to {}", samples.len(), path.display());
        return;
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let golden = parse(&text);

    let mut changed = String::new();
    let mut new = Vec::new();
    for s in samples {
        match golden.get(s.name.as_str()) {
            Some(old) if *old == s.bytes => {}
            Some(old) => describe_change(&mut changed, s, old),
            None => new.push(s.name.as_str()),
        }
    }
    let gone: Vec<&str> = golden
        .keys()
        .copied()
        .filter(|name| !samples.iter().any(|s| s.name == *name))
        .collect();

    let mut message = String::new();
    if !changed.is_empty() {
        writeln!(
            message,
            "The persisted format changed: stored bytes of these values now mean something else.\n{changed}"
        )
        .unwrap();
    }
    if !gone.is_empty() {
        writeln!(
            message,
            "In the golden file but no longer sampled (a variant or type removed or renamed? \
             stored data may hold it; bincode stores no names, so a pure rename only needs \
             regenerating):\n  {}\n",
            gone.join("\n  ")
        )
        .unwrap();
    }
    if !changed.is_empty() || !gone.is_empty() {
        panic!("\n{message}{RULE}\n");
    }
    if !new.is_empty() {
        panic!(
            "\nNot in the golden file yet (appended, as they should be):\n  {}\n\n\
             Regenerate the golden file with `{REGENERATE}` and commit it: \
             it pins these values' encoding from now on.\n",
            new.join("\n  ")
        );
    }
}

fn parse(text: &str) -> BTreeMap<&str, Vec<u8>> {
    let mut golden = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, hex) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("golden file line {}: no tab", n + 1));
        let bytes = hex::decode(hex).unwrap_or_else(|e| panic!("golden file line {}: {e}", n + 1));
        assert!(
            golden.insert(name, bytes).is_none(),
            "golden file line {}: {name} twice",
            n + 1
        );
    }
    golden
}

fn describe_change(out: &mut String, sample: &Sample, old: &[u8]) {
    let now = &sample.bytes;
    let at = old
        .iter()
        .zip(now)
        .position(|(a, b)| a != b)
        .unwrap_or(old.len().min(now.len()));
    let window = |bytes: &[u8]| {
        let start = at.saturating_sub(4);
        let end = (at + 12).min(bytes.len());
        let more = if end < bytes.len() { " …" } else { "" };
        let dots = if start > 0 { "… " } else { "" };
        let hex: Vec<String> = bytes[start..end]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{dots}{}{more}", hex.join(" "))
    };
    let reread = match sample.reread.as_ref().map(|reread| reread(old)) {
        Some(Ok(value)) => format!("the golden bytes decode today as {}", shorten(&value)),
        Some(Err(why)) => format!("decoding the golden bytes today: {why}"),
        None => "(a type private to the domains crate: not decoded here)".to_string(),
    };
    writeln!(
        out,
        "  {}: first difference at byte {at} ({} bytes in the golden file, {} now)\n    \
         golden: {}\n    now:    {}\n    {reread}",
        sample.name,
        old.len(),
        now.len(),
        window(old),
        window(now),
    )
    .unwrap();
}
