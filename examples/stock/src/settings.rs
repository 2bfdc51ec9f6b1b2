//! The binaries' configuration: rabbit-gather's layered settings (its
//! defaults, then the environment: `AMQP_URL`, `GREETINGS_*`), put on one
//! route, with a broker URL given on the command line over them.

use rabbit_gather::{Settings, settings::SettingsError};

/// The settings of a warehouse or a client on `route`: loaded from the
/// environment, `amqp_url` over `AMQP_URL` when given, then validated.
///
/// # Errors
/// [`SettingsError`] for an environment that does not load, or a route or
/// URL the library refuses.
pub fn load_settings(route: &str, amqp_url: Option<&str>) -> Result<Settings, SettingsError> {
    let mut settings = Settings::load(None)?;
    route.clone_into(&mut settings.topology.prefix);
    if let Some(url) = amqp_url {
        settings.amqp.url = url.into();
    }
    settings.validate()?;
    Ok(settings)
}
