//! SQL for OAuth: pending sign-ins (`oauth_states`) and linked provider accounts (`oauth_accounts`).

use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{db::Tx, on_tx};

/// A sign-in begun at `/login` and not yet completed.
#[derive(Debug, Clone, FromRow)]
pub struct StateRow {
    pub provider: String,
    pub pkce_verifier: String,
    pub expires_at: OffsetDateTime,
}

pub async fn insert_state(
    tx: &mut Tx,
    state: &str,
    provider: &str,
    pkce_verifier: &str,
    expires_at: OffsetDateTime,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO oauth_states (state, provider, pkce_verifier, expires_at) VALUES ($1, $2, $3, $4)"
    )
    .bind(state)
    .bind(provider)
    .bind(pkce_verifier)
    .bind(expires_at)
    .execute(conn)
    .await
    .map(|_| ()))
}

/// Removes and returns a state: each one can be presented once, whatever the outcome.
pub async fn take_state(tx: &mut Tx, state: &str) -> Result<Option<StateRow>, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query_as::<_, StateRow>(
        "DELETE FROM oauth_states WHERE state = $1 RETURNING provider, pkce_verifier, expires_at"
    )
    .bind(state)
    .fetch_optional(conn)
    .await)
}

/// Deletes up to `batch` expired states. Expiry is compared here, not in SQL, because SQLite keeps
/// timestamps as text; every new sign-in prunes a batch, which keeps the table small.
pub async fn prune_states(tx: &mut Tx, now: OffsetDateTime, batch: i64) -> Result<usize, sqlx::Error> {
    let rows: Vec<(String, OffsetDateTime)> = on_tx!(tx, |conn| sqlx::query_as::<_, (String, OffsetDateTime)>(
        "SELECT state, expires_at FROM oauth_states LIMIT $1"
    )
    .bind(batch)
    .fetch_all(conn)
    .await)?;
    let mut pruned = 0;
    for (state, expires_at) in rows {
        if expires_at <= now {
            on_tx!(tx, |conn| sqlx::query("DELETE FROM oauth_states WHERE state = $1")
                .bind(&state)
                .execute(conn)
                .await
                .map(|_| ()))?;
            pruned += 1;
        }
    }
    Ok(pruned)
}

/// The user a provider account is linked to.
pub async fn linked_user(tx: &mut Tx, provider: &str, subject: &str) -> Result<Option<Uuid>, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query_scalar::<_, Uuid>(
        "SELECT user_id FROM oauth_accounts WHERE provider = $1 AND subject = $2"
    )
    .bind(provider)
    .bind(subject)
    .fetch_optional(conn)
    .await)
}

pub async fn insert_account(
    tx: &mut Tx,
    provider: &str,
    subject: &str,
    user_id: Uuid,
    email: &str,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query(
        "INSERT INTO oauth_accounts (provider, subject, user_id, email, created_at) VALUES ($1, $2, $3, $4, $5)"
    )
    .bind(provider)
    .bind(subject)
    .bind(user_id)
    .bind(email)
    .bind(OffsetDateTime::now_utc())
    .execute(conn)
    .await
    .map(|_| ()))
}

/// The user holding `email` (already normalised), if any.
pub async fn user_id_by_email(tx: &mut Tx, email: &str) -> Result<Option<Uuid>, sqlx::Error> {
    on_tx!(tx, |conn| sqlx::query_scalar::<_, Uuid>("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_optional(conn)
        .await)
}
