//! `recap-bench`: a small HTTP/1.1 load generator, so benchmarks need nothing but this workspace.
//!
//! It opens `--connections` keep-alive connections and has each one send GET requests back to back
//! (one in flight per connection, like wrk) for `--warmup` seconds unrecorded, then `--seconds`
//! recorded. Every latency is kept (microseconds in a `Vec<u32>` per connection) and sorted at the
//! end, so the percentiles are exact rather than bucketed.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONNECTION, HOST, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Parser, Debug)]
#[command(
    name = "recap-bench",
    version,
    about = "HTTP/1.1 keep-alive load generator (GET requests, one in flight per connection)"
)]
struct Cli {
    /// URL to load, http:// only; repeat it to spread the connections over several URLs (round-robin)
    #[arg(long = "url", value_name = "URL", required = true)]
    urls: Vec<String>,
    /// Keep-alive connections held open at once
    #[arg(short = 'c', long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// Recorded duration, in seconds ("10" or "10s")
    #[arg(short = 'd', long, visible_alias = "duration", value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    seconds: Duration,
    /// Unrecorded warm-up before the recorded duration, in seconds
    #[arg(short = 'w', long, value_name = "SECS", default_value = "2", value_parser = parse_seconds)]
    warmup: Duration,
    /// Extra request header "Name: value"; repeatable (e.g. -H 'Authorization: Bearer ...')
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<Header>,
    /// Stop once this many requests have been recorded in total (--seconds stays an upper bound)
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    requests: Option<u64>,
    /// Give up on a connect or a request after this many seconds (counted as a timeout error)
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    timeout: Duration,
    /// Tokio worker threads of the load generator
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..))]
    threads: u16,
    /// Print one JSON object on stdout instead of the text report
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Debug)]
struct Header(HeaderName, HeaderValue);

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let n = t.strip_suffix('s').unwrap_or(t).trim();
    let secs: f64 = n.parse().map_err(|_| format!("{s:?} is not a number of seconds (e.g. 10 or 10s)"))?;
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("{s:?} must be zero or more seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_header(s: &str) -> Result<Header, String> {
    let (name, value) = s.split_once(':').ok_or_else(|| format!("{s:?} is not of the form 'Name: value'"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| format!("bad header name in {s:?}: {e}"))?;
    let value = HeaderValue::from_str(value.trim()).map_err(|e| format!("bad header value in {s:?}: {e}"))?;
    Ok(Header(name, value))
}

/// One URL, split into what the connections need.
struct Target {
    url: String,
    /// `host:port` to connect to.
    addr: String,
    host_header: HeaderValue,
    path: Uri,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Target> {
        let uri: Uri = url.parse().with_context(|| format!("invalid URL {url:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => bail!("{url}: only http:// is supported, not {other}://"),
            None => bail!("{url}: the URL needs a scheme, e.g. http://127.0.0.1:8000/health"),
        }
        let authority = uri.authority().with_context(|| format!("{url}: the URL has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = format!("{}:{port}", authority.host());
        let host_header = HeaderValue::from_str(authority.as_str().rsplit('@').next().unwrap_or_default())?;
        let path: Uri = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/").parse()?;
        Ok(Target { url: url.to_owned(), addr, host_header, path })
    }
}

/// What one connection saw during the recorded window.
#[derive(Default)]
struct Stats {
    latencies_us: Vec<u32>,
    statuses: BTreeMap<u16, u64>,
    bytes: u64,
    connect_errors: u64,
    request_errors: u64,
    timeouts: u64,
    /// The server closed a kept-alive connection (or asked to); not an error.
    reconnects: u64,
    first_error: Option<String>,
    last_done: Option<Instant>,
}

impl Stats {
    fn error(&mut self, kind: ErrorKind, message: String) {
        match kind {
            ErrorKind::Connect => self.connect_errors += 1,
            ErrorKind::Request => self.request_errors += 1,
            ErrorKind::Timeout => self.timeouts += 1,
        }
        self.first_error.get_or_insert(message);
    }

    fn errors(&self) -> u64 {
        self.connect_errors + self.request_errors + self.timeouts
    }

    fn non_2xx(&self) -> u64 {
        self.statuses.iter().filter(|(s, _)| !(200..300).contains(*s)).map(|(_, n)| n).sum()
    }

    /// Everything but the latencies (the text report of one URL needs only the counts).
    fn clone_counts(&self) -> Stats {
        Stats {
            latencies_us: Vec::new(),
            statuses: self.statuses.clone(),
            first_error: self.first_error.clone(),
            ..*self
        }
    }

    fn merge(&mut self, other: Stats) {
        self.latencies_us.extend_from_slice(&other.latencies_us);
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.bytes += other.bytes;
        self.connect_errors += other.connect_errors;
        self.request_errors += other.request_errors;
        self.timeouts += other.timeouts;
        self.reconnects += other.reconnects;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.last_done = self.last_done.max(other.last_done);
    }
}

enum ErrorKind {
    Connect,
    Request,
    Timeout,
}

/// The shared plan of the run.
struct Plan {
    headers: Vec<Header>,
    record_from: Instant,
    end: Instant,
    timeout: Duration,
    /// Recorded requests still allowed when `--requests` is given.
    budget: Option<AtomicU64>,
}

async fn connect(target: &Target) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(&target.addr).await.with_context(|| format!("connect to {}", target.addr))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; errors surface on the sender.
        let _ = conn.await;
    });
    Ok(sender)
}

fn take_ticket(plan: &Plan) -> bool {
    match &plan.budget {
        None => true,
        Some(left) => left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok(),
    }
}

async fn run_connection(target: Arc<Target>, plan: Arc<Plan>) -> Stats {
    let mut stats = Stats::default();
    'connection: while Instant::now() < plan.end {
        let mut sender = match tokio::time::timeout(plan.timeout, connect(&target)).await {
            Ok(Ok(sender)) => sender,
            outcome => {
                if Instant::now() >= plan.record_from {
                    match outcome {
                        Ok(Err(e)) => stats.error(ErrorKind::Connect, format!("{e:#}")),
                        _ => stats.error(ErrorKind::Timeout, format!("connect to {} timed out", target.addr)),
                    }
                }
                // Do not spin on a server that is down.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        loop {
            if sender.ready().await.is_err() {
                stats.reconnects += 1;
                continue 'connection;
            }
            let t0 = Instant::now();
            if t0 >= plan.end {
                break 'connection;
            }
            let recorded = t0 >= plan.record_from;
            if recorded && !take_ticket(&plan) {
                break 'connection;
            }
            let mut request = Request::builder().method(Method::GET).uri(target.path.clone());
            if let Some(headers) = request.headers_mut() {
                headers.insert(HOST, target.host_header.clone());
                headers
                    .insert(USER_AGENT, HeaderValue::from_static(concat!("recap-bench/", env!("CARGO_PKG_VERSION"))));
                for Header(name, value) in &plan.headers {
                    headers.append(name.clone(), value.clone());
                }
            }
            let request = request.body(Empty::<Bytes>::new()).expect("a GET request from parsed parts is valid");
            let exchange = async {
                let response = sender.send_request(request).await?;
                let status = response.status().as_u16();
                let close = response
                    .headers()
                    .get(CONNECTION)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                let mut body = response.into_body();
                let mut bytes = 0u64;
                while let Some(frame) = body.frame().await {
                    if let Some(data) = frame?.data_ref() {
                        bytes += data.len() as u64;
                    }
                }
                Ok::<_, hyper::Error>((status, bytes, close))
            };
            let outcome = tokio::time::timeout(plan.timeout, exchange).await;
            let done = Instant::now();
            match outcome {
                Ok(Ok((status, bytes, close))) => {
                    if recorded {
                        let micros = (done - t0).as_micros().min(u32::MAX as u128) as u32;
                        stats.latencies_us.push(micros);
                        *stats.statuses.entry(status).or_default() += 1;
                        stats.bytes += bytes;
                        stats.last_done = Some(done);
                    }
                    if close {
                        stats.reconnects += 1;
                        continue 'connection;
                    }
                }
                Ok(Err(e)) => {
                    if recorded {
                        stats.error(ErrorKind::Request, format!("{e:#}"));
                    }
                    continue 'connection;
                }
                Err(_) => {
                    if recorded {
                        stats.error(
                            ErrorKind::Timeout,
                            format!("request to {} timed out after {:?}", target.url, plan.timeout),
                        );
                    }
                    continue 'connection;
                }
            }
        }
    }
    stats
}

struct Summary {
    requests: u64,
    duration: Duration,
    rps: f64,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
}

fn summarize(stats: &mut Stats, record_from: Instant, fallback: Duration) -> Summary {
    stats.latencies_us.sort_unstable();
    let lat = &stats.latencies_us;
    let requests = lat.len() as u64;
    let duration = match stats.last_done {
        Some(t) if t > record_from => t - record_from,
        _ => fallback,
    };
    let mean =
        if lat.is_empty() { 0.0 } else { lat.iter().map(|&v| v as f64).sum::<f64>() / lat.len() as f64 / 1000.0 };
    Summary {
        requests,
        duration,
        rps: if duration.is_zero() { 0.0 } else { requests as f64 / duration.as_secs_f64() },
        p50: percentile_ms(lat, 50.0),
        p90: percentile_ms(lat, 90.0),
        p99: percentile_ms(lat, 99.0),
        max: lat.last().map_or(0.0, |&v| v as f64 / 1000.0),
        mean,
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn json_of(stats: &Stats, s: &Summary) -> serde_json::Value {
    let statuses: serde_json::Map<String, serde_json::Value> =
        stats.statuses.iter().map(|(k, v)| (k.to_string(), (*v).into())).collect();
    serde_json::json!({
        "requests": s.requests,
        "duration_s": round(s.duration.as_secs_f64(), 3),
        "rps": round(s.rps, 1),
        "p50_ms": round(s.p50, 3),
        "p90_ms": round(s.p90, 3),
        "p99_ms": round(s.p99, 3),
        "max_ms": round(s.max, 3),
        "mean_ms": round(s.mean, 3),
        "non_2xx": stats.non_2xx(),
        "errors": stats.errors(),
        "connect_errors": stats.connect_errors,
        "request_errors": stats.request_errors,
        "timeouts": stats.timeouts,
        "reconnects": stats.reconnects,
        "bytes": stats.bytes,
        "status": statuses,
        "first_error": stats.first_error,
    })
}

fn print_text(label: &str, stats: &Stats, s: &Summary) {
    let statuses: Vec<String> = stats.statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!("{label}");
    println!(
        "  requests    {} in {:.2} s, {:.1} req/s, {:.2} MB read",
        s.requests,
        s.duration.as_secs_f64(),
        s.rps,
        stats.bytes as f64 / 1e6
    );
    println!(
        "  latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  mean {:.3}",
        s.p50, s.p90, s.p99, s.max, s.mean
    );
    println!("  status      {}", if statuses.is_empty() { "-".to_owned() } else { statuses.join(", ") });
    println!("  non-2xx     {}", stats.non_2xx());
    println!(
        "  errors      {} (connect {}, request {}, timeout {}); reconnects {}",
        stats.errors(),
        stats.connect_errors,
        stats.request_errors,
        stats.timeouts,
        stats.reconnects
    );
    if let Some(e) = &stats.first_error {
        println!("  first error {e}");
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    if cli.seconds.is_zero() {
        bail!("--seconds must be more than 0");
    }
    let targets: Vec<Arc<Target>> =
        cli.urls.iter().map(|u| Target::parse(u).map(Arc::new)).collect::<anyhow::Result<_>>()?;
    let start = Instant::now();
    let record_from = start + cli.warmup;
    let plan = Arc::new(Plan {
        headers: cli.headers.clone(),
        record_from,
        end: record_from + cli.seconds,
        timeout: cli.timeout,
        budget: cli.requests.map(AtomicU64::new),
    });
    if !cli.json {
        println!(
            "recap-bench: {} connections, {} s recorded after {} s warm-up{}, {} threads",
            cli.connections,
            cli.seconds.as_secs_f64(),
            cli.warmup.as_secs_f64(),
            cli.requests.map(|n| format!(", at most {n} requests")).unwrap_or_default(),
            cli.threads
        );
        for t in &targets {
            println!("  GET {}", t.url);
        }
    }

    let mut tasks = Vec::with_capacity(cli.connections as usize);
    for i in 0..cli.connections as usize {
        let target_index = i % targets.len();
        let task = tokio::spawn(run_connection(targets[target_index].clone(), plan.clone()));
        tasks.push((target_index, task));
    }
    let mut per_target: Vec<Stats> = targets.iter().map(|_| Stats::default()).collect();
    for (index, task) in tasks {
        per_target[index].merge(task.await.context("a connection task panicked")?);
    }

    let mut total = Stats::default();
    let mut per_url = Vec::new();
    for (target, mut stats) in targets.iter().zip(per_target) {
        if targets.len() > 1 {
            let summary = summarize(&mut stats, record_from, cli.seconds);
            per_url.push((target.url.clone(), json_of(&stats, &summary), summary, stats.clone_counts()));
        }
        total.merge(stats);
    }
    let summary = summarize(&mut total, record_from, cli.seconds);

    if cli.json {
        let mut out = json_of(&total, &summary);
        let object = out.as_object_mut().expect("json_of builds an object");
        object.insert("connections".into(), cli.connections.into());
        object.insert("warmup_s".into(), cli.warmup.as_secs_f64().into());
        object.insert("urls".into(), cli.urls.clone().into());
        if !per_url.is_empty() {
            let rows: Vec<serde_json::Value> = per_url
                .into_iter()
                .map(|(url, mut row, _, _)| {
                    row.as_object_mut().expect("object").insert("url".into(), url.into());
                    row
                })
                .collect();
            object.insert("per_url".into(), rows.into());
        }
        println!("{out}");
    } else {
        for (url, _, s, stats) in &per_url {
            print_text(&format!("{url}:"), stats, s);
        }
        print_text(if per_url.is_empty() { "result:" } else { "total:" }, &total, &summary);
    }
    if summary.requests == 0 {
        eprintln!("recap-bench: no request completed in the recorded window");
    }
    Ok(summary.requests > 0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads as usize).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("recap-bench: could not start the async runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("recap-bench: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
