//! Topic templates: topic filters whose levels may contain identity placeholders (`${clientid}`,
//! `${username}`, `${tenant}`), and the three questions rules ask of them: does a topic match, does
//! a template cover a whole subscription filter, and can a filter overlap it at all.
//!
//! Placeholders are compared as literal text against one topic level, never substituted into the
//! filter string: an identity containing `+`, `#` or `/` cannot widen a rule, because a topic level
//! never contains `/` and a wildcard level of a subscription filter is not a literal.

use std::fmt;

use stratus_topics::{TopicFilter, TopicName};

use crate::Identity;

/// The largest template accepted (bytes).
pub const MAX_TEMPLATE_LEN: usize = 1024;

/// An identity field a template can refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// `${clientid}`.
    ClientId,
    /// `${username}`.
    Username,
    /// `${tenant}`.
    Tenant,
}

impl Placeholder {
    fn value<'a>(self, who: &Identity<'a>) -> Option<&'a str> {
        match self {
            Self::ClientId => Some(who.client_id),
            Self::Username => who.username,
            Self::Tenant => Some(who.tenant),
        }
    }
}

/// One level of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Level {
    /// Literal text.
    Literal(String),
    /// Literal prefix, a placeholder, literal suffix (e.g. `dev-${clientid}`).
    Placeholder {
        prefix: String,
        var: Placeholder,
        suffix: String,
    },
    /// `+`.
    Single,
    /// `#` (last level only).
    Multi,
}

impl Level {
    /// Whether this level matches the literal topic level `text`.
    fn matches_literal(&self, text: &str, who: &Identity<'_>) -> bool {
        match self {
            Self::Literal(l) => l == text,
            Self::Single | Self::Multi => true,
            Self::Placeholder {
                prefix,
                var,
                suffix,
            } => match var.value(who) {
                Some(value) if valid_value(value) => {
                    text.len() == prefix.len() + value.len() + suffix.len()
                        && text.starts_with(prefix.as_str())
                        && text.ends_with(suffix.as_str())
                        && &text[prefix.len()..text.len() - suffix.len()] == value
                }
                _ => false,
            },
        }
    }
}

/// An identity value usable in a level: non-empty, no separator, no wildcard, no NUL.
fn valid_value(value: &str) -> bool {
    !value.is_empty() && !value.contains(['/', '+', '#', '\0'])
}

/// Why a template is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// Empty template.
    #[error("the filter cannot be empty")]
    Empty,
    /// Too long.
    #[error("the filter is {0} bytes; at most {MAX_TEMPLATE_LEN} are allowed")]
    TooLong(usize),
    /// A `${...}` that is not a known placeholder, or is not closed.
    #[error("unknown placeholder in {0:?}: use ${{clientid}}, ${{username}} or ${{tenant}}")]
    UnknownPlaceholder(String),
    /// More than one placeholder in a level.
    #[error("at most one placeholder per level, found several in {0:?}")]
    SeveralPlaceholders(String),
    /// Not a valid topic filter once placeholders are set aside.
    #[error("not a valid topic filter: {0}")]
    InvalidFilter(String),
}

/// A parsed, validated topic template.
#[derive(Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    source: String,
    levels: Vec<Level>,
}

impl fmt::Debug for TopicTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicTemplate({})", self.source)
    }
}

