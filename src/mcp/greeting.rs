//! What `initialize` answers: this server's version, capabilities, identity and instructions.
//!
//! The result depends only on the negotiated protocol version and this node's id, so it is encoded
//! once per supported version when the endpoint is built. Encoding it for every new session — a
//! tree of maps built, serialized and freed — was about a fifth of a whole session lifecycle's
//! instructions (initialize, initialized, one call, DELETE; callgrind).

use serde_json::json;
use serde_json::value::RawValue;

use crate::session::ProtocolVersion;

/// The `initialize` result for each supported protocol version, encoded.
pub(crate) struct Greetings {
    by_version: Vec<(ProtocolVersion, Box<RawValue>)>,
}

impl Greetings {
    /// The results `node` answers, one per [`ProtocolVersion::ALL`].
    pub fn new(node: &str) -> Greetings {
        let by_version = ProtocolVersion::ALL
            .into_iter()
            .map(|version| (version, encode(version, node)))
            .collect();
        Greetings { by_version }
    }

    /// The result for `version` (every supported version has one).
    pub fn result(&self, version: ProtocolVersion) -> &RawValue {
        self.by_version
            .iter()
            .find(|(v, _)| *v == version)
            .map_or_else(|| self.by_version[0].1.as_ref(), |(_, raw)| raw.as_ref())
    }
}

fn encode(version: ProtocolVersion, node: &str) -> Box<RawValue> {
    let result = json!({
        "protocolVersion": version.as_str(),
        "capabilities": {
            "tools": {"listChanged": false},
            "resources": {"subscribe": true, "listChanged": false},
            "prompts": {"listChanged": false},
            "logging": {},
            "completions": {}
        },
        "serverInfo": {
            "name": "mcpd",
            "title": "mcpd",
            "version": env!("CARGO_PKG_VERSION")
        },
        "instructions": format!(
            "mcpd node {node}. Call the node_info tool to see which node and session serve you."
        )
    });
    // A `Value` always encodes; the default (`null`) only satisfies the type.
    serde_json::value::to_raw_value(&result).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_version_gets_its_own_result_naming_the_node() {
        let g = Greetings::new("n7");
        for version in ProtocolVersion::ALL {
            let result: serde_json::Value = serde_json::from_str(g.result(version).get()).unwrap();
            assert_eq!(result["protocolVersion"], version.as_str());
            assert_eq!(result["serverInfo"]["name"], "mcpd");
            assert_eq!(result["capabilities"]["resources"]["subscribe"], true);
            assert!(result["instructions"]
                .as_str()
                .unwrap()
                .contains("mcpd node n7."));
        }
    }
}
