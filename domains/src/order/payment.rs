//! A payment provider's answer, applied: the payment status moves, and a
//! declined authorization cancels the order (compensation).

use super::*;

pub(super) fn payment_result(
    store: &mut dyn StoreMut,
    ctx: &ApplyContext,
    order_id: OrderId,
    op: PaymentOp,
    result: &PaymentResult,
) -> Result<Response, ApplyError> {
    let task_key = [KeyPart::U64(order_id), KeyPart::Str(op.as_str())];
    let Some(mut order) = get(store, order_id)? else {
        return Err(DomainError::OrderNotFound(order_id).into());
    };
    if store.get_raw(PAYMENT_TASKS, &task_key)?.is_none() {
        // Already settled (a duplicate result): nothing changes.
        return Ok(Response::Order(Box::new(order)));
    }
    store.delete_raw(PAYMENT_TASKS, &task_key);
    match (op, result) {
        (PaymentOp::Authorize, PaymentResult::Succeeded { reference }) => {
            order.payment.status = PaymentStatus::Authorized {
                authorization: reference.clone(),
            };
            if order.status == OrderStatus::Confirmed {
                if let Hold::Held { expires_at_ms } = order.hold {
                    unschedule_expiry(store, expires_at_ms, order.id);
                }
                order.hold = Hold::Committed;
                transition(
                    &mut order,
                    OrderStatus::Paid,
                    None,
                    "payment authorized",
                    ctx,
                    store,
                );
            } else {
                // The order was cancelled (or its hold expired) meanwhile.
                enqueue(store, &order, PaymentOp::Void, Some(reference.clone()), ctx)?;
            }
        }
        (
            PaymentOp::Authorize,
            PaymentResult::Declined { reason } | PaymentResult::Failed { reason },
        ) => {
            let declined = matches!(result, PaymentResult::Declined { .. });
            order.payment.status = if declined {
                PaymentStatus::Declined {
                    reason: reason.clone(),
                }
            } else {
                PaymentStatus::Failed {
                    reason: reason.clone(),
                }
            };
            if order.status == OrderStatus::Confirmed {
                let why = format!(
                    "payment {}: {reason}",
                    if declined { "declined" } else { "failed" }
                );
                return cancel(store, ctx, &mut order, None, &why);
            }
        }
        (PaymentOp::Capture, PaymentResult::Succeeded { reference }) => {
            if let PaymentStatus::Authorized { authorization } = &order.payment.status {
                order.payment.status = PaymentStatus::Captured {
                    authorization: authorization.clone(),
                    capture: reference.clone(),
                };
            }
        }
        (PaymentOp::Void, PaymentResult::Succeeded { .. }) => {
            order.payment.status = PaymentStatus::Voided;
        }
        (PaymentOp::Refund, PaymentResult::Succeeded { reference }) => {
            order.payment.status = PaymentStatus::Refunded {
                refund: reference.clone(),
            };
        }
        (op, PaymentResult::Declined { reason } | PaymentResult::Failed { reason }) => {
            order.payment.status = PaymentStatus::ActionFailed {
                operation: op,
                reason: reason.clone(),
            };
        }
    }
    store.emit(Event::PaymentUpdated {
        order_id: order.id,
        status: order.payment.status.clone(),
    });
    save(store, &mut order, ctx)?;
    Ok(Response::Order(Box::new(order)))
}

// ---- queries ----
