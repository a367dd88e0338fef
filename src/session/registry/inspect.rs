//! Reading the registry for operators (`mcpd sessions`): where sessions live, how old they are,
//! how long their keys have left, and whether their owner is alive.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::Value;
use futures_util::StreamExt;

use super::keys::{Keys, NodeBeat, SessionRecord};

/// One registered session.
#[derive(Debug, Clone)]
pub struct RegisteredSession {
    pub id: String,
    pub node: String,
    pub boot: String,
    pub created_ms: u64,
    /// Seconds until the key expires (-1: no TTL).
    pub ttl_secs: i64,
    pub protocol: String,
    /// The owner's heartbeat names the boot that registered the session.
    pub owner_alive: bool,
}

/// Sessions per node.
#[derive(Debug, Clone)]
pub struct NodeSummary {
    pub node: String,
    pub sessions: usize,
    /// The node has a live heartbeat.
    pub alive: bool,
}

/// What the registry holds.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    pub sessions: Vec<RegisteredSession>,
    pub nodes: Vec<NodeSummary>,
}

/// Reads every session key under `prefix` (SCAN, then pipelined GET/TTL) and the owners'
/// heartbeats. Fails fast when Redis is unreachable.
pub async fn inspect(
    url: &str,
    prefix: &str,
    timeout: Duration,
) -> Result<Inspection, fred::error::Error> {
    let client = super::build_client(url, timeout, false)?;
    client.init().await?;
    let result = read(&client, &Keys::new(prefix)).await;
    let _ = client.quit().await;
    result
}

async fn read(
    client: &fred::clients::Client,
    keys: &Keys,
) -> Result<Inspection, fred::error::Error> {
    let mut names = Vec::new();
    let mut scan = client.scan_buffered(keys.session_pattern(), Some(1000), None);
    while let Some(key) = scan.next().await {
        if let Some(name) = key?.as_str() {
            names.push(name.to_string());
        }
    }
    let mut sessions = Vec::with_capacity(names.len());
    for chunk in names.chunks(500) {
        let p = client.pipeline();
        for name in chunk {
            let _: () = p.get(name.as_str()).await?;
            let _: () = p.ttl(name.as_str()).await?;
        }
        let values: Vec<Value> = p.all().await?;
        for (name, pair) in chunk.iter().zip(values.chunks(2)) {
            let (Some(id), [value, ttl]) = (keys.session_id_of(name), pair) else {
                continue;
            };
            let Some(record) = value.as_str().and_then(|raw| SessionRecord::decode(&raw)) else {
                continue;
            };
            sessions.push(RegisteredSession {
                id: id.to_string(),
                node: record.node,
                boot: record.boot,
                created_ms: record.created_ms,
                ttl_secs: ttl.as_i64().unwrap_or(-2),
                protocol: record.protocol,
                owner_alive: false,
            });
        }
    }
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for s in &sessions {
        *per_node.entry(s.node.clone()).or_default() += 1;
    }
    let mut heartbeats: HashMap<String, Option<String>> = HashMap::new();
    for node in per_node.keys() {
        let raw: Option<String> = client.get(keys.heartbeat(node)).await?;
        heartbeats.insert(
            node.clone(),
            raw.as_deref().and_then(NodeBeat::decode).map(|b| b.boot),
        );
    }
    for s in &mut sessions {
        s.owner_alive = heartbeats.get(&s.node).and_then(|b| b.as_deref()) == Some(s.boot.as_str());
    }
    sessions.sort_by(|a, b| a.node.cmp(&b.node).then(a.created_ms.cmp(&b.created_ms)));
    let nodes = per_node
        .into_iter()
        .map(|(node, n)| NodeSummary {
            alive: heartbeats.get(&node).is_some_and(Option::is_some),
            node,
            sessions: n,
        })
        .collect();
    Ok(Inspection { sessions, nodes })
}
