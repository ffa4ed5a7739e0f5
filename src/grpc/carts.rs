//! `CartService`: the cart use cases (`app::carts`) over gRPC. Each RPC
//! reads the caller or guest cart from the metadata (`call::cart`), builds
//! the application request, and answers the domain's [`PricedCart`] as a
//! message.

use ecommerce_domains::cart::PricedCart;
use ecommerce_domains::idempotency::Principal;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::{call, money, proto, Commerce};
use crate::app::carts::{AddLineRequest, MergeRequest, SetLineRequest, CART_TOKEN};

/// A cart as a message; `cart_token` is set once, when a guest cart is created.
fn cart_message(c: PricedCart, cart_token: Option<String>) -> proto::Cart {
    proto::Cart {
        lines: c
            .lines
            .into_iter()
            .map(|l| proto::CartLine {
                sku: l.sku,
                name: l.name,
                quantity: l.quantity,
                unit_price: l.unit_price.map(money),
                line_total: l.line_total.map(money),
                available: l.available,
            })
            .collect(),
        item_count: c.item_count,
        subtotal: c.subtotal.map(money),
        updated_ms: c.updated_ms,
        version: c.version,
        cart_token,
    }
}

fn priced(c: PricedCart) -> proto::Cart {
    cart_message(c, None)
}

/// The REST routes the RPCs stand for (their idempotency fingerprints).
const CART: &str = "/api/v1/cart";
const LINES: &str = "/api/v1/cart/lines";

#[tonic::async_trait]
impl proto::cart_service_server::CartService for Commerce {
    async fn get_cart(
        &self,
        request: Request<proto::GetCartRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        call::read(async {
            let cart = call::cart(&request, &self.state)?;
            let consistency = call::consistency(request.get_ref().consistency);
            Ok(priced(self.state.cart(&cart, consistency).await?))
        })
        .await
    }

    async fn add_line(
        &self,
        request: Request<proto::AddLineRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        let mut token = None;
        let mut response = call::write(async {
            let cart = call::cart(&request, &self.state)?;
            let r = request.get_ref();
            let add = AddLineRequest {
                sku: r.sku.clone(),
                quantity: r.quantity,
            };
            let tag = call::tag(&request, &cart.principal(), "POST", LINES, &add)?;
            let rendered = self.state.add_line(cart, &add, tag).await?;
            Ok(rendered.map(|added| {
                token.clone_from(&added.new_token);
                cart_message(added.cart, added.new_token)
            }))
        })
        .await?;
        if let Some(value) = token.and_then(|t| MetadataValue::try_from(t).ok()) {
            response.metadata_mut().insert(CART_TOKEN, value);
        }
        Ok(response)
    }

    async fn set_line(
        &self,
        request: Request<proto::SetLineRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        call::write(async {
            let cart = call::cart(&request, &self.state)?;
            let r = request.get_ref();
            let set = SetLineRequest {
                quantity: r.quantity,
            };
            let path = format!("{LINES}/{}", r.sku);
            let tag = call::tag(&request, &cart.principal(), "PUT", &path, &set)?;
            let rendered = self.state.set_line(cart, &r.sku, &set, tag).await?;
            Ok(rendered.map(priced))
        })
        .await
    }

    async fn remove_line(
        &self,
        request: Request<proto::RemoveLineRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        call::write(async {
            let cart = call::cart(&request, &self.state)?;
            let sku = &request.get_ref().sku;
            let path = format!("{LINES}/{sku}");
            let tag = call::tag(&request, &cart.principal(), "DELETE", &path, &())?;
            let rendered = self.state.remove_line(cart, sku, tag).await?;
            Ok(rendered.map(priced))
        })
        .await
    }

    async fn clear(
        &self,
        request: Request<proto::ClearCartRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        call::write(async {
            let cart = call::cart(&request, &self.state)?;
            let tag = call::tag(&request, &cart.principal(), "DELETE", CART, &())?;
            Ok(self.state.clear_cart(cart, tag).await?.map(priced))
        })
        .await
    }

    async fn merge(
        &self,
        request: Request<proto::MergeCartRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        call::write(async {
            let actor = call::signed_in_caller(&request)?;
            let merge = MergeRequest {
                cart_token: request.get_ref().cart_token.clone(),
            };
            let path = format!("{CART}/merge");
            let tag = call::tag(&request, &Principal::from(&actor), "POST", &path, &merge)?;
            let rendered = self.state.merge_carts(&actor, &merge, tag).await?;
            Ok(rendered.map(priced))
        })
        .await
    }
}
