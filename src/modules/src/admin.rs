//! XEP-0133: Service Administration. The commands an administrator (`admins` in the config)
//! runs on the server's JID from an XMPP client — Gajim's "Execute Command…", Conversations —
//! or with `hearth admin` at the control socket: accounts (add, delete, disable, re-enable,
//! new password, end sessions, statistics), who is online, announcements, and the message of
//! the day, which is stored in the database and sent to each new session.
//!
//! A request the command cannot carry out (an account that exists already, passwords that
//! differ) completes with an error note, which every client shows; each change is logged on
//! the `hearth::audit` target with who made it and for which account, never a password.

use std::sync::{Arc, RwLock};

use hearth_core::accounts::{self, AccountError};
use hearth_core::jid::Jid;
use hearth_core::module::{Module, Registrar, SessionEvent, Spec, SupportStatus};
use hearth_core::ns;
use hearth_core::server::Server;
use hearth_core::stanza::{Condition, Stanza, StanzaError, ncname};
use minidom::Element;
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::adhoc::form::{DataForm, Field, FormKind, Submitted};
use crate::adhoc::{AUDIT, Command, Commands, Note, NoteKind, Requester, Step};

const FORM_TYPE: &str = "http://jabber.org/protocol/admin";
/// The server setting that holds the message of the day.
const MOTD_SETTING: &str = "motd";
/// Choices of `max_items` (XEP-0133 §4.20); `none` lists everyone.
const MAX_ITEMS: [&str; 6] = ["25", "50", "75", "100", "150", "200"];

pub struct Admin {
    /// The message of the day, read from the database on first use.
    motd: OnceCell<RwLock<Option<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Module for Admin {
    const NAME: &'static str = "admin";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0133",
        version: "1.3.1",
        status: SupportStatus::Partial,
        note: "add-user, delete-user, disable-user, reenable-user, end-user-session, change-user-password, user-stats (roster size and online resources only), get-online-users-num, get-online-users-list, get-registered-users-num, announce (to every session), set-motd (also sent to the sessions online), edit-motd, delete-motd, for the configured admins; failures are error notes rather than IQ errors. Not offered: get-user-roster, get-user-lastlogin and the active/idle counts (hearth keeps no such data), black- and whitelists, welcome messages, edit-admin, restart and shutdown",
    }];
    type Config = Config;

    fn init(_: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        let admin = Arc::new(Admin {
            motd: OnceCell::new(),
        });
        let commands = reg.shared::<Commands>();
        for op in Op::ALL {
            commands.add(AdminCommand {
                op,
                node: format!("{FORM_TYPE}#{}", op.node_name()),
                admin: admin.clone(),
            });
        }
        let state = admin.clone();
        reg.on_session(move |server, event| {
            let admin = state.clone();
            async move {
                if let SessionEvent::Bound(jid) = event {
                    admin.greet(&server, &jid).await;
                }
            }
        });
        Ok(admin)
    }
}

impl Admin {
    async fn motd_cell(&self, server: &Server) -> Result<&RwLock<Option<String>>, StanzaError> {
        self.motd
            .get_or_try_init(|| async {
                let stored = server.store.setting(MOTD_SETTING).await;
                stored.map(RwLock::new).map_err(storage_error)
            })
            .await
    }

    async fn motd(&self, server: &Server) -> Result<Option<String>, StanzaError> {
        let cell = self.motd_cell(server).await?;
        Ok(cell.read().expect("motd lock").clone())
    }

    async fn set_motd(&self, server: &Server, text: Option<&str>) -> Result<(), StanzaError> {
        let cell = self.motd_cell(server).await?;
        server
            .store
            .set_setting(MOTD_SETTING, text)
            .await
            .map_err(storage_error)?;
        *cell.write().expect("motd lock") = text.map(str::to_string);
        Ok(())
    }

    /// Sends the message of the day to a session that just bound.
    async fn greet(&self, server: &Server, jid: &Jid) {
        let motd = match self.motd(server).await {
            Ok(Some(motd)) => motd,
            Ok(None) => return,
            Err(_) => {
                tracing::warn!(%jid, "the message of the day could not be read; not sent");
                return;
            }
        };
        if let Some(session) = server.sessions.get(jid) {
            server.deliver(&session, &server_message(server, jid, &motd));
        }
    }
}

