//! `mqbench producer|consumer|tproducer`: load generators in the manner of RocketMQ's
//! `benchmark/producer.sh`, `consumer.sh` and `tproducer.sh`, over our own client
//! (`broker::client`). Each prints a RocketMQ-style line every second and a summary at the end:
//! total, msgs/s and latency percentiles (send latency for producers, born-to-consumer latency for
//! consumers); `--json` prints the summary as one JSON object on stdout instead.
//!
//! The exit code is non-zero when a send or pull failed, or nothing was sent or received.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use broker::client::{
    ClientConfig, ConsumeFromWhere, Error as ClientError, Message, MessageExt, MqClient, Producer, PullConsumer,
    PullConsumerOptions, PullStatus, SendResult, TransactionListener, TransactionState,
};
use broker::remoting::SerializeType;

const USAGE: &str = "\
usage: mqbench producer  [common] [-w threads] [-s size] [-k true|false] [-c tagCount]
                         [-a inFlight] [-b batchSize] [-o] [-g group]
       mqbench consumer  [common] [-g group] [-e expression] [--from-first]
       mqbench tproducer [common] [-w threads] [-s size] [-g group]
                         [--send-rollback-rate R] [--send-unknown-rate R]
                         [--check-rollback-rate R] [--check-unknown-rate R]

common: -n namesrv (host:port;host:port, default $NAMESRV_ADDR)   -t topic (BenchmarkTest)
        -m messages (stop after this many; default: no limit)      -d seconds (stop after; default: no limit)
        --json (final summary as JSON on stdout)                   --rocketmq-header (binary headers)

producer: -w 16 tasks sending synchronously; -s 1024 byte bodies; -k sets a key per message;
          -c N tags tag0..tagN-1 in turn; -a N sends asynchronously with N requests in flight
          in total (-w is then ignored); -b N sends batches of N (SEND_BATCH_MESSAGE); -o sends
          oneway (no response; latency is the time to queue the request).
