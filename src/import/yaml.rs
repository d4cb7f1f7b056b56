//! YAML for the readers, as a small tree of plain values ([`Node`]) built from the `saphyr`
//! parser: mapping order kept, anchors and aliases resolved, `<<` merge keys applied (Ansible
//! and Deployer files use them), and tags such as `!vault` kept so that an encrypted value is
//! recognised as one. Nothing here knows what the keys mean.

use std::path::Path;

use saphyr::{LoadableYamlNode, ScalarOwned, YamlOwned};

use super::ImportError;

/// One YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Bool(bool),
    Int(i64),
    /// A float, as written back by Rust (Ansible ports and users are never floats).
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys as text (a non-text key is written as its text), in file order.
    Map(Vec<(String, Node)>),
    /// A value with a tag other than the core ones: `!vault`, `!unsafe`.
    Tagged(String, Box<Node>),
}

impl Node {
    /// The text of a scalar (numbers and booleans as written), None for collections and null.
    pub fn text(&self) -> Option<String> {
        match self {
            Node::Str(s) => Some(s.clone()),
            Node::Int(i) => Some(i.to_string()),
            Node::Float(f) => Some(f.to_string()),
            Node::Bool(b) => Some(b.to_string()),
            Node::Tagged(t, inner) if t == "!unsafe" => inner.text(),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn entries(&self) -> &[(String, Node)] {
        match self {
            Node::Map(m) => m,
            _ => &[],
        }
    }

    /// Strings of a list (or of a single scalar).
    pub(crate) fn strings(&self) -> Vec<String> {
        match self {
            Node::Seq(items) => items.iter().filter_map(Node::text).collect(),
            other => other.text().into_iter().collect(),
        }
    }

    pub(crate) fn is_map(&self) -> bool {
        matches!(self, Node::Map(_))
    }

    /// Whether the value is encrypted or otherwise tagged as not plain (`!vault`).
    pub(crate) fn is_vault(&self) -> bool {
        matches!(self, Node::Tagged(t, _) if t == "!vault")
    }
}

/// Parse a file's first document; `hint` says what the file was supposed to be.
pub fn load(path: &Path, hint: &str) -> Result<Node, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ImportError::Read {
        path: path.to_path_buf(),
        source: e,
        hint: hint.to_string(),
    })?;
    parse(path, &text)
}

/// Parse text; errors name the file and line.
pub fn parse(path: &Path, text: &str) -> Result<Node, ImportError> {
    let docs = YamlOwned::load_from_str(text).map_err(|e| ImportError::Syntax {
        path: path.to_path_buf(),
        line: e.marker().line(),
        message: format!("invalid YAML: {}", e.info()),
        help: "fix the YAML at this line (a YAML linter shows the same spot)".into(),
    })?;
    Ok(docs.into_iter().next().map(convert).unwrap_or(Node::Null))
}

fn convert(y: YamlOwned) -> Node {
    match y {
        YamlOwned::Value(s) => scalar(s),
        YamlOwned::Representation(text, _, _) => Node::Str(text),
        YamlOwned::Sequence(items) => Node::Seq(items.into_iter().map(convert).collect()),
        YamlOwned::Mapping(m) => {
            let mut out: Vec<(String, Node)> = Vec::new();
            let mut merged: Vec<(String, Node)> = Vec::new();
            for (k, v) in m {
                let key = key_text(&k);
                let v = convert(v);
                if key == "<<" {
                    // Merge keys: the mapping's own keys win over merged ones.
                    let sources = match v {
                        Node::Seq(items) => items,
                        other => vec![other],
                    };
                    for s in sources {
                        if let Node::Map(entries) = s {
                            for (mk, mv) in entries {
                                if !merged.iter().any(|(k, _)| *k == mk) {
                                    merged.push((mk, mv));
                                }
                            }
                        }
                    }
                } else {
                    out.push((key, v));
                }
            }
            for (k, v) in merged {
                if !out.iter().any(|(ok, _)| *ok == k) {
                    out.push((k, v));
                }
            }
            Node::Map(out)
        }
        YamlOwned::Tagged(tag, inner) => {
            let name = format!("{}{}", tag.handle, tag.suffix);
            Node::Tagged(name, Box::new(convert(*inner)))
        }
        YamlOwned::Alias(_) | YamlOwned::BadValue => Node::Null,
    }
}

fn scalar(s: ScalarOwned) -> Node {
    match s {
        ScalarOwned::Null => Node::Null,
        ScalarOwned::Boolean(b) => Node::Bool(b),
        ScalarOwned::Integer(i) => Node::Int(i),
        ScalarOwned::FloatingPoint(f) => Node::Float(f.into_inner()),
        ScalarOwned::String(s) => Node::Str(s),
    }
}

fn key_text(k: &YamlOwned) -> String {
    match k {
        YamlOwned::Value(s) => match scalar(s.clone()) {
            Node::Null => String::new(),
            n => n.text().unwrap_or_default(),
        },
        YamlOwned::Representation(text, _, _) => text.clone(),
        YamlOwned::Tagged(_, inner) => key_text(inner),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_merges_tags_and_order() {
        let n = parse(
            Path::new("t.yml"),
            "base: &b\n  user: deploy\n  port: 22\nweb:\n  <<: *b\n  port: 2222\n  pass: !vault |\n    $ANSIBLE_VAULT;1.1;AES256\n    6162\n",
        )
        .unwrap();
        let web = n.get("web").unwrap();
        assert_eq!(web.get("port"), Some(&Node::Int(2222)));
        assert_eq!(
            web.get("user").and_then(Node::text).as_deref(),
            Some("deploy")
        );
        assert!(web.get("pass").unwrap().is_vault());
        let keys: Vec<&str> = n.entries().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["base", "web"]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(Path::new("bad.yml"), "a: 1\nb: [1, 2\n").unwrap_err();
        assert!(e.to_string().starts_with("bad.yml:"), "{e}");
    }
}
