//! `ecommerce user create`: creates an account with a role through a running
//! node's `POST /api/v1/users`, authorised by the operator token or an admin's
//! access token. This is how the first admin of a cluster is made.

use std::io::BufRead;

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::client::NodeClient;
use crate::{UserArgs, UserCommand};

/// Runs `ecommerce user ...` and prints the created account as JSON.
pub async fn run_user(args: UserArgs) -> anyhow::Result<()> {
    let client = NodeClient::new(&args.node)?;
    match args.command {
        UserCommand::Create(create) => {
            if args.node.operator_token.is_none() && args.node.access_token.is_none() {
                anyhow::bail!(
                    "no credentials: pass --operator-token (or ECOMMERCE_OPERATOR_TOKEN) or --access-token"
                );
            }
            let password = match &create.password_file {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .context("reading the password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let body = json!({
                "email": create.email,
                "password": password,
                "name": create.name.as_deref().unwrap_or(&create.email),
                "role": create.role,
            });
            let response = client.post("/api/v1/users", &body).await?;
            let user: Value = response.json().await.context("reading the answer")?;
            println!("{}", serde_json::to_string_pretty(&user)?);
            Ok(())
        }
    }
}
