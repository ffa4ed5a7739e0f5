//! `CartService`: the REST cart routes over gRPC. Each RPC reads the caller
//! or guest cart from the metadata, builds its command with the REST body's
//! own constructor, and answers the REST view ([`CartDto`]) as a message.

use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::call;
use super::{money, proto, Commerce};
use crate::api::carts::{
    propose_change, read_cart, remove_line_command, AddLineBody, CartDto, MergeBody, SetLineBody,
    CART_TOKEN,
};
use crate::api::Rendered;
use crate::app::AppResult;
use ecommerce_domains::cart::{CartCommand, PricedCart};
use ecommerce_domains::idempotency::{IdempotencyTag, Principal};

fn cart_message(dto: CartDto) -> proto::Cart {
    proto::Cart {
        lines: dto
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
        item_count: dto.item_count,
        subtotal: dto.subtotal.map(money),
        updated_ms: dto.updated_ms,
        version: dto.version,
        cart_token: dto.cart_token,
    }
}

fn priced(cart: PricedCart) -> proto::Cart {
    cart_message(cart.into())
}

impl Commerce {
    async fn change(
        &self,
        command: CartCommand,
        tag: Option<IdempotencyTag>,
    ) -> AppResult<Rendered<proto::Cart>> {
        Ok(propose_change(&self.state, command, tag).await?.map(priced))
    }
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
            let cart = call::cart(&request)?;
            let consistency = call::consistency(request.get_ref().consistency);
            let owner = cart.owner.as_ref();
            Ok(priced(read_cart(&self.state, owner, consistency).await?))
        })
        .await
    }

    async fn add_line(
        &self,
        request: Request<proto::AddLineRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        let mut token = None;
        let mut response = call::write(async {
            let cart = call::cart(&request)?;
            let r = request.get_ref();
            let body = AddLineBody {
                sku: r.sku.clone(),
                quantity: r.quantity,
            };
            let tag = call::tag(&request, &cart.principal(), "POST", LINES, &body)?;
            let (command, new_token) = body.command(cart, tag.is_some())?;
            token.clone_from(&new_token);
            Ok(self.change(command, tag).await?.map(|cart| proto::Cart {
                cart_token: new_token,
                ..cart
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
            let cart = call::cart(&request)?;
            let r = request.get_ref();
            let body = SetLineBody {
                quantity: r.quantity,
            };
            let path = format!("{LINES}/{}", r.sku);
            let tag = call::tag(&request, &cart.principal(), "PUT", &path, &body)?;
            self.change(body.command(cart, &r.sku)?, tag).await
        })
        .await
    }

    async fn remove_line(
        &self,
        request: Request<proto::RemoveLineRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        call::write(async {
            let cart = call::cart(&request)?;
            let sku = &request.get_ref().sku;
            let path = format!("{LINES}/{sku}");
            let tag = call::tag(&request, &cart.principal(), "DELETE", &path, &())?;
            let command = remove_line_command(cart, sku)?;
            self.change(command, tag).await
        })
        .await
    }

    async fn clear(
        &self,
        request: Request<proto::ClearCartRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        call::write(async {
            let cart = call::cart(&request)?;
            let tag = call::tag(&request, &cart.principal(), "DELETE", CART, &())?;
            let command = CartCommand::Clear {
                owner: cart.existing()?,
            };
            self.change(command, tag).await
        })
        .await
    }

    async fn merge(
        &self,
        request: Request<proto::MergeCartRequest>,
    ) -> Result<Response<proto::Cart>, Status> {
        call::write(async {
            let actor = call::signed_in_caller(&request)?;
            let body = MergeBody {
                cart_token: request.get_ref().cart_token.clone(),
            };
            let path = format!("{CART}/merge");
            let tag = call::tag(&request, &Principal::from(&actor), "POST", &path, &body)?;
            self.change(body.command(actor)?, tag).await
        })
        .await
    }
}
