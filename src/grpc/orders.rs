//! `OrderService`: checkout and the order workflow over gRPC. Messages
//! become the application layer's requests (`app::orders`) and orders are
//! answered from the domain's [`Order`]; every rule is the one REST obeys
//! because both call the same use cases.

use ecommerce_domains::allocation::Strategy;
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::inventory::Location;
use ecommerce_domains::order::{Address, Order, OrderStatus};
use ecommerce_domains::DomainError;
use tonic::{Request, Response, Status};

use super::{call, enum_name, enum_value, money, proto, Commerce};
use crate::app::orders::{
    order_id, CancelRequest, CheckoutRequest, ExtendHoldRequest, OrderQuery, ShipRequest,
};
use crate::app::ErrorCode;
use crate::app::{AppError, AppResult, Rendered};
use crate::payments::PaymentInput;

/// The REST path of order `id`'s workflow route `action`: with the method,
/// part of the idempotency fingerprint, so a key retried over either
/// transport finds the same record.
fn order_path(id: &str, action: &str) -> String {
    format!("/api/v1/orders/{id}/{action}")
}

fn address(a: proto::Address) -> AppResult<Address> {
    let location = a
        .location
        .map(|l| Location::parse(l.lat, l.lon))
        .transpose()?;
    Ok(Address {
        name: a.name,
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        postal_code: a.postal_code,
        country: a.country,
        location,
    }
    .validate()?)
}

fn strategy(raw: i32) -> AppResult<Strategy> {
    let name = match proto::AllocationStrategy::try_from(raw) {
        Ok(proto::AllocationStrategy::Unspecified) => return Ok(Strategy::default()),
        Ok(s) => enum_name(s.as_str_name(), "ALLOCATION_STRATEGY_"),
        Err(_) => raw.to_string(),
    };
    Strategy::parse(&name).ok_or_else(|| {
        DomainError::validation(
            "allocation_strategy",
            "must be priority, nearest or highest_stock",
        )
        .into()
    })
}

fn checkout_request(r: &proto::CheckoutRequest) -> AppResult<CheckoutRequest> {
    let payment = match r.payment.clone().and_then(|p| p.source) {
        #[allow(deprecated)]
        Some(proto::payment_input::Source::Card(_)) => {
            return Err(crate::app::orders::raw_card_data_refused())
        }
        Some(proto::payment_input::Source::Token(t)) => PaymentInput::Token(t),
        Some(proto::payment_input::Source::Method(m)) => PaymentInput::Method(m),
        None => {
            return Err(
                DomainError::validation("payment", "give exactly one of token or method").into(),
            )
        }
    };
    CheckoutRequest {
        shipping_address: address(call::required(
            "shipping_address",
            r.shipping_address.clone(),
        )?)?,
        strategy: strategy(r.allocation_strategy)?,
        hold_ttl_secs: r.hold_ttl_secs,
        payment,
        coupon: r.coupon.clone(),
    }
    .refuse_card_data()
}

const STATUS_VALUES: &str =
    "status must be draft, confirmed, paid, shipped, delivered or cancelled";

fn list_query(r: &proto::ListOrdersRequest) -> AppResult<OrderQuery> {
    let status = match proto::OrderStatus::try_from(r.status) {
        Ok(proto::OrderStatus::Unspecified) => None,
        Ok(s) => Some(
            OrderStatus::parse(&enum_name(s.as_str_name(), "ORDER_STATUS_"))
                .ok_or_else(|| AppError::new(ErrorCode::InvalidQuery, STATUS_VALUES))?,
        ),
        Err(_) => return Err(AppError::new(ErrorCode::InvalidQuery, STATUS_VALUES)),
    };
    let after = r
        .after
        .as_deref()
        .map(|a| {
            a.parse()
                .map_err(|_| AppError::new(ErrorCode::InvalidQuery, "after must be an order id"))
        })
        .transpose()?;
    Ok(OrderQuery {
        status,
        from_ms: r.from_ms,
        to_ms: r.to_ms,
        customer_id: r.customer_id.clone(),
        after,
        limit: r
            .limit
            .map_or(20, |l| usize::try_from(l).unwrap_or(usize::MAX)),
        consistency: call::consistency(r.consistency),
    })
}

