//! Field checks that `apply` runs again on every command.
//!
//! The API parses what clients send before it builds a command, but a command
//! may reach the state machine by another way (a forwarded envelope, a log
//! written by an older version, a bug), and its fields are public. So every
//! command's `validate` re-checks what the domain relies on, with the same
//! parsers where they exist and these helpers for the rest. What must not
//! live here: checks that need the state (those belong to each command).

use crate::DomainError;

/// Longest opaque identifier or digest a command may store (user ids,
/// session families, token digests, provider subjects...).
pub const MAX_OPAQUE_BYTES: usize = 256;

/// Text a person reads: not only spaces, at most `max_chars` characters.
pub(crate) fn text(field: &str, value: &str, max_chars: usize) -> Result<(), DomainError> {
    if value.trim().is_empty() || value.chars().count() > max_chars {
        return Err(DomainError::validation(
            field,
            format!("must be 1 to {max_chars} characters"),
        ));
    }
    Ok(())
}

/// Text that may be empty, at most `max_chars` characters.
pub(crate) fn optional_text(field: &str, value: &str, max_chars: usize) -> Result<(), DomainError> {
    if value.chars().count() > max_chars {
        return Err(DomainError::validation(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(())
}

/// An identifier or digest made by the node: 1 to [`MAX_OPAQUE_BYTES`] bytes.
pub(crate) fn opaque(field: &str, value: &str) -> Result<(), DomainError> {
    if value.is_empty() || value.len() > MAX_OPAQUE_BYTES {
        return Err(DomainError::validation(
            field,
            format!("must be 1 to {MAX_OPAQUE_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// A count or quantity of at most `max`.
pub(crate) fn at_most(field: &str, value: u64, max: u64) -> Result<(), DomainError> {
    if value > max {
        return Err(DomainError::validation(
            field,
            format!("must be at most {max}"),
        ));
    }
    Ok(())
}

/// A value its parser returns unchanged: `parsed` is what the parser made of
/// `value`'s own text. Refuses what the parser refuses, and what it would
/// have normalised (an index keyed by the normal form would miss it).
pub(crate) fn canonical<T: PartialEq>(
    field: &str,
    value: &T,
    parsed: Result<T, DomainError>,
) -> Result<(), DomainError> {
    if parsed? == *value {
        Ok(())
    } else {
        Err(DomainError::validation(field, "is not in its normal form"))
    }
}

/// A time window that does not end before it starts.
pub(crate) fn window(starts_ms: Option<u64>, ends_ms: Option<u64>) -> Result<(), DomainError> {
    match (starts_ms, ends_ms) {
        (Some(s), Some(e)) if e <= s => Err(DomainError::validation(
            "ends_ms",
            "must be after starts_ms",
        )),
        _ => Ok(()),
    }
}