consumer: pulls every queue of the topic with long polling (32 per pull) from the group's stored
          offset (or the queue's end, or its start with --from-first); latency is now - born time.
tproducer: -w 16 tasks sending half messages; the local transaction commits, rolls back (rate R)
          or stays unknown (rate R); broker checks are answered with the check rates.
Stop with -m, -d or Ctrl-C; the summary is printed in every case.";

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = match Args::parse(std::env::args().skip(1).collect()) {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mqbench: {e:#}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mqbench: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("mqbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Producer,
    Consumer,
    TransactionProducer,
}

#[derive(Clone, Debug)]
struct Args {
    mode: Mode,
    namesrv: Option<String>,
    topic: String,
    group: Option<String>,
    threads: usize,
    size: usize,
    keys: bool,
    tag_count: u64,
    in_flight: usize,
    batch: usize,
    oneway: bool,
    messages: Option<u64>,
    duration: Option<Duration>,
    expression: String,
    from_first: bool,
    json: bool,
    binary_header: bool,
    send_rollback_rate: f64,
    send_unknown_rate: f64,
    check_rollback_rate: f64,
    check_unknown_rate: f64,
}

impl Args {
    fn parse(argv: Vec<String>) -> anyhow::Result<Option<Args>> {
        let mut it = argv.into_iter().peekable();
        let mode = match it.next().as_deref() {
            Some("producer") => Mode::Producer,
            Some("consumer") => Mode::Consumer,
            Some("tproducer") => Mode::TransactionProducer,
            Some("-h" | "--help") | None => return Ok(None),
            Some(other) => bail!("unknown mode {other:?} (producer, consumer or tproducer)"),
        };
        let mut a = Args {
            mode,
            namesrv: None,
            topic: "BenchmarkTest".into(),
            group: None,
            threads: 16,
            size: 1024,
            keys: false,
            tag_count: 0,
            in_flight: 0,
            batch: 1,
            oneway: false,
            messages: None,
            duration: None,
            expression: "*".into(),
            from_first: false,
            json: false,
            binary_header: false,
            send_rollback_rate: 0.0,
            send_unknown_rate: 0.0,
            check_rollback_rate: 0.0,
            check_unknown_rate: 0.0,
        };
        while let Some(flag) = it.next() {
            let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
            match flag.as_str() {
                "-h" | "--help" => return Ok(None),
                "-n" => a.namesrv = Some(value("-n")?),
                "-t" => a.topic = value("-t")?,
                "-g" => a.group = Some(value("-g")?),
                "-w" => a.threads = parse_num(&value("-w")?, "-w")?,
                "-s" => a.size = parse_num(&value("-s")?, "-s")?,
                "-c" => a.tag_count = parse_num(&value("-c")?, "-c")?,
                "-a" => a.in_flight = parse_num(&value("-a")?, "-a")?,
                "-b" => a.batch = parse_num(&value("-b")?, "-b")?,
                "-m" => a.messages = Some(parse_num(&value("-m")?, "-m")?),
                "-d" => a.duration = Some(Duration::from_secs_f64(parse_num(&value("-d")?, "-d")?)),
                "-e" => a.expression = value("-e")?,
                "--send-rollback-rate" | "-sr" => a.send_rollback_rate = parse_num(&value(&flag)?, &flag)?,
                "--send-unknown-rate" | "-su" => a.send_unknown_rate = parse_num(&value(&flag)?, &flag)?,
                "--check-rollback-rate" | "-cr" => a.check_rollback_rate = parse_num(&value(&flag)?, &flag)?,
                "--check-unknown-rate" | "-cu" => a.check_unknown_rate = parse_num(&value(&flag)?, &flag)?,
                "-k" | "-o" => {
                    // Java style `-k true`; a bare `-k` means true.
                    let on = match it.peek().map(String::as_str) {
                        Some("true") => {
                            it.next();
                            true
                        }
                        Some("false") => {
                            it.next();
                            false
                        }
                        _ => true,
                    };
                    if flag == "-k" {
                        a.keys = on;
                    } else {
                        a.oneway = on;
                    }
                }
                "--from-first" => a.from_first = true,
                "--json" => a.json = true,
                "--rocketmq-header" => a.binary_header = true,
                other => bail!("unknown argument {other:?}"),
            }
        }
        if a.threads == 0 || a.batch == 0 {
            bail!("-w and -b must be at least 1");
        }
        if a.size == 0 {
            bail!("-s must be at least 1 (the broker refuses empty bodies)");
        }
        if a.oneway && (a.batch > 1 || a.in_flight > 0) {
            bail!("-o cannot be combined with -b or -a");
        }
        Ok(Some(a))
    }
}

fn parse_num<T: std::str::FromStr>(v: &str, flag: &str) -> anyhow::Result<T> {
    v.trim().parse().map_err(|_| anyhow::anyhow!("{flag}: {v:?} is not a valid number"))
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let mut config = ClientConfig::from_env_or(args.namesrv.as_deref());
    if config.namesrv_addr.trim().is_empty() {
        bail!("no name server: pass -n host:port or set NAMESRV_ADDR");
    }
    if args.binary_header {
        config.serialize_type = SerializeType::RocketMq;
    }
    let client = MqClient::new(config);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::Relaxed);
            }
        });
    }
    match args.mode {
        Mode::Producer | Mode::TransactionProducer => run_producer(&args, client, stop).await,
        Mode::Consumer => run_consumer(&args, client, stop).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Histogram

/// A log-linear histogram of microseconds (HDR-style: 64 sub-buckets per power of two, so about
/// 1.6 % precision), recorded without locks.
struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum: AtomicU64,
    max: AtomicU64,
}

const SUB_BUCKETS: u64 = 128;
const HALF_SUB_BUCKETS: u64 = SUB_BUCKETS / 2;
const HISTOGRAM_BUCKETS: usize = (SUB_BUCKETS + 40 * HALF_SUB_BUCKETS) as usize;

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            buckets: (0..HISTOGRAM_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB_BUCKETS {
            return v as usize;
        }
        let magnitude = 63 - u64::from(v.leading_zeros()); // >= 7
        let shift = magnitude - 6; // >= 1
        let top = v >> shift; // in [64, 128)
        let idx = SUB_BUCKETS + (shift - 1) * HALF_SUB_BUCKETS + (top - HALF_SUB_BUCKETS);
        (idx as usize).min(HISTOGRAM_BUCKETS - 1)
    }

    /// The highest value that falls into bucket `idx`.
    fn upper(idx: usize) -> u64 {
        let idx = idx as u64;
        if idx < SUB_BUCKETS {
            return idx;
        }
        let shift = (idx - SUB_BUCKETS) / HALF_SUB_BUCKETS + 1;
        let top = (idx - SUB_BUCKETS) % HALF_SUB_BUCKETS + HALF_SUB_BUCKETS;
        ((top + 1) << shift) - 1
    }

    fn record(&self, us: u64) {
        self.buckets[Self::index(us)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(us, Ordering::Relaxed);
        self.max.fetch_max(us, Ordering::Relaxed);
    }

    /// The value at quantile `q` (0..=1), in microseconds (upper bound of its bucket, capped at
    /// the maximum seen).
    fn quantile(&self, q: f64) -> u64 {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 {
            return 0;
        }
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return Self::upper(i).min(self.max.load(Ordering::Relaxed));
            }
        }
        self.max.load(Ordering::Relaxed)
    }

    fn mean(&self) -> f64 {
        let count = self.count.load(Ordering::Relaxed);
        if count == 0 { 0.0 } else { self.sum.load(Ordering::Relaxed) as f64 / count as f64 }
    }

    fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.count.load(Ordering::Relaxed),
            mean_ms: self.mean() / 1000.0,
            p50_ms: self.quantile(0.50) as f64 / 1000.0,
            p90_ms: self.quantile(0.90) as f64 / 1000.0,
            p99_ms: self.quantile(0.99) as f64 / 1000.0,
            p999_ms: self.quantile(0.999) as f64 / 1000.0,
            max_ms: self.max.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }
}

