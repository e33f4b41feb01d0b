//! Request parameters as UCloud clients send them: flat, dotted, and often stringly typed.
//!
//! A request arrives as a flat map (`PMIDs.0`, `Tags.1.Key`,
//! `DiskSelector.MinSize`, or plain JSON values). [`Params::unflatten`] turns
//! it into nested JSON once; the typed accessors then read it, accept scalars
//! sent as strings (`"20"`, `"true"`), and name the exact parameter in every
//! error.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::ApiError;

/// Deepest nesting a dotted name may have (`A.0.B.1.C` is 5).
const MAX_DEPTH: usize = 8;
/// Highest array index accepted in a dotted name, so `X.99999999` cannot
/// make us allocate.
const MAX_INDEX: usize = 9_999;

enum Node {
    Leaf(Value),
    Branch(BTreeMap<String, Node>),
}

/// Parameters of one request, nested.
#[derive(Debug, Clone, Default)]
pub struct Params {
    root: Map<String, Value>,
}

impl Params {
    /// Nests a flat parameter map. Two spellings of one parameter that
    /// disagree (`Tags` as JSON and `Tags.0.Key`, or `A=1` and `A.B=2`) are
    /// refused, naming the parameter.
    pub fn unflatten(flat: &BTreeMap<String, Value>) -> Result<Params, ApiError> {
        let mut root: BTreeMap<String, Node> = BTreeMap::new();
        for (name, value) in flat {
            let parts: Vec<&str> = name.split('.').collect();
            if parts.len() > MAX_DEPTH || parts.iter().any(|p| p.is_empty()) {
                return Err(ApiError::invalid(name, "malformed parameter name"));
            }
            insert(&mut root, &parts, value, name)?;
        }
        let mut out = Map::new();
        for (k, node) in root {
            out.insert(k.clone(), finish(node, &k)?);
        }
        Ok(Params { root: out })
    }

    /// Parameters from already-nested JSON (tests, internal callers).
    pub fn from_json(root: Map<String, Value>) -> Params {
        Params { root }
    }

    pub fn raw(&self, name: &str) -> Option<&Value> {
        self.root.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.root.contains_key(name)
    }

    /// A text parameter; numbers and bools are taken as their text.
    pub fn opt_str(&self, name: &str) -> Result<Option<String>, ApiError> {
        self.root
            .get(name)
            .map(|v| scalar_text(v, name))
            .transpose()
    }

    /// A required text parameter; empty counts as missing.
    pub fn req_str(&self, name: &str) -> Result<String, ApiError> {
        match self.opt_str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(ApiError::missing(name)),
        }
    }

    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.root.get(name).map(|v| int_of(v, name)).transpose()
    }

    pub fn req_int(&self, name: &str) -> Result<i64, ApiError> {
        self.opt_int(name)?.ok_or_else(|| ApiError::missing(name))
    }

    /// An integer that must lie in `range`, or None when absent.
    pub fn opt_int_in(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, ApiError> {
        match self.opt_int(name)? {
            Some(n) if !range.contains(&n) => Err(ApiError::invalid(
                name,
                format!(
                    "must be between {} and {}, got {n}",
                    range.start(),
                    range.end()
                ),
            )),
            other => Ok(other),
        }
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.root.get(name).map(|v| bool_of(v, name)).transpose()
    }

    /// A list of text values. A single scalar is taken as a list of one,
    /// since hand-written calls often send `PMIDs=pm-...`.
    pub fn opt_str_list(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.root.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| scalar_text(v, &format!("{name}.{i}")))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(v) => Ok(Some(vec![scalar_text(v, name)?])),
        }
    }

    /// A list of objects, each handed over with its own parameter path.
    pub fn opt_obj_list(&self, name: &str) -> Result<Option<Vec<Params>>, ApiError> {
        match self.root.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(m) => Ok(Params { root: m.clone() }),
                    _ => Err(ApiError::invalid(format!("{name}.{i}"), "must be an object")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(ApiError::invalid(name, "must be a list of objects")),
        }
    }

    /// A nested object such as `DiskSelector`.
    pub fn opt_obj(&self, name: &str) -> Result<Option<Params>, ApiError> {
        match self.root.get(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Params { root: m.clone() })),
            Some(_) => Err(ApiError::invalid(name, "must be an object")),
        }
    }
}

