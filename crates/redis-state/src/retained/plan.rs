//! [`ScanPlan`]: which parts of a tenant's topic index a filter can match, as `ZRANGEBYLEX`
//! ranges, so that a filter with literal leading levels never reads other prefixes.
//!
//! The index holds topics in byte order. Every topic under the literal prefix `a/b` starts with
//! `a/b/`, and those are exactly the topics in `[a/b/, a/b0)` because `0` is the byte after
//! `/`; `a/bc` sorts outside. The plan only narrows: whatever it yields is still checked with
//! [`TopicFilter::matches`].

use stratus_topics::TopicFilter;

/// The single-level wildcard, as a level.
const SINGLE: &str = "+";
/// The multi-level wildcard, as a level.
const MULTI: &str = "#";

/// One end of a lexicographic range, as `ZRANGEBYLEX` spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LexBound {
    /// `-` as a start, `+` as an end.
    Unbounded,
    /// `[value`.
    Inclusive(String),
    /// `(value`.
    Exclusive(String),
}

impl LexBound {
    /// The argument for `ZRANGEBYLEX`; `is_start` picks `-` or `+` for an unbounded end.
    pub(super) fn to_arg(&self, is_start: bool) -> String {
        match self {
            Self::Unbounded if is_start => "-".to_owned(),
            Self::Unbounded => "+".to_owned(),
            Self::Inclusive(value) => format!("[{value}"),
            Self::Exclusive(value) => format!("({value}"),
        }
    }
}

/// A range of the index to read in pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LexRange {
    pub(super) start: LexBound,
    pub(super) end: LexBound,
}

/// How to find the topics a filter can match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ScanPlan {
    /// Topics to look up directly: the filter itself when it has no wildcard, or the parent
    /// `a/b` of a filter `a/b/#` (`#` also matches zero levels).
    pub(super) exact: Option<String>,
    /// Index ranges to scan.
    pub(super) ranges: Vec<LexRange>,
}

impl ScanPlan {
    pub(super) fn for_filter(filter: &TopicFilter) -> Self {
        let mut literal = Vec::new();
        let mut wildcard = None;
        for level in filter.levels() {
            if level == SINGLE || level == MULTI {
                wildcard = Some(level);
                break;
            }
            literal.push(level);
        }
        let Some(wildcard) = wildcard else {
            return Self {
                exact: Some(filter.as_str().to_owned()),
                ranges: Vec::new(),
            };
        };
        if literal.is_empty() {
            // A leading wildcard never matches topics starting with `$` [MQTT-4.7.2-1]: skip
            // the part of the index where they sort, `[$, %)`.
            return Self {
                exact: None,
                ranges: vec![
                    LexRange {
                        start: LexBound::Unbounded,
                        end: LexBound::Exclusive("$".to_owned()),
                    },
                    LexRange {
                        start: LexBound::Inclusive("%".to_owned()),
                        end: LexBound::Unbounded,
                    },
                ],
            };
        }
        let parent = literal.join("/");
        // `a/b/#` also matches `a/b`; `/#` would make that the empty string, never a topic.
        let exact = (wildcard == MULTI && !parent.is_empty()).then(|| parent.clone());
        Self {
            exact,
            ranges: vec![LexRange {
                start: LexBound::Inclusive(format!("{parent}/")),
                end: LexBound::Exclusive(format!("{parent}0")),
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(filter: &str) -> ScanPlan {
        ScanPlan::for_filter(&TopicFilter::try_from(filter).unwrap())
    }

    fn prefix(start: &str, end: &str) -> Vec<LexRange> {
        vec![LexRange {
            start: LexBound::Inclusive(start.to_owned()),
            end: LexBound::Exclusive(end.to_owned()),
        }]
    }

    #[test]
    fn a_literal_filter_is_one_lookup() {
        assert_eq!(
            plan("a/b"),
            ScanPlan {
                exact: Some("a/b".to_owned()),
                ranges: vec![]
            }
        );
    }

    #[test]
    fn literal_leading_levels_become_a_prefix_range() {
        assert_eq!(
            plan("a/b/#"),
            ScanPlan {
                exact: Some("a/b".to_owned()),
                ranges: prefix("a/b/", "a/b0")
            }
        );
        assert_eq!(
            plan("a/+/c/#"),
            ScanPlan {
                exact: None,
                ranges: prefix("a/", "a0")
            }
        );
        assert_eq!(
            plan("$SYS/#"),
            ScanPlan {
                exact: Some("$SYS".to_owned()),
                ranges: prefix("$SYS/", "$SYS0")
            }
        );
        // Empty levels are literal levels too.
        assert_eq!(
            plan("/#"),
            ScanPlan {
                exact: None,
                ranges: prefix("/", "0")
            }
        );
        assert_eq!(
            plan("a//+"),
            ScanPlan {
                exact: None,
                ranges: prefix("a//", "a/0")
            }
        );
    }

    #[test]
    fn a_leading_wildcard_scans_everything_but_dollar_topics() {
        for filter in ["#", "+", "+/a/#"] {
            let plan = plan(filter);
            assert_eq!(plan.exact, None);
            assert_eq!(plan.ranges.len(), 2, "{filter}");
            assert_eq!(plan.ranges[0].end.to_arg(false), "($");
            assert_eq!(plan.ranges[1].start.to_arg(true), "[%");
        }
    }

    #[test]
    fn bounds_spell_zrangebylex_arguments() {
        assert_eq!(LexBound::Unbounded.to_arg(true), "-");
        assert_eq!(LexBound::Unbounded.to_arg(false), "+");
        assert_eq!(LexBound::Inclusive("a/".into()).to_arg(true), "[a/");
        assert_eq!(LexBound::Exclusive("a0".into()).to_arg(false), "(a0");
    }
}
