use super::*;
// Commands apply as the state machine applies them (idempotency, savepoint).
use crate::store::memory::{apply, MemoryStore};
use crate::Outcome;

fn ctx(log_index: u64, now_ms: u64) -> ApplyContext {
    ApplyContext {
        log_index,
        version: log_index,
        now_ms,
    }
}

fn email(raw: &str) -> Email {
    Email::parse(raw).unwrap()
}

fn register(store: &mut MemoryStore, id: &str, address: &str) -> Outcome {
    apply(
        &UserCommand::Register {
            user_id: id.into(),
            email: email(address),
            name: "N".into(),
            role: Role::Customer,
            password_hash: Some(Secret("$argon2id$x".into())),
            email_verified: false,
        },
        &ctx(1, 1000),
        store,
    )
    .unwrap()
}

fn session(store: &mut MemoryStore, user: &str, family: &str, hash: &str, now: u64) -> Outcome {
    apply(
        &UserCommand::StartSession {
            user_id: user.into(),
            family_id: family.into(),
            token_hash: hash.into(),
            ttl_ms: 10_000,
            expected_security_version: 1,
        },
        &ctx(2, now),
        store,
    )
    .unwrap()
}

fn refresh(store: &mut MemoryStore, family: &str, old: &str, new: &str, now: u64) -> Outcome {
    apply(
        &UserCommand::RefreshSession {
            family_id: family.into(),
            presented_hash: old.into(),
            new_hash: new.into(),
            ttl_ms: 10_000,
        },
        &ctx(3, now),
        store,
    )
    .unwrap()
}

#[test]
fn emails_are_normalised_and_checked() {
    assert_eq!(email("  Alice@Example.COM ").as_str(), "alice@example.com");
    for bad in [
        "", "a", "a@b", "@b.c", "a@.b", "a@b.", "a b@c.d", "a@b@c.d", "a@b..c",
    ] {
        assert!(Email::parse(bad).is_err(), "{bad:?}");
    }
    assert!(!format!("{:?}", email("alice@example.com")).contains("alice"));
}

#[test]
fn password_policy_explains_what_is_wrong() {
    let e = email("alice@example.com");
    assert!(check_password_policy("correct horse battery", Some(&e)).is_ok());
    for bad in [
        "short",
        "aaaaaaaaaaaaaaaa",
        "alice@example.com",
        &"x1y2".repeat(40),
    ] {
        let err = check_password_policy(bad, Some(&e)).unwrap_err();
        assert_eq!(err.code(), "weak_password", "{bad}");
    }
}

#[test]
fn one_account_per_email_and_deletion_frees_it() {
    let mut store = MemoryStore::default();
    assert!(register(&mut store, "u1", "a@b.co").is_ok());
    assert_eq!(
        register(&mut store, "u2", "A@B.co"),
        Err(DomainError::EmailTaken)
    );
    let deleted = apply(
        &UserCommand::DeleteUser {
            user_id: "u1".into(),
        },
        &ctx(3, 2000),
        &mut store,
    )
    .unwrap();
    let Ok(Response::Users(reply)) = deleted else {
        panic!("{deleted:?}")
    };
    let UsersResponse::User(user) = *reply else {
        panic!("not a user")
    };
    assert!(user.deleted && user.email.is_none() && user.password_hash.is_none());
    assert!(register(&mut store, "u2", "a@b.co").is_ok());
}

#[test]
fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let mut store = MemoryStore::default();
    register(&mut store, "u1", "a@b.co").unwrap();
    session(&mut store, "u1", "f1", "h1", 1000).unwrap();
    assert!(matches!(
        refresh(&mut store, "f1", "h1", "h2", 2000),
        Ok(Response::Users(r)) if matches!(*r, UsersResponse::Session { .. })
    ));
    assert_eq!(
        refresh(&mut store, "f1", "nope", "h3", 2000),
        Err(DomainError::InvalidRefreshToken)
    );
    // h1 again: reuse. The family is revoked, so h2 no longer works either.
    assert_eq!(
        refresh(&mut store, "f1", "h1", "h3", 2100),
        Ok(Response::Users(Box::new(UsersResponse::RefreshReused)))
    );
    assert!(get_session(&store, "f1").unwrap().unwrap().revoked);
    assert_eq!(
        refresh(&mut store, "f1", "h2", "h4", 2200),
        Err(DomainError::InvalidRefreshToken)
    );
}

