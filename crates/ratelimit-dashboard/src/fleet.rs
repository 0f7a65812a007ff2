//! The fleet view (feature `redis`): every process [publishes](Publisher)
//! its recorder's [`Snapshot`] to Redis at a low fixed rate, one `SET …
//! PX` per interval, so that a process that dies disappears with its key's
//! TTL; the [`Fleet`] reads them all back, merges them, and adds what
//! Redis knows of the limiters' keys under the prefix from a bounded
//! `SCAN` pass (never `KEYS`).
//!
//! Published keys are `<prefix>#dashboard#<process>`: without a `|`, they
//! can never be a limiter's key (`<prefix>|<key>`, see docs/redis.md).

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use redis::{Client, Connection};

use crate::recorder::Recorder;
use crate::snapshot::{QuotaInfo, RedisKeyInfo, RedisView, Second, Snapshot, TopKey};

/// How many seconds of history a process publishes.
const PUBLISHED_SECONDS: usize = 120;
/// The most limiter keys one `SCAN` pass reads.
const SCAN_BUDGET: usize = 10_000;
/// How many keys closest to empty the page lists.
const CLOSEST: usize = 10;
/// How many top denied keys the merged view keeps.
const TOP: usize = 64;

/// A fleet view or a publisher could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum FleetError {
    /// The prefix cannot be a limiter prefix: 1 to 256 bytes without `|`,
    /// `{`, `}` or control characters.
    InvalidPrefix(String),
    /// Redis refused or could not be reached.
    Redis(redis::RedisError),
}

impl core::fmt::Display for FleetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::InvalidPrefix(p) => write!(
                f,
                "invalid prefix {p:?}: 1 to 256 bytes without `|`, `{{`, `}}` or control characters"
            ),
            Self::Redis(e) => write!(f, "Redis: {e}"),
        }
    }
}

impl core::error::Error for FleetError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::InvalidPrefix(_) => None,
            Self::Redis(e) => Some(e),
        }
    }
}

impl From<redis::RedisError> for FleetError {
    fn from(e: redis::RedisError) -> Self {
        Self::Redis(e)
    }
}

