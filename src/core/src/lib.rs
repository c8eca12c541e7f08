//! hearth-core: the XML stream layer for clients, the stanza envelope, the router and its module
//! interface, sessions, TLS and the configuration. The core knows no module by name: modules
//! register hooks and handlers through `module::Registrar`.

pub mod config;
pub mod jid;
pub mod ns;
pub mod session;
pub mod stanza;