#[test]
fn refresh_tokens_expire_in_log_time_and_password_change_ends_sessions() {
    let mut store = MemoryStore::default();
    register(&mut store, "u1", "a@b.co").unwrap();
    session(&mut store, "u1", "f1", "h1", 1000).unwrap();
    assert_eq!(
        refresh(&mut store, "f1", "h1", "h2", 11_000),
        Err(DomainError::InvalidRefreshToken)
    );
    session(&mut store, "u1", "f2", "k1", 20_000).unwrap();
    apply(
        &UserCommand::ChangePassword {
            user_id: "u1".into(),
            password_hash: Secret("$argon2id$y".into()),
            expected_security_version: 1,
        },
        &ctx(5, 20_001),
        &mut store,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        refresh(&mut store, "f2", "k1", "k2", 20_002),
        Err(DomainError::InvalidRefreshToken)
    );
    // A login checked against the old password is refused.
    assert_eq!(
        session(&mut store, "u1", "f3", "j1", 20_003),
        Err(DomainError::InvalidCredentials)
    );
}

#[test]
fn reset_tokens_are_single_use_and_expire() {
    let mut store = MemoryStore::default();
    register(&mut store, "u1", "a@b.co").unwrap();
    let request = |hash: &str| UserCommand::RequestPasswordReset {
        user_id: "u1".into(),
        token_hash: hash.into(),
        token: Secret("t".into()),
        ttl_ms: 1000,
    };
    let reset = |hash: &str| UserCommand::ResetPassword {
        token_hash: hash.into(),
        password_hash: Secret("$argon2id$z".into()),
    };
    apply(&request("r1"), &ctx(2, 5000), &mut store)
        .unwrap()
        .unwrap();
    apply(&request("r2"), &ctx(3, 5000), &mut store)
        .unwrap()
        .unwrap();
    assert!(apply(&reset("r1"), &ctx(4, 5500), &mut store)
        .unwrap()
        .is_ok());
    assert_eq!(
        apply(&reset("r1"), &ctx(5, 5600), &mut store).unwrap(),
        Err(DomainError::InvalidResetToken)
    );
    assert_eq!(
        apply(&reset("r2"), &ctx(6, 6000), &mut store).unwrap(),
        Err(DomainError::InvalidResetToken),
        "expired at 6000"
    );
    assert!(matches!(
        store.events.last(),
        Some(Event::User(UserEvent::PasswordChanged { .. }))
    ));
}

#[test]
fn key_rotation_keeps_old_keys_for_the_retention_window() {
    let mut store = MemoryStore::default();
    let secret = Secret(vec![7u8; 32]);
    let ensure = |kid: &str| UserCommand::EnsureSigningKey {
        kid: kid.into(),
        secret: secret.clone(),
    };
    apply(&ensure("k1"), &ctx(1, 0), &mut store)
        .unwrap()
        .unwrap();
    apply(&ensure("k2"), &ctx(2, 0), &mut store)
        .unwrap()
        .unwrap();
    assert_eq!(key_ring(&store).unwrap().active.as_deref(), Some("k1"));
    let rotate = |kid: &str| UserCommand::RotateSigningKey {
        kid: kid.into(),
        secret: secret.clone(),
        retain_ms: 100,
    };
    apply(&rotate("k2"), &ctx(3, 1000), &mut store)
        .unwrap()
        .unwrap();
    let ring = key_ring(&store).unwrap();
    assert_eq!(ring.active.as_deref(), Some("k2"));
    assert!(ring.key("k1").is_some());
    apply(&rotate("k3"), &ctx(4, 1100), &mut store)
        .unwrap()
        .unwrap();
    let ring = key_ring(&store).unwrap();
    assert!(ring.key("k1").is_none(), "retired at 1000, kept 100 ms");
    assert!(ring.key("k2").is_some());
    assert!(!format!("{ring:?}").contains("7, 7"));
}

fn identity(
    provider: &str,
    subject: &str,
    address: Option<&str>,
    verified: bool,
) -> SocialIdentity {
    SocialIdentity {
        provider: provider.into(),
        subject: subject.into(),
        email: address.map(email),
        email_verified: verified,
        name: "Social Name".into(),
    }
}