fn check_prefix(prefix: &str) -> Result<(), FleetError> {
    let ok = (1..=256).contains(&prefix.len())
        && !prefix
            .chars()
            .any(|c| matches!(c, '|' | '{' | '}') || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(FleetError::InvalidPrefix(prefix.to_owned()))
    }
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The Redis key a process publishes under.
fn published_key(prefix: &str, process: &str) -> String {
    format!("{prefix}#dashboard#{process}")
}

/// Publishes a recorder's numbers to Redis every interval, from a thread
/// of its own, until dropped.
#[derive(Debug)]
pub struct Publisher {
    stop: Arc<AtomicBool>,
    key: String,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Publisher {
    /// Starts publishing `recorder` under `prefix` (the limiters' prefix)
    /// every `every` (at least one second; 5 s is a good default), with a
    /// TTL of three intervals. `process` names this process (unique in
    /// the fleet: a host name and process id, say).
    ///
    /// # Errors
    /// [`FleetError::InvalidPrefix`]; [`FleetError::Redis`] when the first
    /// connection fails (later failures are retried at the next interval).
    pub fn start(
        recorder: &Recorder,
        client: Client,
        prefix: &str,
        process: &str,
        every: Duration,
    ) -> Result<Self, FleetError> {
        check_prefix(prefix)?;
        let every = every.max(Duration::from_secs(1));
        let mut connection = Some(client.get_connection_with_timeout(every)?);
        let key = published_key(prefix, process);
        let stop = Arc::new(AtomicBool::new(false));
        let (recorder, thread_key, thread_stop) =
            (recorder.clone(), key.clone(), Arc::clone(&stop));
        let ttl = every * 3;
        std::thread::Builder::new()
            .name("ratelimit-dashboard-publish".to_owned())
            .spawn(move || {
                while !thread_stop.load(Ordering::Relaxed) {
                    if connection.is_none() {
                        connection = client.get_connection_with_timeout(every).ok();
                    }
                    if let Some(c) = connection.as_mut() {
                        if publish(c, &recorder, &thread_key, ttl).is_err() {
                            connection = None;
                        }
                    }
                    std::thread::sleep(every);
                }
            })
            .map_err(|e| FleetError::Redis(redis::RedisError::from(e)))?;
        Ok(Self { stop, key })
    }

    /// The Redis key it publishes under.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// One publication: the recorder's snapshot (its last
/// 120 seconds) as JSON, `SET key value PX ttl`, sent as
/// one pipeline.
///
/// # Errors
/// Redis's.
pub fn publish(
    connection: &mut Connection,
    recorder: &Recorder,
    key: &str,
    ttl: Duration,
) -> redis::RedisResult<()> {
    let mut snapshot = recorder.snapshot();
    let skip = snapshot.series.len().saturating_sub(PUBLISHED_SECONDS);
    snapshot.series.drain(..skip);
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
    redis::pipe()
        .cmd("SET")
        .arg(key)
        .arg(snapshot.to_json())
        .arg("PX")
        .arg(ttl_ms)
        .ignore()
        .query::<()>(connection)
}

/// The merged view of every process publishing under a prefix, refreshed
/// from Redis by a thread of its own: every second the published numbers,
/// every five seconds a `SCAN` pass over the limiters' keys.
#[derive(Debug, Clone)]
pub struct Fleet {
    latest: Arc<Mutex<Snapshot>>,
    stop: Arc<AtomicBool>,
}

impl Fleet {
    /// [`start`](Self::start) with a client for `url`
    /// (`redis://host:port/db`).
    ///
    /// # Errors
    /// As [`start`](Self::start), and an invalid URL.
    pub fn open(url: &str, prefix: &str) -> Result<Self, FleetError> {
        Self::start(Client::open(url)?, prefix)
    }

    /// Starts reading the fleet publishing under `prefix`.
    ///
    /// # Errors
    /// [`FleetError::InvalidPrefix`]; [`FleetError::Redis`] when Redis
    /// cannot be reached at start.
    pub fn start(client: Client, prefix: &str) -> Result<Self, FleetError> {
        check_prefix(prefix)?;
        let mut connection = client.get_connection_with_timeout(Duration::from_secs(5))?;
        let first = read(&mut connection, prefix, None)?;
        let latest = Arc::new(Mutex::new(first));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_latest, thread_stop, prefix) =
            (Arc::clone(&latest), Arc::clone(&stop), prefix.to_owned());
        std::thread::Builder::new()
            .name("ratelimit-dashboard-fleet".to_owned())
            .spawn(move || {
                let mut connection = Some(connection);
                let mut round: u64 = 0;
                let mut redis_view: Option<RedisView> = None;
                while !thread_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(1));
                    round += 1;
                    if connection.is_none() {
                        connection = client
                            .get_connection_with_timeout(Duration::from_secs(5))
                            .ok();
                    }
                    let Some(c) = connection.as_mut() else {
                        continue;
                    };
                    let scan = round % 5 == 0;
                    match read(c, &prefix, if scan { None } else { redis_view.clone() }) {
                        Ok(snapshot) => {
                            redis_view.clone_from(&snapshot.redis);
                            *thread_latest.lock().unwrap_or_else(PoisonError::into_inner) =
                                snapshot;
                        }
                        Err(_) => connection = None,
                    }
                }
            })
            .map_err(|e| FleetError::Redis(redis::RedisError::from(e)))?;
        Ok(Self { latest, stop })
    }

    /// The merged numbers as last read.
    pub fn latest(&self) -> Snapshot {
        self.latest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops the refreshing thread (within a second).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[cfg(feature = "tower")]
impl crate::service::Source for Fleet {
    fn snapshot(&self) -> Snapshot {
        self.latest()
    }
}

/// Reads every published snapshot under `prefix` and merges them; with
/// `redis_view` `None`, also samples the limiters' keys (a `SCAN` pass).
///
/// # Errors
/// Redis's.
pub fn read(
    connection: &mut Connection,
    prefix: &str,
    redis_view: Option<RedisView>,
) -> redis::RedisResult<Snapshot> {
    let pattern = format!("{}*", glob_escape(&published_key(prefix, "")));
    let keys = scan(connection, &pattern, usize::MAX)?.0;
    let mut snapshots = Vec::with_capacity(keys.len());
    if !keys.is_empty() {
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&keys).query(connection)?;
        // A value that is not a snapshot (another writer's) is skipped.
        snapshots.extend(
            values
                .into_iter()
                .flatten()
                .filter_map(|v| serde_json::from_slice::<Snapshot>(&v).ok()),
        );
    }
    let mut merged = merge(&snapshots);
    merged.redis = Some(match redis_view {
        Some(view) => view,
        None => sample(connection, prefix, &merged.quotas)?,
    });
    Ok(merged)
}

/// `SCAN` with `pattern` until the end or `budget` keys.
fn scan(
    connection: &mut Connection,
    pattern: &str,
    budget: usize,
) -> redis::RedisResult<(Vec<Vec<u8>>, bool)> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(connection)?;
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            return Ok((keys, true));
        }
        if keys.len() >= budget {
            return Ok((keys, false));
        }
    }
}

