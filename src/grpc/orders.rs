//! `OrderService`: checkout and the order workflow over gRPC. Requests become
//! the REST bodies and go through their constructors (so every rule is the
//! REST one); orders are answered as the REST view ([`OrderDto`]) in message form.

use tonic::{Request, Response, Status};

use super::{call, enum_name, enum_value, location, money, proto, Commerce};
use crate::api::orders::{
    deliver_command, find_order, list_visible, propose_order, AddressDto, CancelBody, CardDto,
    CheckoutBody, ExtendHoldBody, OrderDto, OrderListParams, PaymentBody, ShipBody,
};
use crate::api::Rendered;
use crate::app::AppResult;
use ecommerce_domains::idempotency::{IdempotencyTag, Principal};
use ecommerce_domains::order::{Order, OrderCommand};
use ecommerce_domains::Actor;

/// The REST path of order `id`'s workflow route `action`.
fn order_path(id: &str, action: &str) -> String {
    format!("/api/v1/orders/{id}/{action}")
}

fn address_body(a: proto::Address) -> AddressDto {
    AddressDto {
        name: a.name,
        line1: a.line1,
        line2: a.line2,
        city: a.city,
        postal_code: a.postal_code,
        country: a.country,
        location: a.location.map(|l| crate::api::inventory::LocationDto {
            lat: l.lat,
            lon: l.lon,
        }),
    }
}

fn checkout_body(r: &proto::CheckoutRequest) -> AppResult<CheckoutBody> {
    let address = call::required("shipping_address", r.shipping_address.clone())?;
    let (card, method) = match r.payment.clone().and_then(|p| p.source) {
        Some(proto::payment_input::Source::Card(c)) => (
            Some(CardDto {
                number: c.number,
                exp_month: c.exp_month,
                exp_year: c.exp_year,
                cvc: c.cvc,
            }),
            None,
        ),
        Some(proto::payment_input::Source::Method(m)) => (None, Some(m)),
        None => (None, None),
    };
    Ok(CheckoutBody {
        shipping_address: address_body(address),
        payment: PaymentBody { card, method },
        // Unspecified: the default; an unknown value fails like an unknown name.
        allocation_strategy: match proto::AllocationStrategy::try_from(r.allocation_strategy) {
            Ok(proto::AllocationStrategy::Unspecified) => None,
            Ok(s) => Some(enum_name(s.as_str_name(), "ALLOCATION_STRATEGY_")),
            Err(_) => Some(r.allocation_strategy.to_string()),
        },
        hold_ttl_secs: r.hold_ttl_secs,
        coupon: r.coupon.clone(),
    })
}

fn order_message(o: OrderDto) -> proto::Order {
    let status = |s: &str| enum_value(s, "ORDER_STATUS_", proto::OrderStatus::from_str_name);
    proto::Order {
        id: o.id,
        customer_id: o.customer_id,
        status: status(o.status),
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
            location: o.shipping_address.location.map(location),
        }),
        allocations: o
            .allocations
            .into_iter()
            .map(|a| proto::Allocation {
                sku: a.sku,
                warehouse_id: a.warehouse_id,
                quantity: a.quantity,
            })
            .collect(),
        hold: Some(proto::Hold {
            state: enum_value(o.hold.state, "HOLD_STATE_", proto::HoldState::from_str_name),
            expires_at_ms: o.hold.expires_at_ms,
        }),
        payment: Some(proto::Payment {
            provider: o.payment.provider,
            method: o.payment.method,
            amount: Some(money(o.payment.amount)),
            status: enum_value(
                o.payment.status,
                "PAYMENT_STATUS_",
                proto::PaymentStatus::from_str_name,
            ),
            authorization: o.payment.authorization,
            reason: o.payment.reason,
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
                from: t.from.map_or(0, status),
                to: status(t.to),
                reason: t.reason,
            })
            .collect(),
        created_ms: o.created_ms,
        updated_ms: o.updated_ms,
        version: o.version,
    }
}

fn order(o: Order) -> proto::Order {
    order_message(o.into())
}

