//! The Hashed Token mechanisms (HT-SHA-256-*, draft-schmaus-kitten-sasl-ht) that FAST
//! (XEP-0484) uses: the client proves it holds a token in one message, HMAC(token,
//! "Initiator" || channel-binding data), and the server answers with HMAC(token, "Responder"
//! || the same data), so each side knows the other holds the token.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::ChannelBindings;

/// An HT-SHA-256 mechanism, named by the channel binding it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HtMechanism {
    /// Bound to `tls-exporter` (RFC 9266).
    Expr,
    /// Bound to `tls-server-end-point` (RFC 5929).
    Endp,
    /// Not bound to the TLS channel.
    None,
}

impl HtMechanism {
    pub fn name(self) -> &'static str {
        match self {
            HtMechanism::Expr => "HT-SHA-256-EXPR",
            HtMechanism::Endp => "HT-SHA-256-ENDP",
            HtMechanism::None => "HT-SHA-256-NONE",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Expr, Self::Endp, Self::None]
            .into_iter()
            .find(|m| m.name() == name)
    }

    /// The channel-binding data this mechanism mixes in; `None` when the connection has none
    /// of its type (the mechanism is then not offered).
    fn binding(self, cb: &ChannelBindings) -> Option<&[u8]> {
        match self {
            HtMechanism::Expr => cb.data("tls-exporter"),
            HtMechanism::Endp => cb.data("tls-server-end-point"),
            HtMechanism::None => Some(&[]),
        }
    }

    /// Checks the client's initial response `authcid NUL HMAC(token, "Initiator" || cb)`
    /// against `token`, in constant time.
    pub fn verify(self, token: &str, cb: &ChannelBindings, proof: &[u8]) -> bool {
        self.binding(cb)
            .is_some_and(|data| bool::from(hmac(token, b"Initiator", data).ct_eq(proof)))
    }

    /// The server's proof, sent as `<additional-data/>` in the success.
    pub fn responder(self, token: &str, cb: &ChannelBindings) -> Vec<u8> {
        hmac(token, b"Responder", self.binding(cb).unwrap_or_default())
    }
}

/// HT mechanisms to advertise for this connection, strongest first.
pub fn offered_ht(cb: &ChannelBindings) -> Vec<HtMechanism> {
    [HtMechanism::Expr, HtMechanism::Endp, HtMechanism::None]
        .into_iter()
        .filter(|m| m.binding(cb).is_some())
        .collect()
}

/// Splits an HT initial response into the account name and the client's proof.
pub fn parse_initial(data: &[u8]) -> Option<(String, &[u8])> {
    let nul = data.iter().position(|&b| b == 0)?;
    let (user, proof) = (&data[..nul], &data[nul + 1..]);
    let user = std::str::from_utf8(user).ok()?;
    (!user.is_empty() && !proof.is_empty()).then(|| (user.to_string(), proof))
}

/// A new secret token: 32 random bytes, base64 (the client uses the string's bytes as key).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn hmac(token: &str, label: &[u8], binding: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(token.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(label);
    mac.update(binding);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bindings() -> ChannelBindings {
        ChannelBindings {
            tls_exporter: Some(vec![1; 32]),
            tls_server_end_point: Some(vec![2; 32]),
        }
    }

    #[test]
    fn a_proof_verifies_only_with_its_token_and_binding() {
        let token = generate_token();
        let cb = bindings();
        for m in offered_ht(&cb) {
            let proof = hmac(&token, b"Initiator", m.binding(&cb).unwrap());
            assert!(m.verify(&token, &cb, &proof), "{}", m.name());
            assert!(!m.verify(&generate_token(), &cb, &proof));
            assert_ne!(m.responder(&token, &cb), proof);
        }
        // A proof bound to one channel fails on another (a relayed token is useless).
        let proof = hmac(&token, b"Initiator", &[1; 32]);
        let other = ChannelBindings {
            tls_exporter: Some(vec![3; 32]),
            tls_server_end_point: None,
        };
        assert!(!HtMechanism::Expr.verify(&token, &other, &proof));
        assert_eq!(offered_ht(&other).len(), 2);
        assert_eq!(offered_ht(&ChannelBindings::default()), [HtMechanism::None]);
    }

    #[test]
    fn initial_responses_split_at_the_first_nul() {
        let (user, proof) = parse_initial(b"alice\0\x01\x00\x02").unwrap();
        assert_eq!((user.as_str(), proof), ("alice", &b"\x01\x00\x02"[..]));
        assert!(parse_initial(b"alice").is_none());
        assert!(parse_initial(b"\0proof").is_none());
        assert!(parse_initial(b"alice\0").is_none());
        assert!(parse_initial(b"\xff\0proof").is_none());
    }
}
