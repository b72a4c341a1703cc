//! Access control: which authenticated identities may join, send to and receive from which
//! groups. A policy is a TOML file of allow rules; anything no rule allows is denied.
//!
//! ```toml
//! [[allow]]
//! identities = ["alice", "svc-*", "uid:1000"]   # certificate CNs, `uid:N` on the Unix socket
//! groups = ["chat", "ops-*"]                      # group names
//! actions = ["join", "send", "receive"]
//! ```
//!
//! Patterns are shell-like globs (`glob::Pattern`: `*`, `?`, `[abc]`); `*` matches every
//! identity or group. Joining needs both `join` and `receive` (a member receives the group's
//! messages); sending to a group needs `send`. Leaving is always allowed. When the daemon runs
//! with `security.mode = "none"` there is no policy and everything is allowed (the caller holds
//! an `Option<Policy>`). See `docs/security.md`.

use std::path::{Path, PathBuf};

use glob::Pattern;
use serde::Deserialize;

/// Errors of loading a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read.
    #[error("cannot read policy {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid TOML or not the policy schema (the message names the key).
    #[error("policy {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A rule has an unusable value.
    #[error("policy key `{key}`: {problem}")]
    Invalid {
        /// Dotted key, e.g. `allow[2].groups[0]`.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// What an identity does with a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Become a member.
    Join,
    /// Multicast to the group.
    Send,
    /// Receive the group's messages (needed to join).
    Receive,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    identities: Vec<String>,
    groups: Vec<String>,
    actions: Vec<Action>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyText {
    #[serde(default)]
    allow: Vec<RuleText>,
}

/// One allow rule.
#[derive(Clone, Debug)]
struct Rule {
    identities: Vec<Pattern>,
    groups: Vec<Pattern>,
    actions: Vec<Action>,
}

/// A loaded policy: allow rules, default deny.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    rules: Vec<Rule>,
}

/// Why a request was denied, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The missing permission.
    pub missing: Action,
}

fn patterns(key: &str, texts: Vec<String>) -> Result<Vec<Pattern>, PolicyError> {
    if texts.is_empty() {
        return Err(PolicyError::Invalid {
            key: key.to_owned(),
            problem: "must not be empty".to_owned(),
        });
    }
    texts
        .into_iter()
        .enumerate()
        .map(|(j, t)| {
            if t.is_empty() {
                return Err(PolicyError::Invalid {
                    key: format!("{key}[{j}]"),
                    problem: "empty pattern".to_owned(),
                });
            }
            Pattern::new(&t).map_err(|e| PolicyError::Invalid {
                key: format!("{key}[{j}]"),
                problem: format!("bad pattern {t:?}: {e}"),
            })
        })
        .collect()
}