impl Commerce {
    /// Proposes an order command for the signed-in caller: `body` makes the
    /// REST body of the message, `command` the command from it; `route` is
    /// the REST method and path the RPC stands for, and with the body the
    /// request's idempotency fingerprint.
    async fn order_write<T, B: serde::Serialize>(
        &self,
        request: &Request<T>,
        route: (&str, &str),
        body: impl FnOnce(&T) -> AppResult<B>,
        command: impl FnOnce(&Actor, &B) -> AppResult<OrderCommand>,
    ) -> AppResult<Rendered<proto::Order>> {
        let actor = call::signed_in_caller(request)?;
        let body = body(request.get_ref())?;
        let (method, path) = route;
        let principal = Principal::from(&actor);
        let tag: Option<IdempotencyTag> = call::tag(request, &principal, method, path, &body)?;
        let command = command(&actor, &body)?;
        Ok(propose_order(&self.state, &actor, command, tag)
            .await?
            .map(order))
    }
}

#[tonic::async_trait]
impl proto::order_service_server::OrderService for Commerce {
    async fn checkout(
        &self,
        request: Request<proto::CheckoutRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let settings = &self.state.settings.commerce;
        let route = ("POST", "/api/v1/checkout");
        call::write(
            self.order_write(&request, route, checkout_body, |actor, body| {
                body.command(settings, actor)
            }),
        )
        .await
    }

    async fn list_orders(
        &self,
        request: Request<proto::ListOrdersRequest>,
    ) -> Result<Response<proto::OrderPage>, Status> {
        call::read(async {
            let actor = call::signed_in_caller(&request)?;
            let r = request.get_ref();
            let params = OrderListParams {
                status: match proto::OrderStatus::try_from(r.status) {
                    Ok(proto::OrderStatus::Unspecified) => None,
                    Ok(s) => Some(enum_name(s.as_str_name(), "ORDER_STATUS_")),
                    Err(_) => Some(r.status.to_string()),
                },
                from_ms: r.from_ms,
                to_ms: r.to_ms,
                customer_id: r.customer_id.clone(),
                after: r.after.clone(),
                limit: r.limit.map(|l| l as usize),
                consistency: Some(call::consistency(r.consistency)),
            };
            let (orders, next) = list_visible(&self.state, &actor, &params).await?;
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
            Ok(order(
                find_order(&self.state, &actor, &r.id, consistency).await?,
            ))
        })
        .await
    }

    async fn cancel_order(
        &self,
        request: Request<proto::CancelOrderRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let r = request.get_ref();
        let path = order_path(&r.id, "cancel");
        let body = |r: &proto::CancelOrderRequest| {
            Ok(CancelBody {
                reason: r.reason.clone(),
            })
        };
        call::write(
            self.order_write(&request, ("POST", &path), body, |actor, body| {
                body.command(actor, &r.id)
            }),
        )
        .await
    }

    async fn extend_hold(
        &self,
        request: Request<proto::ExtendHoldRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let settings = &self.state.settings.commerce;
        let r = request.get_ref();
        let path = order_path(&r.id, "extend-hold");
        let body = |r: &proto::ExtendHoldRequest| {
            Ok(ExtendHoldBody {
                ttl_secs: r.ttl_secs,
            })
        };
        call::write(
            self.order_write(&request, ("POST", &path), body, |actor, body| {
                body.command(settings, actor, &r.id)
            }),
        )
        .await
    }

    async fn ship_order(
        &self,
        request: Request<proto::ShipOrderRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let r = request.get_ref();
        let path = order_path(&r.id, "ship");
        let body = |r: &proto::ShipOrderRequest| {
            Ok(ShipBody {
                carrier: r.carrier.clone(),
                tracking_number: r.tracking_number.clone(),
            })
        };
        call::write(
            self.order_write(&request, ("POST", &path), body, |actor, body| {
                body.command(actor, &r.id)
            }),
        )
        .await
    }

    async fn deliver_order(
        &self,
        request: Request<proto::DeliverOrderRequest>,
    ) -> Result<Response<proto::Order>, Status> {
        let id = &request.get_ref().id;
        let path = order_path(id, "deliver");
        call::write(self.order_write(
            &request,
            ("POST", &path),
            |_| Ok(()),
            |actor, ()| deliver_command(actor, id),
        ))
        .await
    }
}
