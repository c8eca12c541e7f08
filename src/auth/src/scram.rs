//! SCRAM (RFC 5802) server side, for SHA-1 and SHA-256, with channel binding.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    ChannelBindings, Condition, Credentials, SaslFailure, ScramKeys, check_authzid, saslprep,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hash {
    Sha1,
    Sha256,
}

impl Hash {
    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => Sha1::digest(data).to_vec(),
            Hash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => {
                let mut m =
                    <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Hash::Sha256 => {
                let mut m =
                    <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Hash::Sha1 => {
                pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(password.as_bytes(), salt, iterations)
                    .to_vec()
            }
            Hash::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, iterations)
                    .to_vec()
            }
        }
    }

    pub(crate) fn keys(self, password: &str, salt: Vec<u8>, iterations: u32) -> ScramKeys {
        let salted = self.salted_password(password, &salt, iterations);
        let client_key = self.hmac(&salted, b"Client Key");
        ScramKeys {
            stored_key: self.digest(&client_key),
            server_key: self.hmac(&salted, b"Server Key"),
            salt,
            iterations,
        }
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// SCRAM keys for both hashes, each with its own random salt.
pub fn derive_credentials(password: &str, iterations: u32) -> Result<Credentials, SaslFailure> {
    let password = saslprep(password)?;
    Ok(Credentials {
        sha1: Hash::Sha1.keys(&password, random_bytes(16), iterations),
        sha256: Hash::Sha256.keys(&password, random_bytes(16), iterations),
    })
}

pub(crate) fn verify_password(keys: &ScramKeys, hash: Hash, password: &str) -> bool {
    let Ok(password) = saslprep(password) else {
        return false;
    };
    let computed = hash.keys(&password, keys.salt.clone(), keys.iterations);
    computed.stored_key.ct_eq(&keys.stored_key).into()
}

/// Keys for an account that does not exist: derived from the name with a per-process secret, so
/// the exchange looks the same as for a real account and fails only at the proof.
fn decoy_keys(hash: Hash, username: &str) -> ScramKeys {
    static SECRET: OnceLock<Vec<u8>> = OnceLock::new();
    let secret = SECRET.get_or_init(|| random_bytes(32));
    let seed = hash.hmac(secret, username.as_bytes());
    ScramKeys {
        salt: seed[..16].to_vec(),
        iterations: 10_000,
        stored_key: random_bytes(seed.len()),
        server_key: random_bytes(seed.len()),
    }
}

/// `=2C` and `=3D` escapes in a SCRAM username (RFC 5802 §5.1).
fn unescape_name(s: &str) -> Result<String, SaslFailure> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('=') {
        out.push_str(&rest[..pos]);
        match rest.get(pos..pos + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(SaslFailure::malformed("bad escape in username")),
        }
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The client-first message, parsed and checked.
pub(crate) struct ClientFirst {
    hash: Hash,
    pub(crate) username: String,
    client_nonce: String,
    bare: String,
    /// What `c=` must decode to: the GS2 header followed by the channel-binding data.
    expected_cbind: Vec<u8>,
}

impl ClientFirst {
    pub(crate) fn parse(
        text: &str,
        hash: Hash,
        plus: bool,
        cb: &ChannelBindings,
    ) -> Result<Self, SaslFailure> {
        let mut parts = text.splitn(3, ',');
        let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(SaslFailure::malformed(
                "client-first-message needs a GS2 header",
            ));
        };
        let gs2_header = &text[..flag.len() + authzid.len() + 2];
        let cb_data: &[u8] = match (flag, plus) {
            ("n", false) => &[],
            // The client could bind but believes we cannot: a stripped -PLUS offer (downgrade).
            ("y", false) if cb.any() => {
                return Err(SaslFailure::new(
                    Condition::NotAuthorized,
                    "channel binding is supported; possible downgrade attack",
                ));
            }
            ("y", false) => &[],
            (f, true) if f.starts_with("p=") => cb.data(&f[2..]).ok_or_else(|| {
                SaslFailure::new(Condition::NotAuthorized, "unsupported channel-binding type")
            })?,
            (_, true) => {
                return Err(SaslFailure::new(
                    Condition::NotAuthorized,
                    "a -PLUS mechanism needs channel binding",
                ));
            }
            (f, false) if f.starts_with("p=") => {
                return Err(SaslFailure::new(
                    Condition::NotAuthorized,
                    "channel binding needs a -PLUS mechanism",
                ));
            }
            _ => return Err(SaslFailure::malformed("bad GS2 flag")),
        };
        let mut username = None;
        let mut nonce = None;
        for attr in bare.split(',') {
            match attr.split_at_checked(2) {
                Some(("n=", v)) if username.is_none() => {
                    username = Some(saslprep(&unescape_name(v)?)?.to_string())
                }
                Some(("r=", v)) if nonce.is_none() => nonce = Some(v.to_string()),
                Some(("m=", _)) => {
                    return Err(SaslFailure::malformed(
                        "mandatory extensions are not supported",
                    ));
                }
                _ if username.is_some() && nonce.is_some() => {}
                _ => {
                    return Err(SaslFailure::malformed(
                        "client-first-message must start with n= and r=",
                    ));
                }
            }
        }
        let (Some(username), Some(client_nonce)) = (username, nonce) else {
            return Err(SaslFailure::malformed("username and nonce required"));
        };
        if username.is_empty()
            || client_nonce.is_empty()
            || !client_nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
        {
            return Err(SaslFailure::malformed("empty username or bad nonce"));
        }
        if let Some(a) = authzid.strip_prefix("a=") {
            check_authzid(&unescape_name(a)?, &username)?;
        } else if !authzid.is_empty() {
            return Err(SaslFailure::malformed("bad authzid"));
        }
        let mut expected_cbind = gs2_header.as_bytes().to_vec();
        expected_cbind.extend_from_slice(cb_data);
        Ok(Self {
            hash,
            username,
            client_nonce,
            bare: bare.to_string(),
            expected_cbind,
        })
    }

    /// The server-first message for these credentials (decoys when the account is unknown).
    pub(crate) fn answer(self, creds: Option<&Credentials>) -> (ServerFirst, Vec<u8>) {
        let suffix = B64.encode(random_bytes(24));
        self.answer_with_nonce(creds, &suffix)
    }

    pub(crate) fn answer_with_nonce(
        self,
        creds: Option<&Credentials>,
        server_nonce: &str,
    ) -> (ServerFirst, Vec<u8>) {
        let keys = creds.map(|c| match self.hash {
            Hash::Sha1 => c.sha1.clone(),
            Hash::Sha256 => c.sha256.clone(),
        });
        let exists = keys.is_some();
        let keys = keys.unwrap_or_else(|| decoy_keys(self.hash, &self.username));
        let nonce = format!("{}{server_nonce}", self.client_nonce);
        let message = format!(
            "r={nonce},s={},i={}",
            B64.encode(&keys.salt),
            keys.iterations
        );
        let challenge = message.clone().into_bytes();
        (
            ServerFirst {
                first: self,
                nonce,
                message,
                keys,
                exists,
            },
            challenge,
        )
    }
}

pub(crate) struct ServerFirst {
    first: ClientFirst,
    nonce: String,
    message: String,
    keys: ScramKeys,
    exists: bool,
}

impl ServerFirst {
    /// Checks the client-final message; returns the username and the server-final message.
    pub(crate) fn verify(self, text: &str) -> Result<(String, Vec<u8>), SaslFailure> {
        let user = &self.first.username;
        let Some(proof_pos) = text.rfind(",p=") else {
            return Err(SaslFailure::malformed("no proof").for_user(user));
        };
        let without_proof = &text[..proof_pos];
        let proof = B64.decode(&text[proof_pos + 3..]).map_err(|_| {
            SaslFailure::new(Condition::IncorrectEncoding, "proof is not base64").for_user(user)
        })?;
        let mut cbind = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            match attr.split_at_checked(2) {
                Some(("c=", v)) => cbind = Some(v),
                Some(("r=", v)) => nonce = Some(v),
                _ => {}
            }
        }
        let cbind = cbind.and_then(|c| B64.decode(c).ok()).ok_or_else(|| {
            SaslFailure::malformed("missing channel-binding attribute").for_user(user)
        })?;
        if !bool::from(cbind.ct_eq(&self.first.expected_cbind)) {
            return Err(SaslFailure::new(
                Condition::NotAuthorized,
                "channel-binding data does not match",
            )
            .for_user(user));
        }
        if nonce != Some(self.nonce.as_str()) {
            return Err(
                SaslFailure::new(Condition::NotAuthorized, "nonce does not match").for_user(user),
            );
        }
        let hash = self.first.hash;
        let auth_message = format!("{},{},{}", self.first.bare, self.message, without_proof);
        let client_signature = hash.hmac(&self.keys.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(
                SaslFailure::new(Condition::NotAuthorized, "wrong username or password")
                    .for_user(user),
            );
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let matches: bool = hash.digest(&client_key).ct_eq(&self.keys.stored_key).into();
        if !(matches && self.exists) {
            return Err(
                SaslFailure::new(Condition::NotAuthorized, "wrong username or password")
                    .for_user(user),
            );
        }
        let server_signature = hash.hmac(&self.keys.server_key, auth_message.as_bytes());
        Ok((
            self.first.username,
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        ))
    }
}
