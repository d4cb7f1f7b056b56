//! Which SSH key exchange deckhand asks OpenSSH to prefer (`ssh.key_exchange`).
//!
//! The choice matters because a deployment opens one connection per node at once, and the key
//! exchange is most of a connection's CPU. OpenSSH 9.0–9.8 default to the post-quantum hybrid
//! `sntrup761x25519-sha512`, whose client side costs about 0.2 s of CPU per connection on a
//! 2.5 GHz core (50 nodes: 10 s of CPU); classic `curve25519-sha256` costs about 20 ms, and the
//! post-quantum `mlkem768x25519-sha256` of OpenSSH 9.9+ about as little. So `auto` takes ML-KEM
//! where the local client has it, and otherwise curve25519 first with sntrup761 kept behind it
//! for servers that offer nothing else. `post-quantum` insists on a hybrid whatever it costs;
//! `openssh` leaves OpenSSH (and the user's ssh_config) to decide.
//!
//! What the local client supports is read once per process from `ssh -Q kex`.

use tokio::sync::OnceCell;

use crate::inventory::KeyExchange;

pub const MLKEM: &str = "mlkem768x25519-sha256";
pub const SNTRUP: [&str; 2] = [
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
];
pub const CURVE25519: [&str; 2] = ["curve25519-sha256", "curve25519-sha256@libssh.org"];

/// The key exchange algorithms the local OpenSSH client knows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalKex {
    pub algorithms: Vec<String>,
}

/// A `KexAlgorithms` line for the generated ssh config, and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KexLine {
    pub value: String,
    /// Before the user's own ssh_config (the inventory insists), or after it (a preference
    /// the user's `KexAlgorithms`, if any, overrides).
    pub overrides_user_config: bool,
}

impl LocalKex {
    /// Parse `ssh -Q kex` output: one algorithm per line.
    pub fn parse(text: &str) -> Self {
        LocalKex {
            algorithms: text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        }
    }

    pub fn has(&self, algorithm: &str) -> bool {
        self.algorithms.iter().any(|a| a == algorithm)
    }

    fn present<'a>(&self, names: &[&'a str]) -> Vec<&'a str> {
        names.iter().copied().filter(|n| self.has(n)).collect()
    }

    /// The post-quantum hybrids this client has, best first.
    pub fn post_quantum(&self) -> Vec<&'static str> {
        let mut v = self.present(&[MLKEM]);
        v.extend(self.present(&SNTRUP));
        v
    }

    /// What to write for `choice`: nothing, or a `KexAlgorithms` line. An error when the
    /// inventory insists on post-quantum and this client has none.
    pub fn line(&self, choice: KeyExchange) -> Result<Option<KexLine>, String> {
        match choice {
            KeyExchange::Openssh => Ok(None),
            KeyExchange::PostQuantum => {
                let pq = self.post_quantum();
                if pq.is_empty() {
                    return Err(
                        "key_exchange = \"post-quantum\" but the local OpenSSH client offers no post-quantum key exchange \
                         (`ssh -Q kex` lists neither mlkem768x25519 nor sntrup761x25519); install OpenSSH 9.0 or newer, \
                         or set key_exchange = \"auto\""
                            .into(),
                    );
                }
                Ok(Some(KexLine {
                    value: pq.join(","),
                    overrides_user_config: true,
                }))
            }
            KeyExchange::Auto => {
                // `^` puts the named algorithms at the head of OpenSSH's default list, which
                // stays behind them as the fallback. Every client that knows sntrup761 (8.5+)
                // also understands `^`.
                let head = if self.has(MLKEM) {
                    vec![MLKEM]
                } else if !self.present(&SNTRUP).is_empty() {
                    self.present(&CURVE25519)
                } else {
                    Vec::new()
                };
                if head.is_empty() {
                    return Ok(None);
                }
                Ok(Some(KexLine {
                    value: format!("^{}", head.join(",")),
                    overrides_user_config: false,
                }))
            }
        }
    }
}

static LOCAL: OnceCell<LocalKex> = OnceCell::const_new();

/// What the local `ssh` supports, asked once per process. Empty when `ssh` cannot be run (the
/// connection attempt then says so in its own words).
pub async fn local() -> &'static LocalKex {
    LOCAL
        .get_or_init(|| async {
            let out = tokio::process::Command::new("ssh")
                .args(["-Q", "kex"])
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output()
                .await;
            let kex = match out {
                Ok(o) if o.status.success() => {
                    LocalKex::parse(&String::from_utf8_lossy(&o.stdout))
                }
                _ => LocalKex::default(),
            };
            if !kex.present(&SNTRUP).is_empty() && !kex.has(MLKEM) {
                log::info!(
                    "ssh: this OpenSSH has post-quantum key exchange only as sntrup761 (about 0.2 s of CPU per connection); \
                     with key_exchange = \"auto\" deckhand prefers curve25519-sha256. \
                     Set key_exchange = \"post-quantum\" in [ssh] to require post-quantum."
                );
            }
            kex
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENSSH_9_2: &str = "diffie-hellman-group1-sha1\ndiffie-hellman-group14-sha1\n\
        diffie-hellman-group14-sha256\ndiffie-hellman-group16-sha512\ndiffie-hellman-group18-sha512\n\
        diffie-hellman-group-exchange-sha1\ndiffie-hellman-group-exchange-sha256\necdh-sha2-nistp256\n\
        ecdh-sha2-nistp384\necdh-sha2-nistp521\ncurve25519-sha256\ncurve25519-sha256@libssh.org\n\
        sntrup761x25519-sha512\nsntrup761x25519-sha512@openssh.com\n";

    fn with(extra: &str) -> LocalKex {
        LocalKex::parse(&format!("{OPENSSH_9_2}{extra}"))
    }

    #[test]
    fn auto_prefers_curve25519_when_the_only_post_quantum_exchange_is_sntrup761() {
        let line = with("").line(KeyExchange::Auto).unwrap().unwrap();
        assert_eq!(
            line.value,
            "^curve25519-sha256,curve25519-sha256@libssh.org"
        );
        assert!(!line.overrides_user_config);
    }

    #[test]
    fn auto_prefers_ml_kem_where_the_client_has_it() {
        let line = with("mlkem768x25519-sha256\n")
            .line(KeyExchange::Auto)
            .unwrap()
            .unwrap();
        assert_eq!(line.value, "^mlkem768x25519-sha256");
    }

    #[test]
    fn auto_leaves_an_old_client_alone() {
        let old = LocalKex::parse("curve25519-sha256\necdh-sha2-nistp256\n");
        assert_eq!(old.line(KeyExchange::Auto).unwrap(), None);
        assert_eq!(LocalKex::default().line(KeyExchange::Auto).unwrap(), None);
    }

    #[test]
    fn post_quantum_lists_only_hybrids_and_overrides_the_user_config() {
        let line = with("mlkem768x25519-sha256\n")
            .line(KeyExchange::PostQuantum)
            .unwrap()
            .unwrap();
        assert_eq!(
            line.value,
            "mlkem768x25519-sha256,sntrup761x25519-sha512,sntrup761x25519-sha512@openssh.com"
        );
        assert!(line.overrides_user_config);
        let err = LocalKex::parse("curve25519-sha256\n")
            .line(KeyExchange::PostQuantum)
            .unwrap_err();
        assert!(err.contains("OpenSSH 9.0 or newer"), "{err}");
    }

    #[test]
    fn openssh_says_nothing() {
        assert_eq!(with("").line(KeyExchange::Openssh).unwrap(), None);
    }
}
