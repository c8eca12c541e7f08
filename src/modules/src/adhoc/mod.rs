//! XEP-0050: Ad-Hoc Commands on the server's JID, and the same commands for the sysadmin at
//! the control socket (`control`). This module is the framework: other modules add commands to
//! the shared [`Commands`] registry (`reg.shared::<Commands>()`), and this one lists them in
//! disco#items of the commands node (only those the requester may run), runs their stages
//! with sessions kept in memory, and answers the XEP's errors.
//!
//! A command sees the forms submitted so far and answers with the next form or its outcome,
//! so it keeps no state between stages; going back (`prev`) drops the last form and asks again.

pub mod control;
pub mod form;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hearth_core::jid::Jid;
use hearth_core::module::{
    DiscoItem, DiscoNodes, DiscoScope, Identity, IqTarget, IqType, Module, NodeInfo, Registrar,
    Spec, SupportStatus,
};
use hearth_core::router::{Context, IqResult};
use hearth_core::server::Server;
use hearth_core::stanza::{Condition, Stanza, StanzaError, ncname};
use minidom::Element;
use serde::{Deserialize, Serialize};

use form::{DataForm, NS_DATA, Submitted};

pub const NS: &str = "http://jabber.org/protocol/commands";
/// The log target of administrative actions, for a sysadmin to grep or forward.
pub const AUDIT: &str = "hearth::audit";

/// Who runs a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// An account, over XMPP.
    Account(Jid),
    /// Someone at the control socket: the server's own user or root, since only they can open
    /// it. `pid` is the client process, when the system tells it.
    Console { uid: u32, pid: Option<i32> },
}

impl Requester {
    /// Administrators are the configured `admins` and whoever reaches the control socket.
    pub fn is_admin(&self, server: &Server) -> bool {
        match self {
            Requester::Account(jid) => server.is_admin(jid),
            Requester::Console { .. } => true,
        }
    }
}

impl fmt::Display for Requester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requester::Account(jid) => write!(f, "{jid}"),
            Requester::Console {
                uid,
                pid: Some(pid),
            } => {
                write!(f, "control socket (uid {uid}, pid {pid})")
            }
            Requester::Console { uid, pid: None } => write!(f, "control socket (uid {uid})"),
        }
    }
}

/// A command a module offers.
#[async_trait::async_trait]
pub trait Command: Send + Sync + 'static {
    /// The disco node naming it, such as `http://jabber.org/protocol/admin#add-user`.
    fn node(&self) -> &str;
    /// What clients show in their list of commands.
    fn name(&self) -> &str;
    /// Whether `requester` may see and run it: administrators only, unless a command says
    /// otherwise.
    fn allowed(&self, server: &Server, requester: &Requester) -> bool {
        requester.is_admin(server)
    }
    /// The stage after the forms `submitted` so far (none: the command was just started).
    async fn run(
        &self,
        server: &Arc<Server>,
        requester: &Requester,
        submitted: &[Submitted],
    ) -> Result<Step, StanzaError>;
}

/// What a stage of a command answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A form to fill in; `last` when submitting it completes the command (else more follow).
    Ask { form: DataForm, last: bool },
    /// The command is done: notes for the requester, and data as a result form.
    Done {
        notes: Vec<Note>,
        result: Option<DataForm>,
    },
}

impl Step {
    /// Asks for the one form whose submission completes the command.
    pub fn ask(form: DataForm) -> Self {
        Step::Ask { form, last: true }
    }

    pub fn done(text: impl Into<String>) -> Self {
        Step::Done {
            notes: vec![Note::new(NoteKind::Info, text)],
            result: None,
        }
    }

    /// Done without doing what was asked (an account that does not exist): told in an error
    /// note, which every client shows, rather than an IQ error.
    pub fn failed(text: impl Into<String>) -> Self {
        Step::Done {
            notes: vec![Note::new(NoteKind::Error, text)],
            result: None,
        }
    }

