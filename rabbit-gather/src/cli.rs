//! The flags both binaries share: where the config file is, which broker,
//! which prefix. Each binary flattens [`SharedArgs`] into its own `Cli`.

use std::path::PathBuf;

use clap::Args;

use crate::settings::{LogFormat, Settings, SettingsError};

/// Config file, broker URL and prefix flags.
#[derive(Debug, Clone, Default, Args)]
pub struct SharedArgs {
    /// TOML config file, layered over the defaults and under the environment.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Broker URL (overrides AMQP_URL and the config).
    #[arg(long, value_name = "URL")]
    pub amqp_url: Option<String>,
    /// Prefix of every exchange and queue name [default: greetings].
    #[arg(long)]
    pub prefix: Option<String>,
    /// Log lines on stderr: text, or one JSON object per line [default: text].
    #[arg(long, value_enum, value_name = "FORMAT")]
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
