//! The gate's branch policy as pure decisions: which ref updates an agent's push may make.
//! The hook supplies the facts git knows (is the update a fast-forward?); everything here is
//! testable without a repository.

use std::fmt;

/// A branch pattern from the config (`bottle/*`): `*` matches any run of characters,
/// slashes included, so `bottle/*` also covers `bottle/a/b`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchPattern(String);

impl BranchPattern {
    pub fn new(pattern: impl Into<String>) -> Self {
        Self(pattern.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, branch: &str) -> bool {
        glob(self.0.as_bytes(), branch.as_bytes())
    }
}

impl fmt::Display for BranchPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `*` matches any bytes; everything else literally. Iterative with one backtrack point,
/// so no pattern is exponential.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// One repository's rules.
#[derive(Debug, Clone)]
pub struct Policy {
    pub push: Vec<BranchPattern>,
    pub protect: Vec<BranchPattern>,
}

impl Policy {
    pub fn new(push: &[String], protect: &[String]) -> Self {
        Self {
            push: push.iter().map(BranchPattern::new).collect(),
            protect: protect.iter().map(BranchPattern::new).collect(),
        }
    }
}

/// A git object name as hooks receive it (SHA-1 or SHA-256 hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oid(String);

impl Oid {
    pub fn parse(s: &str) -> Option<Self> {
        let hex = s
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        (hex && (s.len() == 40 || s.len() == 64)).then(|| Self(s.to_owned()))
    }

    /// The all-zero name: the ref does not exist on that side of the update.
    pub fn is_zero(&self) -> bool {
        self.0.bytes().all(|b| b == b'0')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Oid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// git's own ref-name rules (`git check-ref-format`). receive-pack hands pre-receive the
/// names a client sent *before* it checks them, and `git push` reads `a:b` in a refspec as
/// two refs: a name like `refs/heads/bottle/x:refs/heads/main` would pass the branch policy as
/// `bottle/...` and then be forwarded to `main`. Anything git would not accept is refused here.
pub fn valid_ref_name(name: &str) -> bool {
    name.starts_with("refs/")
        && !name.ends_with('/')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.contains("@{")
        && name != "@"
        && name
            .bytes()
            .all(|b| b > 0x20 && b != 0x7f && !b":~^?*[\\".contains(&b))
        && name
            .split('/')
            .all(|c| !c.is_empty() && !c.starts_with('.') && !c.ends_with(".lock"))
}

/// One `old new ref` line of pre-receive's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: Oid,
    pub new: Oid,
    pub name: String,
}

impl RefUpdate {
    pub fn parse(line: &str) -> Option<Self> {
        let mut parts = line.split(' ');
        let (old, new, name) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !valid_ref_name(name) {
            return None;
        }
        Some(Self {
            old: Oid::parse(old)?,
            new: Oid::parse(new)?,
            name: name.to_owned(),
        })
    }

    /// The branch name under `refs/heads/`, if the ref is a branch.
    pub fn branch(&self) -> Option<&str> {
        self.name
            .strip_prefix("refs/heads/")
            .filter(|b| !b.is_empty())
    }

    pub fn kind(&self) -> UpdateKind {
        match (self.old.is_zero(), self.new.is_zero()) {
            (_, true) => UpdateKind::Delete,
            (true, false) => UpdateKind::Create,
            (false, false) => UpdateKind::Update,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    Create,
    Update,
    Delete,
}

/// How the new commit relates to the old one (asked of git only for an update).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// The old commit is an ancestor of the new one.
    FastForward,
    /// It is not: the update would rewrite published history.
    Rewrite,
}

/// Why a ref update is refused; its `Display` is what the agent and the log see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Delete {
        name: String,
    },
    NotABranch {
        name: String,
    },
    Protected {
        branch: String,
        pattern: String,
    },
    NotAllowed {
        branch: String,
        allowed: Vec<String>,
    },
    ForcePush {
        branch: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Delete { name } => write!(f, "deleting {name} is not allowed through the gate"),
            Self::NotABranch { name } => write!(
                f,
                "{name} is not a branch; only branches (refs/heads/...) can be pushed through the gate"
            ),
            Self::Protected { branch, pattern } => {
                write!(f, "branch {branch} is protected (matches `{pattern}`)")
            }
            Self::NotAllowed { branch, allowed } if allowed.is_empty() => write!(
                f,
                "branch {branch} may not be pushed: this bottle allows no branch pushes"
            ),
            Self::NotAllowed { branch, allowed } => write!(
                f,
                "branch {branch} may not be pushed: allowed branches are {}",
                allowed.join(", ")
            ),
            Self::ForcePush { branch } => write!(
                f,
                "force-push to {branch} is not allowed: the new commit does not contain the old one (pull and merge or rebase onto it)"
            ),
        }
    }
}

