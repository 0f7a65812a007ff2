//! The expiry walk of a change of quota on a Redis Cluster: `lua/extend.lua`
//! on every master, each walked with its own `SCAN` cursor (a script
//! routed by a key reaches one node only, and a cursor means nothing to
//! another node). The masters come from `CLUSTER SLOTS`, as the client
//! reads them, and each step is sent to one master by its address.
//!
//! On a cluster the script touches keys of many slots of its node, which
//! Redis 7 refuses from a script unless it says so: the cluster form of
//! the script starts with the flag `allow-cross-slot-keys` (a `#!lua`
//! line, Redis 7 or later). It is sent with `EVAL` (one call per 1 000
//! keys: its text costs nothing next to the walk).

use std::sync::OnceLock;

use redis::Value;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use crate::error::RedisLimitError;

/// How many keys one `SCAN` step asks for.
const SCAN_COUNT: u64 = 1000;

/// `extend.lua` with the flag that lets it touch any key of its node.
fn cluster_script() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        format!(
            "#!lua flags=allow-cross-slot-keys\n{}",
            include_str!("../lua/extend.lua")
        )
    })
}

/// The command that reads the slot map.
fn slots_command() -> redis::Cmd {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SLOTS");
    cmd
}

/// Routing to any node (for `CLUSTER SLOTS`).
fn any_node() -> RoutingInfo {
    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random)
}

/// One step of the walk on the master at `node`.
fn step(
    node: &(String, u16),
    cursor: &str,
    pattern: &str,
    least_ms: u64,
) -> (redis::Cmd, RoutingInfo) {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(cluster_script())
        .arg(0)
        .arg(cursor)
        .arg(pattern)
        .arg(least_ms)
        .arg(SCAN_COUNT);
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
        host: node.0.clone(),
        port: node.1,
    });
    (cmd, routing)
}

/// The whole walk on every master, each call sent by `send` (routed as
/// given): the blocking form.
pub(crate) fn walk(
    mut send: impl FnMut(&redis::Cmd, RoutingInfo) -> Result<Value, RedisLimitError>,
    pattern: &str,
    least_ms: u64,
) -> Result<(), RedisLimitError> {
    for node in &masters(&send(&slots_command(), any_node())?)? {
        let mut cursor = "0".to_owned();
        loop {
            let (cmd, routing) = step(node, &cursor, pattern, least_ms);
            cursor = crate::reply::cursor(send(&cmd, routing)?)?;
            if cursor == "0" {
                break;
            }
        }
    }
    Ok(())
}

/// [`walk`] on the async cluster connection.
#[cfg(feature = "tokio")]
pub(crate) async fn walk_async(
    conn: &crate::AsyncRedisConnection,
    pattern: &str,
    least_ms: u64,
) -> Result<(), RedisLimitError> {
    for node in &masters(&conn.route(slots_command(), any_node()).await?)? {
        let mut cursor = "0".to_owned();
        loop {
            let (cmd, routing) = step(node, &cursor, pattern, least_ms);
            cursor = crate::reply::cursor(conn.route(cmd, routing).await?)?;
            if cursor == "0" {
                break;
            }
        }
    }
    Ok(())
}

/// The masters of a `CLUSTER SLOTS` reply (`[start, end, [host, port,
/// …], replicas…]` per range), each once, in the order met.
///
/// # Errors
/// `UnexpectedReply` for another shape, or a master whose address the
/// reply does not give (an empty host or `?`: the walk cannot reach it).
fn masters(slots: &Value) -> Result<Vec<(String, u16)>, RedisLimitError> {
    let bad = |what: &str| RedisLimitError::UnexpectedReply(format!("CLUSTER SLOTS: {what}"));
    let Value::Array(ranges) = slots else {
        return Err(bad("not an array"));
    };
    let mut out: Vec<(String, u16)> = Vec::new();
    for range in ranges {
        let master = match range {
            Value::Array(r) if r.len() >= 3 => &r[2],
            _ => return Err(bad("a range without a master")),
        };
        let Value::Array(node) = master else {
            return Err(bad("a master that is not an array"));
        };
        let host = match node.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => return Err(bad("a master without a host")),
        };
        if host.is_empty() || host == "?" {
            return Err(bad("a master without a known address"));
        }
        let port = match node.get(1) {
            Some(Value::Int(p)) => u16::try_from(*p).map_err(|_| bad("a port out of range"))?,
            _ => return Err(bad("a master without a port")),
        };
        if !out.iter().any(|(h, p)| *h == host && *p == port) {
            out.push((host, port));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use redis::Value;

    use super::masters;

    fn node(host: &str, port: i64) -> Value {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    }

    fn range(lo: i64, hi: i64, nodes: Vec<Value>) -> Value {
        let mut r = vec![Value::Int(lo), Value::Int(hi)];
        r.extend(nodes);
        Value::Array(r)
    }

    #[test]
    fn masters_are_read_once_each_replicas_ignored() {
        let reply = Value::Array(vec![
            range(0, 100, vec![node("10.0.0.1", 7000), node("10.0.0.9", 7009)]),
            range(101, 200, vec![node("10.0.0.2", 7001)]),
            range(201, 300, vec![node("10.0.0.1", 7000)]),
        ]);
        assert_eq!(
            masters(&reply).unwrap(),
            [("10.0.0.1".to_owned(), 7000), ("10.0.0.2".to_owned(), 7001)]
        );
    }

    #[test]
    fn unknown_addresses_and_other_shapes_are_errors() {
        for bad in [
            Value::Nil,
            Value::Array(vec![Value::Int(1)]),
            Value::Array(vec![range(0, 1, vec![node("?", 7000)])]),
            Value::Array(vec![range(0, 1, vec![node("", 7000)])]),
            Value::Array(vec![range(0, 1, vec![node("h", 70_000)])]),
        ] {
            assert!(masters(&bad).is_err(), "{bad:?}");
        }
    }
}
