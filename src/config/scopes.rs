//! Scope requirements: the per-operation scope setters of
//! [`AuthConfigBuilder`] (tools, prompts, resources, methods, the
//! hierarchy) and the checks `build` makes on every scope (RFC 6749
//! section 3.3 syntax; no `offline_access`, which MCP keeps out of
//! challenges and metadata).

use std::sync::Arc;

use super::AuthConfigBuilder;
use super::url::validate_scope_token;
use crate::context::AuthContext;
use crate::error::ConfigError;
use crate::requirement::{OperationRequest, Refusal, Target};
use crate::scope::ScopePolicy;

impl AuthConfigBuilder {
    /// Scopes a tool call needs (`tools/call` with this `name`), on top of
    /// the required scopes. A call without them gets a real HTTP 403
    /// `insufficient_scope` challenge before rmcp dispatches it. A task the
    /// call creates (SEP-2663) keeps needing them: `tasks/get`,
    /// `tasks/update` and `tasks/cancel` of that task are held to the
    /// scopes its creating call needed, and refused to any principal but
    /// its creator (see the README, "Sessions and handles bound to the
    /// caller").
    pub fn tool_scopes<I, S>(mut self, tool: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.scope_policy.tools.insert(tool.into(), scopes);
        self
    }

    /// Scopes a prompt needs (`prompts/get` with this `name`).
    pub fn prompt_scopes<I, S>(mut self, prompt: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.scope_policy.prompts.insert(prompt.into(), scopes);
        self
    }

    /// Scopes reading (or subscribing to, with `resources/subscribe` or
    /// `subscriptions/listen`) a resource needs. The SEP-2640 methods rmcp
    /// serves are judged the same way: `skills/get` as a read of the
    /// skill's `SKILL.md` URI, and `resources/directory/read`, which lists
    /// a directory's children, by the directory's URI and by its direct
    /// children (`notes://private` needs the scopes of
    /// `notes://private/{id}`). `pattern` is an exact URI, a
    /// template whose `{name}` parts match any run of characters without `/`,
    /// the empty one included (`notes://{id}`), and whose `{+name}` or
    /// `{#name}` parts may span `/`, or a prefix ending in `*` (after
    /// placeholders too). Every matching pattern applies; where a pattern is
    /// ambiguous it matches more (asks for the scope), never less.
    ///
    /// A URI matches as the client wrote it and in every spelling that
    /// RFC 3986 (section 6.2.2) says names the same resource: scheme and
    /// host in any case, percent-encoded unreserved characters
    /// (`notes://%70rivate/1`), dot segments (`notes://private/x/../1`),
    /// a fragment; and, since a handler that looks at the host and the path
    /// ignores them, without its userinfo, port and query
    /// (`notes://alice@private:1/1?x=/y`; a pattern naming a port is
    /// matched with it too); a pattern is matched as written
    /// and in its own normal form (`Notes://Private/{id}` as
    /// `notes://private/{id}`). A handler that reads URIs with a URI library serves
    /// those as `notes://private/1`, so they need its scopes too. So do the
    /// spellings the WHATWG URL standard (the `url` crate) reads as the
    /// same URL, RFC 3986 or not: in `file`, `http(s)` and the other
    /// special schemes a backslash is a `/` (`file:///srv/public\..\private/1`
    /// is `file:///srv/private/1`) and `%2e%2e` is a dot segment; in every
    /// scheme tabs and line breaks are dropped and spaces and control
    /// characters at either end trimmed, and what that reading gives is
    /// matched in its RFC 3986 spellings too (`NOTES://PRIVATE/1\n`).
    pub fn resource_scopes<I, S>(mut self, pattern: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.scope_policy
            .resources
            .push((crate::scope::UriPattern::new(pattern), scopes));
        self
    }

    /// Scopes a JSON-RPC method needs, for example `tools/list`. A rule on
    /// `resources/subscribe` also applies to a 2026-07-28
    /// `subscriptions/listen` that subscribes to resources (its
    /// replacement), so that subscribing needs it in every revision.
    pub fn method_scopes<I, S>(mut self, method: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes = scopes.into_iter().map(Into::into).collect();
        self.scope_policy.methods.insert(method.into(), scopes);
        self
    }

    /// `scope` implies each of `implied` (transitively), e.g. `notes:write`
    /// implies `notes:read`. Honoured by every scope decision.
    pub fn scope_implies<I, S>(mut self, scope: impl Into<String>, implied: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scope_policy.hierarchy.imply(scope, implied);
        self
    }