    pub fn result(form: DataForm) -> Self {
        Step::Done {
            notes: Vec::new(),
            result: Some(form),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    #[serde(rename = "type")]
    pub kind: NoteKind,
    pub text: String,
}

impl Note {
    pub fn new(kind: NoteKind, text: impl Into<String>) -> Self {
        Note {
            kind,
            text: text.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoteKind {
    Info,
    Warn,
    Error,
}

impl NoteKind {
    fn as_str(self) -> &'static str {
        match self {
            NoteKind::Info => "info",
            NoteKind::Warn => "warn",
            NoteKind::Error => "error",
        }
    }
}

/// The commands of all modules, shared through `Registrar::shared`.
#[derive(Default)]
pub struct Commands(RwLock<Vec<Arc<dyn Command>>>);

impl Commands {
    /// Adds a command. Panics if another one has the same node (two modules disagreeing is a
    /// programming error, found at the first start).
    pub fn add(&self, command: impl Command) {
        let mut list = self.0.write().expect("commands lock");
        assert!(
            list.iter().all(|c| c.node() != command.node()),
            "two commands with node {}",
            command.node()
        );
        list.push(Arc::new(command));
    }

    fn find(&self, node: &str) -> Option<Arc<dyn Command>> {
        let list = self.0.read().expect("commands lock");
        list.iter().find(|c| c.node() == node).cloned()
    }

    /// The commands `requester` may run, in the order they were added.
    pub fn visible(&self, server: &Server, requester: &Requester) -> Vec<Arc<dyn Command>> {
        let list = self.0.read().expect("commands lock");
        list.iter()
            .filter(|c| c.allowed(server, requester))
            .cloned()
            .collect()
    }

    /// The command at `node` if `requester` may run it: `item-not-found` or `forbidden`
    /// (logged for the audit) otherwise.
    fn permitted(
        &self,
        server: &Server,
        requester: &Requester,
        node: &str,
    ) -> Result<Arc<dyn Command>, StanzaError> {
        let command = self.find(node).ok_or_else(|| {
            StanzaError::new(Condition::ItemNotFound).with_text("no such command")
        })?;
        if !command.allowed(server, requester) {
            tracing::info!(target: AUDIT, by = %requester, command = node, "command refused: not an administrator");
            return Err(StanzaError::new(Condition::Forbidden)
                .with_text("only the server's administrators may run this command"));
        }
        Ok(command)
    }
}

/// Logs a command that completed, for the audit trail.
fn log_completed(requester: &Requester, node: &str, step: &Step) {
    if let Step::Done { notes, .. } = step {
        let failed = notes.iter().any(|n| n.kind == NoteKind::Error);
        tracing::info!(target: AUDIT, by = %requester, command = node, failed, "command completed");
    }
}

pub struct Adhoc {
    commands: Arc<Commands>,
    sessions: Sessions,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Seconds a command waiting for its next form is kept.
    pub session_timeout_secs: u64,
    /// Serve the control socket (`data_dir/control.sock`) for `hearth admin`.
    pub control_socket: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            session_timeout_secs: 600,
            control_socket: true,
        }
    }
}

impl Module for Adhoc {
    const NAME: &'static str = "adhoc";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0050",
        version: "1.3.0",
        status: SupportStatus::Complete,
        note: "commands on the server's JID, listed per requester; execute, next, prev, complete and cancel; sessions kept in memory (modules.adhoc.session_timeout_secs); an unknown or expired sessionid is bad-sessionid; no localisation (bad-locale is never sent); the same commands from `hearth admin` over a local control socket",
    }];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        anyhow::ensure!(
            cfg.session_timeout_secs >= 10,
            "modules.adhoc.session_timeout_secs must be at least 10"
        );
        let adhoc = Arc::new(Adhoc {
            commands: reg.shared::<Commands>(),
            sessions: Sessions::new(Duration::from_secs(cfg.session_timeout_secs)),
        });
        reg.feature(DiscoScope::Host, NS);
        reg.disco_nodes(Arc::new(CommandNodes(adhoc.commands.clone())));
        reg.iq_with(
            IqType::Set,
            IqTarget::Host,
            NS,
            "command",
            &adhoc,
            |adhoc, cx, iq| async move { adhoc.handle(cx, iq).await },
        );
        if cfg.control_socket {
            let commands = adhoc.commands.clone();
            reg.worker("control socket", move |server| {
                control::serve(server, commands)
            });
        }
        Ok(adhoc)
    }
}

