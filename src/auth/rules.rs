//! `auth.access`: per-repository permissions of htpasswd users, from
//! repository globs to users, groups and actions.

use std::collections::{HashMap, HashSet};

use crate::config::AccessConfig;

/// A set of repository actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions(u8);

impl Actions {
    /// No action.
    pub const NONE: Actions = Actions(0);
    /// `pull`.
    pub const PULL: Actions = Actions(1);
    /// `push`.
    pub const PUSH: Actions = Actions(2);
    /// `delete`.
    pub const DELETE: Actions = Actions(4);
    /// Every action.
    pub const ALL: Actions = Actions(7);

    /// The action named `name` (`*` is all of them); `None` if unknown.
    pub fn parse(name: &str) -> Option<Actions> {
        Some(match name {
            "pull" => Self::PULL,
            "push" => Self::PUSH,
            "delete" => Self::DELETE,
            "*" => Self::ALL,
            _ => return None,
        })
    }

    /// Union.
    pub fn with(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    /// True if every action of `other` is in `self`.
    pub fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }
}

/// A repository name glob: `*` matches within one path component, `**` (a
/// whole component) any number of components, `?` one character.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(Vec<String>);

impl Glob {
    /// Parses a glob (validated by the configuration).
    pub fn new(pattern: &str) -> Self {
        Glob(pattern.split('/').map(str::to_string).collect())
    }

    /// True if `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        let parts: Vec<&str> = name.split('/').collect();
        match_components(&self.0, &parts)
    }

    /// True for `**`: every repository.
    pub fn is_everything(&self) -> bool {
        self.0.len() == 1 && self.0[0] == "**"
    }
}

fn match_components(pattern: &[String], name: &[&str]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((p, rest)) if p == "**" => {
            (0..=name.len()).any(|skip| match_components(rest, &name[skip..]))
        }
        Some((p, rest)) => match name.split_first() {
            Some((n, name_rest)) => {
                match_component(p.as_bytes(), n.as_bytes()) && match_components(rest, name_rest)
            }
            None => false,
        },
    }
}

