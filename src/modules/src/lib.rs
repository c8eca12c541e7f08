//! hearth-modules: one module per XEP or RFC area. `load_all` is the single place that names
//! the modules the server loads; the core knows none of them.

use hearth_core::module::Registrar;

pub mod adhoc;
pub mod admin;
pub mod blocking;
pub mod caps;
pub mod carbons;
pub mod contact;
pub mod conversion;
pub mod disco;
pub mod extdisco;
pub mod gdpr;
pub mod groups;
pub mod invite;
pub mod mam;
pub mod mdns;
pub mod message;
pub mod muc;
pub mod offline;
pub mod pep;
pub mod ping;
pub mod presence;
pub mod private;
pub mod proxy65;
pub mod push;
pub mod register;
pub mod roster;
pub mod upload;
pub mod vcard;
pub mod version;

/// Loads every module that is enabled in the configuration.
pub fn load_all(reg: &mut Registrar) -> anyhow::Result<()> {
    reg.load::<roster::Roster>()?;
    reg.load::<presence::Presence>()?;
    reg.load::<groups::Groups>()?;
    reg.load::<message::Message>()?;
    reg.load::<offline::Offline>()?;
    reg.load::<disco::Disco>()?;
    reg.load::<extdisco::ExtDisco>()?;
    reg.load::<contact::Contact>()?;
    reg.load::<version::Version>()?;
    reg.load::<ping::Ping>()?;
    // Before register, which asks it about invitation tokens.
    reg.load::<invite::Invite>()?;
    reg.load::<register::Register>()?;
    reg.load::<blocking::Blocking>()?;
    reg.load::<mam::Mam>()?;
    reg.load::<pep::Pep>()?;
    reg.load::<carbons::Carbons>()?;
    reg.load::<push::Push>()?;
    reg.load::<private::Private>()?;
    reg.load::<vcard::Vcard>()?;
    reg.load::<muc::Muc>()?;
    reg.load::<proxy65::Proxy65>()?;
    reg.load::<upload::FileUpload>()?;
    reg.load::<adhoc::Adhoc>()?;
    reg.load::<admin::Admin>()?;
    reg.load::<mdns::Mdns>()?;
    reg.load::<gdpr::Gdpr>()?;
    // Last: it hashes what all the others registered.
    reg.load::<caps::ServerCaps>()?;
    Ok(())
}
