//! The flags both binaries share: where the config file is, which broker,
//! which prefix. Each binary flattens [`SharedArgs`] into its own `Cli`.
//! Behind the `cli` feature, so that an embedder does not build clap.
//!
//! A flag that overrides a setting is an `Option`, applied only when given
//! (a clap `default_value` would override the file and the environment
//! every time); its help shows the setting's default with [`with_default`],
//! taken from the `DEFAULT_*` constants of [`crate::settings`].

use std::{fmt::Display, path::PathBuf};

use clap::Args;

use crate::settings::{DEFAULT_PREFIX, LogFormat, Settings, SettingsError};

/// A flag's help followed by the default of the setting it overrides, as
/// clap writes its own: `help [default: value]`.
#[must_use]
pub fn with_default(help: &str, default: impl Display) -> String {
    format!("{help} [default: {default}]")
}

/// Config file, broker URL and prefix flags.
#[derive(Debug, Clone, Default, Args)]
pub struct SharedArgs {
    /// TOML config file, layered over the defaults and under the environment.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Broker URL (overrides AMQP_URL and the config).
    #[arg(long, value_name = "URL")]
    pub amqp_url: Option<String>,
    /// `topology.prefix`, when given.
    #[arg(long, help = with_default("Prefix of every exchange and queue name", DEFAULT_PREFIX))]
    pub prefix: Option<String>,
    /// `log.format`, when given.
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        help = with_default(
            "Log lines on stderr: text, or one JSON object per line",
            LogFormat::default().as_str(),
        )
    )]
    pub log_format: Option<LogFormat>,
}

impl SharedArgs {
    /// Loads the layered settings and applies these flags on top (not yet
    /// validated: the binary applies its own flags, then validates).
    ///
    /// # Errors
    /// [`SettingsError`] when the file or the environment cannot be loaded.
    pub fn load(&self) -> Result<Settings, SettingsError> {
        let mut settings = Settings::load(self.config.as_deref())?;
        if let Some(url) = &self.amqp_url {
            settings.amqp.url = url.clone().into();
        }
        if let Some(prefix) = &self.prefix {
            settings.topology.prefix.clone_from(prefix);
        }
        if let Some(format) = self.log_format {
            settings.log.format = format;
        }
        Ok(settings)
    }
}