impl Policy {
    /// Read and validate a policy file.
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            PolicyError::Parse { message, .. } => PolicyError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parse and validate policy text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let t: PolicyText = toml::from_str(text).map_err(|e| PolicyError::Parse {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        let mut rules = Vec::with_capacity(t.allow.len());
        for (i, r) in t.allow.into_iter().enumerate() {
            if r.actions.is_empty() {
                return Err(PolicyError::Invalid {
                    key: format!("allow[{i}].actions"),
                    problem: "must not be empty".to_owned(),
                });
            }
            rules.push(Rule {
                identities: patterns(&format!("allow[{i}].identities"), r.identities)?,
                groups: patterns(&format!("allow[{i}].groups"), r.groups)?,
                actions: r.actions,
            });
        }
        Ok(Self { rules })
    }

    /// Whether some rule allows `identity` to do `action` with `group`.
    pub fn allows(&self, identity: &str, action: Action, group: &str) -> bool {
        self.rules.iter().any(|r| {
            r.actions.contains(&action)
                && r.identities.iter().any(|p| p.matches(identity))
                && r.groups.iter().any(|p| p.matches(group))
        })
    }

    /// May `identity` join `group`? (needs `join` and `receive`)
    pub fn check_join(&self, identity: &str, group: &str) -> Result<(), Denial> {
        for a in [Action::Join, Action::Receive] {
            if !self.allows(identity, a, group) {
                return Err(Denial { missing: a });
            }
        }
        Ok(())
    }

    /// May `identity` send to `group`?
    pub fn check_send(&self, identity: &str, group: &str) -> Result<(), Denial> {
        if self.allows(identity, Action::Send, group) {
            Ok(())
        } else {
            Err(Denial {
                missing: Action::Send,
            })
        }
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there is no rule (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// The policy `sgc cluster up --security` writes: `identities` may join, send and receive
/// every group.
pub fn allow_all_text(identities: &[String]) -> String {
    let list = identities
        .iter()
        .map(|i| format!("{i:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "# sgc access-control policy (docs/security.md): allow rules, default deny.\n\
         [[allow]]\n\
         identities = [{list}]\n\
         groups = [\"*\"]\n\
         actions = [\"join\", \"send\", \"receive\"]\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[[allow]]
identities = ["alice", "svc-*", "uid:0"]
groups = ["*"]
actions = ["join", "send", "receive"]

[[allow]]
identities = ["*"]
groups = ["public"]
actions = ["receive", "join"]

[[allow]]
identities = ["bob"]
groups = ["ops-?", "news"]
actions = ["send"]

[[allow]]
identities = ["reader"]
groups = ["news"]
actions = ["join"]
"#;

    fn p() -> Policy {
        Policy::parse(TEXT).expect("valid policy")
    }

    #[test]
    fn patterns_match_identities_and_groups() {
        let p = p();
        assert_eq!(p.len(), 4);
        assert!(p.allows("alice", Action::Send, "anything"));
        assert!(p.allows("svc-backup", Action::Join, "g"));
        assert!(!p.allows("svc", Action::Join, "g"), "svc-* needs the dash");
        assert!(p.allows("uid:0", Action::Receive, "g"));
        assert!(!p.allows("uid:1000", Action::Receive, "g"));
        assert!(p.allows("bob", Action::Send, "ops-1"));
        assert!(!p.allows("bob", Action::Send, "ops-12"), "? is one character");
        assert!(!p.allows("alicex", Action::Send, "g"), "exact names are exact");
    }

    #[test]
    fn decisions() {
        let p = p();
        assert_eq!(p.check_join("alice", "chat"), Ok(()));
        assert_eq!(p.check_join("mallory", "public"), Ok(()));
        assert_eq!(
            p.check_join("mallory", "chat"),
            Err(Denial {
                missing: Action::Join
            })
        );
        assert_eq!(
            p.check_send("mallory", "public"),
            Err(Denial {
                missing: Action::Send
            })
        );
        // bob may send to news without being a member, and not join it.
        assert_eq!(p.check_send("bob", "news"), Ok(()));
        assert!(p.check_join("bob", "news").is_err());
        // join without receive is not enough.
        assert_eq!(
            p.check_join("reader", "news"),
            Err(Denial {
                missing: Action::Receive
            })
        );
    }

    #[test]
    fn default_deny() {
        let empty = Policy::parse("").expect("empty policy");
        assert!(empty.is_empty());
        assert!(empty.check_join("alice", "g").is_err());
        assert!(empty.check_send("alice", "g").is_err());
    }

    #[test]
    fn errors_name_the_key() {
        let key = |t: &str| match Policy::parse(t) {
            Err(PolicyError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        };
        assert_eq!(
            key("[[allow]]\nidentities = []\ngroups = [\"*\"]\nactions = [\"join\"]"),
            "allow[0].identities"
        );
        assert_eq!(
            key("[[allow]]\nidentities = [\"a\"]\ngroups = [\"x\", \"[\"]\nactions = [\"join\"]"),
            "allow[0].groups[1]"
        );
        assert_eq!(
            key("[[allow]]\nidentities = [\"a\"]\ngroups = [\"x\"]\nactions = []"),
            "allow[0].actions"
        );
        let e = Policy::parse("[[allow]]\nidentities = [\"a\"]\ngroups = [\"x\"]\nactions = [\"fly\"]")
            .unwrap_err();
        assert!(e.to_string().contains("fly"), "{e}");
        let e = Policy::parse("[[allow]]\nwho = [\"a\"]").unwrap_err();
        assert!(e.to_string().contains("who"), "{e}");
    }

    #[test]
    fn generated_policy_parses() {
        let p = Policy::parse(&allow_all_text(&["alice".into(), "uid:1000".into()])).expect("valid");
        assert_eq!(p.check_join("uid:1000", "x"), Ok(()));
        assert!(p.check_join("mallory", "x").is_err());
    }
}
