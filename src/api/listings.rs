//! SKU listings: the name, list price and vendor a SKU is sold under.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::inventory::Sku;
use ecommerce_domains::listing::{self, Listing, ListingCommand};
use ecommerce_domains::money::Money;
use ecommerce_domains::{Actor, Command, DomainError, Response as Reply};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::SignedIn;
use super::error::{AppError, AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, Consistency, MutationMeta, ReadParams};
use super::{unexpected, App};

/// An amount in minor units (cents) and its ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyDto {
    pub amount: i64,
    pub currency: String,
}

impl From<Money> for MoneyDto {
    fn from(m: Money) -> Self {
        Self {
            amount: m.amount,
            currency: m.currency.as_str().to_string(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListingBody {
    /// 1 to 200 characters.
    pub name: String,
    /// List price per unit.
    pub price: MoneyDto,
    /// The vendor selling it (a vendor may only name itself); absent for the shop.
    pub vendor_id: Option<String>,
    /// Defaults to true.
    pub active: Option<bool>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ListingDto {
    pub sku: String,
    pub name: String,
    pub price: MoneyDto,
    pub vendor_id: Option<String>,
    pub active: bool,
    pub version: u64,
}

impl From<Listing> for ListingDto {
    fn from(l: Listing) -> Self {
        Self {
            sku: l.sku.as_str().to_string(),
            name: l.name,
            price: l.price.into(),
            vendor_id: l.vendor_id,
            active: l.active,
            version: l.version,
        }
    }
}

/// Create or replace the listing of a SKU (admins, or the vendor that sells it).
#[utoipa::path(put, path = "/api/v1/listings/{sku}", tag = "catalog", request_body = ListingBody,
    params(("sku" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = ListingDto), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn put_listing(
    State(state): State<App>,
    SignedIn(actor): SignedIn,
    AppPath(raw): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<ListingBody>,
) -> AppResult<Response> {
    let tag = meta.tag(&Principal::from(&actor), &body);
    let command = body.command(actor, &raw)?;
    let committed = state.propose(Command::Listing(command), tag).await?;
    Ok(committed
        .render(listing_reply)
        .map(ListingDto::from)
        .into_response())
}

impl ListingBody {
    /// The command creating or replacing the listing of `raw_sku`.
    pub fn command(&self, actor: Actor, raw_sku: &str) -> AppResult<ListingCommand> {
        Ok(ListingCommand::Upsert {
            actor,
            sku: Sku::parse(raw_sku)?,
            name: listing::parse_name("name", &self.name)?,
            price: Money::parse("price", self.price.amount, &self.price.currency)?,
            vendor_id: self.vendor_id.clone(),
            active: self.active.unwrap_or(true),
        })
    }
}

/// The listing a listing command answered.
pub fn listing_reply(reply: Reply) -> AppResult<Listing> {
    match reply {
        Reply::Listing(l) => Ok(l),
        other => Err(unexpected(other)),
    }
}

/// Read the listing of a SKU.
#[utoipa::path(get, path = "/api/v1/listings/{sku}", tag = "catalog", params(("sku" = String, Path), ReadParams),
    responses((status = 200, body = ListingDto), (status = 404, body = ErrorBody)))]
pub async fn get_listing(
    State(state): State<App>,
    AppPath(raw): AppPath<String>,
    AppQuery(params): AppQuery<ReadParams>,
) -> AppResult<Json<ListingDto>> {
    let consistency = params.consistency.unwrap_or_default();
    Ok(Json(find_listing(&state, &raw, consistency).await?.into()))
}

/// The listing of SKU `raw`, or `listing_not_found`.
pub async fn find_listing(state: &App, raw: &str, consistency: Consistency) -> AppResult<Listing> {
    let sku = Sku::parse(raw)?;
    let reader = state.read(consistency).await?;
    listing::get(&reader, &sku)?
        .ok_or_else(|| AppError::from(DomainError::ListingNotFound(raw.to_string())))
}
