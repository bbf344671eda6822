//! Link profiles shipped as data: NB-IoT, LTE-M and home Wi-Fi, each a TOML
//! file under `rig/net/profiles/` with its numbers and their sources in
//! comments (and in the crate README). A bench or case may also load its
//! own profile file with [`Profile::parse`].

use serde::Deserialize;

use crate::bridge::BridgeConfig;
use crate::error::NetError;

const BUILTIN: [(&str, &str); 3] = [
    ("nb-iot", include_str!("../profiles/nb-iot.toml")),
    ("lte-m", include_str!("../profiles/lte-m.toml")),
    ("home-wifi", include_str!("../profiles/home-wifi.toml")),
];

/// A named link profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Short name (`nb-iot`).
    pub name: String,
    /// One line saying what it models.
    pub description: String,
    /// The bridge settings (seed 0 unless the caller sets one).
    pub bridge: BridgeConfig,
}

impl Profile {
    /// Names of the built-in profiles.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }

    /// A built-in profile by name; the error lists the known names.
    pub fn builtin(name: &str) -> Result<Profile, NetError> {
        let (_, text) =
            BUILTIN
                .iter()
                .find(|(n, _)| *n == name)
                .ok_or_else(|| NetError::BadConfig {
                    source_name: format!("profile {name:?}"),
                    reason: format!(
                        "unknown profile; known: {}",
                        Self::builtin_names().collect::<Vec<_>>().join(", ")
                    ),
                })?;
        Self::parse(text, &format!("profiles/{name}.toml"))
    }

    /// Parses and validates a profile; errors name `source_name`, the line
    /// and the field.
    pub fn parse(text: &str, source_name: &str) -> Result<Profile, NetError> {
        let p: Profile = toml::from_str(text).map_err(|e| NetError::BadConfig {
            source_name: source_name.to_owned(),
            reason: e.to_string(),
        })?;
        p.bridge
            .up
            .validate(&format!("{source_name} [bridge.up]"))?;
        p.bridge
            .down
            .validate(&format!("{source_name} [bridge.down]"))?;
        Ok(p)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn builtin_profiles_parse_and_have_rates() {
        for n in Profile::builtin_names() {
            let p = Profile::builtin(n).unwrap();
            assert_eq!(p.name, n);
            assert!(p.bridge.up.rate_kbit.is_some() && p.bridge.down.rate_kbit.is_some());
            assert!(p.bridge.up.loss.unwrap().mean_loss() < 0.01);
        }
        let nb = Profile::builtin("nb-iot").unwrap();
        assert_eq!(nb.bridge.down.rate_kbit, Some(26.0));
    }

    #[test]
    fn bad_profiles_name_file_and_field() {
        let e = Profile::builtin("5g").unwrap_err().to_string();
        assert!(e.contains("nb-iot, lte-m, home-wifi"), "{e}");
        let e = Profile::parse(
            "name='x'\ndescription='y'\n[bridge.up]\ndelay_ms = -1.0\n",
            "my.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("my.toml [bridge.up]") && e.contains("delay_ms = -1"),
            "{e}"
        );
        let e = Profile::parse(
            "name='x'\ndescription='y'\n[bridge.up]\ndelay = 1\n",
            "my.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("my.toml") && e.contains("line 4") && e.contains("delay"),
            "{e}"
        );
    }
}
