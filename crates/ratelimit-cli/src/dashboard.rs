//! `ratelimit dashboard`: the fleet view, the dashboard's page for every
//! process publishing under a Redis prefix, served until interrupted.
//! Loopback by default; any other address needs a bearer token.

use core::net::SocketAddr;

use clap::Args;
use ratelimit_dashboard::{Access, Dashboard, Fleet, FleetError};

use crate::Failure;

/// The environment variable that may hold the token instead of `--token`
/// (which other users of the machine can read in the process list).
const TOKEN_ENV: &str = "RATELIMIT_DASHBOARD_TOKEN";

/// `ratelimit dashboard`'s options.
#[derive(Debug, Args)]
#[command(after_help = "\
Serves the dashboard page (decisions per second, the most denied keys, the
quotas, and what Redis holds under the prefix) for every process that
publishes its recorder's numbers under the prefix (see docs/operations.md).
Open http://LISTEN/ in a browser; with a token, http://LISTEN/#token=TOKEN.

Exit status: 1 when Redis cannot be reached or the address cannot be
bound; 2 for a malformed command line.")]
pub(crate) struct DashboardArgs {
    /// The Redis the limiters use, e.g. redis://127.0.0.1:6379/0
    #[arg(long, value_name = "URL")]
    pub(crate) redis_url: String,
    /// The limiters' key prefix
    #[arg(long, value_name = "P", default_value = "ratelimit")]
    pub(crate) prefix: String,
    /// The address to serve the page on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    pub(crate) listen: SocketAddr,
    /// A bearer token that lets non-loopback clients read the numbers
    /// (required to listen on a non-loopback address; or set
    /// RATELIMIT_DASHBOARD_TOKEN)
    #[arg(long, value_name = "TOKEN")]
    pub(crate) token: Option<String>,
}

fn failure(e: FleetError) -> Failure {
    match e {
        FleetError::InvalidPrefix(_) => Failure::Usage(e.to_string()),
        _ => Failure::Runtime(e.to_string()),
    }
}

/// Serves the fleet view until interrupted.
pub(crate) fn run(args: &DashboardArgs) -> Result<(), Failure> {
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var(TOKEN_ENV).ok())
        .filter(|t| !t.is_empty());
    if !args.listen.ip().is_loopback() && token.is_none() {
        return Err(Failure::Usage(format!(
            "listening on {} (not loopback) needs a bearer token: --token or {TOKEN_ENV}",
            args.listen
        )));
    }
    let fleet = Fleet::open(&args.redis_url, &args.prefix).map_err(failure)?;
    let mut access = Access::loopback();
    if let Some(token) = &token {
        access = access.bearer_token(token);
    }
    let listener = std::net::TcpListener::bind(args.listen)
        .map_err(|e| Failure::Runtime(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    eprintln!(
        "ratelimit dashboard: http://{addr}/ (prefix {:?}){}",
        args.prefix,
        if token.is_some() {
            ", token required off loopback"
        } else {
            ""
        }
    );
    ratelimit_dashboard::serve_blocking(listener, Dashboard::new(fleet).access(access))
        .map_err(|e| Failure::Runtime(e.to_string()))
}
