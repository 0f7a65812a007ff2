//! Command-line options, parsed by hand: a few flags need no framework.

use ratelimit_core::{AlgorithmKind, Quota, Rate};

/// Where the limiter's state lives during a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BackendKind {
    Memory,
    Redis,
}

/// The options of `ratelimit replay`.
#[derive(Debug, Clone)]
pub(crate) struct ReplayArgs {
    pub(crate) algorithm: AlgorithmKind,
    pub(crate) quota: Quota,
    pub(crate) backend: BackendKind,
    pub(crate) redis_url: Option<String>,
    pub(crate) prefix: Option<String>,
    pub(crate) summary: bool,
}

impl ReplayArgs {
    /// Parses the arguments after `replay`; `Ok(None)` asks for the usage.
    pub(crate) fn parse(args: &[String]) -> Result<Option<Self>, String> {
        let (mut algorithm, mut capacity, mut rate) = (None, None, None);
        let (mut backend, mut redis_url, mut prefix, mut summary) =
            (BackendKind::Memory, None, None, false);
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = || {
                inline
                    .clone()
                    .or_else(|| rest.next().cloned())
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag {
                "--help" | "-h" => return Ok(None),
                "--summary" => summary = true,
                "--algorithm" => {
                    algorithm = Some(match value()?.as_str() {
                        "token-bucket" => AlgorithmKind::TokenBucket,
                        "leaky-bucket" => AlgorithmKind::LeakyBucket,
                        other => {
                            return Err(format!(
                                "--algorithm must be token-bucket or leaky-bucket, not {other:?}"
                            ));
                        }
                    });
                }
                "--capacity" => {
                    let text = value()?;
                    capacity =
                        Some(text.parse::<u64>().map_err(|_| {
                            format!("--capacity must be a whole number, not {text:?}")
                        })?);
                }
                "--rate" => {
                    let text = value()?;
                    rate = Some(
                        text.parse::<Rate>()
                            .map_err(|e| format!("--rate {text:?}: {e}"))?,
                    );
                }
                "--backend" => {
                    backend = match value()?.as_str() {
                        "memory" => BackendKind::Memory,
                        "redis" => BackendKind::Redis,
                        other => {
                            return Err(format!(
                                "--backend must be memory or redis, not {other:?}"
                            ));
                        }
                    };
                }
                "--redis-url" => redis_url = Some(value()?),
                "--prefix" => prefix = Some(value()?),
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        let algorithm = algorithm.ok_or("--algorithm is required")?;
        let capacity = capacity.ok_or("--capacity is required")?;
        let rate = rate.ok_or("--rate is required")?;
        let quota = Quota::new(capacity, rate).map_err(|e| format!("invalid limit: {e}"))?;
        if backend == BackendKind::Redis && redis_url.is_none() {
            return Err("--backend redis needs --redis-url".to_owned());
        }
        if backend == BackendKind::Memory && (redis_url.is_some() || prefix.is_some()) {
            return Err("--redis-url and --prefix need --backend redis".to_owned());
        }
        Ok(Some(Self {
            algorithm,
            quota,
            backend,
            redis_url,
            prefix,
            summary,
        }))
    }
}
