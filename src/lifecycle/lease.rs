//! Jobs several nodes share: a run happens on whichever node first takes
//! the job's lease once its `next_run` has come, so one run per interval
//! happens across all nodes. The lease outlives the run; a node that
//! crashes mid-run frees the job when its lease runs out.

use std::future::Future;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::storage::JobLeases;

/// The shortest lease: long enough for a slow run, short enough that a
/// crashed node's job moves on within a couple of minutes.
const MIN_LEASE_SECONDS: i64 = 60;

pub(super) struct LeasedJob<F> {
    pub name: &'static str,
    pub interval: time::Duration,
    pub run: F,
}

/// How long a lease lasts for a job run every `interval`.
pub(super) fn lease_seconds(interval: time::Duration) -> i64 {
    (interval.whole_seconds() * 2).max(MIN_LEASE_SECONDS)
}

/// Runs `job` forever: every poll, try to take the due lease; on success
/// run once and record the outcome and the next due time.
pub(super) async fn run_leased<F, Fut>(leases: JobLeases, clock: SharedClock, node: String, mut job: LeasedJob<F>)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let interval = job.interval.whole_seconds().max(1);
    let lease = lease_seconds(job.interval);
    // Checking is one cheap statement; a quarter interval keeps the gap
    // between runs close to the interval.
    let poll = Duration::from_secs((interval as u64 / 4).clamp(1, 10));
    loop {
        let now = clock.unix();
        match leases.take_due_lease(job.name, &node, now, now + lease).await {
            Ok(true) => {
                let outcome = (job.run)().await;
                if let Err(e) = &outcome {
                    tracing::warn!(job = job.name, error = %e, "job run failed; it runs again at its next interval");
                }
                if let Err(e) = leases.finish_job_run(job.name, now, now + interval, outcome.err().as_deref()).await {
                    tracing::warn!(job = job.name, error = %e, "could not record a job run");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(job = job.name, error = %e, "could not take a job lease"),
        }
        tokio::time::sleep(poll).await;
    }
}
