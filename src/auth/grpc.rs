//! The gRPC side of the authorization layer: an interceptor that accepts the
//! same access tokens as REST (`authorization: Bearer <jwt>` metadata) and
//! requires a role. Health checks and cluster status stay public, as over REST;
//! the event stream needs an admin (events carry password-reset tokens).

use ecommerce_domains::Role;
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::api::auth::verify_access_token;
use crate::api::AppState;

/// Lets a call through only with a valid access token of one of `roles`; the
/// caller's [`ecommerce_domains::Actor`] is put in the request's extensions.
#[derive(Clone)]
pub struct RequireRole {
    pub state: AppState,
    pub roles: &'static [Role],
}

impl Interceptor for RequireRole {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, token)| token.trim().to_string())
            })
            .ok_or_else(|| {
                Status::unauthenticated("sign in: authorization: Bearer <access token>")
            })?;
        let actor = verify_access_token(&self.state, &token).map_err(|refusal| {
            tracing::debug!(reason = %refusal, "gRPC access token refused");
            Status::unauthenticated("the access token is invalid, expired or revoked")
        })?;
        if !self.roles.contains(&actor.role) {
            return Err(Status::permission_denied("you are not allowed to do this"));
        }
        request.extensions_mut().insert(actor);
        Ok(request)
    }
}
