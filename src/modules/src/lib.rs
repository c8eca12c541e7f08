//! hearth-modules: one module per XEP or RFC area. `load_all` is the single place that names
//! the modules the server loads; the core knows none of them.

use hearth_core::module::Registrar;

/// Loads every module that is enabled in the configuration.
pub fn load_all(reg: &mut Registrar) -> anyhow::Result<()> {
    let _ = reg;
    Ok(())
}