/// Merges the snapshots of several processes: the per-second counts and
/// totals added, the top denied keys added by key (their state from the
/// latest denial), the quotas listed once by name.
#[must_use]
pub fn merge(snapshots: &[Snapshot]) -> Snapshot {
    let mut seconds: HashMap<u64, Second> = HashMap::new();
    let mut top: HashMap<(String, bool), TopKey> = HashMap::new();
    let mut quotas: Vec<QuotaInfo> = Vec::new();
    let mut out = Snapshot {
        source: "fleet".to_owned(),
        processes: snapshots.len() as u64,
        ..Snapshot::default()
    };
    for s in snapshots {
        out.now = out.now.max(s.now);
        out.span_secs = out.span_secs.max(s.span_secs);
        out.totals = out.totals.plus(s.totals);
        for second in &s.series {
            let slot = seconds.entry(second.t).or_insert(Second {
                t: second.t,
                ..Second::default()
            });
            slot.counts = slot.counts.plus(second.counts);
        }
        for k in &s.top_denied {
            top.entry((k.key.clone(), k.truncated))
                .and_modify(|m| {
                    m.count += k.count;
                    m.error += k.error;
                    if k.last_seen >= m.last_seen {
                        (m.remaining, m.limit, m.reset_after_ms, m.last_seen) =
                            (k.remaining, k.limit, k.reset_after_ms, k.last_seen);
                    }
                })
                .or_insert_with(|| k.clone());
        }
        for q in &s.quotas {
            if !quotas.iter().any(|x| x.name == q.name) {
                quotas.push(q.clone());
            }
        }
    }
    let mut series: Vec<Second> = seconds.into_values().collect();
    series.sort_by_key(|s| s.t);
    // Only seconds every process has had time to close: up to the oldest
    // of the processes' newest seconds (a process publishes every few
    // seconds; its newer ones are not known yet).
    if let Some(cut) = snapshots
        .iter()
        .filter_map(|s| s.series.last().map(|x| x.t))
        .min()
    {
        series.retain(|s| s.t <= cut);
    }
    out.series = series;
    let mut top: Vec<TopKey> = top.into_values().collect();
    top.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    top.truncate(TOP);
    out.top_denied = top;
    quotas.sort_by(|a, b| a.name.cmp(&b.name));
    out.quotas = quotas;
    out
}

