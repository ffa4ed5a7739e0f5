//! The replicated event log as this replica holds it.

use super::*;

impl RaftNode {
    /// Events with id greater than `after`, in order, at most `limit`.
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>> {
        let _complete = self.storage.try_read_complete().ok_or(Error::Installing)?;
        let from = keys::u64_key(after);
        let rows = self.storage.scan(
            CF_EVENTS,
            (Bound::Excluded(&from[..]), Bound::Unbounded),
            limit,
        )?;
        rows.iter().map(|(_, v)| Ok(codec::decode(v)?)).collect()
    }

    /// Id of the oldest event still in the log: the first one compaction
    /// left, or the next to come when it left none.
    pub fn oldest_event_id(&self) -> Result<u64> {
        match self.storage.first(CF_EVENTS)? {
            Some((key, _)) => Ok(keys::decode_u64(&key).unwrap_or(1)),
            None => Ok(self.last_event_id()?.saturating_add(1)),
        }
    }

    /// Id of the newest event in the log (0 when empty).
    pub fn last_event_id(&self) -> Result<u64> {
        use crate::state_machine::KEY_EVENT_SEQ;
        // Not the last key of the log: compaction may have emptied it.
        let seq: Option<u64> = self.storage.get_value(CF_SM_META, KEY_EVENT_SEQ)?;
        Ok(seq.unwrap_or(0))
    }

    /// The newest event's id, and the version of the last command applied
    /// with it, read from one consistent view. Orders are numbered by version
    /// (`ApplyContext::version`), so every order placed at or before that
    /// event has an id at most the version, and every later one is above it.
    pub fn event_and_version_marks(&self) -> Result<(u64, u64)> {
        use crate::state_machine::{KEY_EVENT_SEQ, KEY_LAST_APPLIED, KEY_LAST_VERSION};
        self.storage.with_view(|view| {
            let events: Option<u64> = view.get_value(CF_SM_META, KEY_EVENT_SEQ)?;
            let version: Option<u64> = view.get_value(CF_SM_META, KEY_LAST_VERSION)?;
            // A state written before commands were batched has no version
            // count; its versions were its log indexes.
            let applied: Option<Option<LogId>> = view.get_value(CF_SM_META, KEY_LAST_APPLIED)?;
            let applied = applied.flatten().map_or(0, |l| l.index);
            Ok((events.unwrap_or(0), version.unwrap_or(0).max(applied)))
        })
    }
}
