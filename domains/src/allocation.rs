//! Allocation: which warehouses a checkout's units come from.
//!
//! Pure and deterministic (ties broken by warehouse id; distances computed
//! with `libm`, which gives the same bits on every platform), so every replica
//! that applies the checkout chooses the same warehouses. One line may be
//! split across several warehouses when no single one has enough.

use serde::{Deserialize, Serialize};

use crate::inventory::{Location, Sku, WarehouseId};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Lowest warehouse priority number first.
    #[default]
    Priority,
    /// Closest warehouse to the shipping address first.
    Nearest,
    /// Warehouse with the most available units first (fewest splits).
    HighestStock,
}

impl Strategy {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "priority" => Some(Self::Priority),
            "nearest" => Some(Self::Nearest),
            "highest_stock" => Some(Self::HighestStock),
            _ => None,
        }
    }
}

/// A warehouse that stocks a SKU, with what it has available.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub warehouse_id: WarehouseId,
    pub priority: i32,
    pub location: Location,
    pub available: u64,
}

/// Units of one SKU taken from one warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub sku: Sku,
    pub warehouse_id: WarehouseId,
    pub quantity: u64,
}

/// A line that cannot be filled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shortage {
    pub sku: String,
    pub requested: u64,
    pub available: u64,
}

/// Great-circle distance in kilometres (haversine).
pub fn distance_km(a: Location, b: Location) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = libm::pow(libm::sin(dlat / 2.0), 2.0)
        + libm::cos(lat1) * libm::cos(lat2) * libm::pow(libm::sin(dlon / 2.0), 2.0);
    2.0 * EARTH_RADIUS_KM * libm::asin(libm::sqrt(h.clamp(0.0, 1.0)))
}

/// Orders candidates by preference under `strategy`.
fn rank(candidates: &mut [Candidate], strategy: Strategy, destination: Option<Location>) {
    match (strategy, destination) {
        (Strategy::Nearest, Some(to)) => candidates.sort_by(|a, b| {
            distance_km(a.location, to)
                .total_cmp(&distance_km(b.location, to))
                .then_with(|| a.warehouse_id.cmp(&b.warehouse_id))
        }),
        (Strategy::HighestStock, _) => candidates.sort_by(|a, b| {
            b.available
                .cmp(&a.available)
                .then_with(|| a.warehouse_id.cmp(&b.warehouse_id))
        }),
        // Nearest without a destination (refused at checkout by
        // `order::check_strategy`) sorts as priority: allocation stays total.
        (Strategy::Priority | Strategy::Nearest, _) => candidates.sort_by(|a, b| {
            a.priority
                .cmp(&b.priority)
                .then_with(|| a.warehouse_id.cmp(&b.warehouse_id))
        }),
    }
}

/// Allocates every `(sku, quantity)` line from its candidates, or returns
/// every line that falls short. Lines must name distinct SKUs.
pub fn allocate(
    lines: &[(Sku, u64, Vec<Candidate>)],
    strategy: Strategy,
    destination: Option<Location>,
) -> Result<Vec<Allocation>, Vec<Shortage>> {
    let mut allocations = Vec::new();
    let mut shortages = Vec::new();
    for (sku, requested, candidates) in lines {
        let available = candidates
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.available));
        if available < *requested {
            shortages.push(Shortage {
                sku: sku.as_str().to_string(),
                requested: *requested,
                available,
            });
            continue;
        }
        let mut ranked = candidates.clone();
        rank(&mut ranked, strategy, destination);
        let mut missing = *requested;
        for candidate in ranked {
            if missing == 0 {
                break;
            }
            let take = missing.min(candidate.available);
            if take > 0 {
                allocations.push(Allocation {
                    sku: sku.clone(),
                    warehouse_id: candidate.warehouse_id,
                    quantity: take,
                });
                // take <= missing
                missing = missing.saturating_sub(take);
            }
        }
    }
    if shortages.is_empty() {
        Ok(allocations)
    } else {
        Err(shortages)
    }
}

#[cfg(test)]
mod tests {
    use super::Strategy;
    use super::*;
    use proptest::prelude::*;

    fn cand(id: &str, priority: i32, lat: f64, available: u64) -> Candidate {
        Candidate {
            warehouse_id: WarehouseId::parse(id).unwrap(),
            priority,
            location: Location::parse(lat, 0.0).unwrap(),
            available,
        }
    }

    fn taken(allocs: &[Allocation]) -> Vec<(&str, u64)> {
        allocs
            .iter()
            .map(|a| (a.warehouse_id.as_str(), a.quantity))
            .collect()
    }

    #[test]
    fn strategies_choose_and_split() {
        let sku = Sku::parse("A").unwrap();
        let cands = vec![
            cand("far", 0, 60.0, 5),
            cand("near", 2, 10.0, 3),
            cand("big", 1, 40.0, 9),
        ];
        let line = |q| vec![(sku.clone(), q, cands.clone())];
        let to = Some(Location::parse(11.0, 0.0).unwrap());
        let by_priority = allocate(&line(7), Strategy::Priority, to).unwrap();
        assert_eq!(taken(&by_priority), vec![("far", 5), ("big", 2)]);
        let nearest = allocate(&line(7), Strategy::Nearest, to).unwrap();
        assert_eq!(taken(&nearest), vec![("near", 3), ("big", 4)]);
        let highest = allocate(&line(7), Strategy::HighestStock, to).unwrap();
        assert_eq!(taken(&highest), vec![("big", 7)]);
        let short = allocate(&line(18), Strategy::Priority, to).unwrap_err();
        assert_eq!(
            short,
            vec![Shortage {
                sku: "A".into(),
                requested: 18,
                available: 17
            }]
        );
    }

    #[test]
    fn distance_is_plausible() {
        let paris = Location::parse(48.8566, 2.3522).unwrap();
        let berlin = Location::parse(52.52, 13.405).unwrap();
        let d = distance_km(paris, berlin);
        assert!((870.0..890.0).contains(&d), "{d}");
    }

    proptest! {
        /// An allocation takes exactly the requested units, never more than a
        /// warehouse has, and fails exactly when the total is short.
        #[test]
        fn allocation_is_exact(
            stock in prop::collection::vec(0u64..20, 1..6),
            requested in 1u64..60,
            strategy in prop::sample::select(vec![Strategy::Priority, Strategy::Nearest, Strategy::HighestStock]),
        ) {
            let sku = Sku::parse("A").unwrap();
            let cands: Vec<_> = stock.iter().enumerate()
                .map(|(i, s)| cand(&format!("w{i}"), (i % 3) as i32, i as f64, *s)).collect();
            let total: u64 = stock.iter().sum();
            let to = Some(Location::parse(2.5, 0.0).unwrap());
            match allocate(&[(sku, requested, cands.clone())], strategy, to) {
                Ok(allocs) => {
                    prop_assert!(total >= requested);
                    prop_assert_eq!(allocs.iter().map(|a| a.quantity).sum::<u64>(), requested);
                    for a in &allocs {
                        let c = cands.iter().find(|c| c.warehouse_id == a.warehouse_id).unwrap();
                        prop_assert!(a.quantity <= c.available && a.quantity > 0);
                    }
                }
                Err(short) => prop_assert!(total < requested && short[0].available == total),
            }
        }
    }
}