/// The XEP-0133 commands hearth offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    AddUser,
    DeleteUser,
    DisableUser,
    ReenableUser,
    EndUserSession,
    ChangeUserPassword,
    UserStats,
    OnlineUsersNum,
    OnlineUsersList,
    RegisteredUsersNum,
    Announce,
    SetMotd,
    EditMotd,
    DeleteMotd,
}

impl Op {
    const ALL: [Op; 14] = [
        Op::AddUser,
        Op::DeleteUser,
        Op::DisableUser,
        Op::ReenableUser,
        Op::EndUserSession,
        Op::ChangeUserPassword,
        Op::UserStats,
        Op::OnlineUsersNum,
        Op::OnlineUsersList,
        Op::RegisteredUsersNum,
        Op::Announce,
        Op::SetMotd,
        Op::EditMotd,
        Op::DeleteMotd,
    ];

    /// The part of the node after `http://jabber.org/protocol/admin#`.
    fn node_name(self) -> &'static str {
        match self {
            Op::AddUser => "add-user",
            Op::DeleteUser => "delete-user",
            Op::DisableUser => "disable-user",
            Op::ReenableUser => "reenable-user",
            Op::EndUserSession => "end-user-session",
            Op::ChangeUserPassword => "change-user-password",
            Op::UserStats => "user-stats",
            Op::OnlineUsersNum => "get-online-users-num",
            Op::OnlineUsersList => "get-online-users-list",
            Op::RegisteredUsersNum => "get-registered-users-num",
            Op::Announce => "announce",
            Op::SetMotd => "set-motd",
            Op::EditMotd => "edit-motd",
            Op::DeleteMotd => "delete-motd",
        }
    }

    /// The use case's title in XEP-0133.
    fn title(self) -> &'static str {
        match self {
            Op::AddUser => "Add User",
            Op::DeleteUser => "Delete User",
            Op::DisableUser => "Disable User",
            Op::ReenableUser => "Re-Enable User",
            Op::EndUserSession => "End User Session",
            Op::ChangeUserPassword => "Change User Password",
            Op::UserStats => "Get User Statistics",
            Op::OnlineUsersNum => "Get Number of Online Users",
            Op::OnlineUsersList => "Get List of Online Users",
            Op::RegisteredUsersNum => "Get Number of Registered Users",
            Op::Announce => "Send Announcement to Online Users",
            Op::SetMotd => "Set Message of the Day",
            Op::EditMotd => "Edit Message of the Day",
            Op::DeleteMotd => "Delete Message of the Day",
        }
    }

    /// The form to fill in (`edit-motd`'s with the current `motd`); `None` for commands that
    /// run at once.
    fn form(self, motd: Option<&str>) -> Option<DataForm> {
        let accountjid = || Field::new("jid-single", "accountjid", "The account").required();
        let accountjids = || Field::new("jid-multi", "accountjids", "The accounts").required();
        let form = DataForm::new(FormKind::Form, FORM_TYPE).title(self.title());
        let form = match self {
            Op::AddUser => form
                .field(accountjid())
                .field(Field::new("text-private", "password", "Password").required())
                .field(Field::new(
                    "text-private",
                    "password-verify",
                    "Password again",
                )),
            Op::ChangeUserPassword => form
                .field(accountjid())
                .field(Field::new("text-private", "password", "New password").required()),
            Op::UserStats => form.field(accountjid()),
            Op::DeleteUser | Op::DisableUser | Op::ReenableUser => form.field(accountjids()),
            Op::EndUserSession => form
                .instructions("An address with a resource ends that session only.")
                .field(accountjids()),
            Op::OnlineUsersList => {
                let mut max_items =
                    Field::new("list-single", "max_items", "Most users to list").value("100");
                for n in MAX_ITEMS {
                    max_items = max_items.option(n, n);
                }
                form.field(max_items.option("All", "none"))
            }
            Op::Announce => {
                form.field(Field::new("text-multi", "announcement", "Announcement").required())
            }
            Op::SetMotd => {
                form.field(Field::new("text-multi", "motd", "Message of the day").required())
            }
            Op::EditMotd => form.field(
                Field::new("text-multi", "motd", "Message of the day")
                    .required()
                    .text(motd.unwrap_or_default()),
            ),
            Op::OnlineUsersNum | Op::RegisteredUsersNum | Op::DeleteMotd => return None,
        };
        Some(form)
    }
}