fn insert(
    level: &mut BTreeMap<String, Node>,
    parts: &[&str],
    value: &Value,
    full: &str,
) -> Result<(), ApiError> {
    let (head, rest) = parts.split_first().expect("names have at least one part");
    if rest.is_empty() {
        let node = node_of(value);
        return match level.remove(*head) {
            None => {
                level.insert((*head).to_owned(), node);
                Ok(())
            }
            Some(existing) => {
                let merged = merge(existing, node, full)?;
                level.insert((*head).to_owned(), merged);
                Ok(())
            }
        };
    }
    let entry = level
        .entry((*head).to_owned())
        .or_insert_with(|| Node::Branch(BTreeMap::new()));
    match entry {
        Node::Branch(children) => insert(children, rest, value, full),
        Node::Leaf(v) if v.is_null() => {
            *entry = Node::Branch(BTreeMap::new());
            match entry {
                Node::Branch(children) => insert(children, rest, value, full),
                Node::Leaf(_) => unreachable!("just replaced with a branch"),
            }
        }
        Node::Leaf(_) => Err(ApiError::invalid(
            full,
            "given both as a value and as a nested parameter",
        )),
    }
}

/// JSON arrays and objects become branches so they merge with dotted names.
fn node_of(value: &Value) -> Node {
    match value {
        Value::Array(items) => Node::Branch(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), node_of(v)))
                .collect(),
        ),
        Value::Object(map) => {
            Node::Branch(map.iter().map(|(k, v)| (k.clone(), node_of(v))).collect())
        }
        other => Node::Leaf(other.clone()),
    }
}

fn merge(a: Node, b: Node, full: &str) -> Result<Node, ApiError> {
    match (a, b) {
        (Node::Leaf(x), Node::Leaf(y)) if x == y => Ok(Node::Leaf(x)),
        (Node::Branch(mut x), Node::Branch(y)) => {
            for (k, v) in y {
                let merged = match x.remove(&k) {
                    Some(old) => merge(old, v, full)?,
                    None => v,
                };
                x.insert(k, merged);
            }
            Ok(Node::Branch(x))
        }
        _ => Err(ApiError::invalid(full, "given twice with different values")),
    }
}

/// A branch whose names are all indexes is a list, ordered by index.
fn finish(node: Node, path: &str) -> Result<Value, ApiError> {
    match node {
        Node::Leaf(v) => Ok(v),
        Node::Branch(children) => {
            let all_indexes = !children.is_empty()
                && children
                    .keys()
                    .all(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
            if all_indexes {
                let mut items: Vec<(usize, Node)> = Vec::with_capacity(children.len());
                for (k, v) in children {
                    let idx: usize = k
                        .parse()
                        .ok()
                        .filter(|i| *i <= MAX_INDEX)
                        .ok_or_else(|| {
                            ApiError::invalid(
                                format!("{path}.{k}"),
                                format!("index must be at most {MAX_INDEX}"),
                            )
                        })?;
                    items.push((idx, v));
                }
                items.sort_by_key(|(i, _)| *i);
                items
                    .into_iter()
                    .map(|(i, v)| finish(v, &format!("{path}.{i}")))
                    .collect::<Result<Vec<_>, _>>()
                    .map(Value::Array)
            } else {
                let mut map = Map::new();
                for (k, v) in children {
                    let child = finish(v, &format!("{path}.{k}"))?;
                    map.insert(k, child);
                }
                Ok(Value::Object(map))
            }
        }
    }
}

fn scalar_text(v: &Value, name: &str) -> Result<String, ApiError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        _ => Err(ApiError::invalid(name, "must be a single value")),
    }
}

