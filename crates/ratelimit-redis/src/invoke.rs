//! How a [`Call`] reaches the server: `FCALL` of the crate's Redis 7
//! function library, or `EVALSHA` of its script ([`ServerScripts`]).
//!
//! Functions: the first `FCALL` on a server without the library is
//! answered `Function not found` (the function did not run); the library
//! is loaded (`FUNCTION LOAD REPLACE` of its own versioned name; on a
//! cluster, the client sends it to every master) and the call sent once
//! more. A server that lost the library (a restart without persistence,
//! `FUNCTION FLUSH`) is handled the same way, at its next call.
//!
//! `EVALSHA`: `NOSCRIPT` (the script did not run) is answered by
//! `SCRIPT LOAD` and the call sent once more.
//!
//! [`ServerScripts::Auto`] uses functions until the server shows it cannot
//! run them: `FCALL` is an unknown command (Redis before 7) or refused by
//! an ACL, or `FUNCTION LOAD` fails with an error reply (refused by an
//! ACL, or any other refusal but a passing state of the server: out of
//! memory, busy, loading, a replica, a cluster reconfiguring, which fail
//! the call instead). From then on, every call of that pool or
//! connection uses `EVALSHA`; the call that found out is sent as
//! `EVALSHA` at once. Each of these retries follows a reply saying that
//! nothing ran, so no request is ever counted twice.

use core::sync::atomic::{AtomicBool, Ordering};

use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind, Value};

use crate::script::{self, Call};

/// Which way a pool or connection runs the crate's scripts on the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerScripts {
    /// Redis 7 functions (`FCALL`) where the server runs them, else
    /// `EVALSHA`: found out at the first call, once per pool or
    /// connection. The default.
    #[default]
    Auto,
    /// Always `FCALL` (Redis 7 or later, `FUNCTION LOAD` allowed to the
    /// user): a server that cannot run them fails every call.
    Functions,
    /// Always `EVALSHA` (and `SCRIPT LOAD`): Redis before 7, or a server
    /// whose operators do not allow functions.
    Eval,
}

/// The way one pool or connection runs scripts, shared by its calls.
#[derive(Debug, Default)]
pub(crate) struct Path {
    chosen: ServerScripts,
    /// `Auto` found that the server cannot run the library.
    fell_back: AtomicBool,
}

impl Path {
    pub(crate) fn new(chosen: ServerScripts) -> Self {
        Self {
            chosen,
            fell_back: AtomicBool::new(false),
        }
    }

    fn functions(&self) -> bool {
        match self.chosen {
            ServerScripts::Functions => true,
            ServerScripts::Eval => false,
            // Relaxed: a flag; a call that misses it tries FCALL once more.
            ServerScripts::Auto => !self.fell_back.load(Ordering::Relaxed),
        }
    }

    /// Whether the path currently in use is functions (for the bench and
    /// `Debug`).
    pub(crate) fn uses_functions(&self) -> bool {
        self.functions()
    }

    /// After `e` (the server refused functions): whether to fall back to
    /// `EVALSHA` for good.
    fn fall_back(&self, e: &RedisError) -> bool {
        if self.chosen != ServerScripts::Auto || !server_refusal(e) {
            return false;
        }
        self.fell_back.store(true, Ordering::Relaxed);
        #[cfg(feature = "tracing")]
        tracing::warn!(
            error = %e,
            "ratelimit-redis: the server cannot run the function library; using EVALSHA from now on"
        );
        true
    }
}

/// An error reply from the server itself (not a lost connection, a
/// timeout, a redirect, or a passing state of the server: out of memory,
/// busy with a long script, loading, a replica): the command did not run
/// and will not run if sent as it is again.
fn server_refusal(e: &RedisError) -> bool {
    if matches!(e.code(), Some("OOM" | "BUSY" | "READONLY")) {
        return false;
    }
    match e.kind() {
        ErrorKind::Server(
            ServerErrorKind::Moved
            | ServerErrorKind::Ask
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::BusyLoading,
        ) => false,
        ErrorKind::Server(_) => true,
        _ => false,
    }
}

/// `Function not found`: the library is not on that server (never loaded,
/// or lost). The function did not run.
fn function_missing(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
        && e.detail()
            .is_some_and(|d| d.starts_with("Function not found"))
}

