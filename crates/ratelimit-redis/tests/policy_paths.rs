//! The quota-change conformance scenarios (`policies-*.jsonl.gz`) on each
//! way the scripts run (`ServerScripts::Functions` and `::Eval`), through
//! the sync and the async limiter, field for field, with the replay
//! adapters of `tests/quota` (`tests/policies.rs` runs them on the
//! default, `Auto`).

#![allow(clippy::std_instead_of_core)]

mod quota;

use std::sync::Arc;

use ratelimit_redis::{AsyncRedisConnection, RedisPool, ServerScripts};
use ratelimit_replay::assert_every_policy_scenario;
use ratelimit_testkit::RedisServer;

use quota::{run_async, run_sync};

fn on_path(scripts: ServerScripts) {
    let server = RedisServer::start();
    let pool = RedisPool::builder(&server.url())
        .server_scripts(scripts)
        .build()
        .unwrap();
    assert_every_policy_scenario(|file, s| run_sync(&pool, file, s));
    assert_eq!(pool.uses_functions(), scripts == ServerScripts::Functions);
    let rt = Arc::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    );
    let conn = rt
        .block_on(
            AsyncRedisConnection::builder(&server.url())
                .server_scripts(scripts)
                .build(),
        )
        .unwrap();
    assert_every_policy_scenario(|file, s| run_async(&conn, &rt, file, s));
    assert_eq!(conn.uses_functions(), scripts == ServerScripts::Functions);
}

#[test]
fn every_policy_scenario_on_functions() {
    on_path(ServerScripts::Functions);
}

#[test]
fn every_policy_scenario_on_evalsha() {
    on_path(ServerScripts::Eval);
}