impl fmt::Display for TopicTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl TopicTemplate {
    /// Parses and validates a template.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        if source.is_empty() {
            return Err(TemplateError::Empty);
        }
        if source.len() > MAX_TEMPLATE_LEN {
            return Err(TemplateError::TooLong(source.len()));
        }
        let mut levels = Vec::new();
        let mut stand_in = String::with_capacity(source.len());
        for (i, text) in source.split('/').enumerate() {
            if i > 0 {
                stand_in.push('/');
            }
            let level = parse_level(text)?;
            match &level {
                Level::Placeholder { .. } => stand_in.push('x'),
                _ => stand_in.push_str(text),
            }
            levels.push(level);
        }
        // Everything else (wildcard placement, NUL) is checked by the topics crate.
        TopicFilter::try_from(stand_in.as_str())
            .map_err(|e| TemplateError::InvalidFilter(e.to_string()))?;
        Ok(Self {
            source: source.to_owned(),
            levels,
        })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True if the template refers to the identity.
    pub fn has_placeholders(&self) -> bool {
        self.levels
            .iter()
            .any(|l| matches!(l, Level::Placeholder { .. }))
    }

    /// Whether `topic` matches the template for `who` (`#` matches its parent level; a template
    /// starting with a wildcard never matches a `$` topic).
    pub fn matches_topic(&self, topic: &TopicName, who: &Identity<'_>) -> bool {
        if topic.is_system() && self.starts_with_wildcard() {
            return false;
        }
        let mut levels = topic.levels();
        for pattern in &self.levels {
            match pattern {
                Level::Multi => return true,
                _ => match levels.next() {
                    Some(text) if pattern.matches_literal(text, who) => {}
                    // (`a/#` matching `a` is handled above: `#` is checked before a level is taken.)
                    Some(_) | None => return false,
                },
            }
        }
        levels.next().is_none()
    }

    /// Whether every topic `filter` can match is matched by the template for `who`.
    pub fn covers(&self, filter: &TopicFilter, who: &Identity<'_>) -> bool {
        let starts_with_dollar = filter.as_str().starts_with('$');
        if starts_with_dollar && self.starts_with_wildcard() {
            return false;
        }
        // A filter starting with a wildcard matches no `$` topic, so a template starting with `$`
        // cannot cover it.
        let mut levels = filter.levels();
        for pattern in &self.levels {
            let Some(text) = levels.next() else {
                // The filter ended: covered when the rest of the template is just `#`.
                return matches!(pattern, Level::Multi);
            };
            let ok = match (pattern, text) {
                (Level::Multi, _) => return true,
                (_, "#") => false,
                (Level::Single, _) => true,
                (_, "+") => false,
                (level, literal) => level.matches_literal(literal, who),
            };
            if !ok {
                return false;
            }
        }
        levels.next().is_none()
    }

    /// Whether some topic matches both `filter` and the template for `who`.
    pub fn overlaps(&self, filter: &TopicFilter, who: &Identity<'_>) -> bool {
        let mut levels = filter.levels().peekable();
        let first_wild = matches!(levels.peek(), Some(&"+") | Some(&"#"));
        // A topic matched by both must satisfy both `$` rules.
        let template_first_dollar = match self.levels.first() {
            Some(Level::Literal(l)) => l.starts_with('$'),
            Some(Level::Placeholder { prefix, .. }) => prefix.starts_with('$'),
            _ => false,
        };
        if template_first_dollar && first_wild {
            return false;
        }
        let filter_first_dollar = filter.as_str().starts_with('$');
        if filter_first_dollar && self.starts_with_wildcard() {
            return false;
        }
        for pattern in &self.levels {
            let Some(text) = levels.next() else {
                return matches!(pattern, Level::Multi);
            };
            let ok = match (pattern, text) {
                (Level::Multi, _) | (_, "#") => return true,
                (Level::Single, _) | (_, "+") => true,
                (level, literal) => level.matches_literal(literal, who),
            };
            if !ok {
                return false;
            }
        }
        match levels.next() {
            None => true,
            Some("#") => levels.next().is_none(),
            Some(_) => false,
        }
    }

    fn starts_with_wildcard(&self) -> bool {
        matches!(self.levels.first(), Some(Level::Single | Level::Multi))
    }
}

fn parse_level(text: &str) -> Result<Level, TemplateError> {
    match text {
        "+" => return Ok(Level::Single),
        "#" => return Ok(Level::Multi),
        _ => {}
    }
    let Some(start) = text.find("${") else {
        return Ok(Level::Literal(text.to_owned()));
    };
    let rest = &text[start + 2..];
    let end = rest
        .find('}')
        .ok_or_else(|| TemplateError::UnknownPlaceholder(text.to_owned()))?;
    let var = match &rest[..end] {
        "clientid" => Placeholder::ClientId,
        "username" => Placeholder::Username,
        "tenant" => Placeholder::Tenant,
        _ => return Err(TemplateError::UnknownPlaceholder(text.to_owned())),
    };
    let suffix = &rest[end + 1..];
    if suffix.contains("${") {
        return Err(TemplateError::SeveralPlaceholders(text.to_owned()));
    }
    Ok(Level::Placeholder {
        prefix: text[..start].to_owned(),
        var,
        suffix: suffix.to_owned(),
    })
}
