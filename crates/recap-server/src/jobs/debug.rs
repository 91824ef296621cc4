//! Diagnostic job kinds, registered only with `JOBS_DEBUG_KINDS=true` (tests, benchmarks, checking
//! a deployment's workers). They touch nothing but their own job row.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Job, JobContext, JobError, JobMeta, Registry};

pub fn register(r: &mut Registry) {
    r.register::<Noop>().register::<Sleep>().register::<Fail>();
}

/// Does nothing (throughput benchmarks).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Noop {}

impl Job for Noop {
    const KIND: &'static str = "debug.noop";

    async fn run(self, _ctx: JobContext, _meta: JobMeta) -> Result<(), JobError> {
        Ok(())
    }
}

/// Sleeps `ms` milliseconds (at most ten minutes): a long job, to kill a worker in the middle of.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sleep {
    pub ms: u64,
}

impl Job for Sleep {
    const KIND: &'static str = "debug.sleep";

    async fn run(self, _ctx: JobContext, _meta: JobMeta) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(self.ms.min(600_000))).await;
        Ok(())
    }
}

/// Fails its first `times` attempts, then succeeds (`permanent`: fails for good at once).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fail {
    pub times: i32,
    #[serde(default)]
    pub permanent: bool,
}

impl Job for Fail {
    const KIND: &'static str = "debug.fail";
    const MAX_ATTEMPTS: i32 = 3;

    async fn run(self, _ctx: JobContext, meta: JobMeta) -> Result<(), JobError> {
        if self.permanent {
            return Err(JobError::Fail(anyhow::anyhow!("debug.fail: permanent failure")));
        }
        if meta.attempt <= self.times {
            return Err(JobError::Retry(anyhow::anyhow!(
                "debug.fail: attempt {} of {} fails",
                meta.attempt,
                self.times
            )));
        }
        Ok(())
    }
}
