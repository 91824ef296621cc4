//! The audit log: who did what security-relevant thing, to what, from where, and when.
//!
//! Rows are written inside the transaction of the action they describe, so an action and its
//! audit row commit (or roll back) together.

pub mod routes;
pub mod store;

use std::net::IpAddr;

use uuid::Uuid;

use crate::db::Tx;

/// One audit row to write.
#[derive(Debug, Clone, Default)]
pub struct AuditEntry {
    pub actor_id: Option<Uuid>,
    pub action: &'static str,
    pub resource_type: Option<&'static str>,
    pub resource_id: Option<String>,
    pub details: Option<String>,
    pub ip: Option<IpAddr>,
}

impl AuditEntry {
    pub fn new(action: &'static str, actor_id: Option<Uuid>, ip: Option<IpAddr>) -> AuditEntry {
        AuditEntry { actor_id, action, ip, ..AuditEntry::default() }
    }
    pub fn resource(mut self, kind: &'static str, id: impl ToString) -> AuditEntry {
        self.resource_type = Some(kind);
        self.resource_id = Some(id.to_string());
        self
    }
    pub fn details(mut self, details: impl Into<String>) -> AuditEntry {
        self.details = Some(details.into());
        self
    }
}

pub async fn record(tx: &mut Tx, entry: AuditEntry) -> Result<(), sqlx::Error> {
    store::insert(tx, &entry).await
}
