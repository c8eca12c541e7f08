//! SCRAM (RFC 5802) server side, for SHA-1 and SHA-256, with channel binding.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

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

/// A server nonce: 24 random bytes, base64 (printable and comma-free, as RFC 5802 requires).
pub(crate) fn new_nonce() -> String {
    B64.encode(random_bytes(24))
}

/// SCRAM keys for both hashes, each with its own random salt.
pub fn derive_credentials(password: &str, iterations: u32) -> Result<Credentials, SaslFailure> {
    if iterations == 0 {
        return Err(SaslFailure::malformed("iteration count must be positive"));
    }
    let password = saslprep(password)?;
    Ok(Credentials {
        sha1: Hash::Sha1.keys(&password, random_bytes(16), iterations),
        sha256: Hash::Sha256.keys(&password, random_bytes(16), iterations),
    })
}

/// Checks an already SASLprep'd password: recompute StoredKey, compare in constant time.
pub(crate) fn verify_prepared(keys: &ScramKeys, hash: Hash, password: &str) -> bool {
    let computed = hash.keys(password, keys.salt.clone(), keys.iterations);
    computed.stored_key.ct_eq(&keys.stored_key).into()
}

/// Iteration count shown for unknown accounts: the one last seen on a real account, so decoys
/// look like real accounts whatever count the operator configured.
static DECOY_ITERATIONS: AtomicU32 = AtomicU32::new(10_000);

/// The keys to run the exchange with, and whether the account exists. Unknown accounts get
/// decoys derived from the name with a per-process secret: the exchange looks the same (a
/// stable salt per name) and fails only at the proof.
pub(crate) fn keys_for(
    hash: Hash,
    creds: Option<&Credentials>,
    username: &str,
) -> (ScramKeys, bool) {
    static SECRET: OnceLock<Vec<u8>> = OnceLock::new();
    if let Some(c) = creds {
        let keys = match hash {
            Hash::Sha1 => c.sha1.clone(),
            Hash::Sha256 => c.sha256.clone(),
        };
        DECOY_ITERATIONS.store(keys.iterations, Ordering::Relaxed);
        return (keys, true);
    }
    let secret = SECRET.get_or_init(|| random_bytes(32));
    let seed = hash.hmac(secret, username.as_bytes());
    let keys = ScramKeys {
        salt: seed[..16].to_vec(),
        iterations: DECOY_ITERATIONS.load(Ordering::Relaxed).max(1),
        stored_key: random_bytes(seed.len()),
        server_key: random_bytes(seed.len()),
    };
    (keys, false)
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
            // The client could bind but believes we cannot: a stripped -PLUS offer (downgrade,
            // RFC 5802 §6).
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
            ("n" | "y", true) => {
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
        // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
        let mut attrs = bare.split(',');
        let username = match attrs.next() {
            Some(a) if a.starts_with("m=") => {
                return Err(SaslFailure::malformed(
                    "mandatory extensions are not supported",
                ));
            }
            Some(a) if a.starts_with("n=") => saslprep(&unescape_name(&a[2..])?)?.into_owned(),
            _ => return Err(SaslFailure::malformed("client-first-message needs n=")),
        };
        if username.is_empty() {
            return Err(SaslFailure::malformed("empty username"));
        }
        let client_nonce = match attrs.next().and_then(|a| a.strip_prefix("r=")) {
            Some(n) if !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b)) => n,
            _ => return Err(SaslFailure::malformed("missing or bad nonce").for_user(&username)),
        };
        if let Some(a) = authzid.strip_prefix("a=") {
            check_authzid(&unescape_name(a)?, &username)?;
        } else if !authzid.is_empty() {
            return Err(SaslFailure::malformed("bad authzid").for_user(&username));
        }
        let mut expected_cbind = gs2_header.as_bytes().to_vec();
        expected_cbind.extend_from_slice(cb_data);
        Ok(Self {
            hash,
            client_nonce: client_nonce.to_string(),
            username,
            bare: bare.to_string(),
            expected_cbind,
        })
    }

    /// The server-first message for these credentials (decoys when the account is unknown).
    pub(crate) fn answer(
        self,
        creds: Option<&Credentials>,
        server_nonce: &str,
    ) -> (ServerFirst, Vec<u8>) {
        let (keys, exists) = keys_for(self.hash, creds, &self.username);
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
    pub(crate) fn username(&self) -> &str {
        &self.first.username
    }

    /// Checks the client-final message; returns the username and the server-final message.
    pub(crate) fn verify(self, text: &str) -> Result<(String, Vec<u8>), SaslFailure> {
        let user = &self.first.username;
        let fail = |c, t| SaslFailure::new(c, t).for_user(user);
        // client-final-message = "c=" cbind "," "r=" nonce ["," extensions] ",p=" proof
        let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
            return Err(fail(Condition::MalformedRequest, "no proof"));
        };
        let mut attrs = without_proof.split(',');
        let (Some(cbind), Some(nonce)) = (
            attrs.next().and_then(|a| a.strip_prefix("c=")),
            attrs.next().and_then(|a| a.strip_prefix("r=")),
        ) else {
            return Err(fail(
                Condition::MalformedRequest,
                "client-final-message needs c= and r=",
            ));
        };
        let cbind = B64.decode(cbind).map_err(|_| {
            fail(
                Condition::IncorrectEncoding,
                "channel-binding data is not base64",
            )
        })?;
        let proof = B64
            .decode(proof)
            .map_err(|_| fail(Condition::IncorrectEncoding, "proof is not base64"))?;
        if !bool::from(cbind.ct_eq(&self.first.expected_cbind)) {
            return Err(fail(
                Condition::NotAuthorized,
                "channel-binding data does not match",
            ));
        }
        if nonce != self.nonce {
            return Err(fail(Condition::NotAuthorized, "nonce does not match"));
        }
        let hash = self.first.hash;
        let auth_message = format!("{},{},{}", self.first.bare, self.message, without_proof);
        let client_signature = hash.hmac(&self.keys.stored_key, auth_message.as_bytes());
        // ClientKey = ClientProof XOR ClientSignature; the proof is right if H(ClientKey) is
        // StoredKey. A proof of the wrong length cannot match; the length is not secret.
        let matches = proof.len() == client_signature.len() && {
            let client_key: Vec<u8> = proof
                .iter()
                .zip(&client_signature)
                .map(|(a, b)| a ^ b)
                .collect();
            hash.digest(&client_key).ct_eq(&self.keys.stored_key).into()
        };
        if !(matches && self.exists) {
            return Err(fail(Condition::NotAuthorized, "wrong username or password"));
        }
        let server_signature = hash.hmac(&self.keys.server_key, auth_message.as_bytes());
        Ok((
            self.first.username,
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        ))
    }
}
