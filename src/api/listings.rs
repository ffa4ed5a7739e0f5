//! SKU listings: the name, list price and vendor a SKU is sold under
//! (`app::inventory` holds the use cases). [`MoneyDto`], the JSON of an
//! amount, is shared by every REST route that shows one.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::listing::Listing;
use ecommerce_domains::money::Money;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::SignedIn;
use super::error::{AppResult, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery, MutationMeta, ReadParams};
use super::App;
use crate::app::inventory::ListingRequest;
use crate::app::MoneyInput;

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

impl From<MoneyDto> for MoneyInput {
    fn from(m: MoneyDto) -> Self {
        Self {
            amount: m.amount,
            currency: m.currency,
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

// The body becomes the use case's request field for field: both serialize
// to the same JSON, the idempotency fingerprint (see the test below).
impl From<ListingBody> for ListingRequest {
    fn from(b: ListingBody) -> Self {
        Self {
            name: b.name,
            price: b.price.into(),
            vendor_id: b.vendor_id,
            active: b.active,
        }
    }
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
    AppPath(sku): AppPath<String>,
    meta: MutationMeta,
    AppJson(body): AppJson<ListingBody>,
) -> AppResult<Response> {
    let request = ListingRequest::from(body);
    let tag = meta.tag(&Principal::from(&actor), &request);
    let rendered = state.put_listing(&actor, &sku, &request, tag).await?;
    Ok(rendered.map(ListingDto::from).into_response())
}

/// Read the listing of a SKU.
#[utoipa::path(get, path = "/api/v1/listings/{sku}", tag = "catalog", params(("sku" = String, Path), ReadParams),
    responses((status = 200, body = ListingDto), (status = 404, body = ErrorBody)))]
pub async fn get_listing(
    State(state): State<App>,
    AppPath(sku): AppPath<String>,
    AppQuery(params): AppQuery<ReadParams>,
) -> AppResult<Json<ListingDto>> {
    let consistency = params.consistency.unwrap_or_default();
    Ok(Json(state.listing(&sku, consistency).await?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key keeps finding its record: the request the body becomes
    /// serializes exactly as the body does (fields, order, values).
    #[test]
    fn the_body_and_the_request_fingerprint_alike() {
        let body: ListingBody = serde_json::from_str(
            r#"{"active":false,"vendor_id":null,"price":{"currency":"eur","amount":150},"name":"A"}"#,
        )
        .unwrap();
        let request = ListingRequest::from(body.clone());
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            serde_json::to_string(&request).unwrap()
        );
    }
}