struct AdminCommand {
    op: Op,
    node: String,
    admin: Arc<Admin>,
}

#[async_trait::async_trait]
impl Command for AdminCommand {
    fn node(&self) -> &str {
        &self.node
    }

    fn name(&self) -> &str {
        self.op.title()
    }

    async fn run(
        &self,
        server: &Arc<Server>,
        requester: &Requester,
        submitted: &[Submitted],
    ) -> Result<Step, StanzaError> {
        if let Some(answers) = submitted.first() {
            return self.execute(server, requester, answers).await;
        }
        let motd = match self.op {
            Op::EditMotd => self.admin.motd(server).await?,
            _ => None,
        };
        match self.op.form(motd.as_deref()) {
            Some(form) => Ok(Step::ask(form)),
            None => self.execute(server, requester, &Submitted::default()).await,
        }
    }
}

impl AdminCommand {
    async fn execute(
        &self,
        server: &Arc<Server>,
        by: &Requester,
        form: &Submitted,
    ) -> Result<Step, StanzaError> {
        let domain = server.domain();
        let result = |fields: Vec<Field>| {
            let form = fields
                .into_iter()
                .fold(DataForm::new(FormKind::Result, FORM_TYPE), DataForm::field);
            Ok(Step::result(form))
        };
        match self.op {
            Op::AddUser => {
                let jid = form.required("accountjid")?;
                let password = form.required("password")?;
                if form.first("password-verify").is_some_and(|v| v != password) {
                    return Ok(Step::failed(
                        "The two passwords differ; nothing was changed.",
                    ));
                }
                let user = match accounts::normalise_username(domain, jid) {
                    Ok(user) => user,
                    Err(e) => return Ok(Step::failed(e.to_string())),
                };
                let iterations = server.config.auth.scram_iterations;
                match accounts::create(&server.store, &user, password, iterations).await {
                    Ok(()) => {
                        tracing::info!(target: AUDIT, %by, account = %format!("{user}@{domain}"), "account created");
                        Ok(Step::done(format!("Created {user}@{domain}.")))
                    }
                    Err(AccountError::Exists) => {
                        Ok(Step::failed(format!("{user}@{domain} exists already.")))
                    }
                    Err(e) => account_error(e),
                }
            }
            Op::ChangeUserPassword => {
                let jid = form.required("accountjid")?;
                let password = form.required("password")?;
                let user = match accounts::normalise_username(domain, jid) {
                    Ok(user) => user,
                    Err(e) => return Ok(Step::failed(e.to_string())),
                };
                let iterations = server.config.auth.scram_iterations;
                match accounts::set_password(&server.store, &user, password, iterations).await {
                    Ok(()) => {
                        tracing::info!(target: AUDIT, %by, account = %format!("{user}@{domain}"), "password changed");
                        Ok(Step::done(format!(
                            "Changed the password of {user}@{domain}."
                        )))
                    }
                    Err(AccountError::NotFound) => Ok(Step::failed(format!(
                        "There is no account {user}@{domain}."
                    ))),
                    Err(e) => account_error(e),
                }
            }
            Op::DeleteUser | Op::DisableUser | Op::ReenableUser => {
                let mut notes = Vec::new();
                for jid in form.required_all("accountjids")? {
                    notes.push(match accounts::normalise_username(domain, jid) {
                        Ok(user) => self.change_account(server, by, &user).await?,
                        Err(e) => Note::new(NoteKind::Error, e.to_string()),
                    });
                }
                Ok(Step::Done {
                    notes,
                    result: None,
                })
            }
            Op::EndUserSession => {
                let mut notes = Vec::new();
                for raw in form.required_all("accountjids")? {
                    let jid = Jid::parse(raw).ok().filter(|j| j.is_account());
                    let Some(jid) = jid.filter(|j| j.domain() == domain) else {
                        let text = format!("{raw} is not an account of {domain}.");
                        notes.push(Note::new(NoteKind::Error, text));
                        continue;
                    };
                    let sessions: Vec<_> = match jid.is_full() {
                        true => server.sessions.get(&jid).into_iter().collect(),
                        false => server.sessions.of(jid.bare()),
                    };
                    for session in &sessions {
                        tracing::info!(target: AUDIT, %by, session = %session.jid, "session ended");
                        let text = "an administrator ended this session";
                        server.disconnect(session, "policy-violation", text).await;
                    }
                    notes.push(match sessions.len() {
                        0 => Note::new(NoteKind::Warn, format!("{jid} has no session.")),
                        n => Note::new(NoteKind::Info, format!("Ended {n} session(s) of {jid}.")),
                    });
                }
                Ok(Step::Done {
                    notes,
                    result: None,
                })
            }
            Op::UserStats => {
                let jid = form.required("accountjid")?;
                let user = match accounts::normalise_username(domain, jid) {
                    Ok(user) => user,
                    Err(e) => return Ok(Step::failed(e.to_string())),
                };
                let store = &server.store;
                if !store.account_exists(&user).await.map_err(storage_error)? {
                    return Ok(Step::failed(format!(
                        "There is no account {user}@{domain}."
                    )));
                }
                let roster = store.roster_count(&user).await.map_err(storage_error)?;
                let bare = Jid::parse(&format!("{user}@{domain}"))
                    .map_err(|_| StanzaError::new(Condition::JidMalformed))?;
                let resources: Vec<String> = server
                    .sessions
                    .of(bare.bare())
                    .iter()
                    .filter_map(|s| s.jid.resource().map(str::to_string))
                    .collect();
                result(vec![
                    Field::new("jid-single", "accountjid", "Account").value(bare.to_string()),
                    Field::new("text-single", "rostersize", "Contacts").value(roster.to_string()),
                    Field::new("text-single", "onlineresources", "Online resources")
                        .value(resources.join(", ")),
                ])
            }
            Op::OnlineUsersNum => {
                let online = server.sessions.accounts().len();
                result(vec![
                    Field::new("text-single", "onlineusersnum", "Users online")
                        .value(online.to_string()),
                ])
            }
            Op::OnlineUsersList => {
                let limit = match form.first("max_items") {
                    None | Some("none") => usize::MAX,
                    Some(n) => n.parse().map_err(|_| {
                        StanzaError::new(Condition::BadRequest)
                            .with_text("max_items must be a number or none")
                    })?,
                };
                let online = server.sessions.accounts();
                let listed = online.iter().take(limit).map(|j| j.to_string());
                result(vec![
                    Field::new("jid-multi", "onlineuserjids", "Users online").values(listed),
                ])
            }
            Op::RegisteredUsersNum => {
                let count = server.store.count_accounts().await.map_err(storage_error)?;
                result(vec![
                    Field::new("text-single", "registeredusersnum", "Registered users")
                        .value(count.to_string()),
                ])
            }
            Op::Announce => {
                let text = form.required_text("announcement")?;
                let (sessions, users) = broadcast(server, &text);
                tracing::info!(target: AUDIT, %by, sessions, users, "announcement sent");
                Ok(Step::done(format!(
                    "Sent to {sessions} session(s) of {users} user(s)."
                )))
            }
            Op::SetMotd | Op::EditMotd => {
                let text = form.required_text("motd")?;
                self.admin.set_motd(server, Some(&text)).await?;
                tracing::info!(target: AUDIT, %by, "message of the day set");
                // XEP-0133 §4.24: a new message of the day goes to those online too; an edit
                // (a typo fixed) does not disturb them again.
                if self.op == Op::SetMotd {
                    let (sessions, _) = broadcast(server, &text);
                    Ok(Step::done(format!(
                        "Set; sent to the {sessions} session(s) online and to each new session."
                    )))
                } else {
                    Ok(Step::done("Changed; each new session gets it."))
                }
            }
            Op::DeleteMotd => {
                let had = self.admin.motd(server).await?.is_some();
                self.admin.set_motd(server, None).await?;
                tracing::info!(target: AUDIT, %by, "message of the day deleted");
                Ok(Step::done(match had {
                    true => "Deleted the message of the day.",
                    false => "There was no message of the day.",
                }))
            }
        }
    }