/// `FCALL` itself refused: an unknown command (Redis before 7) or an ACL.
fn fcall_refused(e: &RedisError) -> bool {
    match e.kind() {
        ErrorKind::Server(ServerErrorKind::NoPerm) => true,
        ErrorKind::Server(ServerErrorKind::ResponseError) => {
            e.detail().is_some_and(|d| d.starts_with("unknown command"))
        }
        _ => false,
    }
}

/// What to do after `FCALL` failed with `e`.
enum Next {
    /// Load the library and send the call again.
    Load,
    /// Send it as `EVALSHA` (the server cannot run functions).
    Eval,
    /// Give `e` to the caller.
    Fail,
}

impl Path {
    fn after_fcall(&self, e: &RedisError) -> Next {
        if function_missing(e) {
            Next::Load
        } else if fcall_refused(e) && self.fall_back(e) {
            Next::Eval
        } else {
            Next::Fail
        }
    }

    /// Runs `call` on `con` (sync).
    pub(crate) fn run(
        &self,
        con: &mut dyn redis::ConnectionLike,
        call: &Call,
    ) -> RedisResult<Value> {
        if self.functions() {
            let fcall = call.fcall_cmd();
            match fcall.query::<Value>(con) {
                Ok(v) => return Ok(v),
                Err(e) => match self.after_fcall(&e) {
                    Next::Fail => return Err(e),
                    Next::Eval => {}
                    Next::Load => match script::function_load_cmd().query::<Value>(con) {
                        Ok(_) => return fcall.query(con),
                        Err(le) if self.fall_back(&le) => {}
                        Err(le) => return Err(le),
                    },
                },
            }
        }
        let eval = call.evalsha_cmd();
        match eval.query(con) {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                call.script_load_cmd().query::<Value>(con)?;
                eval.query(con)
            }
            other => other,
        }
    }

    /// Runs `call` on `con` (async).
    #[cfg(feature = "tokio")]
    pub(crate) async fn run_async<C: redis::aio::ConnectionLike>(
        &self,
        con: &mut C,
        call: &Call,
    ) -> RedisResult<Value> {
        if self.functions() {
            let fcall = call.fcall_cmd();
            match fcall.query_async::<Value>(con).await {
                Ok(v) => return Ok(v),
                Err(e) => match self.after_fcall(&e) {
                    Next::Fail => return Err(e),
                    Next::Eval => {}
                    Next::Load => match script::function_load_cmd().query_async::<Value>(con).await
                    {
                        Ok(_) => return fcall.query_async(con).await,
                        Err(le) if self.fall_back(&le) => {}
                        Err(le) => return Err(le),
                    },
                },
            }
        }
        let eval = call.evalsha_cmd();
        match eval.query_async(con).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                call.script_load_cmd().query_async::<Value>(con).await?;
                eval.query_async(con).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(code: &str, detail: &str) -> RedisError {
        let reply = format!("-{code} {detail}\r\n");
        match redis::parse_redis_value(reply.as_bytes()) {
            Ok(Value::ServerError(e)) => e.into(),
            other => panic!("not a server error: {other:?}"),
        }
    }

    #[test]
    fn errors_are_told_apart() {
        let missing = server("ERR", "Function not found");
        assert!(function_missing(&missing));
        assert!(!fcall_refused(&missing));
        let old = server("ERR", "unknown command 'FCALL', with args beginning with: ");
        assert!(fcall_refused(&old) && !function_missing(&old));
        let acl = server(
            "NOPERM",
            "this user has no permissions to run the 'function|load' command",
        );
        assert!(fcall_refused(&acl) && server_refusal(&acl));
        let moved = server("MOVED", "3999 127.0.0.1:6381");
        assert!(!server_refusal(&moved));
        let oom = server("OOM", "command not allowed when used memory > 'maxmemory'.");
        assert!(!server_refusal(&oom));
        let busy = server("BUSY", "Redis is busy running a script.");
        assert!(!server_refusal(&busy));
        let compile = server("ERR", "Error registering functions");
        assert!(server_refusal(&compile));
    }

    #[test]
    fn only_auto_falls_back() {
        let acl = server("NOPERM", "no permissions");
        let auto = Path::new(ServerScripts::Auto);
        assert!(auto.uses_functions());
        assert!(auto.fall_back(&acl));
        assert!(!auto.uses_functions());
        let forced = Path::new(ServerScripts::Functions);
        assert!(!forced.fall_back(&acl));
        assert!(forced.uses_functions());
        assert!(!Path::new(ServerScripts::Eval).uses_functions());
    }
}
