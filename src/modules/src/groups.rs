//! Shared roster groups: everyone in a group has everyone else in their roster, under the
//! group's name, with presence both ways — in a company, Sales sees Sales without anyone
//! sending subscription requests. Groups come from the config (`[modules.groups.groups]`) and,
//! with an LDAP directory configured with `[auth.ldap.groups]`, from the directory; the rosters
//! are brought in line every `refresh_secs` (new accounts, directory changes).
//!
//! The items are real roster items (so presence, probes and clients work as with any contact);
//! hearth remembers which ones it added and removes only those when someone leaves a group. An
//! item a user removes comes back at the next refresh while both are still in the group.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use hearth_core::jid::Jid;
use hearth_core::module::{Module, Registrar, Spec};
use hearth_core::server::Server;
use hearth_store::{RosterItem, Subscription};
use serde::Deserialize;

use crate::roster::{Change, push};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Group name → usernames: `Sales = ["alice", "bob"]`.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Seconds between two updates of the rosters (new accounts, directory changes).
    pub refresh_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            groups: BTreeMap::new(),
            refresh_secs: 60,
        }
    }
}

pub struct Groups {
    cfg: Config,
}

impl Module for Groups {
    const NAME: &'static str = "groups";
    const SPECS: &'static [Spec] = &[];
    type Config = Config;

    fn init(cfg: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        let domain = reg.config().domain.clone();
        for (group, members) in &cfg.groups {
            for m in members {
                hearth_core::accounts::normalise_username(&domain, m)
                    .map_err(|e| anyhow::anyhow!("modules.groups.groups.{group:?}: {e}"))?;
            }
        }
        let from_directory = reg
            .config()
            .auth
            .ldap
            .as_ref()
            .is_some_and(|l| l.groups.is_some());
        let every = Duration::from_secs(cfg.refresh_secs.max(1));
        let this = Arc::new(Groups { cfg });
        if !this.cfg.groups.is_empty() || from_directory {
            let groups = this.clone();
            reg.worker("shared roster groups", move |server| async move {
                loop {
                    if let Err(e) = groups.sync(&server).await {
                        tracing::warn!(error = %e, "shared roster groups not updated; trying again later");
                    }
                    tokio::time::sleep(every).await;
                }
            });
        }
        Ok(this)
    }
}

impl Groups {
    /// The groups now: the config's, then the directory's.
    async fn groups(&self, server: &Server) -> anyhow::Result<Vec<(String, Vec<String>)>> {
        let domain = server.domain();
        let mut groups: Vec<(String, Vec<String>)> = self
            .cfg
            .groups
            .iter()
            .map(|(name, members)| {
                let members = members
                    .iter()
                    .filter_map(|m| hearth_core::accounts::normalise_username(domain, m).ok())
                    .collect();
                (name.clone(), members)
            })
            .collect();
        if let Some(directory) = &server.directory {
            // A directory that cannot be read changes nothing: no one is dropped from a group
            // because the directory was down.
            let from_directory = directory.groups().await?;
            for (_, members) in &from_directory {
                for m in members {
                    hearth_core::accounts::ensure_exists(server, m).await?;
                }
            }
            groups.extend(from_directory);
        }
        Ok(groups)
    }

