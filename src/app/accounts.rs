//! Accounts: registration, profiles, roles, deletion, password change and
//! reset. Passwords are checked against the policy and hashed here, before a
//! command is proposed; nothing here logs a password, a token or an e-mail
//! address. Who may act on which account is decided here too: yourself, or
//! anyone for an admin.

use std::net::IpAddr;

use ecommerce_domains::idempotency::IdempotencyTag;
use ecommerce_domains::users::{self, Address, Email, Secret, User, UserCommand, UsersResponse};
use ecommerce_domains::{Actor, DomainError, Role};

use super::sessions::{unexpected_users, users_reply};
use super::{App, AppError, AppResult, Consistency, Rendered};
use crate::app::ErrorCode;
use crate::auth::tokens;

/// A profile change: `None` leaves a field as it is; an address may be set
/// (`Some(Some(..))`) or cleared (`Some(None)`).
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub name: Option<String>,
    pub shipping_address: Option<Option<Address>>,
    pub billing_address: Option<Option<Address>>,
}

/// The account `raw` names (`me`, the actor's own id, or for an admin any
/// id), if the actor may act on it.
fn target(actor: &Actor, raw: &str) -> AppResult<String> {
    if raw == "me" || raw == actor.user_id {
        return Ok(actor.user_id.clone());
    }
    if actor.is_admin() {
        Ok(raw.to_string())
    } else {
        Err(DomainError::Forbidden.into())
    }
}

fn user_reply(reply: ecommerce_domains::Response) -> AppResult<User> {
    match users_reply(reply)? {
        UsersResponse::User(user) => Ok(user),
        other => Err(unexpected_users(other)),
    }
}

impl App {
    /// Creates an account with `role` (customers register themselves; any
    /// other role is for admins or the operator, checked by the caller).
    pub async fn create_account(
        &self,
        ip: Option<IpAddr>,
        email: &str,
        password: String,
        name: &str,
        role: Role,
    ) -> AppResult<User> {
        self.check_ip(ip)?;
        let email = Email::parse(email)?;
        let name = users::parse_name(name)?;
        users::check_password_policy(&password, Some(&email))?;
        let hash = self
            .auth
            .passwords
            .hash(password)
            .await
            .map_err(AppError::internal)?;
        let command = UserCommand::Register {
            user_id: uuid::Uuid::new_v4().to_string(),
            email,
            name,
            role,
            password_hash: Some(Secret(hash)),
            email_verified: false,
        };
        user_reply(self.propose(command.into(), None).await?.outcome?)
    }

    /// A live account the actor may read.
    pub async fn get_account(&self, actor: &Actor, id: &str) -> AppResult<User> {
        let id = target(actor, id)?;
        self.load_user(&id, Consistency::Linearizable).await
    }

    /// Accounts in id order after `after` (admins; checked by the caller).
    pub async fn list_accounts(
        &self,
        after: Option<&str>,
        limit: usize,
        consistency: Consistency,
    ) -> AppResult<Vec<User>> {
        if !(1..=1000).contains(&limit) {
            return Err(AppError::new(
                ErrorCode::InvalidQuery,
                "limit must be between 1 and 1000",
            ));
        }
        let reader = self.read(consistency).await?;
        Ok(users::list_users(&reader, after, limit)?)
    }