impl Adhoc {
    async fn handle(&self, cx: Context, iq: Stanza) -> IqResult {
        let bad_request = |text: &str| StanzaError::new(Condition::BadRequest).with_text(text);
        let (Some(payload), Some(from)) = (iq.iq_payload(), iq.from()) else {
            return Err(bad_request("a command needs a sender"));
        };
        let node = payload
            .attr("node")
            .ok_or_else(|| bad_request("a command needs a node"))?;
        let requester = Requester::Account(from.clone());
        let command = self.commands.permitted(&cx.server, &requester, node)?;
        let action = Action::parse(payload.attr("action"))?;
        let running = match payload.attr("sessionid") {
            Some(id) => Some((id.to_string(), self.sessions.take(id, from, node)?)),
            None => None,
        };
        let planned = match plan(action, running.as_ref().map(|(_, s)| s.stage())) {
            Ok(planned) => planned,
            Err(e) => {
                // A refused action leaves the command where it was.
                if let Some((id, s)) = running {
                    self.sessions.put(id, s);
                }
                return Err(e);
            }
        };
        let (id, mut submitted) = running.map_or_else(
            || (new_session_id(), Vec::new()),
            |(id, s)| (id, s.submitted),
        );
        match planned {
            Move::Start => {}
            Move::Submit => submitted.push(
                payload
                    .get_child("x", NS_DATA)
                    .map(Submitted::parse)
                    .unwrap_or_default(),
            ),
            Move::Back => {
                submitted.pop();
            }
            Move::Cancel => return Ok(Some(command_element(node, &id, "canceled"))),
        }
        let step = command.run(&cx.server, &requester, &submitted).await?;
        log_completed(&requester, node, &step);
        let answer = match step {
            Step::Ask { form, last } => {
                let stage = Stage {
                    submitted: submitted.len(),
                    last,
                };
                let mut el = command_element(node, &id, "executing");
                el.append_child(actions(stage));
                el.append_child(form.to_element());
                self.sessions.put(
                    id,
                    CommandSession {
                        owner: from.clone(),
                        node: node.to_string(),
                        submitted,
                        last,
                        expires: Instant::now() + self.sessions.timeout,
                    },
                );
                el
            }
            Step::Done { notes, result } => {
                let mut el = command_element(node, &id, "completed");
                for note in notes {
                    el.append_child(
                        Element::builder("note", NS)
                            .attr(ncname("type"), note.kind.as_str())
                            .append(note.text)
                            .build(),
                    );
                }
                if let Some(form) = result {
                    el.append_child(form.to_element());
                }
                el
            }
        };
        Ok(Some(answer))
    }
}

fn command_element(node: &str, sessionid: &str, status: &str) -> Element {
    Element::builder("command", NS)
        .attr(ncname("node"), node)
        .attr(ncname("sessionid"), sessionid)
        .attr(ncname("status"), status)
        .build()
}

/// `<actions/>` offered at a stage: `next` or `complete`, which `execute` means, and `prev`
/// after the first form.
fn actions(stage: Stage) -> Element {
    let forward = if stage.last { "complete" } else { "next" };
    let mut el = Element::builder("actions", NS)
        .attr(ncname("execute"), forward)
        .build();
    if stage.submitted > 0 {
        el.append_child(Element::bare("prev", NS));
    }
    el.append_child(Element::bare(forward, NS));
    el
}

fn new_session_id() -> String {
    use rand::Rng;
    let bytes: [u8; 12] = rand::rng().random();
    crate::conversion::avatar::hex(&bytes)
}

/// A command error with its XEP-0050 condition (`bad-action`, `bad-sessionid`…).
fn command_error(condition: &str, text: &str) -> StanzaError {
    StanzaError::new(Condition::BadRequest)
        .with_text(text)
        .with_app(Element::bare(condition, NS))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Execute,
    Next,
    Prev,
    Complete,
    Cancel,
}

