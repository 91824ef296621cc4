//! User administration for the CLI (`recap user …`), straight on the database.

use super::{
    model::Email,
    password::{Passwords, check_strength},
    store::{self, NewUser, UserRow},
};
use crate::{
    audit::{self, AuditEntry},
    db::{Db, is_unique_violation},
    http::pagination::Paging,
};

pub async fn create_user(
    db: &Db,
    email: &str,
    password: &str,
    role: &str,
    full_name: Option<&str>,
) -> anyhow::Result<UserRow> {
    let email = Email::parse(email).ok_or_else(|| anyhow::anyhow!("{email:?} is not a valid e-mail address"))?;
    check_strength(password).map_err(|m| anyhow::anyhow!("{m}"))?;
    anyhow::ensure!(["admin", "member"].contains(&role), "role must be admin or member");
    let hash = Passwords::new(1).hash(password).await?;
    let mut tx = db.begin().await?;
    let user = store::insert_user(
        &mut tx,
        &NewUser {
            email: Some(email.as_str()),
            password_hash: Some(&hash),
            full_name,
            role,
            status: "approved",
            remaining_imports: None,
            remaining_messages: None,
        },
    )
    .await
    .map_err(|e| {
        if is_unique_violation(&e) { anyhow::anyhow!("{} is already registered", email.as_str()) } else { e.into() }
    })?;
    audit::record(
        &mut tx,
        AuditEntry::new("register", None, None).resource("user", user.id).details(format!("by CLI, role {role}")),
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

pub async fn list_users(db: &Db) -> anyhow::Result<Vec<UserRow>> {
    let mut all = Vec::new();
    let mut page = 1;
    loop {
        let (rows, total) = store::list_users(db, Paging { page, size: 100 }).await?;
        let done = rows.is_empty() || all.len() + rows.len() >= total as usize;
        all.extend(rows);
        if done {
            return Ok(all);
        }
        page += 1;
    }
}

/// Sets a role; other instances pick the change up when their short auth cache expires.
pub async fn set_role(db: &Db, email: &str, role: &str) -> anyhow::Result<UserRow> {
    anyhow::ensure!(["admin", "member", "guest"].contains(&role), "role must be admin, member or guest");
    let email = Email::parse(email).ok_or_else(|| anyhow::anyhow!("{email:?} is not a valid e-mail address"))?;
    let mut user =
        store::user_by_email(db, email.as_str()).await?.ok_or_else(|| anyhow::anyhow!("no user {}", email.as_str()))?;
    let before = user.role.clone();
    user.role = role.to_owned();
    user.is_superuser = role == "admin";
    let mut tx = db.begin().await?;
    let updated = store::update_user(&mut tx, &user).await?;
    audit::record(
        &mut tx,
        AuditEntry::new("role_change", None, None)
            .resource("user", user.id)
            .details(format!("by CLI: {before} -> {role}")),
    )
    .await?;
    tx.commit().await?;
    Ok(updated)
}
