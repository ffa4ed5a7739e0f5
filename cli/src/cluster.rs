//! `ecommerce cluster …`: membership commands sent to a node's `/cluster` REST endpoints,
//! and the human-readable rendering of the `GET /cluster` answer.
//!
//! The command logic returns the text to print (`execute`) so it can be tested without
//! capturing stdout; only [`run_cluster`] prints.

use std::fmt::Write as _;

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::NodeClient;
use crate::{ClusterArgs, ClusterCommand};

/// Runs `ecommerce cluster <command>` and prints the outcome on stdout.
///
/// Errors answered by the node come back as an [`ApiError`](crate::ApiError) inside the
/// `anyhow::Error`, displaying as `<code>: <message>`.
pub async fn run_cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let output = execute(&args).await?;
    print!("{output}");
    Ok(())
}

/// Sends the request for `args.command` and returns what to print.
async fn execute(args: &ClusterArgs) -> anyhow::Result<String> {
    let client = NodeClient::new(&args.node)?;
    let (response, done) = match &args.command {
        ClusterCommand::Status => (client.get("/cluster").await?, None),
        ClusterCommand::AddLearner(add) => {
            let body = json!({
                "node_id": add.node_id,
                "http_addr": add.http_addr,
                "peer_addr": add.peer_addr,
            });
            let response = client.post("/cluster/learners", &body).await?;
            (
                response,
                Some(format!("added node {} as a learner", add.node_id)),
            )
        }
        ClusterCommand::Promote(target) => {
            let response = client
                .post("/cluster/promote", &node_id(target.node_id))
                .await?;
            (
                response,
                Some(format!("promoted node {} to voter", target.node_id)),
            )
        }
        ClusterCommand::Remove(target) => {
            let response = client
                .post("/cluster/remove", &node_id(target.node_id))
                .await?;
            (response, Some(format!("removed node {}", target.node_id)))
        }
        ClusterCommand::TransferLeader(target) => {
            let path = "/cluster/transfer-leader";
            let response = client.post(path, &node_id(target.node_id)).await?;
            let done = format!("asked node {} to take over leadership", target.node_id);
            (response, Some(done))
        }
    };
    let body = response
        .text()
        .await
        .context("cannot read the node's answer")?;

    if args.json {
        return Ok(match serde_json::from_str::<Value>(&body) {
            Ok(value) => format!("{value:#}\n"),
            Err(_) if body.trim().is_empty() => String::new(),
            Err(_) => format!("{}\n", body.trim_end()),
        });
    }

    let status = serde_json::from_str::<ClusterStatus>(&body);
    let mut output = String::new();
    match (done, status) {
        (None, status) => {
            let status = status.context("unexpected answer from GET /cluster")?;
            output.push_str(&render_status(&status));
        }
        // Membership changes answer with the new cluster state; show it when they do.
        (Some(done), Ok(status)) => {
            output.push_str(&format!("{done}\n\n"));
            output.push_str(&render_status(&status));
        }
        (Some(done), Err(_)) => output.push_str(&format!("{done}\n")),
    }
    Ok(output)
}

fn node_id(id: u64) -> Value {
    json!({ "node_id": id })
}

/// The `GET /cluster` answer, as far as the CLI shows it. Lenient on purpose: fields it
/// does not show are ignored, and nullable ones are options.
#[derive(Debug, Deserialize)]
struct ClusterStatus {
    #[serde(default)]
    cluster_id: Option<String>,
    node_id: u64,
    leader_id: Option<u64>,
    #[serde(default)]
    term: Option<u64>,
    #[serde(default)]
    last_log_index: Option<u64>,
    #[serde(default)]
    commit_index: Option<u64>,
    #[serde(default)]
    applied_index: Option<u64>,
    members: Vec<Member>,
}

#[derive(Debug, Deserialize)]
struct Member {
    node_id: u64,
    http_addr: String,
    peer_addr: String,
    role: String,
    #[serde(default)]
    is_leader: bool,
    #[serde(default)]
    matched_index: Option<u64>,
}

/// Renders the summary lines followed by one table row per member, ordered by id.
fn render_status(status: &ClusterStatus) -> String {
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<10}{value}");
    };
    if let Some(id) = &status.cluster_id {
        line("cluster", id.clone());
    }
    line("answered", format!("node {}", status.node_id));
    line(
        "leader",
        status.leader_id.map_or_else(
            || "none (no leader known)".to_owned(),
            |id| format!("node {id}"),
        ),
    );
    line("term", opt(status.term));
    line("last log", opt(status.last_log_index));
    line("commit", opt(status.commit_index));
    line("applied", opt(status.applied_index));
    out.push('\n');

    let mut members: Vec<&Member> = status.members.iter().collect();
    members.sort_by_key(|m| m.node_id);
    let mut rows = vec![["NODE", "ROLE", "LEADER", "HTTP", "PEER", "MATCHED"].map(String::from)];
    rows.extend(members.iter().map(|m| {
        let leader = m.is_leader || status.leader_id == Some(m.node_id);
        [
            m.node_id.to_string(),
            m.role.clone(),
            if leader { "*" } else { "" }.to_owned(),
            m.http_addr.clone(),
            m.peer_addr.clone(),
            opt(m.matched_index),
        ]
    }));
    out.push_str(&table(&rows));
    out
}