impl Action {
    /// No action is `execute` (XEP-0050 §4.2); an unknown one is `malformed-action`.
    fn parse(action: Option<&str>) -> Result<Self, StanzaError> {
        match action.unwrap_or("execute") {
            "execute" => Ok(Action::Execute),
            "next" => Ok(Action::Next),
            "prev" => Ok(Action::Prev),
            "complete" => Ok(Action::Complete),
            "cancel" => Ok(Action::Cancel),
            _ => Err(command_error(
                "malformed-action",
                "the action must be execute, next, prev, complete or cancel",
            )),
        }
    }
}

/// Where a running command stands: forms submitted so far, and whether the form shown is the
/// last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stage {
    submitted: usize,
    last: bool,
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Move {
    /// Run the first stage.
    Start,
    /// Take the submitted form and run the next stage.
    Submit,
    /// Forget the last submitted form and ask for it again.
    Back,
    Cancel,
}

/// The move `action` makes on a command at `stage` (`None`: no command running).
fn plan(action: Action, stage: Option<Stage>) -> Result<Move, StanzaError> {
    match (action, stage) {
        (Action::Execute, None) => Ok(Move::Start),
        (_, None) => Err(command_error(
            "bad-sessionid",
            "this action needs the sessionid of a running command",
        )),
        (Action::Cancel, Some(_)) => Ok(Move::Cancel),
        (Action::Execute, Some(_)) => Ok(Move::Submit),
        (Action::Next, Some(s)) if !s.last => Ok(Move::Submit),
        (Action::Complete, Some(s)) if s.last => Ok(Move::Submit),
        (Action::Prev, Some(s)) if s.submitted > 0 => Ok(Move::Back),
        (_, Some(_)) => Err(command_error(
            "bad-action",
            "this action is not offered at this stage of the command",
        )),
    }
}

/// A command waiting for its requester's next form.
struct CommandSession {
    /// The full JID that started it: only that client continues it.
    owner: Jid,
    node: String,
    submitted: Vec<Submitted>,
    last: bool,
    expires: Instant,
}

impl CommandSession {
    fn stage(&self) -> Stage {
        Stage {
            submitted: self.submitted.len(),
            last: self.last,
        }
    }
}

/// Running commands by session id; expired ones are dropped whenever one is stored.
struct Sessions {
    running: Mutex<HashMap<String, CommandSession>>,
    timeout: Duration,
}

impl Sessions {
    fn new(timeout: Duration) -> Self {
        Sessions {
            running: Mutex::new(HashMap::new()),
            timeout,
        }
    }

    /// Takes the session `id` of `owner` running `node`: `bad-sessionid` when there is none
    /// (it completed, was canceled or timed out, or never existed).
    fn take(&self, id: &str, owner: &Jid, node: &str) -> Result<CommandSession, StanzaError> {
        let mut running = self.running.lock().expect("command sessions lock");
        match running.remove(id) {
            Some(s) if s.owner == *owner && s.node == node && s.expires > Instant::now() => Ok(s),
            Some(s) => {
                if s.expires > Instant::now() {
                    running.insert(id.to_string(), s);
                }
                Err(unknown_session())
            }
            None => Err(unknown_session()),
        }
    }

    fn put(&self, id: String, session: CommandSession) {
        let mut running = self.running.lock().expect("command sessions lock");
        let now = Instant::now();
        running.retain(|_, s| s.expires > now);
        running.insert(id, session);
    }
}

fn unknown_session() -> StanzaError {
    command_error(
        "bad-sessionid",
        "no such command session: it completed, was canceled or timed out",
    )
}

/// The commands node and each command's node in disco.
struct CommandNodes(Arc<Commands>);

impl DiscoNodes for CommandNodes {
    fn info(
        &self,
        server: &Server,
        requester: &Jid,
        node: &str,
    ) -> Option<Result<NodeInfo, StanzaError>> {
        let identity = |type_: &str, name: Option<&str>| Identity {
            category: "automation".into(),
            type_: type_.into(),
            name: name.map(Into::into),
        };
        if node == NS {
            return Some(Ok(NodeInfo {
                identities: vec![identity("command-list", None)],
                features: vec![NS.into()],
            }));
        }
        let requester = Requester::Account(requester.clone());
        let info = self
            .0
            .permitted(server, &requester, node)
            .map(|command| NodeInfo {
                identities: vec![identity("command-node", Some(command.name()))],
                features: vec![NS.into(), NS_DATA.into()],
            });
        match info {
            Err(e) if e.condition == Condition::ItemNotFound => None,
            info => Some(info),
        }
    }