struct LatencySummary {
    count: u64,
    mean_ms: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

impl LatencySummary {
    fn json(&self) -> String {
        format!(
            "{{\"count\":{},\"mean\":{:.3},\"p50\":{:.3},\"p90\":{:.3},\"p99\":{:.3},\"p999\":{:.3},\"max\":{:.3}}}",
            self.count, self.mean_ms, self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
        )
    }

    fn text(&self) -> String {
        format!(
            "p50 {:.3} p90 {:.3} p99 {:.3} p999 {:.3} max {:.3} mean {:.3}",
            self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms, self.mean_ms
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Producer and transaction producer

/// Counters shared by the sending tasks and the reporter.
struct SendStats {
    /// Messages stored (a batch counts its messages).
    ok_messages: AtomicU64,
    /// Requests that succeeded.
    ok_requests: AtomicU64,
    /// Messages whose request failed before a response (connection, timeout, route).
    send_failed: AtomicU64,
    /// Messages the broker answered with an error code.
    response_failed: AtomicU64,
    /// Largest request latency since the last report, µs.
    interval_max_us: AtomicU64,
    hist: Histogram,
    errors_logged: AtomicU64,
    checks: AtomicU64,
    commits: AtomicU64,
    rollbacks: AtomicU64,
    unknowns: AtomicU64,
}

impl SendStats {
    fn new() -> SendStats {
        SendStats {
            ok_messages: AtomicU64::new(0),
            ok_requests: AtomicU64::new(0),
            send_failed: AtomicU64::new(0),
            response_failed: AtomicU64::new(0),
            interval_max_us: AtomicU64::new(0),
            hist: Histogram::new(),
            errors_logged: AtomicU64::new(0),
            checks: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            rollbacks: AtomicU64::new(0),
            unknowns: AtomicU64::new(0),
        }
    }

    fn record<T>(&self, started: Instant, messages: u64, result: &Result<T, ClientError>) {
        match result {
            Ok(_) => {
                let us = started.elapsed().as_micros() as u64;
                self.hist.record(us);
                self.interval_max_us.fetch_max(us, Ordering::Relaxed);
                self.ok_requests.fetch_add(1, Ordering::Relaxed);
                self.ok_messages.fetch_add(messages, Ordering::Relaxed);
            }
            Err(e) => {
                if matches!(e, ClientError::Broker { .. }) {
                    self.response_failed.fetch_add(messages, Ordering::Relaxed);
                } else {
                    self.send_failed.fetch_add(messages, Ordering::Relaxed);
                }
                if self.errors_logged.fetch_add(1, Ordering::Relaxed) < 10 {
                    tracing::warn!(error = %e, "send failed");
                }
            }
        }
    }
}

/// Hands out message budgets until the count, the duration or Ctrl-C ends the run.
struct Budget {
    remaining: Option<AtomicU64>,
    deadline: Option<Instant>,
    stop: Arc<AtomicBool>,
}

impl Budget {
    fn new(messages: Option<u64>, duration: Option<Duration>, stop: Arc<AtomicBool>) -> Budget {
        Budget { remaining: messages.map(AtomicU64::new), deadline: duration.map(|d| Instant::now() + d), stop }
    }

    fn over(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Up to `want` messages to send, or `None` when the run is over.
    fn claim(&self, want: u64) -> Option<u64> {
        if self.over() {
            return None;
        }
        let Some(remaining) = &self.remaining else { return Some(want) };
        let mut cur = remaining.load(Ordering::Relaxed);
        loop {
            if cur == 0 {
                return None;
            }
            let take = want.min(cur);
            match remaining.compare_exchange_weak(cur, cur - take, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(take),
                Err(now) => cur = now,
            }
        }
    }
}

/// Builds benchmark messages: the body Java's benchmark sends ("hello baby" repeated), optional
/// key and rotating tags.
struct MessageFactory {
    topic: String,
    body: broker::client::Bytes,
    keys: bool,
    tag_count: u64,
    seq: AtomicU64,
}

impl MessageFactory {
    fn new(args: &Args) -> MessageFactory {
        let body: Vec<u8> = b"hello baby".iter().copied().cycle().take(args.size).collect();
        MessageFactory {
            topic: args.topic.clone(),
            body: body.into(),
            keys: args.keys,
            tag_count: args.tag_count,
            seq: AtomicU64::new(0),
        }
    }

    fn one(&self) -> Message {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut m = Message::new(self.topic.clone(), self.body.clone());
        if self.tag_count > 0 {
            m = m.with_tags(format!("tag{}", seq % self.tag_count));
        }
        if self.keys {
            m = m.with_keys([format!("{}-{seq}", now_ms() / 1000)]);
        }
        m
    }

    fn many(&self, n: u64) -> Vec<Message> {
        (0..n).map(|_| self.one()).collect()
    }
}

struct TransactionChecks {
    stats: Arc<SendStats>,
    rollback_rate: f64,
    unknown_rate: f64,
    rng: std::sync::Mutex<Rng>,
}

impl TransactionListener for TransactionChecks {
    fn check(&self, _msg: &MessageExt) -> TransactionState {
        self.stats.checks.fetch_add(1, Ordering::Relaxed);
        let r = self.rng.lock().map(|mut g| g.next_f64()).unwrap_or(1.0);
        decide(r, self.rollback_rate, self.unknown_rate)
    }
}

fn decide(r: f64, rollback_rate: f64, unknown_rate: f64) -> TransactionState {
    if r < rollback_rate {
        TransactionState::Rollback
    } else if r < rollback_rate + unknown_rate {
        TransactionState::Unknown
    } else {
        TransactionState::Commit
    }
}

/// xorshift64*: enough randomness for commit/rollback choices.
struct Rng(u64);

impl Rng {
    fn seeded(salt: u64) -> Rng {
        Rng((SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos() as u64
            ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            | 1)
    }

    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

async fn run_producer(args: &Args, client: MqClient, stop: Arc<AtomicBool>) -> anyhow::Result<bool> {
    let transactional = args.mode == Mode::TransactionProducer;
    let group = args.group.clone().unwrap_or_else(|| {
        if transactional { "benchmark_transaction_producer".into() } else { "benchmark_producer".into() }
    });
    let producer = Producer::new(client.clone(), group);
    let stats = Arc::new(SendStats::new());
    let queues = producer.publish_queues(&args.topic).await.with_context(|| format!("route of {}", args.topic))?;
    tracing::info!(topic = %args.topic, queues = queues.len(), "route found");
    let heartbeat = if transactional {
        producer.set_transaction_listener(Arc::new(TransactionChecks {
            stats: stats.clone(),
            rollback_rate: args.check_rollback_rate,
            unknown_rate: args.check_unknown_rate,
            rng: std::sync::Mutex::new(Rng::seeded(7)),
        }));
        // The broker sends checks to a connection that announced the group in a heartbeat.
        Some(client.spawn_heartbeat(Duration::from_secs(30)))
    } else {
        None
    };
    let factory = Arc::new(MessageFactory::new(args));
    let budget = Arc::new(Budget::new(args.messages, args.duration, stop));
    let started = Instant::now();
    let reporter = tokio::spawn(report_sends(stats.clone(), transactional));

    let mut tasks = Vec::new();
    if args.in_flight > 0 && !transactional {
        tasks.push(tokio::spawn(async_driver(
            producer.clone(),
            factory.clone(),
            budget.clone(),
            stats.clone(),
            args.in_flight,
            args.batch as u64,
        )));
    } else {
        for i in 0..args.threads {
            let (producer, factory, budget, stats) = (producer.clone(), factory.clone(), budget.clone(), stats.clone());
            let a = args.clone();
            tasks.push(tokio::spawn(async move {
                if transactional {
                    transaction_worker(producer, factory, budget, stats, &a, i as u64).await
                } else {
                    sync_worker(producer, factory, budget, stats, a.batch as u64, a.oneway).await
                }
            }));
        }
    }
    for t in tasks {
        t.await.context("a sending task failed")?;
    }
    if args.oneway {
        // Oneway requests are only queued; a request with a response on the same connections
        // (a heartbeat) returns after every earlier frame went out.
        if let Err(e) = client.heartbeat().await {
            tracing::warn!(error = %e, "heartbeat after the oneway sends failed");
        }
    }
    let elapsed = started.elapsed();
    reporter.abort();
    if transactional {
        // Leave the checks a moment to arrive for the last unknown transactions.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Some(h) = heartbeat {
        h.abort();
    }

    let ok = stats.ok_messages.load(Ordering::Relaxed);
    let send_failed = stats.send_failed.load(Ordering::Relaxed);
    let response_failed = stats.response_failed.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64().max(1e-9);
    let lat = stats.hist.summary();
    let mode = if transactional {
        "tproducer"
    } else if args.oneway {
        "oneway"
    } else if args.in_flight > 0 {
        "async"
    } else {
        "sync"
    };
    if args.json {
        println!(
            "{{\"mode\":\"{}\",\"send\":\"{mode}\",\"topic\":{},\"threads\":{},\"in_flight\":{},\"batch\":{},\
             \"message_size\":{},\"messages\":{ok},\"requests\":{},\"send_failed\":{send_failed},\
             \"response_failed\":{response_failed},\"elapsed_s\":{secs:.3},\"msgs_per_s\":{:.1},\
             \"checks\":{},\"commits\":{},\"rollbacks\":{},\"unknowns\":{},\"latency_ms\":{}}}",
            if transactional { "tproducer" } else { "producer" },
            json_string(&args.topic),
            args.threads,
            args.in_flight,
            args.batch,
            args.size,
            stats.ok_requests.load(Ordering::Relaxed),
            ok as f64 / secs,
            stats.checks.load(Ordering::Relaxed),
            stats.commits.load(Ordering::Relaxed),
            stats.rollbacks.load(Ordering::Relaxed),
            stats.unknowns.load(Ordering::Relaxed),
            lat.json()
        );
    } else {
        println!(
            "Summary: {mode} send to {} ({} threads, {} in flight, batch {}, {} byte bodies): {ok} messages in {secs:.3} s = {:.1} msgs/s; Send Failed: {send_failed} Response Failed: {response_failed}",
            args.topic,
            args.threads,
            args.in_flight,
            args.batch,
            args.size,
            ok as f64 / secs
        );
        println!("Send RT(ms) per request: {}", lat.text());
        if transactional {
            println!(
                "Transactions: commit {} rollback {} unknown {}; broker checks answered: {}",
                stats.commits.load(Ordering::Relaxed),
                stats.rollbacks.load(Ordering::Relaxed),
                stats.unknowns.load(Ordering::Relaxed),
                stats.checks.load(Ordering::Relaxed)
            );
        }
    }
    Ok(ok > 0 && send_failed == 0 && response_failed == 0)
}

async fn sync_worker(
    producer: Producer,
    factory: Arc<MessageFactory>,
    budget: Arc<Budget>,
    stats: Arc<SendStats>,
    batch: u64,
    oneway: bool,
) {
    while let Some(n) = budget.claim(batch) {
        let started = Instant::now();
        if oneway {
            let r = producer.send_oneway(factory.one()).await;
            stats.record(started, n, &r);
        } else if batch > 1 {
            let r = producer.send_batch(factory.many(n)).await;
            stats.record(started, n, &r);
        } else {
            let r = producer.send(factory.one()).await;
            stats.record(started, n, &r);
        }
    }
}

async fn async_driver(
    producer: Producer,
    factory: Arc<MessageFactory>,
    budget: Arc<Budget>,
    stats: Arc<SendStats>,
    in_flight: usize,
    batch: u64,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { break };
        let Some(n) = budget.claim(batch) else { break };
        let send =
            if batch > 1 { producer.send_batch_async(factory.many(n)) } else { producer.send_async(factory.one()) };
        let stats = stats.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r: Result<SendResult, ClientError> = send.await;
            stats.record(started, n, &r);
            drop(permit);
        });
    }
    // Wait for the sends still in flight.
    let _ = slots.acquire_many(in_flight as u32).await;
}

async fn transaction_worker(
    producer: Producer,
    factory: Arc<MessageFactory>,
    budget: Arc<Budget>,
    stats: Arc<SendStats>,
    args: &Args,
    salt: u64,
) {
    let mut rng = Rng::seeded(salt + 1000);
    while budget.claim(1).is_some() {
        let r = rng.next_f64();
        let started = Instant::now();
        let (rollback, unknown) = (args.send_rollback_rate, args.send_unknown_rate);
        let result = producer.send_in_transaction(factory.one(), |_, _| decide(r, rollback, unknown)).await;
        if let Ok(t) = &result {
            let counter = match t.state {
                TransactionState::Commit => &stats.commits,
                TransactionState::Rollback => &stats.rollbacks,
                TransactionState::Unknown => &stats.unknowns,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        stats.record(started, 1, &result);
    }
}

/// Prints Java's benchmark line every second.
async fn report_sends(stats: Arc<SendStats>, transactional: bool) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = (0u64, 0u64, 0u64);
    let mut last_at = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let ok = stats.ok_messages.load(Ordering::Relaxed);
        let requests = stats.ok_requests.load(Ordering::Relaxed);
        let rt_sum = stats.hist.sum.load(Ordering::Relaxed);
        let secs = now.duration_since(last_at).as_secs_f64().max(1e-9);
        let tps = ((ok - last.0) as f64 / secs).round() as u64;
        let avg_ms =
            if requests > last.1 { (rt_sum - last.2) as f64 / (requests - last.1) as f64 / 1000.0 } else { 0.0 };
        let max_ms = stats.interval_max_us.swap(0, Ordering::Relaxed) as f64 / 1000.0;
        let mut line = format!(
            "Current Time: {} Send TPS: {tps} Max RT(ms): {:.0} Average RT(ms): {avg_ms:7.3} Send Failed: {} Response Failed: {}",
            human_time(),
            max_ms.ceil(),
            stats.send_failed.load(Ordering::Relaxed),
            stats.response_failed.load(Ordering::Relaxed)
        );
        if transactional {
            line.push_str(&format!(" Check: {}", stats.checks.load(Ordering::Relaxed)));
        }
        eprintln!("{line}");
        last = (ok, requests, rt_sum);
        last_at = now;
    }
}

// ---------------------------------------------------------------------------------------------
// Consumer

struct ConsumeStats {
    messages: AtomicU64,
    pull_errors: AtomicU64,
    /// Born-to-consumer latency, µs.
    b2c: Histogram,
    /// Store-to-consumer latency, µs.
    s2c: Histogram,
    interval_b2c_max_us: AtomicU64,
    interval_s2c_max_us: AtomicU64,
    /// Microseconds since the start when the last counted message arrived.
    last_message_us: AtomicU64,
}

async fn run_consumer(args: &Args, client: MqClient, stop: Arc<AtomicBool>) -> anyhow::Result<bool> {
    let group = args.group.clone().unwrap_or_else(|| "benchmark_consumer".into());
    let options = PullConsumerOptions {
        consume_from_where: if args.from_first { ConsumeFromWhere::FirstOffset } else { ConsumeFromWhere::LastOffset },
        ..PullConsumerOptions::default()
    };
    let consumer = Arc::new(PullConsumer::with_options(client.clone(), group, options));
    consumer.subscribe(&args.topic, &args.expression);
    // As Java's consumers do, wait for a topic that has no route yet (a producer may create it).
    let wait_until = args.duration.map(|d| Instant::now() + d);
    let mut warned = false;
    let queues = loop {
        match consumer.queues(&args.topic).await {
            Ok(q) if !q.is_empty() => break q,
            Ok(_) | Err(ClientError::NoRoute { .. })
                if !stop.load(Ordering::Relaxed) && wait_until.is_none_or(|d| Instant::now() < d) =>
            {
                if !warned {
                    eprintln!("mqbench: topic {} has no route (readable queues) yet; waiting", args.topic);
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Ok(_) => bail!("topic {} has no readable queues", args.topic),
            Err(e) => return Err(e).with_context(|| format!("route of {}", args.topic)),
        }
    };
    if let Err(e) = consumer.heartbeat().await {
        tracing::warn!(error = %e, "first heartbeat failed");
    }
    let heartbeat = client.spawn_heartbeat(Duration::from_secs(30));
    let mut starts = Vec::with_capacity(queues.len());
    for q in &queues {
        let offset = if args.from_first {
            client.min_offset(q).await.with_context(|| format!("min offset of {q:?}"))?
        } else {
            consumer.start_offset(q).await.with_context(|| format!("start offset of {q:?}"))?
        };
        starts.push(offset);
    }
    tracing::info!(queues = queues.len(), ?starts, "pulling");

    let stats = Arc::new(ConsumeStats {
        messages: AtomicU64::new(0),
        pull_errors: AtomicU64::new(0),
        b2c: Histogram::new(),
        s2c: Histogram::new(),
        interval_b2c_max_us: AtomicU64::new(0),
        interval_s2c_max_us: AtomicU64::new(0),
        last_message_us: AtomicU64::new(0),
    });
    let offsets: Arc<Vec<AtomicU64>> = Arc::new(starts.iter().map(|o| AtomicU64::new(*o)).collect());
    let done = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let limit = args.messages;
    let mut pullers = Vec::new();
    for (i, q) in queues.iter().enumerate() {
        let (consumer, stats, offsets, done, q) =
            (consumer.clone(), stats.clone(), offsets.clone(), done.clone(), q.clone());
        pullers.push(tokio::spawn(async move {
            let mut offset = offsets[i].load(Ordering::Relaxed);
            let mut errors_logged = 0;
            loop {
                match consumer.pull(&q, offset).await {
                    Ok(r) => {
                        if r.status == PullStatus::Found && !r.messages.is_empty() {
                            let now_us = now_us();
                            for m in &r.messages {
                                let b2c = now_us.saturating_sub(m.born_timestamp.max(0) as u64 * 1000);
                                let s2c = now_us.saturating_sub(m.store_timestamp.max(0) as u64 * 1000);
                                stats.b2c.record(b2c);
                                stats.s2c.record(s2c);
                                stats.interval_b2c_max_us.fetch_max(b2c, Ordering::Relaxed);
                                stats.interval_s2c_max_us.fetch_max(s2c, Ordering::Relaxed);
                            }
                            let total = stats.messages.fetch_add(r.messages.len() as u64, Ordering::Relaxed)
                                + r.messages.len() as u64;
                            stats.last_message_us.fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                            if limit.is_some_and(|l| total >= l) {
                                done.notify_one();
                            }
                        }
                        if r.status == PullStatus::OffsetIllegal {
                            tracing::warn!(queue = ?q, offset, next = r.next_begin_offset, "offset moved");
                        }
                        offset = r.next_begin_offset;
                        offsets[i].store(offset, Ordering::Relaxed);
                    }
                    Err(e) => {
                        stats.pull_errors.fetch_add(1, Ordering::Relaxed);
                        if errors_logged < 5 {
                            errors_logged += 1;
                            tracing::warn!(queue = ?q, error = %e, "pull failed");
                        }
                        tokio::time::sleep(Duration::from_millis(1000)).await;
                    }
                }
            }
        }));
    }
    let committer = {
        let (consumer, offsets, queues) = (consumer.clone(), offsets.clone(), queues.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                for (i, q) in queues.iter().enumerate() {
                    let _ = consumer.commit_offset(q, offsets[i].load(Ordering::Relaxed)).await;
                }
            }
        })
    };
    let reporter = tokio::spawn(report_consumption(stats.clone()));

    let deadline = args.duration.map(|d| started + d);
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = done.notified() => break,
            _ = poll.tick() => {
                if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
            }
        }
    }
    let wall = started.elapsed();
    for p in &pullers {
        p.abort();
    }
    reporter.abort();
    committer.abort();
    heartbeat.abort();
    for (i, q) in queues.iter().enumerate() {
        if let Err(e) = client.update_consumer_offset(consumer.group(), q, offsets[i].load(Ordering::Relaxed)).await {
            tracing::warn!(queue = ?q, error = %e, "committing the final offset failed");
        }
    }

    let messages = stats.messages.load(Ordering::Relaxed);
    let errors = stats.pull_errors.load(Ordering::Relaxed);
    // With -m the rate runs to the message that reached the count; otherwise to the end.
    let secs = if limit.is_some_and(|l| messages >= l) {
        stats.last_message_us.load(Ordering::Relaxed) as f64 / 1e6
    } else {
        wall.as_secs_f64()
    }
    .max(1e-9);
    let b2c = stats.b2c.summary();
    let s2c = stats.s2c.summary();
    if args.json {
        println!(
            "{{\"mode\":\"consumer\",\"topic\":{},\"group\":{},\"queues\":{},\"messages\":{messages},\
             \"pull_errors\":{errors},\"elapsed_s\":{secs:.3},\"msgs_per_s\":{:.1},\"b2c_latency_ms\":{},\
             \"s2c_latency_ms\":{}}}",
            json_string(&args.topic),
            json_string(consumer.group()),
            queues.len(),
            messages as f64 / secs,
            b2c.json(),
            s2c.json()
        );
    } else {
        println!(
            "Summary: consumed {messages} messages from {} ({} queues, group {}) in {secs:.3} s = {:.1} msgs/s; pull errors: {errors}",
            args.topic,
            queues.len(),
            consumer.group(),
            messages as f64 / secs
        );
        println!("Born-to-consumer RT(ms): {}", b2c.text());
        println!("Store-to-consumer RT(ms): {}", s2c.text());
    }
    let reached = limit.is_none_or(|l| messages >= l);
    Ok(messages > 0 && errors == 0 && reached)
}

/// Prints Java's consumer benchmark line every second.
async fn report_consumption(stats: Arc<ConsumeStats>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = (0u64, 0u64, 0u64);
    let mut last_at = Instant::now();
    loop {
        tick.tick().await;
        let now = Instant::now();
        let n = stats.messages.load(Ordering::Relaxed);
        let b2c_sum = stats.b2c.sum.load(Ordering::Relaxed);
        let s2c_sum = stats.s2c.sum.load(Ordering::Relaxed);
        let secs = now.duration_since(last_at).as_secs_f64().max(1e-9);
        let delta = n - last.0;
        let (b2c_avg, s2c_avg) = if delta > 0 {
            ((b2c_sum - last.1) as f64 / delta as f64 / 1000.0, (s2c_sum - last.2) as f64 / delta as f64 / 1000.0)
        } else {
            (0.0, 0.0)
        };
        eprintln!(
            "Current Time: {} Consume TPS: {} Average(B2C) RT(ms): {b2c_avg:7.3} Average(S2C) RT(ms): {s2c_avg:7.3} MAX(B2C) RT(ms): {} MAX(S2C) RT(ms): {} Pull Failed: {}",
            human_time(),
            (delta as f64 / secs).round() as u64,
            stats.interval_b2c_max_us.swap(0, Ordering::Relaxed) / 1000,
            stats.interval_s2c_max_us.swap(0, Ordering::Relaxed) / 1000,
            stats.pull_errors.load(Ordering::Relaxed)
        );
        last = (n, b2c_sum, s2c_sum);
        last_at = now;
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

fn now_ms() -> u64 {
    now_us() / 1000
}

/// `yyyy-MM-dd HH:mm:ss,SSS` in UTC (Java's benchmark prints local time in this shape).
fn human_time() -> String {
    let ms = now_ms();
    let (days, rem) = ((ms / 86_400_000) as i64, ms % 86_400_000);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02},{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_monotonic_and_precise() {
        let mut last = 0;
        for v in (0..2_000_000u64).step_by(37) {
            let i = Histogram::index(v);
            assert!(i >= last);
            last = i;
            let up = Histogram::upper(i);
            assert!(up >= v, "{v} -> {up}");
            assert!((up - v) as f64 <= v as f64 / 64.0 + 1.0, "{v} -> {up}");
        }
        let h = Histogram::new();
        for v in 1..=1000 {
            h.record(v);
        }
        assert!((h.quantile(0.5) as i64 - 500).abs() <= 8);
        assert!((h.quantile(0.99) as i64 - 990).abs() <= 16);
        assert_eq!(h.quantile(1.0), 1000);
    }

    #[test]
    fn budgets_stop_at_the_count() {
        let b = Budget::new(Some(10), None, Arc::new(AtomicBool::new(false)));
        assert_eq!(b.claim(4), Some(4));
        assert_eq!(b.claim(4), Some(4));
        assert_eq!(b.claim(4), Some(2));
        assert_eq!(b.claim(4), None);
    }

    #[test]
    fn flags_parse_like_the_java_tools() {
        let a = Args::parse(
            "producer -n 127.0.0.1:9876 -t T -w 4 -s 128 -k true -c 3 -b 32 -m 1000 --json"
                .split(' ')
                .map(String::from)
                .collect(),
        )
        .unwrap()
        .unwrap();
        assert_eq!((a.threads, a.size, a.keys, a.tag_count, a.batch, a.messages), (4, 128, true, 3, 32, Some(1000)));
        assert!(a.json);
        assert!(Args::parse(vec!["producer".into(), "-o".into(), "-b".into(), "2".into()]).is_err());
        assert!(Args::parse(vec!["nope".into()]).is_err());
        assert!(human_time().starts_with("20"));
    }
}