    /// A computed requirement for a tool: `f` returns the scopes this call
    /// needs, from its arguments and the caller, on top of
    /// [`tool_scopes`](Self::tool_scopes) and the required scopes. The layer
    /// runs it before dispatch, for every call of `tool` (in batches too);
    /// a call without the union of the scopes gets one 403
    /// `insufficient_scope` challenge naming them all.
    ///
    /// `f` must be synchronous and cheap (see [`ScopeFn`](crate::ScopeFn)).
    /// It fails closed: `Err` answers 403 `access_denied` (reason
    /// `requirement_refused`, no challenge); a panic or a returned scope
    /// that is not a valid scope token answers 500 `server_error` (reason
    /// `requirement_failed`). The call is never dispatched in either case.
    /// Several functions may be attached to one tool; all apply.
    ///
    /// ```
    /// use mcp_oauth2::{AuthConfig, AuthContext, OperationRequest, Refusal};
    ///
    /// let config = AuthConfig::builder()
    ///     .issuer("https://auth.example.com")
    ///     .resource("https://mcp.example.com/mcp")
    ///     .tool_scopes("read_note", ["notes:read"])
    ///     // Reading from anything but the shared folder also needs
    ///     // `notes:private` (fail closed: an unknown value needs it too).
    ///     .tool_scopes_with("read_note", |call: &OperationRequest<'_>, _: &AuthContext| {
    ///         Ok::<_, Refusal>(match call.argument_str("folder") {
    ///             Some("shared") => vec![],
    ///             _ => vec!["notes:private".to_owned()],
    ///         })
    ///     })
    ///     .build()?;
    /// # Ok::<(), mcp_oauth2::ConfigError>(())
    /// ```
    pub fn tool_scopes_with<F>(mut self, tool: impl Into<String>, f: F) -> Self
    where
        F: Fn(&OperationRequest<'_>, &AuthContext) -> Result<Vec<String>, Refusal>
            + Send
            + Sync
            + 'static,
    {
        self.computed_scopes
            .push(Target::Tool(tool.into()), Arc::new(f));
        self
    }

    /// A computed requirement for a prompt (`prompts/get` with this
    /// `name`); see [`tool_scopes_with`](Self::tool_scopes_with).
    pub fn prompt_scopes_with<F>(mut self, prompt: impl Into<String>, f: F) -> Self
    where
        F: Fn(&OperationRequest<'_>, &AuthContext) -> Result<Vec<String>, Refusal>
            + Send
            + Sync
            + 'static,
    {
        self.computed_scopes
            .push(Target::Prompt(prompt.into()), Arc::new(f));
        self
    }

    /// A computed requirement for the resources matching `pattern` (the
    /// patterns of [`resource_scopes`](Self::resource_scopes): exact URIs,
    /// templates, prefixes), for reading and subscribing alike; the
    /// function sees each URI as [`OperationRequest::target`](crate::OperationRequest::target)
    /// (once per URI of a `subscriptions/listen`), as the client spelled
    /// it: the pattern also matches equivalent spellings (see
    /// [`resource_scopes`](Self::resource_scopes)), so a function that
    /// looks inside the URI must decide on a normalized form, or fail
    /// closed on anything it does not recognise. See
    /// [`tool_scopes_with`](Self::tool_scopes_with).
    pub fn resource_scopes_with<F>(mut self, pattern: impl Into<String>, f: F) -> Self
    where
        F: Fn(&OperationRequest<'_>, &AuthContext) -> Result<Vec<String>, Refusal>
            + Send
            + Sync
            + 'static,
    {
        self.computed_scopes.push(
            Target::Resource(crate::scope::UriPattern::new(pattern)),
            Arc::new(f),
        );
        self
    }

    /// Hide the tools, prompts and resources the caller may not use from
    /// list results (default off): `tools/list`, `prompts/list`,
    /// `resources/list`, `resources/templates/list`, and the SEP-2640
    /// `resources/directory/read` (a directory's children) and
    /// `skills/list` (each skill judged as its `SKILL.md` resource). Filtered lists are marked
    /// `cacheScope: "private"`, since they depend on the caller.
    pub fn hide_unauthorized_in_lists(mut self, on: bool) -> Self {
        self.scope_policy.hide_unauthorized = on;
        self
    }

    /// Whether a granted `prefix:*` grants every `prefix:…` scope (default off).
    /// The prefix ends in `:`, `.` or `/` (`notes:*`, `api.*`, `files/*`); a
    /// bare `*` grants nothing.
    pub fn scope_wildcards(mut self, on: bool) -> Self {
        self.scope_policy.hierarchy.set_wildcards(on);
        self
    }
}

/// Checks every configured scope, each under the name of the setting it
/// came from so that an error (and its environment variable) points at it.
pub(super) fn check_scopes(
    required: &[String],
    supported: Option<&[String]>,
    p: &ScopePolicy,
) -> Result<(), ConfigError> {
    let declared: [(&'static str, Vec<&String>); 6] = [
        ("required_scopes", required.iter().collect()),
        (
            "scopes_supported",
            supported.into_iter().flatten().collect(),
        ),
        ("tool_scopes", p.tools.values().flatten().collect()),
        ("prompt_scopes", p.prompts.values().flatten().collect()),
        ("method_scopes", p.methods.values().flatten().collect()),
        (
            "resource_scopes",
            p.resources.iter().flat_map(|(_, s)| s).collect(),
        ),
    ];
    for (field, scopes) in &declared {
        for scope in scopes {
            validate_scope_token(field, scope)?;
        }
    }
    // The two lists published as they are (the challenge's `scope`, the
    // metadata's `scopes_supported`): a scope listed twice would be
    // published twice.
    for (field, scopes) in declared.iter().take(2) {
        if let Some(scope) = super::builder::first_repeated(scopes) {
            return Err(ConfigError::new(
                field,
                format!("{scope:?} is listed twice"),
            ));
        }
    }
    // MCP scope selection: offline_access is not a resource scope and must
    // never reach a challenge or the metadata.
    for (field, scopes) in declared {
        refuse_offline_access(field, scopes)?;
    }
    Ok(())
}

/// Refuses `offline_access` among the scopes of setting `field`: a scope in
/// a requirement ends up in challenges, where MCP clients must not see it.
fn refuse_offline_access<'a>(
    field: &'static str,
    scopes: impl IntoIterator<Item = &'a String>,
) -> Result<(), ConfigError> {
    if scopes.into_iter().any(|s| s == "offline_access") {
        return Err(ConfigError::new(
            field,
            "must not list offline_access (MCP scope selection: it is not a resource scope)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::{AuthConfig, AuthConfigBuilder};

    fn base() -> AuthConfigBuilder {
        AuthConfig::builder()
            .issuer("https://auth.example.com")
            .resource("https://mcp.example.com/mcp")
    }

    // MCP scope selection: offline_access never reaches a challenge or the
    // metadata; refused in every setting, naming that setting.
    #[test]
    fn offline_access_is_refused_in_every_scope_setting() {
        let cases: Vec<(AuthConfigBuilder, &str)> = vec![
            (
                base().scopes_supported(["offline_access"]),
                "scopes_supported",
            ),
            (
                base().required_scopes(["offline_access"]),
                "required_scopes",
            ),
            (base().tool_scopes("t", ["offline_access"]), "tool_scopes"),
            (
                base().prompt_scopes("p", ["offline_access"]),
                "prompt_scopes",
            ),
            (
                base().method_scopes("tools/list", ["offline_access"]),
                "method_scopes",
            ),
            (
                base().resource_scopes("notes://{id}", ["offline_access"]),
                "resource_scopes",
            ),
        ];
        for (builder, field) in cases {
            assert_eq!(builder.build().unwrap_err().field(), field);
        }
    }

    // RFC 6749 section 3.3: a bad scope token is named by its setting.
    #[test]
    fn bad_scope_tokens_name_their_setting() {
        let cases: Vec<(AuthConfigBuilder, &str)> = vec![
            (base().required_scopes(["bad scope\""]), "required_scopes"),
            (base().scopes_supported(["a\\b"]), "scopes_supported"),
            (base().tool_scopes("t", ["a b"]), "tool_scopes"),
            (base().prompt_scopes("p", ["é"]), "prompt_scopes"),
            (base().method_scopes("m", ["\u{7f}"]), "method_scopes"),
            (base().resource_scopes("x://*", [""]), "resource_scopes"),
        ];
        for (builder, field) in cases {
            assert_eq!(builder.build().unwrap_err().field(), field);
        }
    }

    #[test]
    fn declared_scopes_reach_the_policy() {
        let c = base()
            .required_scopes(["base"])
            .tool_scopes("t", ["notes:write"])
            .scope_implies("notes:write", ["notes:read"])
            .hide_unauthorized_in_lists(true)
            .build()
            .unwrap();
        assert_eq!(c.scope_policy.global, ["base"]);
        assert_eq!(c.scopes_supported, ["base"]);
        assert!(c.scope_policy.hide_unauthorized);
        assert!(c.scope_policy.tools.contains_key("t"));
    }
}