    fn items(&self, server: &Server, requester: &Jid, node: &str) -> Option<Vec<DiscoItem>> {
        if node != NS {
            return None;
        }
        let requester = Requester::Account(requester.clone());
        let items = self
            .0
            .visible(server, &requester)
            .iter()
            .map(|c| DiscoItem {
                jid: server.domain().to_string(),
                node: Some(c.node().to_string()),
                name: Some(c.name().to_string()),
            })
            .collect();
        Some(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(submitted: usize, last: bool) -> Option<Stage> {
        Some(Stage { submitted, last })
    }

    fn app(err: StanzaError) -> String {
        err.app.map(|a| a.name().to_string()).unwrap_or_default()
    }

    #[test]
    fn actions_parse() {
        assert_eq!(Action::parse(None).unwrap(), Action::Execute);
        assert_eq!(Action::parse(Some("cancel")).unwrap(), Action::Cancel);
        assert_eq!(
            app(Action::parse(Some("jump")).unwrap_err()),
            "malformed-action"
        );
    }

    #[test]
    fn moves_by_stage() {
        use Action::*;
        assert_eq!(plan(Execute, None).unwrap(), Move::Start);
        for action in [Next, Prev, Complete, Cancel] {
            assert_eq!(app(plan(action, None).unwrap_err()), "bad-sessionid");
        }
        // The first of two forms: next (or execute) goes on; complete and prev are not offered.
        assert_eq!(plan(Execute, stage(0, false)).unwrap(), Move::Submit);
        assert_eq!(plan(Next, stage(0, false)).unwrap(), Move::Submit);
        assert_eq!(
            app(plan(Complete, stage(0, false)).unwrap_err()),
            "bad-action"
        );
        assert_eq!(app(plan(Prev, stage(0, false)).unwrap_err()), "bad-action");
        // The last form, after one: complete or prev; next is not offered.
        assert_eq!(plan(Complete, stage(1, true)).unwrap(), Move::Submit);
        assert_eq!(plan(Execute, stage(1, true)).unwrap(), Move::Submit);
        assert_eq!(plan(Prev, stage(1, true)).unwrap(), Move::Back);
        assert_eq!(app(plan(Next, stage(1, true)).unwrap_err()), "bad-action");
        assert_eq!(plan(Cancel, stage(1, true)).unwrap(), Move::Cancel);
    }

    #[test]
    fn offered_actions() {
        let names = |el: Element| {
            let children: Vec<String> = el.children().map(|c| c.name().to_string()).collect();
            (el.attr("execute").unwrap().to_string(), children)
        };
        assert_eq!(
            names(actions(Stage {
                submitted: 0,
                last: true
            })),
            ("complete".into(), vec!["complete".into()])
        );
        assert_eq!(
            names(actions(Stage {
                submitted: 1,
                last: false
            })),
            ("next".into(), vec!["prev".into(), "next".into()])
        );
    }

    #[test]
    fn sessions_belong_to_their_requester_and_expire() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let alice = Jid::parse("alice@example.org/a").unwrap();
        let session = |owner: &Jid, expires: Instant| CommandSession {
            owner: owner.clone(),
            node: "n".into(),
            submitted: Vec::new(),
            last: true,
            expires,
        };
        let later = Instant::now() + Duration::from_secs(60);
        sessions.put("s1".into(), session(&alice, later));
        let mallory = Jid::parse("alice@example.org/other").unwrap();
        assert!(sessions.take("s1", &mallory, "n").is_err());
        assert!(sessions.take("s1", &alice, "other-node").is_err());
        assert!(sessions.take("s1", &alice, "n").is_ok());
        assert!(sessions.take("s1", &alice, "n").is_err(), "taken once");
        sessions.put("old".into(), session(&alice, Instant::now()));
        assert!(sessions.take("old", &alice, "n").is_err(), "expired");
    }
}