/// Wildcard match of one component (`*`, `?`), iterative with
/// backtracking to the last star: linear in practice, no recursion.
fn match_component(p: &[u8], n: &[u8]) -> bool {
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[derive(Debug)]
struct Rule {
    globs: Vec<Glob>,
    users: HashSet<String>,
    every_user: bool,
    groups: HashSet<String>,
    actions: Actions,
    anonymous: Actions,
}

/// Who asks.
#[derive(Debug, Clone, Copy)]
pub enum Who<'a> {
    /// No credentials.
    Anonymous,
    /// An authenticated htpasswd user.
    User(&'a str),
}

/// The permission rules in effect for htpasswd users.
#[derive(Debug)]
pub struct Rules {
    /// No `auth.access` section: every authenticated user may do
    /// everything, as in Distribution.
    open: bool,
    admins: HashSet<String>,
    groups_of: HashMap<String, HashSet<String>>,
    rules: Vec<Rule>,
}

impl Rules {
    /// Rules from `auth.access` (`None`: every user may do everything).
    pub fn new(config: Option<&AccessConfig>) -> Self {
        let Some(c) = config else {
            return Rules {
                open: true,
                admins: HashSet::new(),
                groups_of: HashMap::new(),
                rules: Vec::new(),
            };
        };
        let mut groups_of: HashMap<String, HashSet<String>> = HashMap::new();
        for (group, members) in &c.groups {
            for m in members {
                groups_of
                    .entry(m.clone())
                    .or_default()
                    .insert(group.clone());
            }
        }
        let parse = |list: &[String]| {
            list.iter()
                .filter_map(|a| Actions::parse(a))
                .fold(Actions::NONE, Actions::with)
        };
        let rules = c
            .rules
            .iter()
            .map(|r| Rule {
                globs: r.repositories.iter().map(|g| Glob::new(g)).collect(),
                every_user: r.users.iter().any(|u| u == "*"),
                users: r.users.iter().cloned().collect(),
                groups: r.groups.iter().cloned().collect(),
                actions: parse(&r.actions),
                anonymous: parse(&r.anonymous).with(Actions::NONE),
            })
            .collect();
        Rules {
            open: false,
            admins: c.admins.iter().cloned().collect(),
            groups_of,
            rules,
        }
    }

    /// True if `who` administers the registry.
    pub fn is_admin(&self, who: Who<'_>) -> bool {
        match who {
            Who::Anonymous => false,
            Who::User(u) => self.open || self.admins.contains(u),
        }
    }

    /// The actions `who` may take on repository `name` by the rules alone.
    pub fn actions(&self, who: Who<'_>, name: &str) -> Actions {
        if self.is_admin(who) {
            return Actions::ALL;
        }
        let mut out = Actions::NONE;
        for r in &self.rules {
            let applies = match who {
                Who::Anonymous => r.anonymous,
                Who::User(u) => {
                    let member = r.every_user
                        || r.users.contains(u)
                        || self
                            .groups_of
                            .get(u)
                            .is_some_and(|gs| gs.iter().any(|g| r.groups.contains(g)));
                    // Whatever anyone may do, a signed-in user may too.
                    if member {
                        r.actions.with(r.anonymous)
                    } else {
                        r.anonymous
                    }
                }
            };
            if applies != Actions::NONE
                && !out.contains(applies)
                && r.globs.iter().any(|g| g.matches(name))
            {
                out = out.with(applies);
            }
        }
        out
    }

    /// True if some rule lets anonymous users pull something.
    pub fn any_anonymous(&self) -> bool {
        self.rules.iter().any(|r| r.anonymous != Actions::NONE)
    }

    /// True if anyone may pull every repository: nothing is secret.
    pub fn everything_public(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.anonymous.contains(Actions::PULL) && r.globs.iter().any(Glob::is_everything))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases = [
            ("team-a/*", "team-a/app", true),
            ("team-a/*", "team-a/x/app", false),
            ("team-a/*", "team-a", false),
            ("team-a/**", "team-a/x/app", true),
            ("team-a/**", "team-a", true),
            ("**", "anything/at/all", true),
            ("**/base", "a/b/base", true),
            ("**/base", "base", true),
            ("**/base", "a/b/base2", false),
            ("app-?", "app-1", true),
            ("app-?", "app-12", false),
            ("*-dev", "web-dev", true),
            ("*-dev", "web-prod", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("team-b/*", "team-a/app", false),
        ];
        for (g, n, want) in cases {
            assert_eq!(Glob::new(g).matches(n), want, "{g} vs {n}");
        }
    }

    fn rules(yaml: &str) -> Rules {
        let c: AccessConfig = yaml_serde::from_str(yaml).unwrap();
        Rules::new(Some(&c))
    }

    #[test]
    fn union_of_matching_rules() {
        let r = rules(
            "admins: [root]\ngroups:\n  a: [bob]\nrules:\n\
             - {repositories: [\"team-a/**\"], groups: [a], actions: [pull, push]}\n\
             - {repositories: [\"team-a/app\"], users: [carol], actions: [pull]}\n\
             - {repositories: [\"public/*\"], users: [\"*\"], actions: [pull], anonymous: [pull]}\n",
        );
        let bob = Who::User("bob");
        assert_eq!(
            r.actions(bob, "team-a/app"),
            Actions::PULL.with(Actions::PUSH)
        );
        assert_eq!(r.actions(bob, "team-b/app"), Actions::NONE);
        assert_eq!(r.actions(Who::User("carol"), "team-a/app"), Actions::PULL);
        assert_eq!(r.actions(Who::User("carol"), "team-a/other"), Actions::NONE);
        assert_eq!(r.actions(Who::Anonymous, "public/x"), Actions::PULL);
        assert_eq!(r.actions(Who::Anonymous, "team-a/app"), Actions::NONE);
        assert_eq!(r.actions(Who::User("nobody"), "public/x"), Actions::PULL);
        assert_eq!(r.actions(Who::User("root"), "team-b/app"), Actions::ALL);
        assert!(r.is_admin(Who::User("root")));
        assert!(!r.is_admin(bob));
        assert!(!r.is_admin(Who::Anonymous));
        assert!(r.any_anonymous());
        assert!(!r.everything_public());
    }

    #[test]
    fn no_section_means_every_user_may_do_everything() {
        let r = Rules::new(None);
        assert_eq!(r.actions(Who::User("x"), "a"), Actions::ALL);
        assert!(r.is_admin(Who::User("x")));
        assert_eq!(r.actions(Who::Anonymous, "a"), Actions::NONE);
        assert!(!r.any_anonymous());
    }
}
