//! The control socket: `hearth admin …` runs the ad-hoc commands on the running server through
//! a Unix domain socket in `data_dir` (`control.sock`, mode 0600: only hearth's user and root
//! can connect, and whoever can is an administrator).
//!
//! The protocol is one JSON object per line each way, any number of requests per connection:
//!
//! ```text
//! → {"op":"list"}
//! ← {"commands":[{"node":"http://jabber.org/protocol/admin#announce","name":"Send Announcement to Online Users"}, …]}
//! → {"op":"run","node":"http://jabber.org/protocol/admin#announce","fields":{"announcement":["Back at 10"]}}
//! ← {"completed":{"notes":[{"type":"info","text":"Sent to 3 sessions of 2 users"}],"fields":[]}}
//! ← {"error":{"condition":"item-not-found","text":"no such command"}}
//! ```
//!
//! `fields` answer every form the command asks for, until it completes; `completed.fields` are
//! those of its result form.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hearth_core::config::Config;
use hearth_core::server::Server;
use hearth_core::stanza::{Condition, StanzaError};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::form::{DataForm, Field, Submitted};
use super::{Commands, Note, Requester, Step, log_completed};

const SOCKET_NAME: &str = "control.sock";
/// Longest request line read.
const MAX_LINE: u64 = 1 << 20;
/// Most forms answered for one command: a command that keeps asking is not for the console.
const MAX_STAGES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// The commands available.
    List,
    /// Runs the command at `node`, answering its forms with `fields`.
    Run {
        node: String,
        #[serde(default)]
        fields: BTreeMap<String, Vec<String>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    Commands(Vec<CommandEntry>),
    Completed {
        notes: Vec<Note>,
        fields: Vec<Field>,
    },
    Error {
        /// The stanza error condition (`forbidden`, `item-not-found`, `bad-request`…).
        condition: String,
        text: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEntry {
    pub node: String,
    pub name: String,
}

pub fn socket_path(config: &Config) -> PathBuf {
    config.data_dir.join(SOCKET_NAME)
}

/// Sends one request to the running server.
pub async fn call(config: &Config, request: &Request) -> anyhow::Result<Response> {
    let path = socket_path(config);
    let stream = UnixStream::connect(&path).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the running server at {}: {e} — is hearth running with this configuration, and are you its user (or root)?",
            path.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await?;
    let mut answer = String::new();
    BufReader::new(read).read_line(&mut answer).await?;
    anyhow::ensure!(
        !answer.is_empty(),
        "the server closed the control socket without answering"
    );
    Ok(serde_json::from_str(&answer)?)
}

/// Serves the control socket until the server stops, then removes it.
pub(super) async fn serve(server: Arc<Server>, commands: Arc<Commands>) -> anyhow::Result<()> {
    let path = socket_path(&server.config);
    let listener = bind(&path).await?;
    tracing::info!(path = %path.display(), "control socket ready for `hearth admin`");
    let mut shutdown = server.shutdown_signal();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tokio::spawn(connection(server.clone(), commands.clone(), stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket: accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the control socket");
    }
    Ok(())
}

/// Binds the socket, replacing one left by a server that did not stop cleanly, and restricts
/// it to hearth's user. (Until the mode is set, the umask applies: with the usual 022, others
/// cannot write to the socket, so they cannot connect either.)
async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if UnixStream::connect(path).await.is_ok() {
        anyhow::bail!(
            "the control socket {} is in use: is another hearth running with this data_dir?",
            path.display()
        );
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!(
            "cannot remove the stale control socket {}: {e}",
            path.display()
        ),
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the control socket {}: {e} (set modules.adhoc.control_socket = false to do without it)",
            path.display()
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

async fn connection(server: Arc<Server>, commands: Arc<Commands>, stream: UnixStream) {
    let requester = match stream.peer_cred() {
        Ok(cred) => Requester::Console {
            uid: cred.uid(),
            pid: cred.pid(),
        },
        Err(e) => {
            tracing::warn!(error = %e, "control socket: cannot tell who connected; closing");
            return;
        }
    };
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    loop {
        let mut line = String::new();
        match (&mut read).take(MAX_LINE).read_line(&mut line).await {
            Ok(0) => return,
            Ok(_) if !line.ends_with('\n') => {
                tracing::warn!(by = %requester, "control socket: request too long or cut off; closing");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "control socket: read failed");
                return;
            }
        }
        let response = answer(&server, &commands, &requester, &line).await;
        let mut out = serde_json::to_string(&response).expect("responses serialise");
        out.push('\n');
        if write.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn answer(
    server: &Arc<Server>,
    commands: &Commands,
    requester: &Requester,
    line: &str,
) -> Response {
    let request = match serde_json::from_str::<Request>(line) {
        Ok(r) => r,
        Err(e) => {
            return Response::Error {
                condition: Condition::BadRequest.name().into(),
                text: Some(format!("not a request: {e}")),
            };
        }
    };
    match request {
        Request::List => Response::Commands(
            commands
                .visible(server, requester)
                .iter()
                .map(|c| CommandEntry {
                    node: c.node().into(),
                    name: c.name().into(),
                })
                .collect(),
        ),
        Request::Run { node, fields } => {
            match run(server, commands, requester, &node, Submitted::new(fields)).await {
                Ok((notes, result)) => Response::Completed {
                    notes,
                    fields: result.map(|form| form.fields).unwrap_or_default(),
                },
                Err(e) => Response::Error {
                    condition: e.condition.name().into(),
                    text: e.text,
                },
            }
        }
    }
}

/// Runs a command to its end, answering every form it asks for with `answers`.
async fn run(
    server: &Arc<Server>,
    commands: &Commands,
    requester: &Requester,
    node: &str,
    answers: Submitted,
) -> Result<(Vec<Note>, Option<DataForm>), StanzaError> {
    let command = commands.permitted(server, requester, node)?;
    let mut submitted = Vec::new();
    loop {
        let step = command.run(server, requester, &submitted).await?;
        log_completed(requester, node, &step);
        match step {
            Step::Done { notes, result } => return Ok((notes, result)),
            Step::Ask { .. } if submitted.len() < MAX_STAGES => submitted.push(answers.clone()),
            Step::Ask { .. } => {
                return Err(StanzaError::new(Condition::NotAllowed)
                    .with_text("the command asks for more forms than the console answers"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_lines() {
        let run: Request =
            serde_json::from_str(r#"{"op":"run","node":"n","fields":{"announcement":["a","b"]}}"#)
                .unwrap();
        assert_eq!(
            run,
            Request::Run {
                node: "n".into(),
                fields: BTreeMap::from([("announcement".into(), vec!["a".into(), "b".into()])]),
            }
        );
        let list: Request = serde_json::from_str(r#"{"op":"list"}"#).unwrap();
        assert_eq!(list, Request::List);
        let error = Response::Error {
            condition: "forbidden".into(),
            text: None,
        };
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"error":{"condition":"forbidden","text":null}}"#
        );
    }
}
