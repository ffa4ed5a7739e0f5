//! `InventoryService` and `ListingService`: stock of a SKU, low-stock
//! thresholds, and listings over gRPC, through the REST layer's own
//! constructors and reads.

use tonic::{Request, Response, Status};

use super::{call, money, proto, Commerce};
use crate::api::inventory::{
    find_stock, low_stock_page, threshold_reply, ListParams, LowStockDto, SkuStockDto,
    StockLevelDto, ThresholdBody, ThresholdDto,
};
use crate::api::listings::{find_listing, listing_reply, ListingBody, ListingDto, MoneyDto};
use ecommerce_domains::idempotency::Principal;
use ecommerce_domains::listing::Listing;
use ecommerce_domains::Command;

fn listing(l: Listing) -> proto::Listing {
    let dto = ListingDto::from(l);
    proto::Listing {
        sku: dto.sku,
        name: dto.name,
        price: Some(money(dto.price)),
        vendor_id: dto.vendor_id,
        active: dto.active,
        version: dto.version,
    }
}

fn stock_level(v: StockLevelDto) -> proto::StockLevel {
    proto::StockLevel {
        sku: v.sku,
        warehouse_id: v.warehouse_id,
        on_hand: v.on_hand,
        reserved: v.reserved,
        available: v.available,
        version: v.version,
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
            let stock = SkuStockDto::from(find_stock(&self.state, &r.sku, consistency).await?);
            Ok(proto::SkuStock {
                sku: stock.sku,
                on_hand: stock.on_hand,
                reserved: stock.reserved,
                available: stock.available,
                warehouses: stock.warehouses.into_iter().map(stock_level).collect(),
            })
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
            let body = ThresholdBody {
                threshold: r.threshold,
                warehouse_id: r.warehouse_id.clone(),
            };
            let path = format!("/api/v1/inventory/{}/threshold", r.sku);
            let tag = call::tag(&request, &Principal::from(&admin), "PUT", &path, &body)?;
            let command = Command::Inventory(body.command(&r.sku)?);
            let committed = self.state.propose(command, tag).await?;
            Ok(committed.render(threshold_reply).map(|t| {
                let t = ThresholdDto::from(t);
                proto::Threshold {
                    sku: t.sku,
                    warehouse_id: t.warehouse_id,
                    threshold: t.threshold,
                    version: t.version,
                }
            }))
        })
        .await
    }

    async fn list_low_stock(
        &self,
        request: Request<proto::ListLowStockRequest>,
    ) -> Result<Response<proto::LowStockPage>, Status> {
        call::read(async {
            call::admin_caller(&request)?;
            let r = request.get_ref();
            let params = ListParams {
                after: r.after.clone(),
                limit: r.limit.map(|l| l as usize),
                consistency: Some(call::consistency(r.consistency)),
            };
            let (items, next_after) = low_stock_page(&self.state, &params).await?;
            Ok(proto::LowStockPage {
                items: items
                    .into_iter()
                    .map(|l| {
                        let l = LowStockDto::from(l);
                        proto::LowStock {
                            sku: l.sku,
                            warehouse_id: l.warehouse_id,
                            threshold: l.threshold,
                            available: l.available,
                            since_ms: l.since_ms,
                        }
                    })
                    .collect(),
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
            Ok(listing(
                find_listing(&self.state, &r.sku, consistency).await?,
            ))
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
            let body = ListingBody {
                name: r.name.clone(),
                price: MoneyDto {
                    amount: price.amount,
                    currency: price.currency,
                },
                vendor_id: r.vendor_id.clone(),
                active: r.active,
            };
            let path = format!("/api/v1/listings/{}", r.sku);
            let tag = call::tag(&request, &Principal::from(&actor), "PUT", &path, &body)?;
            let command = Command::Listing(body.command(actor, &r.sku)?);
            let committed = self.state.propose(command, tag).await?;
            Ok(committed.render(listing_reply).map(listing))
        })
        .await
    }
}
