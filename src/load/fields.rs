//! Reads JSON request documents field by field, so every error names the field's path
//! (`tasks[1].weight: expected an integer, got a string`) instead of a parser position.

use serde_json::{Map, Value};

use super::error::Error;

/// The JSON type of `v`, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Parses `text` as JSON; a syntax error is reported against `field`.
pub fn parse(field: &str, text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::invalid(field, format!("malformed JSON: {e}")))
}

/// One JSON object being read, with its path for messages.
pub struct Fields<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Reads `v`, which must be an object, as the field at `path`.
    pub fn new(path: impl Into<String>, v: &'a Value) -> Result<Self, Error> {
        let path = path.into();
        match v {
            Value::Object(map) => Ok(Fields { path, map }),
            other => Err(Error::invalid(
                path,
                format!("must be a JSON object, got {}", kind(other)),
            )),
        }
    }

    /// The path of field `key`.
    pub fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Rejects keys outside `allowed`: a misspelt field must not be silently ignored.
    pub fn only(&self, allowed: &[&str]) -> Result<(), Error> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(Error::invalid(
                self.path(k),
                format!("unknown field (expected one of: {})", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// The raw value of `key`; `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// An optional string.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(Error::invalid(
                self.path(key),
                format!("expected a string, got {}", kind(v)),
            )),
        }
    }

    /// An optional boolean.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(Error::invalid(
                self.path(key),
                format!("expected true or false, got {}", kind(v)),
            )),
        }
    }

    /// A non-negative integer at most `max`, `default` when absent.
    pub(crate) fn uint(&self, key: &str, default: u64, max: u64) -> Result<u64, Error> {
        let Some(v) = self.get(key) else {
            return Ok(default);
        };
        let n = match v {
            Value::Number(n) => n,
            other => {
                return Err(Error::invalid(
                    self.path(key),
                    format!("expected an integer, got {}", kind(other)),
                ))
            }
        };
        match (n.as_u64(), n.as_i64()) {
            (Some(u), _) if u <= max => Ok(u),
            (Some(u), _) => Err(Error::invalid(
                self.path(key),
                format!("{u} is over the limit of {max}"),
            )),
            (None, Some(i)) => Err(Error::invalid(self.path(key), format!("{i} must be >= 0"))),
            (None, None) => Err(Error::invalid(
                self.path(key),
                format!("expected an integer, got {n}"),
            )),
        }
    }

    /// An optional number.
    pub fn number(&self, key: &str) -> Result<Option<f64>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(v) => Err(Error::invalid(
                self.path(key),
                format!("expected a number, got {}", kind(v)),
            )),
        }
    }

    /// An optional array.
    pub(crate) fn array(&self, key: &str) -> Result<Option<&'a Vec<Value>>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(Error::invalid(
                self.path(key),
                format!("expected an array, got {}", kind(v)),
            )),
        }
    }

    /// An optional object of strings (a params map), in document order.
    pub(crate) fn string_map(&self, key: &str) -> Result<Option<Vec<(String, String)>>, Error> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let Value::Object(m) = v else {
            return Err(Error::invalid(
                self.path(key),
                format!("expected an object of strings, got {}", kind(v)),
            ));
        };
        m.iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(Error::invalid(
                    format!("{}.{k}", self.path(key)),
                    format!("expected a string, got {}", kind(other)),
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}