    /// Deletes, disables or re-enables one account, ending its sessions unless re-enabled.
    async fn change_account(
        &self,
        server: &Arc<Server>,
        by: &Requester,
        user: &str,
    ) -> Result<Note, StanzaError> {
        let store = &server.store;
        let account = format!("{user}@{}", server.domain());
        let changed = match self.op {
            Op::DeleteUser => {
                end_sessions(server, &account, "this account was deleted").await;
                crate::gdpr::erase(store, &server.config, user)
                    .await
                    .map(|_| ())
            }
            Op::DisableUser => {
                let changed = store.set_disabled(user, true).await;
                end_sessions(server, &account, "this account was disabled").await;
                changed
            }
            _ => store.set_disabled(user, false).await,
        };
        let done = match self.op {
            Op::DeleteUser => "deleted",
            Op::DisableUser => "disabled",
            _ => "re-enabled",
        };
        match changed {
            Ok(()) => {
                tracing::info!(target: AUDIT, %by, %account, "account {done}");
                Ok(Note::new(NoteKind::Info, format!("{account}: {done}.")))
            }
            Err(hearth_store::StoreError::NoSuchAccount) => Ok(Note::new(
                NoteKind::Error,
                format!("{account}: there is no such account."),
            )),
            Err(e) => Err(storage_error(e)),
        }
    }
}

