//! Server-wide settings changed at run time by an administrator (the message of the day),
//! by name.

use crate::{Result, Store};

impl Store {
    pub async fn setting(&self, name: &str) -> Result<Option<String>> {
        dispatch!(self.setting(name))
    }

    /// Sets the setting, or removes it with `None`.
    pub async fn set_setting(&self, name: &str, value: Option<&str>) -> Result<()> {
        dispatch!(self.set_setting(name, value))
    }
}