/// A `SCAN` pass over the limiters' keys `<prefix>|…` (at most
/// [`SCAN_BUDGET`] keys), each read with `GET` in pipelines of 1000, with
/// the server's `TIME`: the count, and the keys whose state is furthest
/// ahead of now (closest to empty).
fn sample(
    connection: &mut Connection,
    prefix: &str,
    quotas: &[QuotaInfo],
) -> redis::RedisResult<RedisView> {
    let pattern = format!("{}|*", glob_escape(prefix));
    let (keys, complete) = scan(connection, &pattern, SCAN_BUDGET)?;
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query(connection)?;
    let now_ns = secs
        .saturating_mul(1_000_000_000)
        .saturating_add(micros * 1000);
    // With exactly one bucket quota in the fleet, units left can be
    // computed from the state; otherwise they are unknown.
    let buckets: Vec<&QuotaInfo> = quotas
        .iter()
        .filter(|q| q.algorithm.ends_with("bucket"))
        .collect();
    let bucket = match buckets.as_slice() {
        [q] if q.limit > 0 => Some((q.limit, q.period_ms.saturating_mul(1_000_000) / q.limit)),
        _ => None,
    };
    let mut ahead: Vec<(u64, &[u8])> = Vec::new();
    let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(1000) {
        let mut pipe = redis::pipe();
        for key in chunk {
            pipe.cmd("GET").arg(key);
        }
        values.extend(pipe.query::<Vec<Option<Vec<u8>>>>(connection)?);
    }
    for (key, value) in keys.iter().zip(&values) {
        let tat = value
            .as_deref()
            .and_then(|v| core::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let Some(tat) = tat {
            ahead.push((tat.saturating_sub(now_ns), &key[prefix.len() + 1..]));
        }
    }
    ahead.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let closest_to_empty = ahead
        .iter()
        .take(CLOSEST)
        .map(|&(ahead_ns, key)| RedisKeyInfo {
            key: String::from_utf8_lossy(key).into_owned(),
            reset_after_ms: ahead_ns / 1_000_000,
            remaining: bucket.map(|(capacity, interval_ns)| {
                // tau = C × T; units left ≈ (tau − (tat − now)) / T.
                let tau = capacity.saturating_mul(interval_ns);
                (tau.saturating_sub(ahead_ns) / interval_ns.max(1)).min(capacity)
            }),
        })
        .collect();
    Ok(RedisView {
        prefix: prefix.to_owned(),
        keys: keys.len() as u64,
        complete,
        closest_to_empty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Counts;

    fn process(now: u64, series: &[(u64, u64)], top: &[(&str, u64, u64)]) -> Snapshot {
        Snapshot {
            source: "process".into(),
            now,
            span_secs: 60,
            series: series
                .iter()
                .map(|&(t, denied)| Second {
                    t,
                    counts: Counts {
                        denied,
                        ..Counts::default()
                    },
                })
                .collect(),
            totals: Counts {
                denied: series.iter().map(|s| s.1).sum(),
                ..Counts::default()
            },
            top_denied: top
                .iter()
                .map(|&(k, count, seen)| TopKey {
                    key: k.into(),
                    truncated: false,
                    count,
                    error: 0,
                    remaining: seen,
                    limit: 5,
                    reset_after_ms: 0,
                    last_seen: seen,
                })
                .collect(),
            quotas: vec![],
            processes: 1,
            redis: None,
        }
    }

    #[test]
    fn processes_add_up() {
        let a = process(
            12,
            &[(10, 1), (11, 2), (12, 3)],
            &[("x", 5, 12), ("y", 1, 10)],
        );
        let b = process(11, &[(10, 10), (11, 20)], &[("x", 7, 11)]);
        let m = merge(&[a, b]);
        assert_eq!(m.processes, 2);
        assert_eq!(m.now, 12);
        assert_eq!(m.totals.denied, 36);
        // Second 12 is cut: b has not published it yet.
        let series: Vec<(u64, u64)> = m.series.iter().map(|s| (s.t, s.counts.denied)).collect();
        assert_eq!(series, [(10, 11), (11, 22)]);
        let top: Vec<(&str, u64, u64)> = m
            .top_denied
            .iter()
            .map(|k| (k.key.as_str(), k.count, k.last_seen))
            .collect();
        assert_eq!(top, [("x", 12, 12), ("y", 1, 10)]);
    }

    #[test]
    fn prefixes_are_checked_and_globs_escaped() {
        assert!(check_prefix("api").is_ok());
        for bad in ["", "a|b", "a{b", "a\nb"] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
        assert_eq!(glob_escape("a*b?[c]"), "a\\*b\\?\\[c\\]");
    }
}
