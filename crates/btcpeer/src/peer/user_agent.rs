//! The BIP14 user agent: `/btcpeer:X.Y.Z/name:version(comment; comment)/`, built and checked when a
//! configuration is built, so a bad one is refused there and never sent.

use super::error::ConfigError;
use crate::wire::limits::MAX_USER_AGENT_LEN;

fn check_part(part: &'static str, value: &str) -> Result<(), ConfigError> {
    match value.chars().find(|&c| matches!(c, '/' | ':' | '(' | ')') || !(' '..='~').contains(&c)) {
        Some(bad) => Err(ConfigError::UserAgentCharacter { part, value: value.to_string(), bad }),
        None => Ok(()),
    }
}

/// `/btcpeer:X.Y.Z/name:version(comment; comment)/`, checked against BIP14 and the 256-byte limit.
pub(crate) fn user_agent(name: Option<&(String, String)>, comments: &[String]) -> Result<String, ConfigError> {
    let mut ua = format!("/btcpeer:{}/", env!("CARGO_PKG_VERSION"));
    for c in comments {
        check_part("comment", c)?;
    }
    match name {
        Some((name, version)) => {
            check_part("name", name)?;
            check_part("version", version)?;
            ua.push_str(name);
            ua.push(':');
            ua.push_str(version);
            if !comments.is_empty() {
                ua.push('(');
                ua.push_str(&comments.join("; "));
                ua.push(')');
            }
            ua.push('/');
        }
        None if !comments.is_empty() => {
            // Comments belong to the last name: attach them to btcpeer's own.
            ua.pop();
            ua.push('(');
            ua.push_str(&comments.join("; "));
            ua.push_str(")/");
        }
        None => {}
    }
    if ua.len() as u64 > MAX_USER_AGENT_LEN {
        let len = ua.len();
        return Err(ConfigError::UserAgentTooLong { user_agent: ua, len });
    }
    Ok(ua)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Network;
    use crate::peer::{PeerConfig, PeerConfigBuilder};

    #[test]
    fn r_l5_user_agent_follows_bip14() {
        let ua = |b: PeerConfigBuilder| b.build().map(|c| c.user_agent().to_string());
        let base = || PeerConfig::builder(Network::REGTEST);
        let v = env!("CARGO_PKG_VERSION");
        assert_eq!(ua(base()).unwrap(), format!("/btcpeer:{v}/"));
        assert_eq!(ua(base().user_agent("app", "1.0")).unwrap(), format!("/btcpeer:{v}/app:1.0/"));
        assert_eq!(
            ua(base().user_agent("app", "1.0").user_agent_comment("a").user_agent_comment("b c")).unwrap(),
            format!("/btcpeer:{v}/app:1.0(a; b c)/")
        );
        assert_eq!(ua(base().user_agent_comment("x")).unwrap(), format!("/btcpeer:{v}(x)/"));
    }

    #[test]
    fn r_l5_reserved_characters_are_refused_at_configuration_time() {
        for (b, part, bad) in [
            (PeerConfig::builder(Network::REGTEST).user_agent("a/b", "1"), "name", '/'),
            (PeerConfig::builder(Network::REGTEST).user_agent("a", "1:2"), "version", ':'),
            (PeerConfig::builder(Network::REGTEST).user_agent_comment("x(y"), "comment", '('),
            (PeerConfig::builder(Network::REGTEST).user_agent_comment("x)"), "comment", ')'),
            (PeerConfig::builder(Network::REGTEST).user_agent_comment("tab\t"), "comment", '\t'),
        ] {
            match b.build() {
                Err(ConfigError::UserAgentCharacter { part: p, bad: c, .. }) => assert_eq!((p, c), (part, bad)),
                other => panic!("expected a user agent error, got {other:?}"),
            }
        }
    }

    #[test]
    fn r_l5_user_agent_over_256_bytes_is_refused_at_configuration_time() {
        let long = "x".repeat(240);
        let err = PeerConfig::builder(Network::REGTEST).user_agent(long, "1.0").build().unwrap_err();
        assert!(matches!(err, ConfigError::UserAgentTooLong { len, .. } if len > 256), "{err}");
    }
}
