//! Checkout: the cart priced, stock allocated and held, the coupon redeemed
//! and the order created, in one command.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn checkout(
    store: &mut dyn StoreMut,
    ctx: &ApplyContext,
    actor: &Actor,
    cart_owner: &CartOwner,
    address: &Address,
    strategy: Strategy,
    hold_ttl_ms: u64,
    payment_method: &PaymentMethod,
    coupon: Option<&String>,
) -> Result<Response, ApplyError> {
    let cart = match cart::get(store, cart_owner)? {
        Some(c) if !c.lines.is_empty() => c,
        _ => return Err(DomainError::CartEmpty.into()),
    };
    // Price every line (listing, sale, tier and promotions at the command's
    // time): the order keeps this snapshot.
    let promotions = pricing::promotions(store)?;
    let mut lines = Vec::with_capacity(cart.lines.len());
    let mut subtotal: Option<Money> = None;
    for line in &cart.lines {
        let listing = cart::sellable(store, &line.sku)?;
        // A price the listing rules refuse (stored before they were checked
        // in apply) is not sold.
        listing.price.check("price")?;
        let context = pricing::LineContext::load(store, listing.clone())?;
        let Some(priced) = pricing::price_line(&context, line.quantity, ctx.now_ms, &promotions)
        else {
            return Err(DomainError::validation("quantity", "the line total is too large").into());
        };
        let line_total = priced.line_total.clone();
        subtotal = match subtotal {
            None => Some(line_total.clone()),
            Some(s) => match s.plus(&line_total) {
                Some(s) => Some(s),
                None if s.currency != line_total.currency => {
                    return Err(DomainError::CurrencyMismatch {
                        cart: s.currency.as_str().to_string(),
                        sku: line_total.currency.as_str().to_string(),
                    }
                    .into())
                }
                None => {
                    return Err(
                        DomainError::validation("quantity", "the order total is too large").into(),
                    )
                }
            },
        };
        lines.push(OrderLine {
            sku: line.sku.as_str().to_string(),
            name: listing.name,
            vendor_id: listing.vendor_id,
            quantity: line.quantity,
            list_price: priced.list_price,
            unit_price: priced.unit_price,
            discount: priced.discount,
            line_total,
            explanation: priced.explanation,
        });
    }
    let Some(subtotal) = subtotal else {
        return Err(DomainError::CartEmpty.into());
    };
    let (discount, redeemed) = match coupon {
        None => (Money::zero(subtotal.currency.clone()), None),
        Some(code) => {
            let Some(found) = pricing::get_coupon(store, code)? else {
                return Err(DomainError::CouponNotFound(code.clone()).into());
            };
            let uses = pricing::customer_uses(store, code, &actor.user_id)?;
            let discount = pricing::coupon_discount(&found, &subtotal, ctx.now_ms, uses)?;
            (discount, Some(found))
        }
    };
    // 0 <= discount <= subtotal (`coupon_discount`), so this never fails.
    let Some(amount) = subtotal.amount.checked_sub(discount.amount) else {
        return Err(DomainError::validation("coupon", "the discount is out of range").into());
    };
    let total = Money {
        amount,
        currency: subtotal.currency.clone(),
    };
    // Allocate across warehouses; report every line that falls short.
    let mut wanted = Vec::with_capacity(cart.lines.len());
    for line in &cart.lines {
        wanted.push((
            line.sku.clone(),
            line.quantity,
            inventory::candidates(store, &line.sku)?,
        ));
    }
    let allocations = match allocation::allocate(&wanted, strategy, address.location) {
        Ok(a) => a,
        Err(shortages) => return Err(DomainError::OutOfStock(shortages).into()),
    };
    let id = ctx.version;
    if let Some(c) = &redeemed {
        pricing::redeem(store, c, &actor.user_id, ctx)?;
    }
    for a in &allocations {
        inventory::move_stock(store, a, 0, 1, &format!("reserved for order {id}"), ctx)?;
    }
    let expires_at_ms = ctx.now_ms.saturating_add(hold_ttl_ms);
    let zero = Money::zero(subtotal.currency.clone());
    let mut order = Order {
        id,
        customer_id: actor.user_id.clone(),
        status: OrderStatus::Draft,
        lines,
        totals: Totals {
            subtotal: subtotal.clone(),
            shipping: zero.clone(),
            discount,
            tax: zero,
            total: total.clone(),
        },
        coupon: redeemed.map(|c| c.code),
        shipping_address: address.clone(),
        allocations,
        hold: Hold::Held { expires_at_ms },
        payment: Payment {
            method: payment_method.clone(),
            amount: total,
            status: PaymentStatus::Pending,
        },
        fulfilment: None,
        timeline: vec![Transition {
            at_ms: ctx.now_ms,
            by: by(Some(actor)),
            from: None,
            to: OrderStatus::Draft,
            reason: "checkout".to_string(),
        }],
        created_ms: ctx.now_ms,
        updated_ms: ctx.now_ms,
        version: ctx.version,
    };
    store.emit(Event::OrderPlaced(Box::new(order.clone())));
    transition(
        &mut order,
        OrderStatus::Confirmed,
        Some(actor),
        "stock reserved",
        ctx,
        store,
    );
    schedule_expiry(store, expires_at_ms, id)?;
    store::put(
        store,
        BY_CUSTOMER,
        &[KeyPart::Str(&order.customer_id), newest_first(id)],
        &id,
    )?;
    store::put(store, BY_TIME, &[newest_first(id)], &id)?;
    for vendor in order.vendors() {
        store::put(
            store,
            BY_VENDOR,
            &[KeyPart::Str(&vendor), newest_first(id)],
            &id,
        )?;
    }
    enqueue(store, &order, PaymentOp::Authorize, None, ctx)?;
    cart::delete(store, &cart);
    save(store, &mut order, ctx)?;
    Ok(Response::Order(Box::new(order)))
}
