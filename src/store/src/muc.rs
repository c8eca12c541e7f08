//! Multi-User Chat (XEP-0045): persistent rooms and their affiliations.

use crate::{Result, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoom {
    /// The bare room JID.
    pub jid: String,
    /// Listed in the room directory.
    pub public: bool,
    /// The configuration, in the MUC module's own text form.
    pub config: String,
    /// Who set the subject (a nick, or empty for the room), and the subject.
    pub subject: Option<(String, String)>,
    /// The room's vCard-temp as XML (its avatar); not read for the directory.
    pub vcard: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAffiliation {
    /// A bare JID.
    pub jid: String,
    pub affiliation: String,
    pub reason: Option<String>,
    /// The nickname registered in the room, reserved for this JID.
    pub nick: Option<String>,
}

impl Store {
    /// The room and its affiliations, if it is stored.
    pub async fn muc_room(
        &self,
        jid: &str,
    ) -> Result<Option<(StoredRoom, Vec<StoredAffiliation>)>> {
        dispatch!(self.muc_room(jid))
    }

    /// Public rooms, for the directory.
    pub async fn muc_public_rooms(&self) -> Result<Vec<StoredRoom>> {
        dispatch!(self.muc_public_rooms())
    }

    /// Stores the room's configuration and subject (creating the room).
    pub async fn muc_put_room(&self, room: StoredRoom) -> Result<()> {
        dispatch!(self.muc_put_room(room))
    }

    /// Sets (or with `None`, removes) one affiliation of a stored room.
    pub async fn muc_set_affiliation(
        &self,
        room: &str,
        jid: &str,
        affiliation: Option<StoredAffiliation>,
    ) -> Result<()> {
        dispatch!(self.muc_set_affiliation(room, jid, affiliation))
    }

    /// Deletes a room and its affiliations.
    pub async fn muc_delete_room(&self, jid: &str) -> Result<()> {
        dispatch!(self.muc_delete_room(jid))
    }
}
