//! Which upstream methods the gateway lets clients call (`--allow` / `--deny`).
//!
//! Patterns are globs (`*` any run of characters, `?` one, `[...]` a class) over a method's
//! names: the full `package.Service/Method`, `Service/Method` without the package, and the
//! same without a `Service` suffix (`ApiItem/name`), so a pattern may be written the way
//! calls are. A method is allowed when no `--allow` is given or one matches, and no `--deny`
//! matches: deny wins.
//!
//! Every protocol asks the same [`MethodPolicy`]: named methods are checked where the gateway
//! resolves them (`GatewayState::resolve_method`), byte-level pass-through by its path, and
//! the render routes by the methods their subscription calls.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// A pattern given to `--allow` or `--deny` is not a valid glob.
#[derive(Debug, thiserror::Error)]
#[error("method pattern `{pattern}` is not a valid glob: {reason}")]
pub struct PatternError {
    /// The pattern as given.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The allow and deny lists, compiled once.
#[derive(Clone, Debug, Default)]
pub struct MethodPolicy {
    allow: Option<GlobSet>,
    deny: Option<GlobSet>,
    allow_patterns: Vec<String>,
    deny_patterns: Vec<String>,
}

impl MethodPolicy {
    /// A policy from `--allow` and `--deny` patterns (either may be empty).
    pub fn new(allow: &[String], deny: &[String]) -> Result<MethodPolicy, PatternError> {
        Ok(MethodPolicy {
            allow: compile(allow)?,
            deny: compile(deny)?,
            allow_patterns: allow.to_vec(),
            deny_patterns: deny.to_vec(),
        })
    }

    /// True when every method is allowed (no patterns at all).
    pub fn is_open(&self) -> bool {
        self.allow.is_none() && self.deny.is_none()
    }

    /// Whether `method`, written `package.Service/Method` (a leading `/` is ignored), may be
    /// called.
    pub fn permits(&self, method: &str) -> bool {
        if self.is_open() {
            return true;
        }
        let names = spellings(method.trim_start_matches('/'));
        let matches = |set: &GlobSet| names.iter().flatten().any(|name| set.is_match(name));
        let allowed = self.allow.as_ref().is_none_or(matches);
        allowed && !self.deny.as_ref().is_some_and(matches)
    }

    /// The patterns as given, for `/schema` and the log.
    pub fn patterns(&self) -> (&[String], &[String]) {
        (&self.allow_patterns, &self.deny_patterns)
    }
}

fn compile(patterns: &[String]) -> Result<Option<GlobSet>, PatternError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob: Glob = GlobBuilder::new(pattern.trim().trim_start_matches('/'))
            // `*` crosses `.` and `/`: `*/get*` and `octaneapi.*` both mean what they say.
            .literal_separator(false)
            .build()
            .map_err(|e| PatternError {
                pattern: pattern.clone(),
                reason: e.kind().to_string(),
            })?;
        set.add(glob);
    }
    set.build().map(Some).map_err(|e| PatternError {
        pattern: patterns.join(" "),
        reason: e.to_string(),
    })
}

/// `pkg.Service/M`, `Service/M` and `Serv/M` (the `Service` suffix dropped), as far as they
/// differ.
fn spellings(full: &str) -> [Option<String>; 3] {
    let Some((service, method)) = full.split_once('/') else {
        return [Some(full.to_owned()), None, None];
    };
    let bare = service.rsplit('.').next().unwrap_or(service);
    let short = bare
        .strip_suffix("Service")
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s}/{method}"));
    let bare = (bare != service).then(|| format!("{bare}/{method}"));
    [Some(full.to_owned()), bare, short]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> MethodPolicy {
        let owned = |p: &[&str]| p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        MethodPolicy::new(&owned(allow), &owned(deny)).expect("valid patterns")
    }

    #[test]
    fn no_patterns_allow_everything() {
        let open = policy(&[], &[]);
        assert!(open.is_open());
        assert!(open.permits("octaneapi.ApiProjectManagerService/saveProject"));
    }

    #[test]
    fn deny_matches_full_and_lenient_names() {
        let p = policy(&[], &["octaneapi.ApiProjectManagerService/*"]);
        assert!(!p.permits("octaneapi.ApiProjectManagerService/saveProject"));
        assert!(!p.permits("/octaneapi.ApiProjectManagerService/saveProject"));
        assert!(p.permits("octaneapi.ApiItemService/name"));
        let lenient = policy(&[], &["ApiProjectManager/save*"]);
        assert!(!lenient.permits("octaneapi.ApiProjectManagerService/saveProject"));
        assert!(lenient.permits("octaneapi.ApiProjectManagerService/loadProject"));
        let bare = policy(&[], &["LiveLinkService/SetCamera"]);
        assert!(!bare.permits("livelinkapi.LiveLinkService/SetCamera"));
    }

    #[test]
    fn allow_lists_restrict_and_deny_wins() {
        let p = policy(&["*/Get*", "*/get*"], &["*/GetFile"]);
        assert!(p.permits("livelinkapi.LiveLinkService/GetCamera"));
        assert!(p.permits("octaneapi.ApiRenderEngineService/getRenderStatistics"));
        assert!(!p.permits("livelinkapi.LiveLinkService/SetCamera"));
        assert!(!p.permits("livelinkapi.LiveLinkService/GetFile"));
    }

    #[test]
    fn bad_patterns_are_named() {
        let error = MethodPolicy::new(&["Api[Item".to_owned()], &[]).expect_err("invalid glob");
        assert!(error.to_string().contains("Api[Item"), "{error}");
    }
}