    /// Brings the stored rosters in line with the groups.
    async fn sync(&self, server: &Arc<Server>) -> anyhow::Result<()> {
        let groups = self.groups(server).await?;
        let store = &server.store;
        let mut known = BTreeMap::new();
        for (_, members) in &groups {
            for m in members {
                if !known.contains_key(m) {
                    known.insert(m.clone(), store.account_exists(m).await?);
                }
            }
        }
        let desired = shared_items(&groups, |m| known.get(m).copied().unwrap_or(false));
        let managed: BTreeSet<(String, String)> =
            store.shared_roster_items().await?.into_iter().collect();
        let domain = server.domain();
        let mut added = Vec::new();
        for ((user, contact), names) in &desired {
            let contact_jid = format!("{contact}@{domain}");
            let current = store.roster_item(user, &contact_jid).await?;
            let Some(item) = mutual_item(current.as_ref(), &contact_jid, names) else {
                continue;
            };
            let version = store.roster_put(user, &item).await?;
            if current.is_none() {
                store.shared_roster_mark(user, contact).await?;
            }
            let user_jid = Jid::parse(&format!("{user}@{domain}"))?;
            push(server, &user_jid, Change::Item(&item), version).await;
            if current.is_none() {
                added.push((user_jid, Jid::parse(&contact_jid)?));
            }
        }
        // Presence the users would have learnt at login: asked for once both sides' items
        // exist (a probe is answered only for a subscriber).
        for (user, contact) in added {
            server
                .route(crate::presence::presence(Some("probe"), user, contact))
                .await;
        }
        for (user, contact) in managed {
            if desired.contains_key(&(user.clone(), contact.clone())) {
                continue;
            }
            let contact_jid = format!("{contact}@{domain}");
            if let Some(version) = store.roster_remove(&user, &contact_jid).await? {
                let user_jid = Jid::parse(&format!("{user}@{domain}"))?;
                push(server, &user_jid, Change::Removed(&contact_jid), version).await;
            }
            store.shared_roster_unmark(&user, &contact).await?;
        }
        tracing::debug!(
            groups = groups.len(),
            items = desired.len(),
            "shared roster groups updated"
        );
        Ok(())
    }
}

/// (user, contact) → the groups they share, for every pair of existing accounts in a group.
fn shared_items(
    groups: &[(String, Vec<String>)],
    exists: impl Fn(&str) -> bool,
) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut items: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (name, members) in groups {
        let members: BTreeSet<&String> = members.iter().filter(|m| exists(m)).collect();
        for user in &members {
            for contact in members.iter().filter(|c| c != &user) {
                items
                    .entry(((*user).clone(), (*contact).clone()))
                    .or_default()
                    .insert(name.clone());
            }
        }
    }
    items
}

/// The item to store for a contact made mutual by the server (a shared group, an invitation),
/// or `None` when `current` already has it: mutual subscription and `groups` (beside any
/// groups the user gave it).
pub(crate) fn mutual_item(
    current: Option<&RosterItem>,
    contact: &str,
    groups: &BTreeSet<String>,
) -> Option<RosterItem> {
    let mut item = current.cloned().unwrap_or(RosterItem {
        contact: contact.to_string(),
        name: None,
        subscription: Subscription::None,
        ask: false,
        approved: false,
        groups: Vec::new(),
    });
    let missing: Vec<String> = groups
        .iter()
        .filter(|g| !item.groups.contains(g))
        .cloned()
        .collect();
    if current.is_some() && item.subscription == Subscription::Both && missing.is_empty() {
        return None;
    }
    item.subscription = Subscription::Both;
    item.ask = false;
    item.groups.extend(missing);
    Some(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_in_a_group_shares_it_and_missing_accounts_are_left_out() {
        let groups = vec![
            (
                "Sales".to_string(),
                vec!["alice".into(), "bob".into(), "ghost".into()],
            ),
            ("Staff".to_string(), vec!["alice".into(), "bob".into()]),
        ];
        let items = shared_items(&groups, |m| m != "ghost");
        let pairs: Vec<_> = items.keys().cloned().collect();
        assert_eq!(
            pairs,
            [
                ("alice".into(), "bob".into()),
                ("bob".into(), "alice".into())
            ]
        );
        let both: BTreeSet<String> = ["Sales".into(), "Staff".into()].into();
        assert_eq!(items[&("alice".to_string(), "bob".to_string())], both);
    }

    #[test]
    fn items_get_mutual_subscription_and_keep_the_users_groups() {
        let sales: BTreeSet<String> = ["Sales".into()].into();
        let new = mutual_item(None, "bob@x", &sales).unwrap();
        assert_eq!(new.subscription, Subscription::Both);
        assert_eq!(new.groups, ["Sales"]);
        let own = RosterItem {
            groups: vec!["Friends".into()],
            subscription: Subscription::To,
            name: Some("Bobby".into()),
            ..new.clone()
        };
        let merged = mutual_item(Some(&own), "bob@x", &sales).unwrap();
        assert_eq!(merged.groups, ["Friends", "Sales"]);
        assert_eq!(merged.name.as_deref(), Some("Bobby"));
        assert_eq!(merged.subscription, Subscription::Both);
        // Nothing to write when it is already so.
        assert_eq!(mutual_item(Some(&merged), "bob@x", &sales), None);
    }
}
