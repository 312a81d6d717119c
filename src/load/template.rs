//! `{{param}}` substitution for HTTP task paths, headers and bodies.

use std::collections::BTreeMap;

/// Text with `{{name}}` holes, parsed once and rendered per request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    // As written, so the class can be handed to a load agent that parses it again.
    source: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Param(String),
}

impl Template {
    /// Parses `s`. `{{ name }}` (spaces allowed) is a hole; a `{{` without a closing `}}` is text.
    pub fn parse(s: &str) -> Template {
        let mut parts = Vec::new();
        let mut rest = s;
        let mut text = String::new();
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                break;
            };
            let name = after[..close].trim();
            if name.is_empty() {
                text.push_str(&rest[..open + 2 + close + 2]);
            } else {
                text.push_str(&rest[..open]);
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Param(name.to_string()));
            }
            rest = &after[close + 2..];
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Template {
            parts,
            source: s.to_string(),
        }
    }

    /// The text it was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The params it needs.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Param(n) => Some(n.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Fills the holes; a param missing from `params` renders empty (checked before a run).
    pub fn render(&self, params: &BTreeMap<String, String>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Param(n) => out.push_str(params.get(n).map_or("", String::as_str)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_and_keeps_odd_text() {
        let p: BTreeMap<String, String> = [("mc".to_string(), "x1".to_string())].into();
        let t = Template::parse(r#"{"mc":"{{mc}}","n":"{{ mc }}"} {{}} {{open"#);
        assert_eq!(t.render(&p), r#"{"mc":"x1","n":"x1"} {{}} {{open"#);
        assert_eq!(t.params().collect::<Vec<_>>(), ["mc", "mc"]);
        assert_eq!(Template::parse("plain").render(&p), "plain");
    }
}
