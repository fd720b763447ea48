//! Concurrent HTTPS signing load: clients each sending one request after
//! another for a while, and what came back (latencies of the answers with
//! the expected status, errors otherwise). REST and Vault issuance share it,
//! so their figures differ only by the route they drive.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// A knob from the environment, or its default.
pub fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// PEM CSRs for `svc-{i}.bench.test`, made up front so the clients spend
/// their time on requests.
pub fn csrs(count: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            let name = format!("svc-{i}.bench.test");
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(vec![name.clone()]).unwrap();
            (name, params.serialize_request(&key).unwrap().pem().unwrap())
        })
        .collect()
}

/// One kind of request: where it goes, how it is authorised, its bodies
/// (sent in turn), and the status a success answers.
#[derive(Clone)]
pub struct Route {
    pub url: String,
    pub header: (&'static str, String),
    pub bodies: Arc<Vec<String>>,
    pub success: u16,
}

/// Latencies of successes and the count of errors, within `seconds`.
pub struct Outcome {
    pub latencies: Vec<Duration>,
    pub errors: u64,
    pub seconds: f64,
}

/// `clients` concurrent clients drive `route`; what is sent within the
/// first `warmup` is not counted, and clients stop after `seconds` more.
pub async fn drive(client: &reqwest::Client, route: &Route, clients: usize, warmup: u64, seconds: u64) -> Outcome {
    let measure_from = Instant::now() + Duration::from_secs(warmup);
    let stop_at = measure_from + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (client, route) = (client.clone(), route.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut i = worker;
            while Instant::now() < stop_at {
                let body = route.bodies[i % route.bodies.len()].clone();
                i += clients;
                let sent = Instant::now();
                let response = client
                    .post(&route.url)
                    .header(route.header.0, &route.header.1)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let ok = match response {
                    Ok(r) => r.status() == route.success && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if sent >= measure_from {
                    if ok {
                        latencies.push(sent.elapsed());
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut outcome = Outcome { latencies: Vec::new(), errors: 0, seconds: seconds as f64 };
    for task in tasks {
        let (latencies, errors) = task.await.unwrap();
        outcome.latencies.extend(latencies);
        outcome.errors += errors;
    }
    outcome.latencies.sort();
    outcome
}

impl Outcome {
    /// Adds another run's figures (runs of one route, interleaved with others).
    pub fn add(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.latencies.sort();
        self.errors += other.errors;
        self.seconds += other.seconds;
    }

    pub fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.seconds
    }

    /// Certificates per second, latency percentiles and errors, on one line.
    pub fn summary(&self) -> String {
        if self.latencies.is_empty() {
            return format!("no successful request, errors {}", self.errors);
        }
        let pct = |p: f64| self.latencies[((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1)];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "{:.0} certs/s, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms, errors {}",
            self.per_second(),
            ms(pct(0.50)),
            ms(pct(0.90)),
            ms(pct(0.99)),
            ms(*self.latencies.last().unwrap()),
            self.errors,
        )
    }
}
