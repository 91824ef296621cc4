//! The shared Redis connection, when `REDIS_URL` is set.
//!
//! The connection is made lazily and re-attempted on failure, so an instance starts (and reports
//! "redis: unhealthy" on readiness) while Redis is down, instead of refusing to boot.

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

pub struct RedisHandle {
    client: redis::Client,
    manager: OnceCell<ConnectionManager>,
    prefix: String,
}

impl RedisHandle {
    pub fn open(url: &str, prefix: &str) -> anyhow::Result<RedisHandle> {
        let client = redis::Client::open(url).context("REDIS_URL is not a valid Redis URL")?;
        Ok(RedisHandle { client, manager: OnceCell::new(), prefix: prefix.to_owned() })
    }

    /// A multiplexed connection that reconnects by itself once established.
    pub async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        let manager = self
            .manager
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Duration::from_secs(1))
                    .set_response_timeout(Duration::from_secs(2))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config).await
            })
            .await
            .context("could not connect to Redis")?;
        Ok(manager.clone())
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// A key in this deployment's namespace.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.connection().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await.context("Redis PING failed")?;
        Ok(())
    }
}
