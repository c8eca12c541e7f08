//! Acknowledgements on server links (XEP-0198 without resumption): what a link wrote and the
//! peer has not confirmed yet, to send again on another connection if this one breaks.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::wire::{Broken, Wire};
use crate::stanza::Stanza;

/// Stanzas waiting for an ack that make hearth ask for one at once; fewer wait [`ACK_DELAY`]
/// (at a few stanzas a second, one request per stanza would double the traffic).
const ACK_BATCH: usize = 64;
const ACK_DELAY: Duration = Duration::from_millis(500);

/// What an established link has written: with acknowledgements (XEP-0198 on the link), the
/// stanzas not yet acknowledged, to send again on a new connection if this one breaks.
pub(super) struct Sent {
    pub acks: bool,
    /// Written, not acknowledged yet (oldest first).
    pub unacked: VecDeque<Stanza>,
    /// Stanzas written on this connection, modulo 2^32 (XEP-0198 counts).
    count: u32,
    /// `h` of the last acknowledgement.
    acked: u32,
    /// An `<r/>` is outstanding.
    pub requested: bool,
    /// To write before the queue's stanzas.
    pub first: VecDeque<Stanza>,
    /// When to ask for an ack for what waits (see [`Sent::after_write`]).
    pub due: Option<Instant>,
}

impl Sent {
    pub fn new(acks: bool, first: VecDeque<Stanza>) -> Self {
        Sent {
            acks,
            unacked: VecDeque::new(),
            count: 0,
            acked: 0,
            requested: false,
            first,
            due: None,
        }
    }

    pub fn write(&mut self, wire: &mut Wire, st: Stanza) {
        wire.out.extend_from_slice(&st.to_client_bytes());
        // Counted even without acks: the peer's `h` counts every stanza of the stream.
        self.count = self.count.wrapping_add(1);
        if self.acks {
            self.unacked.push_back(st);
        }
    }

    /// Turns acknowledgements on for what is written from now on.
    pub fn start_acks(&mut self) {
        if !self.acks {
            self.acks = true;
            self.acked = self.count;
        }
    }

    /// Writes an ack request if stanzas wait for one and none is outstanding.
    pub fn request(&mut self, wire: &mut Wire) {
        self.due = None;
        if self.acks && !self.requested && !self.unacked.is_empty() {
            wire.out
                .extend_from_slice(format!("<r xmlns='{}'/>", crate::sm::NS).as_bytes());
            self.requested = true;
        }
    }

    /// After a write: asks for an ack at once when [`ACK_BATCH`] stanzas wait for one, else
    /// sets `due` (the caller calls [`Sent::request`] then).
    pub fn after_write(&mut self, wire: &mut Wire) {
        if !self.acks || self.requested || self.unacked.is_empty() {
            return;
        }
        if self.unacked.len() >= ACK_BATCH {
            self.request(wire);
        } else if self.due.is_none() {
            self.due = Some(Instant::now() + ACK_DELAY);
        }
    }

    /// `<a h='…'/>`: drops what the peer confirms; an `h` beyond what was sent breaks the link.
    pub fn acknowledged(&mut self, h: u32) -> Result<(), Broken> {
        let newly = h.wrapping_sub(self.acked) as usize;
        if newly > self.unacked.len() {
            return Err(Broken::new(format!(
                "the peer acknowledged {newly} stanzas, {} were outstanding",
                self.unacked.len()
            )));
        }
        self.unacked.drain(..newly);
        self.acked = h;
        self.requested = false;
        Ok(())
    }

    /// Everything not known to have arrived, in order.
    pub fn unacknowledged(self) -> VecDeque<Stanza> {
        let mut all = self.unacked;
        all.extend(self.first);
        all
    }
}
