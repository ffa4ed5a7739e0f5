//! `InventoryService` and `ListingService`: stock of a SKU, low-stock
//! thresholds, and listings over gRPC. Messages become the application
//! layer's requests (`app::inventory`); answers are built from the domain's
//! types.

use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::inventory::{LowStock, SkuStock, StockLevelView, Threshold};
use ecommerce_domains::listing::Listing;
use tonic::{Request, Response, Status};

use super::{call, money, proto, Commerce};
use crate::app::inventory::{ListingRequest, PageQuery, ThresholdRequest};
use crate::app::MoneyInput;

fn listing(l: Listing) -> proto::Listing {
    proto::Listing {
        sku: l.sku.as_str().to_string(),
        name: l.name,
        price: Some(money(l.price)),
        vendor_id: l.vendor_id,
        active: l.active,
        version: l.version,
    }
}

fn stock_level(v: StockLevelView) -> proto::StockLevel {
    proto::StockLevel {
        sku: v.sku,
        warehouse_id: v.warehouse_id,
        on_hand: v.on_hand,
        reserved: v.reserved,
        available: v.available,
        version: v.version,
    }
}

fn sku_stock(s: SkuStock) -> proto::SkuStock {
    proto::SkuStock {
        sku: s.sku,
        on_hand: s.on_hand,
        reserved: s.reserved,
        available: s.available,
        warehouses: s.warehouses.into_iter().map(stock_level).collect(),
    }
}

fn threshold(t: Threshold) -> proto::Threshold {
    proto::Threshold {
        sku: t.sku.as_str().to_string(),
        warehouse_id: t.warehouse_id.map(|w| w.as_str().to_string()),
        threshold: t.threshold,
        version: t.version,
    }
}

fn low_stock(l: LowStock) -> proto::LowStock {
    proto::LowStock {
        sku: l.sku.as_str().to_string(),
        warehouse_id: l.warehouse_id.map(|w| w.as_str().to_string()),
        threshold: l.threshold,
        available: l.available,
        since_ms: l.since_ms,
    }
}

#[tonic::async_trait]
impl proto::inventory_service_server::InventoryService for Commerce {
    async fn get_stock(
        &self,
        request: Request<proto::GetStockRequest>,
    ) -> Result<Response<proto::SkuStock>, Status> {
        call::read(async {
            let r = request.get_ref();
            let consistency = call::consistency(r.consistency);
            Ok(sku_stock(self.state.sku_stock(&r.sku, consistency).await?))
        })
        .await
    }

    async fn set_threshold(
        &self,
        request: Request<proto::SetThresholdRequest>,
    ) -> Result<Response<proto::Threshold>, Status> {
        call::write(async {
            let admin = call::admin_caller(&request)?;
            let r = request.get_ref();
            let set = ThresholdRequest {
                threshold: r.threshold,
                warehouse_id: r.warehouse_id.clone(),
            };
            let path = format!("/api/v1/inventory/{}/threshold", r.sku);
            let tag = call::tag(&request, &Principal::from(&admin), "PUT", &path, &set)?;
            let rendered = self.state.set_threshold(&admin, &r.sku, &set, tag).await?;
            Ok(rendered.map(threshold))
        })
        .await
    }

    async fn list_low_stock(
        &self,
        request: Request<proto::ListLowStockRequest>,
    ) -> Result<Response<proto::LowStockPage>, Status> {
        call::read(async {
            let admin = call::admin_caller(&request)?;
            let r = request.get_ref();
            let query = PageQuery {
                after: r.after.clone(),
                limit: r.limit.map(|l| l as usize),
                consistency: call::consistency(r.consistency),
            };
            let (items, next_after) = self.state.low_stock(&admin, &query).await?;
            Ok(proto::LowStockPage {
                items: items.into_iter().map(low_stock).collect(),
                next_after,
            })
        })
        .await
    }
}

#[tonic::async_trait]
impl proto::listing_service_server::ListingService for Commerce {
    async fn get_listing(
        &self,
        request: Request<proto::GetListingRequest>,
    ) -> Result<Response<proto::Listing>, Status> {
        call::read(async {
            let r = request.get_ref();
            let consistency = call::consistency(r.consistency);
            Ok(listing(self.state.listing(&r.sku, consistency).await?))
        })
        .await
    }

    async fn put_listing(
        &self,
        request: Request<proto::PutListingRequest>,
    ) -> Result<Response<proto::Listing>, Status> {
        call::write(async {
            let actor = call::signed_in_caller(&request)?;
            let r = request.get_ref();
            let price = call::required("price", r.price.clone())?;
            let put = ListingRequest {
                name: r.name.clone(),
                price: MoneyInput {
                    amount: price.amount,
                    currency: price.currency,
                },
                vendor_id: r.vendor_id.clone(),
                active: r.active,
            };
            let path = format!("/api/v1/listings/{}", r.sku);
            let tag = call::tag(&request, &Principal::from(&actor), "PUT", &path, &put)?;
            let rendered = self.state.put_listing(&actor, &r.sku, &put, tag).await?;
            Ok(rendered.map(listing))
        })
        .await
    }
}