/// The policy's decision for one update. `history` is consulted only for an update of an
/// existing branch; the hook passes `None` for creates and deletes.
pub fn decide(
    policy: &Policy,
    update: &RefUpdate,
    history: Option<History>,
) -> Result<(), Refusal> {
    if update.kind() == UpdateKind::Delete {
        return Err(Refusal::Delete {
            name: update.name.clone(),
        });
    }
    let Some(branch) = update.branch() else {
        return Err(Refusal::NotABranch {
            name: update.name.clone(),
        });
    };
    // Protection wins over the push patterns: `push = ["*"]` still never touches `main`.
    if let Some(p) = policy.protect.iter().find(|p| p.matches(branch)) {
        return Err(Refusal::Protected {
            branch: branch.to_owned(),
            pattern: p.to_string(),
        });
    }
    if !policy.push.iter().any(|p| p.matches(branch)) {
        return Err(Refusal::NotAllowed {
            branch: branch.to_owned(),
            allowed: policy.push.iter().map(ToString::to_string).collect(),
        });
    }
    // An unknown history counts as a rewrite: fail closed.
    if update.kind() == UpdateKind::Update && history != Some(History::FastForward) {
        return Err(Refusal::ForcePush {
            branch: branch.to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const Z: &str = "0000000000000000000000000000000000000000";

    fn policy() -> Policy {
        Policy::new(&["bottle/*".into()], &["main".into(), "release/*".into()])
    }

    fn upd(old: &str, new: &str, name: &str) -> RefUpdate {
        RefUpdate::parse(&format!("{old} {new} {name}")).expect("valid line")
    }

    #[test]
    fn patterns_match_any_characters_including_slashes() {
        let p = BranchPattern::new("bottle/*");
        assert!(p.matches("bottle/x"));
        assert!(p.matches("bottle/a/b"));
        assert!(!p.matches("bottle"));
        assert!(!p.matches("xbottle/x"));
        assert!(BranchPattern::new("*").matches("anything/at/all"));
        assert!(BranchPattern::new("main").matches("main"));
        assert!(!BranchPattern::new("main").matches("main2"));
        assert!(BranchPattern::new("a*b*c").matches("aXXbYYc"));
        assert!(!BranchPattern::new("a*b*c").matches("aXXbYY"));
        assert!(BranchPattern::new("*-wip").matches("x-wip"));
        // Many stars against a long non-match stays fast (no exponential backtracking).
        let long = "a".repeat(5000);
        assert!(!BranchPattern::new("*a*a*a*a*a*a*b").matches(&long));
    }

    #[test]
    fn lines_parse_strictly() {
        let u = upd(A, B, "refs/heads/bottle/x");
        assert_eq!(u.branch(), Some("bottle/x"));
        assert_eq!(u.kind(), UpdateKind::Update);
        assert_eq!(upd(Z, B, "refs/heads/x").kind(), UpdateKind::Create);
        assert_eq!(upd(A, Z, "refs/heads/x").kind(), UpdateKind::Delete);
        for bad in [
            "",
            "1111 2222 refs/heads/x",
            &format!("{A} {B}"),
            &format!("{A} {B} refs/heads/x extra"),
            &format!("{A} {B} "),
            &format!("{} {B} refs/heads/x", A.to_uppercase().replace('1', "A")),
        ] {
            assert_eq!(RefUpdate::parse(bad), None, "{bad:?}");
        }
        for bad_name in [
            "refs/heads/bottle/x:refs/heads/main",
            "refs/heads/bottle/x main",
            "refs/heads/bottle/../main",
            "refs/heads/bottle/x.lock",
            "refs/heads/bottle//x",
            "refs/heads/bottle/.x",
            "refs/heads/bottle/x\u{7f}",
            "refs/heads/bottle/x\\y",
            "refs/heads/bottle/x@{1}",
            "refs/heads/bottle/x~1",
            "refs/heads/bottle/",
            "heads/bottle/x",
            "refs/heads/",
            "HEAD",
        ] {
            assert!(!valid_ref_name(bad_name), "{bad_name:?} must be refused");
            assert_eq!(
                RefUpdate::parse(&format!("{A} {B} {bad_name}")),
                None,
                "{bad_name:?}"
            );
        }
        assert!(valid_ref_name("refs/heads/bottle/fix-1.2_x"));
        let sha256 = "a".repeat(64);
        assert!(RefUpdate::parse(&format!("{sha256} {sha256} refs/heads/x")).is_some());
    }

    #[test]
    fn an_allowed_branch_is_created_and_fast_forwarded() {
        assert_eq!(
            decide(&policy(), &upd(Z, B, "refs/heads/bottle/x"), None),
            Ok(())
        );
        assert_eq!(
            decide(
                &policy(),
                &upd(A, B, "refs/heads/bottle/x"),
                Some(History::FastForward)
            ),
            Ok(())
        );
    }

    #[test]
    fn a_rewrite_or_an_unknown_history_is_a_force_push() {
        for history in [Some(History::Rewrite), None] {
            let r = decide(&policy(), &upd(A, B, "refs/heads/bottle/x"), history);
            assert_eq!(
                r,
                Err(Refusal::ForcePush {
                    branch: "bottle/x".into()
                })
            );
        }
        let msg = Refusal::ForcePush {
            branch: "bottle/x".into(),
        }
        .to_string();
        assert!(
            msg.starts_with("force-push to bottle/x is not allowed"),
            "{msg}"
        );
    }

    #[test]
    fn deletes_are_refused_even_for_allowed_branches() {
        let r = decide(&policy(), &upd(A, Z, "refs/heads/bottle/x"), None);
        assert_eq!(
            r,
            Err(Refusal::Delete {
                name: "refs/heads/bottle/x".into()
            })
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "deleting refs/heads/bottle/x is not allowed through the gate"
        );
    }

    #[test]
    fn protected_branches_win_over_push_patterns() {
        let open = Policy::new(&["*".into()], &["main".into(), "release/*".into()]);
        for name in ["refs/heads/main", "refs/heads/release/1.0"] {
            let r = decide(&open, &upd(Z, B, name), None);
            assert!(matches!(r, Err(Refusal::Protected { .. })), "{name}: {r:?}");
        }
        let r = decide(
            &open,
            &upd(A, B, "refs/heads/main"),
            Some(History::FastForward),
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "branch main is protected (matches `main`)"
        );
    }

    #[test]
    fn branches_outside_the_push_patterns_are_refused_with_the_patterns() {
        let r = decide(&policy(), &upd(Z, B, "refs/heads/feature/y"), None);
        assert_eq!(
            r.unwrap_err().to_string(),
            "branch feature/y may not be pushed: allowed branches are bottle/*"
        );
        let none = Policy::new(&[], &[]);
        let r = decide(&none, &upd(Z, B, "refs/heads/x"), None);
        assert!(
            r.unwrap_err()
                .to_string()
                .contains("allows no branch pushes")
        );
    }

    #[test]
    fn tags_and_other_refs_are_not_branches() {
        for name in ["refs/tags/v1", "refs/notes/commits", "refs/for/main"] {
            let r = decide(&policy(), &upd(Z, B, name), None);
            assert_eq!(r, Err(Refusal::NotABranch { name: name.into() }), "{name}");
        }
    }
}