fn order(o: Order) -> proto::Order {
    let status = |s: &str| enum_value(s, "ORDER_STATUS_", proto::OrderStatus::from_str_name);
    proto::Order {
        id: o.id.to_string(),
        customer_id: o.customer_id,
        status: status(o.status.as_str()),
        lines: o
            .lines
            .into_iter()
            .map(|l| proto::OrderLine {
                sku: l.sku,
                name: l.name,
                vendor_id: l.vendor_id,
                quantity: l.quantity,
                unit_price: Some(money(l.unit_price)),
                line_total: Some(money(l.line_total)),
            })
            .collect(),
        totals: Some(proto::Totals {
            subtotal: Some(money(o.totals.subtotal)),
            shipping: Some(money(o.totals.shipping)),
            discount: Some(money(o.totals.discount)),
            tax: Some(money(o.totals.tax)),
            total: Some(money(o.totals.total)),
        }),
        shipping_address: Some(proto::Address {
            name: o.shipping_address.name,
            line1: o.shipping_address.line1,
            line2: o.shipping_address.line2,
            city: o.shipping_address.city,
            postal_code: o.shipping_address.postal_code,
            country: o.shipping_address.country,
            location: o.shipping_address.location.map(|l| proto::Location {
                lat: l.lat,
                lon: l.lon,
            }),
        }),
        allocations: o
            .allocations
            .into_iter()
            .map(|a| proto::Allocation {
                sku: a.sku.as_str().to_string(),
                warehouse_id: a.warehouse_id.as_str().to_string(),
                quantity: a.quantity,
            })
            .collect(),
        hold: Some(proto::Hold {
            state: enum_value(
                o.hold.name(),
                "HOLD_STATE_",
                proto::HoldState::from_str_name,
            ),
            expires_at_ms: o.hold.expires_at_ms(),
        }),
        payment: Some(proto::Payment {
            status: enum_value(
                o.payment.status.name(),
                "PAYMENT_STATUS_",
                proto::PaymentStatus::from_str_name,
            ),
            authorization: o.payment.status.authorization().map(str::to_string),
            reason: o.payment.status.reason(),
            provider: o.payment.method.provider,
            method: o.payment.method.display,
            amount: Some(money(o.payment.amount)),
        }),
        fulfilment: o.fulfilment.map(|f| proto::Fulfilment {
            carrier: f.carrier,
            tracking_number: f.tracking_number,
            shipped_at_ms: f.shipped_at_ms,
            delivered_at_ms: f.delivered_at_ms,
        }),
        timeline: o
            .timeline
            .into_iter()
            .map(|t| proto::Transition {
                at_ms: t.at_ms,
                by: t.by,
                from: t.from.map_or(0, |s| status(s.as_str())),
                to: status(t.to.as_str()),
                reason: t.reason,
            })
            .collect(),
        created_ms: o.created_ms,
        updated_ms: o.updated_ms,
        version: o.version,
    }
}

impl Commerce {
    /// Runs an order write for the signed-in caller: `request` is the
    /// application request the message stands for and, with the REST
    /// `route` it mirrors, the idempotency fingerprint.
    async fn order_write<T, R, F>(
        &self,
        message: &Request<T>,
        route: (&str, &str),
        request: AppResult<R>,
        run: impl FnOnce(
            ecommerce_domains::Actor,
            R,
            Option<ecommerce_domains::idempotency::IdempotencyTag>,
        ) -> F,
    ) -> AppResult<Rendered<proto::Order>>
    where
        R: serde::Serialize,
        F: std::future::Future<Output = AppResult<Rendered<Order>>>,
    {
        let actor = call::signed_in_caller(message)?;
        let request = request?;
        let (method, path) = route;
        let tag = call::tag(message, &Principal::from(&actor), method, path, &request)?;
        Ok(run(actor, request, tag).await?.map(order))
    }
}

#[tonic::async_trait]
impl proto::order_service_server::OrderService for Commerce {
    async fn checkout(
        &self,
        request: Request<proto::CheckoutRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let checkout = checkout_request(request.get_ref());
        let app = &self.state;
        call::write(self.order_write(
            &request,
            ("POST", "/api/v1/checkout"),
            checkout,
            |actor, r, tag| async move { app.checkout(&actor, r, tag).await },
        ))
        .await
    }

    async fn list_orders(
        &self,
        request: Request<proto::ListOrdersRequest>,
    ) -> Result<Response<proto::OrderPage>, Status> {
        call::read(async {
            let actor = call::signed_in_caller(&request)?;
            let query = list_query(request.get_ref())?;
            let (orders, next) = self.state.list_orders(&actor, &query).await?;
            Ok(proto::OrderPage {
                items: orders.into_iter().map(order).collect(),
                next_after: next.map(|id| id.to_string()),
            })
        })
        .await
    }

    async fn get_order(
        &self,
        request: Request<proto::GetOrderRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        call::read(async {
            let actor = call::signed_in_caller(&request)?;
            let r = request.get_ref();
            let consistency = call::consistency(r.consistency);
            let id = order_id(&r.id)?;
            Ok(order(self.state.find_order(&actor, id, consistency).await?))
        })
        .await
    }

    async fn cancel_order(
        &self,
        request: Request<proto::CancelOrderRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let r = request.get_ref();
        let path = order_path(&r.id, "cancel");
        let cancel = Ok(CancelRequest {
            reason: r.reason.clone(),
        });
        let app = &self.state;
        call::write(self.order_write(&request, ("POST", &path), cancel, |actor, c, tag| async move {
            app.cancel_order(&actor, order_id(&r.id)?, &c, tag).await
        }))
        .await
    }

    async fn extend_hold(
        &self,
        request: Request<proto::ExtendHoldRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let r = request.get_ref();
        let path = order_path(&r.id, "extend-hold");
        let extend = Ok(ExtendHoldRequest {
            ttl_secs: r.ttl_secs,
        });
        let app = &self.state;
        call::write(self.order_write(
            &request,
            ("POST", &path),
            extend,
            |actor, e, tag| async move { app.extend_hold(&actor, order_id(&r.id)?, &e, tag).await },
        ))
        .await
    }

    async fn ship_order(
        &self,
        request: Request<proto::ShipOrderRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let r = request.get_ref();
        let path = order_path(&r.id, "ship");
        let ship = Ok(ShipRequest {
            carrier: r.carrier.clone(),
            tracking_number: r.tracking_number.clone(),
        });
        let app = &self.state;
        call::write(self.order_write(
            &request,
            ("POST", &path),
            ship,
            |actor, s, tag| async move { app.ship_order(&actor, order_id(&r.id)?, &s, tag).await },
        ))
        .await
    }

    async fn deliver_order(
        &self,
        request: Request<proto::DeliverOrderRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let id = &request.get_ref().id;
        let path = order_path(id, "deliver");
        let app = &self.state;
        call::write(self.order_write(
            &request,
            ("POST", &path),
            Ok(()),
            |actor, (), tag| async move { app.deliver_order(&actor, order_id(id)?, tag).await },
        ))
        .await
    }
}
