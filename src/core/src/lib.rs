//! hearth-core: the XML stream layer for clients, the stanza envelope, the router and its module
//! interface, sessions, TLS and the configuration. The core knows no module by name: modules
//! register hooks and handlers through `module::Registrar`.

pub mod accounts;
mod c2s;
pub mod component;
pub mod config;
pub mod csi;
pub mod datetime;
pub mod dns;
pub mod files;
pub mod http;
pub mod jid;
pub mod module;
pub mod ns;
pub mod rate;
pub mod router;
pub mod s2s;
pub mod server;
pub mod session;
mod sm;
pub mod stanza;
mod streams;
pub mod tls;
mod transport;