    /// Updates the name and addresses of an account the actor may act on.
    pub async fn update_profile(
        &self,
        actor: &Actor,
        id: &str,
        change: ProfileChange,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<User>> {
        let command = UserCommand::UpdateProfile {
            user_id: target(actor, id)?,
            name: change.name.as_deref().map(users::parse_name).transpose()?,
            shipping_address: change.shipping_address,
            billing_address: change.billing_address,
        };
        Ok(self.propose(command.into(), tag).await?.render(user_reply))
    }

    /// Deletes and anonymises an account the actor may act on: e-mail, name,
    /// addresses and password are erased and every session ends; the id stays
    /// so that orders keep their history.
    pub async fn delete_account(
        &self,
        actor: &Actor,
        id: &str,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<User>> {
        let command = UserCommand::DeleteUser {
            user_id: target(actor, id)?,
        };
        Ok(self.propose(command.into(), tag).await?.render(user_reply))
    }

    /// Changes an account's role (admins) and ends its sessions.
    pub async fn set_role(
        &self,
        admin: &Actor,
        user_id: String,
        role: Role,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<User>> {
        if !admin.is_admin() {
            return Err(DomainError::Forbidden.into());
        }
        let command = UserCommand::SetRole { user_id, role };
        Ok(self.propose(command.into(), tag).await?.render(user_reply))
    }

    /// Changes the actor's own password (an admin resets other accounts
    /// through the reset flow); ends every session.
    pub async fn change_password(
        &self,
        actor: &Actor,
        id: &str,
        current: String,
        new: String,
    ) -> AppResult<()> {
        if id != "me" && id != actor.user_id {
            return Err(DomainError::Forbidden.into());
        }
        let user = self
            .load_user(&actor.user_id, Consistency::Linearizable)
            .await?;
        if let Some(email) = &user.email {
            self.check_account(email, None)?;
        }
        users::check_password_policy(&new, user.email.as_ref())?;
        let phc = user.password_hash.as_ref().map(|h| h.0.clone());
        let ok = self
            .auth
            .passwords
            .verify(current, phc)
            .await
            .map_err(AppError::internal)?;
        if !ok {
            return Err(DomainError::InvalidCredentials.into());
        }
        let hash = self
            .auth
            .passwords
            .hash(new)
            .await
            .map_err(AppError::internal)?;
        let command = UserCommand::ChangePassword {
            user_id: user.id,
            password_hash: Secret(hash),
            expected_security_version: user.security_version,
        };
        self.propose(command.into(), None).await?.outcome?;
        Ok(())
    }

    /// Asks for a password-reset token for `email`. Answers at once, whether
    /// or not the account exists: the work happens afterwards, so its timing
    /// says nothing about the account.
    pub fn request_password_reset(&self, ip: Option<IpAddr>, email: &str) -> AppResult<()> {
        self.check_ip(ip)?;
        let Ok(email) = Email::parse(email) else {
            return Ok(());
        };
        self.check_account(&email, ip)?;
        let app = self.clone();
        tokio::spawn(async move {
            let user = match app.read(Consistency::Linearizable).await {
                Ok(reader) => users::user_by_email(&reader, &email).ok().flatten(),
                Err(_) => None,
            };
            let Some(user) = user.filter(|u| !u.deleted) else {
                return;
            };
            let token = tokens::random_token(32);
            let delivery = app.vault.seal_reset_token(&user.id, &token);
            let command = UserCommand::IssuePasswordReset {
                user_id: user.id,
                token_hash: tokens::digest(&token),
                delivery,
                ttl_ms: app.auth.settings.reset_token_ttl_secs.saturating_mul(1000),
            };
            if let Err(e) = app.propose(command.into(), None).await {
                tracing::warn!(code = e.body.code, "password reset request not stored");
            }
        });
        Ok(())
    }

    /// Sets a new password with a reset token (single use; ends every session).
    pub async fn confirm_password_reset(
        &self,
        ip: Option<IpAddr>,
        token: &str,
        new_password: String,
    ) -> AppResult<()> {
        self.check_ip(ip)?;
        if token.is_empty() || token.len() > 128 {
            return Err(DomainError::InvalidResetToken.into());
        }
        users::check_password_policy(&new_password, None)?;
        let hash = self
            .auth
            .passwords
            .hash(new_password)
            .await
            .map_err(AppError::internal)?;
        let command = UserCommand::ResetPassword {
            token_hash: tokens::digest(token),
            password_hash: Secret(hash),
        };
        self.propose(command.into(), None).await?.outcome?;
        Ok(())
    }

    /// A live account, or 404.
    async fn load_user(&self, user_id: &str, consistency: Consistency) -> AppResult<User> {
        let reader = self.read(consistency).await?;
        users::get_user(&reader, user_id)?
            .filter(|u| !u.deleted)
            .ok_or_else(|| DomainError::UserNotFound(user_id.to_string()).into())
    }
}
