//! XEP-0199: XMPP Ping, answered by the server. (The server's own pings to silent clients live
//! in the c2s stream layer, which owns the connection's liveness.)

use std::sync::Arc;

use hearth_core::module::{DiscoScope, IqTarget, IqType, Module, Registrar, Spec, SupportStatus};
use hearth_core::ns::PING;
use serde::Deserialize;

pub struct Ping;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {}

impl Module for Ping {
    const NAME: &'static str = "ping";
    const SPECS: &'static [Spec] = &[Spec {
        id: "XEP-0199",
        version: "2.0.1",
        status: SupportStatus::Complete,
        note: "client-to-server pings answered",
    }];
    type Config = Config;

    fn init(_: Config, reg: &mut Registrar) -> anyhow::Result<Arc<Self>> {
        reg.feature(DiscoScope::Host, PING);
        reg.iq(IqType::Get, IqTarget::Host, PING, "ping", |_, _| async {
            Ok(None)
        });
        Ok(Arc::new(Ping))
    }
}