/// Ends every session of `account` (a bare JID), telling its clients why.
async fn end_sessions(server: &Arc<Server>, account: &str, why: &str) {
    let Ok(jid) = Jid::parse(account) else { return };
    for session in server.sessions.of(jid.bare()) {
        server.disconnect(&session, "policy-violation", why).await;
    }
}

/// Sends `text` from the server to every session; returns (sessions, users) reached.
fn broadcast(server: &Server, text: &str) -> (usize, usize) {
    let sessions = server.sessions.all();
    for session in &sessions {
        server.deliver(session, &server_message(server, &session.jid, text));
    }
    (sessions.len(), server.sessions.accounts().len())
}

/// A message from the server's JID, delivered straight to a session (no archive, no carbons).
fn server_message(server: &Server, to: &Jid, text: &str) -> Stanza {
    let el = Element::builder("message", ns::CLIENT)
        .attr(ncname("type"), "normal")
        .append(Element::builder("body", ns::CLIENT).append(text).build())
        .build();
    Stanza::from_parts(el, Jid::domain_jid(server.domain()).ok(), Some(to.clone()))
        .expect("a message element is a stanza")
}

fn account_error(e: AccountError) -> Result<Step, StanzaError> {
    match e {
        AccountError::Other(e) => {
            tracing::error!(error = %e, "account change failed");
            Err(StanzaError::new(Condition::InternalServerError))
        }
        e => Ok(Step::failed(e.to_string())),
    }
}

fn storage_error(e: hearth_store::StoreError) -> StanzaError {
    tracing::error!(error = %e, "administration command: storage failed");
    StanzaError::new(Condition::InternalServerError)
        .with_text("the database failed; see the server log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_follow_the_xep_fields() {
        let vars = |op: Op| -> Vec<String> {
            op.form(None)
                .map(|f| f.fields.iter().map(|f| f.var.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            vars(Op::AddUser),
            ["accountjid", "password", "password-verify"]
        );
        assert_eq!(vars(Op::DisableUser), ["accountjids"]);
        assert_eq!(vars(Op::OnlineUsersList), ["max_items"]);
        assert_eq!(vars(Op::Announce), ["announcement"]);
        assert!(Op::OnlineUsersNum.form(None).is_none());
        let edit = Op::EditMotd.form(Some("one\ntwo")).unwrap();
        assert_eq!(edit.fields[0].values, ["one", "two"]);
        let nodes: std::collections::HashSet<_> = Op::ALL.iter().map(|o| o.node_name()).collect();
        assert_eq!(nodes.len(), Op::ALL.len());
    }
}
