//! The gRPC side of the authorization layer: interceptors that accept the
//! same access tokens as REST (`authorization: Bearer <jwt>` metadata).
//! [`Authenticate`] verifies a token if there is one and hands the caller's
//! [`Actor`] to the service in the request's extensions (the commerce services
//! then require what their REST twins do, `grpc::call`); [`RequireRole`] also
//! demands a role. Health checks and cluster status stay public, as over REST;
//! the event stream needs an admin (events carry password-reset tokens).

use ecommerce_domains::{Actor, Role};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::app::App;

/// The bearer token of the metadata: `Ok(None)` without one.
fn bearer<T>(request: &Request<T>) -> Result<Option<String>, Status> {
    let Some(raw) = request.metadata().get("authorization") else {
        return Ok(None);
    };
    raw.to_str()
        .ok()
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim().to_string())
        })
        .map(Some)
        .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <access token>`"))
}

/// The caller of a verified token, or the refusal.
fn verify(state: &App, token: &str) -> Result<Actor, Status> {
    state.verify_access_token(token).map_err(|refusal| {
        tracing::debug!(reason = %refusal, "gRPC access token refused");
        Status::unauthenticated("the access token is invalid, expired or revoked")
    })
}

/// Verifies the bearer token, if any (a bad one is refused), and puts the
/// caller's [`Actor`] in the request's extensions.
#[derive(Clone)]
pub struct Authenticate {
    pub state: App,
}

impl Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = bearer(&request)? {
            let actor = verify(&self.state, &token)?;
            request.extensions_mut().insert(actor);
        }
        Ok(request)
    }
}

/// Lets a call through only with a valid access token of one of `roles`; the
/// caller's [`Actor`] is put in the request's extensions.
#[derive(Clone)]
pub struct RequireRole {
    pub state: App,
    pub roles: &'static [Role],
}

impl Interceptor for RequireRole {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = bearer(&request)?.ok_or_else(|| {
            Status::unauthenticated("sign in: authorization: Bearer <access token>")
        })?;
        let actor = verify(&self.state, &token)?;
        if !self.roles.contains(&actor.role) {
            return Err(Status::permission_denied("you are not allowed to do this"));
        }
        request.extensions_mut().insert(actor);
        Ok(request)
    }
}
