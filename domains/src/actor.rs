//! Who issues a command: a signed-in user and their role. Commands that need
//! to know who acted (an order's timeline, ownership checks) carry an
//! [`Actor`]; authentication itself happens before proposing, in the API layer.

use serde::{Deserialize, Serialize};

/// What a user may do, broadly; finer rules (a vendor acts only on what it
/// owns) are checked by each domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Vendor,
    Admin,
}

impl Role {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "customer" => Some(Self::Customer),
            "vendor" => Some(Self::Vendor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Vendor => "vendor",
            Self::Admin => "admin",
        }
    }
}

/// A signed-in user. For a vendor, `user_id` is also the vendor id that owns
/// its products, stock and order lines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    pub user_id: String,
    pub role: Role,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// True for an admin, or for a vendor acting on what `vendor_id` owns.
    pub fn may_manage_vendor(&self, vendor_id: &str) -> bool {
        self.is_admin() || (self.role == Role::Vendor && self.user_id == vendor_id)
    }
}