/// Signs `identity` in; the account it lands on.
fn social(
    store: &mut MemoryStore,
    identity: SocialIdentity,
    new_id: &str,
) -> Result<User, DomainError> {
    let outcome = apply(
        &UserCommand::SocialSignIn {
            identity,
            new_user_id: new_id.into(),
            family_id: format!("fam-{new_id}"),
            token_hash: format!("hash-{new_id}"),
            ttl_ms: 10_000,
        },
        &ctx(5, 5000),
        store,
    )
    .unwrap()?;
    match outcome {
        Response::Users(reply) => match *reply {
            UsersResponse::Session { user, .. } => Ok(user),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn social_state_is_taken_once_by_its_provider_before_it_expires() {
    let mut store = MemoryStore::default();
    let begin = |state: &str| UserCommand::BeginSocialLogin {
        state_hash: state.into(),
        pending: PendingSocialLogin {
            provider: "google".into(),
            verifier: Secret("verifier".into()),
            nonce: "nonce".into(),
            expires_ms: 0,
        },
        ttl_ms: 1000,
    };
    let take = |state: &str, provider: &str| UserCommand::TakeSocialLogin {
        state_hash: state.into(),
        provider: provider.into(),
    };
    for state in ["s1", "s2", "s3"] {
        assert!(apply(&begin(state), &ctx(1, 10_000), &mut store)
            .unwrap()
            .is_ok());
    }
    assert!(
        apply(&begin("s1"), &ctx(1, 10_000), &mut store)
            .unwrap()
            .is_err(),
        "a state is stored once"
    );
    let taken = apply(&take("s1", "google"), &ctx(2, 10_500), &mut store).unwrap();
    let Ok(Response::Users(reply)) = taken else {
        panic!("{taken:?}")
    };
    let UsersResponse::SocialLoginTaken(pending) = *reply else {
        panic!("not taken")
    };
    assert_eq!(
        (pending.verifier.0.as_str(), pending.expires_ms),
        ("verifier", 11_000)
    );
    let refused = |cmd, now| apply(&cmd, &ctx(3, now), &mut MemoryStore::clone(&store)).unwrap();
    assert_eq!(
        refused(take("s1", "google"), 10_600),
        Err(DomainError::InvalidSocialState)
    );
    assert_eq!(
        refused(take("s2", "github"), 10_600),
        Err(DomainError::InvalidSocialState)
    );
    assert_eq!(
        refused(take("s3", "google"), 11_000),
        Err(DomainError::InvalidSocialState)
    );
    assert_eq!(
        refused(take("nope", "google"), 10_600),
        Err(DomainError::InvalidSocialState)
    );
    assert!(refused(take("s3", "google"), 10_999).is_ok());
}

#[test]
fn social_sign_in_links_by_verified_email_only() {
    let mut store = MemoryStore::default();
    // No address, or one the provider does not vouch for: nothing is created.
    assert_eq!(
        social(&mut store, identity("github", "1", None, true), "n1"),
        Err(DomainError::EmailNotVerified)
    );
    assert_eq!(
        social(
            &mut store,
            identity("github", "1", Some("x@y.co"), false),
            "n1"
        ),
        Err(DomainError::EmailNotVerified)
    );
    assert!(get_user(&store, "n1").unwrap().is_none());

    // A verified address: a new customer without a password, linked.
    let created = social(
        &mut store,
        identity("google", "g1", Some("X@y.co"), true),
        "n1",
    )
    .unwrap();
    assert_eq!((created.id.as_str(), created.role), ("n1", Role::Customer));
    assert!(created.password_hash.is_none() && created.email_verified);
    // Linked: the same account, even once the provider stops sending the address.
    let again = social(&mut store, identity("google", "g1", None, false), "n2").unwrap();
    assert_eq!(again.id, "n1");
    // Another provider vouching for the same address: the same account.
    let github = social(
        &mut store,
        identity("github", "7", Some("x@y.co"), true),
        "n3",
    )
    .unwrap();
    assert_eq!(github.id, "n1");
    assert!(get_user(&store, "n3").unwrap().is_none());
}

#[test]
fn social_sign_in_takes_over_an_unproven_registration() {
    let mut store = MemoryStore::default();
    assert!(register(&mut store, "squatter", "v@w.co").is_ok());
    let before = get_user(&store, "squatter").unwrap().unwrap();
    let user = social(
        &mut store,
        identity("google", "g9", Some("v@w.co"), true),
        "n9",
    )
    .unwrap();
    assert_eq!(user.id, "squatter");
    assert!(
        user.password_hash.is_none(),
        "the unproven password is erased"
    );
    assert!(user.email_verified);
    assert_eq!(user.security_version, before.security_version + 1);
    // The deleted account's address is free: a new account, not the deleted one.
    apply(
        &UserCommand::DeleteUser {
            user_id: "squatter".into(),
        },
        &ctx(6, 6000),
        &mut store,
    )
    .unwrap()
    .unwrap();
    let fresh = social(
        &mut store,
        identity("google", "g9", Some("v@w.co"), true),
        "n10",
    )
    .unwrap();
    assert_eq!(fresh.id, "n10");
    assert!(store
        .scan::<(String, String)>(SOCIAL_LINKS_BY_USER, &[KeyPart::Str("squatter")], None, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn expired_sessions_reset_tokens_and_social_states_are_swept() {
    let mut store = MemoryStore::default();
    assert!(register(&mut store, "u1", "s@w.co").is_ok());
    // Session "old" expires at 12_000; "kept" is refreshed to 14_000 before that.
    assert!(session(&mut store, "u1", "old", "h-old", 2000).is_ok());
    assert!(session(&mut store, "u1", "kept", "h1", 2000).is_ok());
    assert!(refresh(&mut store, "kept", "h1", "h2", 4000).is_ok());
    apply(
        &UserCommand::RequestPasswordReset {
            user_id: "u1".into(),
            token_hash: "reset-hash".into(),
            token: Secret("tok".into()),
            ttl_ms: 5000,
        },
        &ctx(4, 3000),
        &mut store,
    )
    .unwrap()
    .unwrap();
    apply(
        &UserCommand::BeginSocialLogin {
            state_hash: "state".into(),
            pending: PendingSocialLogin {
                provider: "github".into(),
                verifier: Secret("v".into()),
                nonce: "n".into(),
                expires_ms: 0,
            },
            ttl_ms: 1000,
        },
        &ctx(5, 3000),
        &mut store,
    )
    .unwrap()
    .unwrap();
    assert_eq!(next_auth_expiry(&store).unwrap(), Some(4000));
    let sweep =
        |store: &mut MemoryStore, now| match apply(&UserCommand::ExpireAuth, &ctx(9, now), store)
            .unwrap()
        {
            Ok(Response::Expired { removed }) => removed,
            other => panic!("{other:?}"),
        };
    // Nothing is due before the first expiry.
    assert_eq!(sweep(&mut store, 3999), 0);
    assert!(store
        .get_raw(SOCIAL_PENDING, &[KeyPart::Str("state")])
        .unwrap()
        .is_some());
    // The social state (4000) and the reset token (8000) go.
    assert_eq!(sweep(&mut store, 8000), 2);
    assert!(store
        .get_raw(SOCIAL_PENDING, &[KeyPart::Str("state")])
        .unwrap()
        .is_none());
    assert!(store
        .get_raw(RESET_TOKENS, &[KeyPart::Str("reset-hash")])
        .unwrap()
        .is_none());
    // At 12_000 "old" expires; "kept"'s first entry is swept but it lives on.
    assert_eq!(sweep(&mut store, 12_000), 2);
    assert!(get_session(&store, "old").unwrap().is_none());
    assert!(get_session(&store, "kept").unwrap().is_some());
    assert_eq!(next_auth_expiry(&store).unwrap(), Some(14_000));
    assert_eq!(sweep(&mut store, 14_000), 1);
    assert!(get_session(&store, "kept").unwrap().is_none());
    assert_eq!(next_auth_expiry(&store).unwrap(), None);
}

#[test]
fn a_password_enters_the_log_only_hashed() {
    let mut store = MemoryStore::default();
    for plaintext in ["correct horse battery staple", "", "$argon2i$v=19$weaker"] {
        let refused = apply(
            &UserCommand::Register {
                user_id: "u9".into(),
                email: email("plain@example.test"),
                name: "N".into(),
                role: Role::Customer,
                password_hash: Some(Secret(plaintext.into())),
                email_verified: false,
            },
            &ctx(1, 1000),
            &mut store,
        )
        .unwrap();
        match refused {
            Err(DomainError::Validation { field, .. }) => assert_eq!(field, "password_hash"),
            other => panic!("{plaintext:?}: {other:?}"),
        }
    }
    assert!(
        store.tables.values().all(|t| t.is_empty()),
        "nothing written"
    );
}
