//! Resource URI patterns (`resource_scopes`, through
//! `testing::resource_pattern_matches`): any
//! pattern and URI match without a panic (issue 12: a template sliced a URI
//! inside a multi-byte character), and the documented semantics hold:
//! - a pattern without `{` or `*` matches exactly itself;
//! - a prefix pattern `p*` (no `{`) matches exactly the URIs starting with `p`;
//! - a `{name}` placeholder never spans a `/`: a URI matched by a template
//!   without `*`, `{+..}` or `{#..}` has as many `/` as the template's
//!   literal text;
//! - every expansion of a template matches it (values without `/` for
//!   `{name}`, any value for `{+name}`): a template never misses a URI it
//!   stands for, which would skip that resource's scope requirement.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcp_oauth2::testing::resource_pattern_matches;

/// A pattern's pieces, as documented on `AuthConfigBuilder::resource_scopes`.
enum Piece<'a> {
    Literal(&'a str),
    /// A placeholder; `true` for reserved expansion (`{+x}`, `{#x}`).
    Var(bool),
}

fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let (literal, after) = rest.split_at(open);
        let Some(close) = after.find('}') else {
            break;
        };
        out.push(Piece::Literal(literal));
        let expression = &after[1..close];
        out.push(Piece::Var(
            expression.starts_with('+') || expression.starts_with('#'),
        ));
        rest = &after[close + 1..];
    }
    out.push(Piece::Literal(rest));
    out
}

fuzz_target!(|input: (String, String, Vec<String>)| {
    let (pattern_text, uri, values) = input;
    let matched = resource_pattern_matches(&pattern_text, &uri);

    let has_brace = pattern_text.contains('{');
    let trailing_star = pattern_text.ends_with('*');
    if !has_brace && !trailing_star {
        assert_eq!(matched, pattern_text == uri, "exact {pattern_text:?} vs {uri:?}");
        return;
    }
    if !has_brace {
        let prefix = pattern_text.strip_suffix('*').unwrap_or_default();
        assert_eq!(matched, uri.starts_with(prefix), "prefix {pattern_text:?} vs {uri:?}");
        return;
    }
    if trailing_star {
        return;
    }
    let pieces = pieces(&pattern_text);
    let reserved = pieces.iter().any(|p| matches!(p, Piece::Var(true)));
    let literal_slashes: usize = pieces
        .iter()
        .map(|p| match p {
            Piece::Literal(l) => l.matches('/').count(),
            Piece::Var(_) => 0,
        })
        .sum();
    if matched && !reserved {
        assert_eq!(
            uri.matches('/').count(),
            literal_slashes,
            "a placeholder spanned a '/': {pattern_text:?} vs {uri:?}"
        );
    }
    // Expand the template with the fuzzer's values and check it matches.
    let mut values = values.into_iter().cycle();
    let mut expansion = String::new();
    for piece in &pieces {
        match piece {
            Piece::Literal(l) => expansion.push_str(l),
            Piece::Var(reserved) => {
                let value = values.next().unwrap_or_default();
                if *reserved {
                    expansion.push_str(&value);
                } else {
                    expansion.extend(value.chars().filter(|c| *c != '/'));
                }
            }
        }
    }
    assert!(
        resource_pattern_matches(&pattern_text, &expansion),
        "an expansion did not match: {pattern_text:?} vs {expansion:?}"
    );
});