/// Left-aligned columns two spaces apart, without trailing spaces.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::routing::{get, post};
    use axum::{Json, Router};

    use super::*;
    use crate::testing::{node_opts, serve};
    use crate::{AddLearnerArgs, NodeIdArg};

    fn three_nodes() -> Value {
        json!({
            "cluster_id": "c-1", "node_id": 2, "leader_id": 1, "term": 4,
            "last_log_index": 120, "commit_index": 120, "applied_index": 119,
            "members": [
                {"node_id": 3, "http_addr": "127.0.0.1:8083", "peer_addr": "127.0.0.1:50053",
                 "role": "learner", "is_leader": false, "matched_index": null},
                {"node_id": 1, "http_addr": "127.0.0.1:8080", "peer_addr": "127.0.0.1:50051",
                 "role": "voter", "is_leader": true, "matched_index": 120},
                {"node_id": 2, "http_addr": "127.0.0.1:8082", "peer_addr": "127.0.0.1:50052",
                 "role": "voter", "is_leader": false, "matched_index": 118}
            ]
        })
    }

    fn args(base: &str, json: bool, command: ClusterCommand) -> ClusterArgs {
        ClusterArgs {
            node: node_opts(base, 5),
            json,
            command,
        }
    }

    #[test]
    fn status_renders_as_a_table() {
        let status: ClusterStatus = serde_json::from_value(three_nodes()).unwrap();
        let expected = "\
cluster   c-1
answered  node 2
leader    node 1
term      4
last log  120
commit    120
applied   119

NODE  ROLE     LEADER  HTTP            PEER             MATCHED
1     voter    *       127.0.0.1:8080  127.0.0.1:50051  120
2     voter            127.0.0.1:8082  127.0.0.1:50052  118
3     learner          127.0.0.1:8083  127.0.0.1:50053  -
";
        assert_eq!(render_status(&status), expected);
    }

    #[test]
    fn status_without_leader_says_so() {
        let status: ClusterStatus = serde_json::from_value(json!({
            "node_id": 1, "leader_id": null, "term": 1, "last_log_index": null,
            "commit_index": null, "applied_index": null, "members": []
        }))
        .unwrap();
        let text = render_status(&status);
        assert!(
            text.contains("leader    none (no leader known)\n"),
            "{text}"
        );
        assert!(text.contains("commit    -\n"), "{text}");
    }

    #[tokio::test]
    async fn status_and_json_output() {
        let router = Router::new().route("/cluster", get(|| async { Json(three_nodes()) }));
        let base = serve(router).await;

        let text = execute(&args(&base, false, ClusterCommand::Status)).await;
        assert!(text.unwrap().contains("3     learner"));

        let text = execute(&args(&base, true, ClusterCommand::Status)).await;
        let value: Value = serde_json::from_str(&text.unwrap()).unwrap();
        assert_eq!(value, three_nodes());
    }

    #[tokio::test]
    async fn membership_commands_post_the_node_id() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = |path: &'static str| {
            let seen = seen.clone();
            post(move |Json(body): Json<Value>| async move {
                seen.lock().unwrap().push((path, body));
                Json(three_nodes())
            })
        };
        let router = Router::new()
            .route("/cluster/learners", record("learners"))
            .route("/cluster/promote", record("promote"))
            .route("/cluster/remove", record("remove"))
            // An empty answer: only the confirmation line is printed.
            .route("/cluster/transfer-leader", post(|| async {}));
        let base = serve(router).await;

        let add = ClusterCommand::AddLearner(AddLearnerArgs {
            node_id: 4,
            http_addr: "127.0.0.1:8084".into(),
            peer_addr: "127.0.0.1:50054".into(),
        });
        let text = execute(&args(&base, false, add)).await.unwrap();
        assert!(
            text.starts_with("added node 4 as a learner\n\ncluster   c-1\n"),
            "{text}"
        );

        let promote = ClusterCommand::Promote(NodeIdArg { node_id: 4 });
        let text = execute(&args(&base, false, promote)).await.unwrap();
        assert!(text.starts_with("promoted node 4 to voter\n"), "{text}");

        let remove = ClusterCommand::Remove(NodeIdArg { node_id: 3 });
        execute(&args(&base, false, remove)).await.unwrap();

        let transfer = ClusterCommand::TransferLeader(NodeIdArg { node_id: 2 });
        let text = execute(&args(&base, false, transfer)).await.unwrap();
        assert_eq!(text, "asked node 2 to take over leadership\n");

        let seen = seen.lock().unwrap().clone();
        let expected = [
            (
                "learners",
                json!({"node_id": 4, "http_addr": "127.0.0.1:8084", "peer_addr": "127.0.0.1:50054"}),
            ),
            ("promote", json!({"node_id": 4})),
            ("remove", json!({"node_id": 3})),
        ];
        assert_eq!(seen, expected);
    }
}