fn int_of(v: &Value, name: &str) -> Result<i64, ApiError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .ok_or_else(|| ApiError::invalid(name, "must be an integer")),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| ApiError::invalid(name, format!("must be an integer, got {s:?}"))),
        _ => Err(ApiError::invalid(name, "must be an integer")),
    }
}

fn bool_of(v: &Value, name: &str) -> Result<bool, ApiError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") || s == "1" => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") || s == "0" => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        _ => Err(ApiError::invalid(name, "must be true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flat(pairs: &[(&str, Value)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn dotted_names_become_lists_and_objects() {
        let p = Params::unflatten(&flat(&[
            ("PMIDs.1", json!("b")),
            ("PMIDs.0", json!("a")),
            ("Tags.0.Key", json!("k0")),
            ("Tags.0.Value", json!("v0")),
            ("Tags.1.Key", json!("k1")),
            ("DiskSelector.MinSize", json!("20")),
            ("Limit", json!("20")),
        ]))
        .unwrap();
        assert_eq!(p.opt_str_list("PMIDs").unwrap().unwrap(), vec!["a", "b"]);
        let tags = p.opt_obj_list("Tags").unwrap().unwrap();
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].req_str("Key").unwrap(), "k0");
        assert_eq!(tags[1].opt_str("Value").unwrap(), None);
        let ds = p.opt_obj("DiskSelector").unwrap().unwrap();
        assert_eq!(ds.opt_int("MinSize").unwrap(), Some(20));
        assert_eq!(p.opt_int("Limit").unwrap(), Some(20));
    }

    #[test]
    fn json_and_dotted_spellings_merge_when_they_agree() {
        let p = Params::unflatten(&flat(&[
            ("PMIDs", json!(["a", "b"])),
            ("PMIDs.1", json!("b")),
        ]))
        .unwrap();
        assert_eq!(p.opt_str_list("PMIDs").unwrap().unwrap(), vec!["a", "b"]);
        let err = Params::unflatten(&flat(&[
            ("PMIDs", json!(["a", "b"])),
            ("PMIDs.1", json!("c")),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("PMIDs.1"), "{err}");
    }

    #[test]
    fn a_value_and_a_nested_value_conflict() {
        let err =
            Params::unflatten(&flat(&[("A", json!("1")), ("A.B", json!("2"))])).unwrap_err();
        assert_eq!(err.ret_code().0, 230);
    }

    #[test]
    fn huge_indexes_and_deep_names_are_refused() {
        assert!(Params::unflatten(&flat(&[("X.99999999", json!("1"))])).is_err());
        assert!(Params::unflatten(&flat(&[("a.b.c.d.e.f.g.h.i", json!("1"))])).is_err());
        assert!(Params::unflatten(&flat(&[("a..b", json!("1"))])).is_err());
    }

    #[test]
    fn strings_convert_and_errors_name_the_parameter() {
        let p = Params::unflatten(&flat(&[
            ("On", json!("TRUE")),
            ("Off", json!(0)),
            ("Limit", json!("ten")),
            ("Big", json!(5000)),
        ]))
        .unwrap();
        assert_eq!(p.opt_bool("On").unwrap(), Some(true));
        assert_eq!(p.opt_bool("Off").unwrap(), Some(false));
        let e = p.opt_int("Limit").unwrap_err();
        assert!(e.to_string().contains("[Limit]"), "{e}");
        let e = p.opt_int_in("Big", 1..=1000).unwrap_err();
        assert!(e.to_string().contains("between 1 and 1000"), "{e}");
        assert!(matches!(p.req_str("Nope"), Err(ApiError::MissingParams(n)) if n == "Nope"));
    }

    #[test]
    fn a_single_value_is_a_list_of_one() {
        let p = Params::unflatten(&flat(&[("PMIDs", json!("pm-1"))])).unwrap();
        assert_eq!(p.opt_str_list("PMIDs").unwrap().unwrap(), vec!["pm-1"]);
    }
}
