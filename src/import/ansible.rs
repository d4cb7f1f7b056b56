//! Nodes from an Ansible inventory: INI or YAML files (or a directory of them, or the JSON that
//! `ansible-inventory --list` prints), with host ranges (`web[01:20]`), `:children`, `:vars`,
//! and the `group_vars/` and `host_vars/` beside the inventory.
//!
//! Variables are merged in Ansible's order (the `all` group, then the other groups by depth,
//! priority and name, then `group_vars/all`, `group_vars/GROUP`, the host's own variables and
//! `host_vars/HOST`), so every host gets the address, port, user, key and jump host that
//! `ansible-inventory --list` shows for it. Each group becomes a role of its hosts (`all` and
//! `ungrouped` aside). Passwords are never kept: the reader remembers only which host had one.
//! It needs no Ansible installation and runs nothing; Jinja templates are not evaluated.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::yaml::{self, Node};
use super::{ImportError, ImportedEnvironment, ImportedNode, NameMap, Servers};

/// Variables that hold a password: never copied, only named.
const PASSWORD_VARS: &[&str] = &[
    "ansible_password",
    "ansible_ssh_pass",
    "ansible_ssh_password",
    "ansible_become_pass",
    "ansible_become_password",
    "ansible_sudo_pass",
    "ansible_sudo_password",
];

/// Variables the import reads (or deliberately leaves alone without a note).
const READ_VARS: &[&str] = &[
    "ansible_host",
    "ansible_ssh_host",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_ssh_common_args",
    "ansible_ssh_extra_args",
    "ansible_group_priority",
    "ansible_python_interpreter",
];

/// A group as the inventory declares it.
#[derive(Debug, Default, Clone)]
struct Group {
    vars: Vec<(String, Node)>,
    /// Hosts listed directly in the group.
    hosts: Vec<String>,
    children: Vec<String>,
}

/// The inventory as read, before variables are merged.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Group name -> group, in the order groups were first seen.
    groups: Vec<(String, Group)>,
    /// Host name -> its own variables (host lines, YAML host entries), in first-seen order.
    hosts: Vec<(String, Vec<(String, Node)>)>,
    /// Directories whose `group_vars/` and `host_vars/` apply.
    var_dirs: Vec<PathBuf>,
}

/// What Ansible would connect with, for one host.
#[derive(Debug, Clone, PartialEq)]
pub struct AnsibleHost {
    pub name: String,
    /// Every group the host is in, directly or through `:children` (`all`/`ungrouped` aside).
    pub groups: Vec<String>,
    /// All its variables after merging, in Ansible's precedence.
    pub vars: BTreeMap<String, Node>,
}

impl Inventory {
    fn group(&mut self, name: &str) -> &mut Group {
        let at = match self.groups.iter().position(|(n, _)| n == name) {
            Some(at) => at,
            None => {
                self.groups.push((name.to_string(), Group::default()));
                self.groups.len() - 1
            }
        };
        &mut self.groups[at].1
    }

    fn add_host(&mut self, group: &str, host: &str, vars: Vec<(String, Node)>) {
        let g = self.group(group);
        if !g.hosts.iter().any(|h| h == host) {
            g.hosts.push(host.to_string());
        }
        match self.hosts.iter_mut().find(|(h, _)| h == host) {
            Some((_, own)) => merge_into(own, vars),
            None => self.hosts.push((host.to_string(), vars)),
        }
    }

    fn add_child(&mut self, parent: &str, child: &str) {
        self.group(child);
        let g = self.group(parent);
        if !g.children.iter().any(|c| c == child) {
            g.children.push(child.to_string());
        }
    }

    fn get(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|(n, _)| n == name).map(|(_, g)| g)
    }

    /// The parents of each group (`all` is the parent of every group without another).
    fn parents(&self) -> BTreeMap<String, Vec<String>> {
        let mut p: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, g) in &self.groups {
            for c in &g.children {
                p.entry(c.clone()).or_default().push(name.clone());
            }
        }
        for (name, _) in &self.groups {
            if name != "all" {
                let e = p.entry(name.clone()).or_default();
                if e.is_empty() {
                    e.push("all".into());
                }
            }
        }
        p
    }

    /// Every host with its groups and merged variables, in inventory order.
    pub(crate) fn resolve(&self) -> Result<Vec<AnsibleHost>, String> {
        let parents = self.parents();
        // Depth: the longest path from `all`.
        let mut depth: BTreeMap<String, usize> = BTreeMap::new();
        fn depth_of(
            g: &str,
            parents: &BTreeMap<String, Vec<String>>,
            memo: &mut BTreeMap<String, usize>,
            seen: &mut BTreeSet<String>,
        ) -> Result<usize, String> {
            if g == "all" {
                return Ok(0);
            }
            if let Some(d) = memo.get(g) {
                return Ok(*d);
            }
            if !seen.insert(g.to_string()) {
                return Err(format!("group {g} is its own ancestor (a :children loop)"));
            }
            let mut d = 1;
            for p in parents.get(g).map(Vec::as_slice).unwrap_or(&[]) {
                d = d.max(depth_of(p, parents, memo, seen)? + 1);
            }
            seen.remove(g);
            memo.insert(g.to_string(), d);
            Ok(d)
        }
        for (name, _) in &self.groups {
            depth_of(name, &parents, &mut depth, &mut BTreeSet::new())?;
        }
        let priority = |g: &str| -> i64 {
            self.get(g)
                .and_then(|g| {
                    g.vars
                        .iter()
                        .rev()
                        .find(|(k, _)| k == "ansible_group_priority")
                })
                .and_then(|(_, v)| v.text())
                .and_then(|v| v.parse().ok())
                .unwrap_or(1)
        };
        let file_vars = |dir: &str, name: &str| -> Vec<(String, Node)> {
            let mut out = Vec::new();
            for base in &self.var_dirs {
                merge_into(&mut out, read_vars_dir(&base.join(dir), name));
            }
            out
        };
        let mut out = Vec::new();
        for (host, own) in &self.hosts {
            // Groups: the direct ones and all their ancestors.
            let mut groups: BTreeSet<String> = BTreeSet::new();
            let mut todo: Vec<String> = self
                .groups
                .iter()
                .filter(|(_, g)| g.hosts.iter().any(|h| h == host))
                .map(|(n, _)| n.clone())
                .collect();
            while let Some(g) = todo.pop() {
                if groups.insert(g.clone()) {
                    todo.extend(parents.get(&g).cloned().unwrap_or_default());
                }
            }
            if !groups.iter().any(|g| g != "all" && g != "ungrouped") {
                groups.insert("ungrouped".into());
            }
            groups.remove("all");
            let mut sorted: Vec<String> = groups.into_iter().collect();
            sorted.sort_by_key(|g| (depth.get(g).copied().unwrap_or(1), priority(g), g.clone()));

            let mut vars: Vec<(String, Node)> = Vec::new();
            if let Some(all) = self.get("all") {
                merge_into(&mut vars, all.vars.clone());
            }
            for g in &sorted {
                if let Some(grp) = self.get(g) {
                    merge_into(&mut vars, grp.vars.clone());
                }
            }
            merge_into(&mut vars, file_vars("group_vars", "all"));
            for g in &sorted {
                merge_into(&mut vars, file_vars("group_vars", g));
            }
            merge_into(&mut vars, own.clone());
            merge_into(&mut vars, file_vars("host_vars", host));
            out.push(AnsibleHost {
                name: host.clone(),
                groups: sorted.into_iter().filter(|g| g != "ungrouped").collect(),
                vars: vars.into_iter().collect(),
            });
        }
        Ok(out)
    }
}

/// Later values replace earlier ones, key by key (Ansible's default `hash_behaviour`).
fn merge_into(into: &mut Vec<(String, Node)>, from: Vec<(String, Node)>) {
    for (k, v) in from {
        match into.iter_mut().find(|(ik, _)| *ik == k) {
            Some(slot) => slot.1 = v,
            None => into.push((k, v)),
        }
    }
}

/// `group_vars/NAME` or `host_vars/NAME`: a file (`NAME`, `.yml`, `.yaml`, `.json`) or a
/// directory of such files, merged in name order. Unreadable files are skipped here and reported
/// by [`check_vars_files`].
fn read_vars_dir(dir: &Path, name: &str) -> Vec<(String, Node)> {
    let mut out = Vec::new();
    for candidate in [
        dir.join(name),
        dir.join(format!("{name}.yml")),
        dir.join(format!("{name}.yaml")),
        dir.join(format!("{name}.json")),
    ] {
        if candidate.is_file() {
            if let Ok(Node::Map(m)) = yaml::load(&candidate, "") {
                merge_into(&mut out, m);
            }
        } else if candidate.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&candidate)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            for f in files {
                let ok = f
                    .extension()
                    .is_none_or(|e| e == "yml" || e == "yaml" || e == "json");
                if ok {
                    if let Ok(Node::Map(m)) = yaml::load(&f, "") {
                        merge_into(&mut out, m);
                    }
                }
            }
        }
    }
    out
}

/// Parse errors in `group_vars/` and `host_vars/` files, so a broken file is not silently
/// ignored.
fn check_vars_files(dirs: &[PathBuf]) -> Result<(), ImportError> {
    for base in dirs {
        for sub in ["group_vars", "host_vars"] {
            let Ok(rd) = std::fs::read_dir(base.join(sub)) else {
                continue;
            };
            let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            paths.sort();
            for p in paths {
                let files: Vec<PathBuf> = if p.is_dir() {
                    std::fs::read_dir(&p)
                        .map(|rd| rd.flatten().map(|e| e.path()).collect())
                        .unwrap_or_default()
                } else {
                    vec![p]
                };
                for f in files.into_iter().filter(|f| f.is_file()) {
                    if f.extension()
                        .is_some_and(|e| e != "yml" && e != "yaml" && e != "json")
                    {
                        continue;
                    }
                    match yaml::load(&f, "")? {
                        Node::Map(_) | Node::Null => {}
                        _ => {
                            return Err(ImportError::Unusable {
                                path: f,
                                message: "a vars file must hold a mapping of variables".into(),
                                help: "write it as `name: value` lines".into(),
                            })
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Read an inventory file or directory.
pub fn read(path: &Path) -> Result<Inventory, ImportError> {
    let mut inv = Inventory::default();
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| ImportError::Read {
                path: path.to_path_buf(),
                source: e,
                hint: "give the inventory file or directory with --from-ansible".into(),
            })?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && !ignored(p))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(ImportError::Unusable {
                path: path.to_path_buf(),
                message: "the directory holds no inventory file".into(),
                help: "give the inventory file itself (hosts.ini, hosts.yml)".into(),
            });
        }
        for f in files {
            read_file(&f, &mut inv)?;
        }
        inv.var_dirs.push(path.to_path_buf());
    } else {
        read_file(path, &mut inv)?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        inv.var_dirs
            .push(dir.unwrap_or(Path::new(".")).to_path_buf());
    }
    check_vars_files(&inv.var_dirs)?;
    Ok(inv)
}

/// Files Ansible skips in an inventory directory.
fn ignored(p: &Path) -> bool {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.starts_with('.')
        || [
            ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg",
            ".retry",
        ]
        .iter()
        .any(|ext| name.ends_with(ext))
}

fn read_file(path: &Path, inv: &mut Inventory) -> Result<(), ImportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ImportError::Read {
        path: path.to_path_buf(),
        source: e,
        hint: "give the inventory file or directory with --from-ansible".into(),
    })?;
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let yamlish = matches!(ext.as_str(), "yml" | "yaml" | "json");
    if yamlish {
        let doc = yaml::parse(path, &text)?;
        return read_yaml(path, &doc, inv);
    }
    // Without a telling extension, Ansible tries YAML first and then INI.
    if ext.is_empty() {
        if let Ok(doc @ Node::Map(_)) = yaml::parse(path, &text) {
            if doc
                .entries()
                .iter()
                .all(|(_, v)| v.is_map() || *v == Node::Null)
            {
                return read_yaml(path, &doc, inv);
            }
        }
    }
    read_ini(path, &text, inv)
}

fn bad(path: &Path, line: usize, message: String, help: &str) -> ImportError {
    ImportError::Syntax {
        path: path.to_path_buf(),
        line,
        message,
        help: help.to_string(),
    }
}

/// The INI format: `[group]` host lines, `[group:vars]` assignments, `[group:children]` names.
fn read_ini(path: &Path, text: &str, inv: &mut Inventory) -> Result<(), ImportError> {
    #[derive(PartialEq)]
    enum State {
        Hosts,
        Vars,
        Children,
    }
    let mut group = "ungrouped".to_string();
    let mut state = State::Hosts;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(end) = rest.find(']') else {
                return Err(bad(
                    path,
                    line_no,
                    format!("section header without `]`: {line}"),
                    "write it as [group], [group:vars] or [group:children]",
                ));
            };
            let after = rest[end + 1..].trim();
            if !(after.is_empty() || after.starts_with('#') || after.starts_with(';')) {
                return Err(bad(
                    path,
                    line_no,
                    format!("text after the section header: {line}"),
                    "put only [group] on this line",
                ));
            }
            let head = &rest[..end];
            let (name, kind) = match head.split_once(':') {
                Some((n, k)) => (n, k),
                None => (head, ""),
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(bad(
                    path,
                    line_no,
                    format!("{name:?} is not a group name"),
                    "group names are letters, digits and _",
                ));
            }
            state = match kind {
                "" | "hosts" => State::Hosts,
                "vars" => State::Vars,
                "children" => State::Children,
                other => {
                    return Err(bad(
                        path,
                        line_no,
                        format!("unknown section kind :{other}"),
                        "use [group], [group:vars] or [group:children]",
                    ))
                }
            };
            group = name.to_string();
            inv.group(&group);
            continue;
        }
        match state {
            State::Hosts => {
                let tokens = shell_words(line, true).map_err(|e| {
                    bad(
                        path,
                        line_no,
                        format!("cannot read this host line: {e}"),
                        "close the quote",
                    )
                })?;
                let Some((pattern, rest)) = tokens.split_first() else {
                    continue;
                };
                let (pattern, port) = split_port(pattern);
                let hosts = expand_range(&pattern).map_err(|e| {
                    bad(
                        path,
                        line_no,
                        e,
                        "a range is [01:20] (same width), [a:f] or [1:9:2]",
                    )
                })?;
                let mut vars = Vec::new();
                for t in rest {
                    let Some((k, v)) = t.split_once('=') else {
                        return Err(bad(
                            path,
                            line_no,
                            format!("expected key=value after the host, got {t:?}"),
                            "host variables are written key=value",
                        ));
                    };
                    vars.push((k.to_string(), python_value(v)));
                }
                if let Some(p) = port {
                    vars.insert(0, ("ansible_port".to_string(), Node::Int(p as i64)));
                }
                for h in hosts {
                    inv.add_host(&group, &h, vars.clone());
                }
            }
            State::Vars => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(bad(
                        path,
                        line_no,
                        format!("expected key=value in [{group}:vars], got {line:?}"),
                        "write each variable as key=value",
                    ));
                };
                let (k, v) = (k.trim().to_string(), python_value(v.trim()));
                merge_into(&mut inv.group(&group).vars, vec![(k, v)]);
            }
            State::Children => {
                let child = line.split_whitespace().next().unwrap_or(line);
                inv.add_child(&group, child);
            }
        }
    }
    Ok(())
}

/// The YAML format (`all: {hosts, vars, children}`), or the JSON `ansible-inventory --list`
/// prints (with `_meta.hostvars`).
fn read_yaml(path: &Path, doc: &Node, inv: &mut Inventory) -> Result<(), ImportError> {
    let Node::Map(top) = doc else {
        return Err(ImportError::Unusable {
            path: path.to_path_buf(),
            message: "the YAML inventory is not a mapping of groups".into(),
            help: "start it with `all:` and list hosts under `hosts:`".into(),
        });
    };
    if let Some(meta) = doc.get("_meta") {
        return read_list_json(doc, meta, inv);
    }
    for (name, g) in top {
        read_yaml_group(path, name, g, inv, 0)?;
    }
    Ok(())
}

fn read_yaml_group(
    path: &Path,
    name: &str,
    g: &Node,
    inv: &mut Inventory,
    depth: usize,
) -> Result<(), ImportError> {
    if depth > 64 {
        return Err(ImportError::Unusable {
            path: path.to_path_buf(),
            message: format!("groups nest more than 64 deep at {name}"),
            help: "check the children: for a loop".into(),
        });
    }
    inv.group(name);
    match g {
        Node::Null => return Ok(()),
        Node::Map(_) => {}
        _ => {
            return Err(ImportError::Unusable {
                path: path.to_path_buf(),
                message: format!("group {name} is not a mapping"),
                help: "a group has `hosts:`, `vars:` and `children:`".into(),
            })
        }
    }
    if let Some(hosts) = g.get("hosts") {
        for (pattern, vars) in hosts.entries() {
            let (pattern, port) = split_port(pattern);
            let list = expand_range(&pattern).map_err(|e| ImportError::Unusable {
                path: path.to_path_buf(),
                message: format!("host {pattern}: {e}"),
                help: "a range is [01:20] (same width), [a:f] or [1:9:2]".into(),
            })?;
            let mut own: Vec<(String, Node)> = vars.entries().to_vec();
            if let Some(p) = port {
                own.insert(0, ("ansible_port".into(), Node::Int(p as i64)));
            }
            for h in list {
                inv.add_host(name, &h, own.clone());
            }
        }
    }
    if let Some(vars) = g.get("vars") {
        merge_into(&mut inv.group(name).vars, vars.entries().to_vec());
    }
    if let Some(children) = g.get("children") {
        for (child, cg) in children.entries() {
            inv.add_child(name, child);
            read_yaml_group(path, child, cg, inv, depth + 1)?;
        }
    }
    Ok(())
}

fn read_list_json(doc: &Node, meta: &Node, inv: &mut Inventory) -> Result<(), ImportError> {
    for (name, g) in doc.entries() {
        if name == "_meta" {
            continue;
        }
        inv.group(name);
        for h in g.get("hosts").map(Node::strings).unwrap_or_default() {
            inv.add_host(name, &h, Vec::new());
        }
        for c in g.get("children").map(Node::strings).unwrap_or_default() {
            inv.add_child(name, &c);
        }
        if let Some(v) = g.get("vars") {
            merge_into(&mut inv.group(name).vars, v.entries().to_vec());
        }
    }
    if let Some(hv) = meta.get("hostvars") {
        for (host, vars) in hv.entries() {
            match inv.hosts.iter_mut().find(|(h, _)| h == host) {
                Some((_, own)) => merge_into(own, vars.entries().to_vec()),
                None => inv.hosts.push((host.clone(), vars.entries().to_vec())),
            }
        }
    }
    Ok(())
}

/// `host:2222` -> (`host`, 2222); IPv6 addresses and patterns without a port stay whole.
fn split_port(pattern: &str) -> (String, Option<u16>) {
    if let Some(rest) = pattern.strip_prefix('[') {
        // [::1]:22 or [2001:db8::1]
        if let Some((addr, after)) = rest.split_once(']') {
            if addr.contains(':') && !addr.chars().all(|c| c.is_ascii_digit() || c == ':') {
                let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
                return (addr.to_string(), port);
            }
        }
    }
    // The last ':' outside brackets, followed by digits only, and no other ':' outside brackets.
    let mut depth = 0;
    let mut colons = Vec::new();
    for (i, c) in pattern.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    if let [at] = colons[..] {
        let port = &pattern[at + 1..];
        if let Ok(p) = port.parse::<u16>() {
            return (pattern[..at].to_string(), Some(p));
        }
    }
    (pattern.to_string(), None)
}

/// Expand Ansible host ranges: `web[01:20].example.com`, `db-[a:c]`, `node[1:9:2]`; several
/// ranges in one pattern multiply.
pub(crate) fn expand_range(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        return Ok(vec![pattern.to_string()]);
    };
    let Some(close_rel) = pattern[open..].find(']') else {
        return Ok(vec![pattern.to_string()]);
    };
    let close = open + close_rel;
    let inner = &pattern[open + 1..close];
    if !inner.contains(':') {
        // Not a range (an IPv6 address, say): keep as written.
        return Ok(vec![pattern.to_string()]);
    }
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let parts: Vec<&str> = inner.split(':').collect();
    let (beg, end, step) = match parts[..] {
        [b, e] => (b, e, "1"),
        [b, e, s] => (b, e, s),
        _ => return Err(format!("range [{inner}] has too many parts")),
    };
    let step: usize = step
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("range [{inner}]: the step must be a positive number"))?;
    let mut items = Vec::new();
    if beg.chars().all(|c| c.is_ascii_digit()) && !beg.is_empty() {
        let width = if beg.len() > 1 && beg.starts_with('0') {
            if beg.len() != end.len() {
                return Err(format!(
                    "range [{inner}]: a zero-padded range needs begin and end of the same width"
                ));
            }
            beg.len()
        } else {
            0
        };
        let b: u64 = beg
            .parse()
            .map_err(|_| format!("range [{inner}] is not numeric"))?;
        let e: u64 = end
            .parse()
            .map_err(|_| format!("range [{inner}]: {end} is not a number"))?;
        if b > e {
            return Err(format!("range [{inner}] ends before it begins"));
        }
        if (e - b) / step as u64 > 100_000 {
            return Err(format!("range [{inner}] is too large"));
        }
        let mut i = b;
        while i <= e {
            items.push(format!("{i:0width$}"));
            i += step as u64;
        }
    } else {
        let (Some(b), Some(e)) = (single_letter(beg), single_letter(end.trim())) else {
            return Err(format!(
                "range [{inner}] is neither numeric nor single letters"
            ));
        };
        if b > e {
            return Err(format!("range [{inner}] ends before it begins"));
        }
        let mut c = b as u32;
        while c <= e as u32 {
            items.push(char::from_u32(c).map(String::from).unwrap_or_default());
            c += step as u32;
        }
    }
    let mut out = Vec::new();
    for item in items {
        for rest in expand_range(tail)? {
            out.push(format!("{head}{item}{rest}"));
        }
    }
    Ok(out)
}

fn single_letter(s: &str) -> Option<char> {
    let mut it = s.chars();
    match (it.next(), it.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => Some(c),
        _ => None,
    }
}

/// An INI value as Ansible reads it (Python's `literal_eval`, else the text): integers,
/// floats, `True`/`False`/`None` and quoted strings become values; anything else stays text.
fn python_value(v: &str) -> Node {
    let t = v.trim();
    match t {
        "True" => return Node::Bool(true),
        "False" => return Node::Bool(false),
        "None" => return Node::Null,
        _ => {}
    }
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_')
        && (digits.len() == 1 || !digits.starts_with('0'))
        && !digits.starts_with('_')
        && !digits.ends_with('_')
    {
        if let Ok(i) = t.replace('_', "").parse::<i64>() {
            return Node::Int(i);
        }
    }
    if t.len() >= 2 {
        let q = t.as_bytes()[0];
        if (q == b'\'' || q == b'"') && t.as_bytes()[t.len() - 1] == q {
            if let Some(s) = python_string(&t[1..t.len() - 1], q as char) {
                return Node::Str(s);
            }
        }
    }
    Node::Str(v.to_string())
}

/// The body of a Python string literal, escapes resolved; None when it is not one literal.
fn python_string(body: &str, quote: char) -> Option<String> {
    let mut out = String::new();
    let mut it = body.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                '\\' => out.push('\\'),
                '\'' => out.push('\''),
                '"' => out.push('"'),
                other => {
                    out.push('\\');
                    out.push(other);
                }
            },
            c if c == quote => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// Split a line into words as a POSIX shell would (Python's `shlex.split`): quotes group,
/// backslashes escape, and with `comments` a word starting with `#` ends the line.
pub(crate) fn shell_words(line: &str, comments: bool) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut it = line.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '#' if comments && !in_word => break,
            '\'' => {
                in_word = true;
                loop {
                    match it.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err("a single quote is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match it.next() {
                        Some('"') => break,
                        Some('\\') => match it.next() {
                            Some(ch @ ('\\' | '"' | '$' | '`')) => cur.push(ch),
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err("a double quote is not closed".into()),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err("a double quote is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(ch) = it.next() {
                    cur.push(ch);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// The jump hosts in ssh arguments (`-J a,b`, `-o ProxyJump=a`, `-o ProxyCommand="ssh -W %h:%p
/// user@bastion"`), as `user@host:port` hops; and the names (never the values) of whatever else
/// the arguments said.
pub(crate) fn jump_from_ssh_args(args: &str) -> Result<(Vec<String>, Vec<String>), String> {
    let words = shell_words(args, false)?;
    let mut jumps = Vec::new();
    let mut other = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = &words[i];
        let (opt, value) = if w == "-J" || w == "-o" {
            i += 1;
            (w.as_str(), words.get(i).cloned().unwrap_or_default())
        } else if let Some(v) = w.strip_prefix("-J") {
            ("-J", v.to_string())
        } else if let Some(v) = w.strip_prefix("-o") {
            ("-o", v.to_string())
        } else {
            // Flags are named; values are not repeated (one could be a password for sshpass).
            other.push(if w.starts_with('-') {
                w.clone()
            } else {
                "…".into()
            });
            i += 1;
            continue;
        };
        i += 1;
        if opt == "-J" {
            jumps.extend(value.split(',').map(|h| hop_of(h.trim())));
            continue;
        }
        let (key, val) = match value.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => match value.trim().split_once(char::is_whitespace) {
                Some((k, v)) => (k.to_string(), v.trim().to_string()),
                None => (value.clone(), String::new()),
            },
        };
        match key.to_ascii_lowercase().as_str() {
            "proxyjump" if !val.eq_ignore_ascii_case("none") => {
                jumps.extend(val.split(',').map(|h| hop_of(h.trim())))
            }
            "proxycommand" => match proxy_command_hop(&val) {
                Some(mut hops) => jumps.append(&mut hops),
                None => other.push("-o ProxyCommand (not an `ssh -W` bastion)".into()),
            },
            _ => other.push(format!("-o {key}")),
        }
    }
    Ok((jumps, other))
}

/// `ssh://user@host:port`, `user@host:port` or `host` as deckhand's `user@host:port` form.
fn hop_of(h: &str) -> String {
    h.strip_prefix("ssh://").unwrap_or(h).to_string()
}

/// The bastion of `ssh [-p P] [-l U] [-i KEY] [-q] -W %h:%p [-J ...] [user@]host` (ProxyJump's
/// older spelling); None for any other proxy command.
fn proxy_command_hop(cmd: &str) -> Option<Vec<String>> {
    let words = shell_words(cmd, false).ok()?;
    let prog = words.first()?;
    if !(prog == "ssh" || prog.ends_with("/ssh")) || !words.iter().any(|w| w == "-W") {
        return None;
    }
    let mut port = None;
    let mut user = None;
    let mut dest = None;
    let mut before = Vec::new();
    let mut i = 1;
    while i < words.len() {
        let w = &words[i];
        match w.as_str() {
            "-p" => {
                port = words.get(i + 1).cloned();
                i += 2;
            }
            "-l" => {
                user = words.get(i + 1).cloned();
                i += 2;
            }
            "-J" => {
                before.extend(words.get(i + 1)?.split(',').map(|h| hop_of(h.trim())));
                i += 2;
            }
            "-W" | "-i" | "-o" | "-F" | "-c" | "-m" | "-b" => i += 2,
            s if s.starts_with('-') => i += 1,
            s => {
                if dest.is_none() {
                    dest = Some(s.to_string());
                }
                i += 1;
            }
        }
    }
    let dest = dest?;
    let mut hop = match (&user, dest.contains('@')) {
        (Some(u), false) => format!("{u}@{dest}"),
        _ => dest,
    };
    if let Some(p) = port {
        hop = format!("{hop}:{p}");
    }
    before.push(hop);
    Some(before)
}

/// An environment's name, its hosts, and where it came from.
type EnvChoice = (String, Vec<String>, String);

/// Which hosts go into which environment, and why (for the file's comment).
fn choose_environments(path: &Path, hosts: &[AnsibleHost]) -> (Vec<EnvChoice>, Vec<String>) {
    let mut env_groups: Vec<String> = Vec::new();
    for h in hosts {
        for g in &h.groups {
            if super::is_environment_word(g) && !env_groups.contains(g) {
                env_groups.push(g.clone());
            }
        }
    }
    if !env_groups.is_empty() {
        let envs: Vec<EnvChoice> = env_groups
            .iter()
            .map(|g| {
                let members = hosts
                    .iter()
                    .filter(|h| h.groups.contains(g))
                    .map(|h| h.name.clone())
                    .collect();
                (g.clone(), members, format!("Ansible group `{g}`"))
            })
            .collect();
        let outside: Vec<String> = hosts
            .iter()
            .filter(|h| !h.groups.iter().any(|g| env_groups.contains(g)))
            .map(|h| h.name.clone())
            .collect();
        let mut note = vec![
            format!(
                "Environments: the Ansible groups named like one ({}), each with all of its hosts",
                env_groups.join(", ")
            ),
            "(children included). To change it, edit the `nodes` lists below, or add and remove"
                .into(),
            "[environments.NAME] tables; roles are every group a host is in.".into(),
        ];
        if !outside.is_empty() {
            note.push(format!(
                "Hosts in no environment group (in no environment yet): {}",
                outside.join(", ")
            ));
        }
        return (envs, note);
    }
    // An inventory per environment: inventories/production/hosts.
    let dir_name = if path.is_dir() {
        path.file_name()
    } else {
        path.parent().and_then(|p| p.file_name())
    }
    .map(|n| n.to_string_lossy().into_owned())
    .filter(|n| super::is_environment_word(n));
    let (name, why) = match dir_name {
        Some(d) => (d.clone(), format!("the inventory's directory `{d}`")),
        None => ("production".to_string(), "every host".to_string()),
    };
    let note = vec![
        format!(
            "Environments: no group is named like an environment (production, staging, dev, ...), so {} is",
            if why == "every host" { "every host".to_string() } else { format!("{why} names it; every host") }
        ),
        format!("in `{name}`. Split it by editing the `nodes` lists below, or name groups after your"),
        "environments in the Ansible inventory and import again. Roles are every group a host is in.".into(),
    ];
    let all = hosts.iter().map(|h| h.name.clone()).collect();
    (vec![(name, all, why)], note)
}

/// Read the inventory at `path` and turn it into nodes, roles and environments.
pub fn import(path: &Path) -> Result<Servers, ImportError> {
    let inv = read(path)?;
    let hosts = inv.resolve().map_err(|e| ImportError::Unusable {
        path: path.to_path_buf(),
        message: e,
        help: "a group may not contain itself through :children".into(),
    })?;
    if hosts.is_empty() {
        return Err(ImportError::Unusable {
            path: path.to_path_buf(),
            message: "the inventory lists no hosts".into(),
            help: "`ansible-inventory -i FILE --list` shows what Ansible reads from it".into(),
        });
    }
    to_servers(path, &hosts)
}

/// Hosts named in a sentence: all of them up to six, else the first five and how many more.
fn host_list(hosts: &[String]) -> String {
    let word = if hosts.len() == 1 { "host" } else { "hosts" };
    if hosts.len() <= 6 {
        format!("{word} {}", hosts.join(", "))
    } else {
        format!(
            "{word} {} and {} more",
            hosts[..5].join(", "),
            hosts.len() - 5
        )
    }
}

/// A host's value for the first of `keys` that it has, looking from the last: of two spellings
/// of one connection setting, Ansible takes the one it lists last.
fn pick(h: &AnsibleHost, keys: &[&'static str]) -> Option<(&'static str, String)> {
    keys.iter()
        .rev()
        .find_map(|k| h.vars.get(*k).and_then(Node::text).map(|v| (*k, v)))
}

/// Build the model from resolved hosts (also what a test compares with ansible-inventory).
pub(crate) fn to_servers(path: &Path, hosts: &[AnsibleHost]) -> Result<Servers, ImportError> {
    let mut servers = Servers {
        source: format!("the Ansible inventory {}", path.display()),
        ..Servers::default()
    };
    let mut names = NameMap::new("host");
    let mut roles = NameMap::new("group");
    let mut node_of: BTreeMap<String, String> = BTreeMap::new();
    let mut other_vars: BTreeSet<String> = BTreeSet::new();
    // What could not be carried over, and the hosts it concerns.
    let mut left_out: Vec<(String, Vec<String>)> = Vec::new();
    for h in hosts {
        let name = names.name(&h.name);
        node_of.insert(h.name.clone(), name.clone());
        // Ansible's connection settings: of two spellings, the last one listed wins.
        let pick = |keys: &[&'static str]| pick(h, keys);
        let templated = |v: &str| v.contains("{{") || v.contains("{%");
        let mut lefts: Vec<String> = Vec::new();
        let mut left = |what: String| lefts.push(what);

        let host = match pick(&["ansible_host", "ansible_ssh_host"]) {
            Some((k, v)) if templated(&v) => {
                left(format!(
                    "{k} is a template ({v}); the host name is used, set host by hand"
                ));
                h.name.clone()
            }
            Some((_, v)) => v,
            None => h.name.clone(),
        };
        let port = match pick(&["ansible_port", "ansible_ssh_port"]) {
            Some((k, v)) => match v.parse::<u16>() {
                Ok(p) => Some(p),
                Err(_) => {
                    left(format!("{k} {v:?} is not a port number"));
                    None
                }
            },
            None => None,
        };
        let user = match pick(&["ansible_user", "ansible_ssh_user"]) {
            Some((k, v)) if templated(&v) => {
                left(format!("{k} is a template ({v})"));
                None
            }
            other => other.map(|(_, v)| v),
        };
        let identity_file =
            match pick(&["ansible_private_key_file", "ansible_ssh_private_key_file"]) {
                Some((k, v)) if templated(&v) => {
                    left(format!("{k} is a template ({v})"));
                    None
                }
                other => other.map(|(_, v)| v),
            };
        let mut jump = Vec::new();
        for k in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
            if let Some(args) = h.vars.get(k).and_then(Node::text) {
                match jump_from_ssh_args(&args) {
                    Ok((mut j, rest)) => {
                        jump.append(&mut j);
                        if !rest.is_empty() {
                            left(format!(
                                "{k} {} (put ssh options into your ssh config; deckhand uses it)",
                                rest.join(" ")
                            ));
                        }
                    }
                    Err(e) => left(format!("{k} cannot be read ({e})")),
                }
            }
        }
        let used: Vec<String> = PASSWORD_VARS
            .iter()
            .filter(|k| h.vars.contains_key(**k))
            .map(|k| k.to_string())
            .collect();
        if !used.is_empty() {
            servers.passwords.push((h.name.clone(), used));
        }
        if let Some(c) = h.vars.get("ansible_connection").and_then(Node::text) {
            if !matches!(c.as_str(), "ssh" | "smart" | "paramiko" | "paramiko_ssh") {
                left(format!("ansible_connection={c} (deckhand reaches nodes over SSH; a node on this machine takes transport = \"local\")"));
            }
        }
        if let Some(b) = h.vars.get("ansible_become_user").and_then(Node::text) {
            left(format!("ansible_become_user={b} (steps run as the login user; use sudo in the phase commands)"));
        }
        for (k, v) in &h.vars {
            if PASSWORD_VARS.contains(&k.as_str()) || READ_VARS.contains(&k.as_str()) {
                continue;
            }
            if v.is_vault() {
                left(format!("{k} is vault-encrypted; it was not copied"));
            } else if !k.starts_with("ansible_") {
                other_vars.insert(k.clone());
            }
        }
        for what in lefts {
            match left_out.iter_mut().find(|(w, _)| *w == what) {
                Some((_, hosts)) => hosts.push(h.name.clone()),
                None => left_out.push((what, vec![h.name.clone()])),
            }
        }
        servers.nodes.push(ImportedNode {
            name,
            host,
            port,
            user,
            identity_file,
            jump,
            roles: h.groups.iter().map(|g| roles.name(g)).collect(),
            deploy_path: None,
            note: None,
        });
    }
    for n in &mut servers.nodes {
        if n.roles.is_empty() {
            n.roles.push("ungrouped".into());
        }
    }
    for (what, hosts) in left_out {
        servers
            .left_out
            .push(format!("{what}: {}", host_list(&hosts)));
    }
    if !other_vars.is_empty() {
        let list: Vec<String> = other_vars.into_iter().collect();
        servers.left_out.push(format!(
            "{} for plays ({}): deckhand's steps do not see them; put what the app needs into shared .env",
            crate::util::count(list.len(), "variable", "variables"),
            list.join(", ")
        ));
    }
    let (envs, note) = choose_environments(path, hosts);
    let mut env_names = NameMap::new("environment");
    for (env, members, from) in envs {
        servers.environments.push(ImportedEnvironment {
            name: env_names.name(&env),
            nodes: members
                .iter()
                .filter_map(|m| node_of.get(m).cloned())
                .collect(),
            from,
        });
    }
    servers.environment_note = note;
    servers.renamed = names.renamed;
    servers.renamed.extend(roles.renamed);
    servers.renamed.extend(env_names.renamed);
    Ok(servers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_expand_like_ansible() {
        assert_eq!(
            expand_range("web[01:03].x").unwrap(),
            ["web01.x", "web02.x", "web03.x"]
        );
        assert_eq!(expand_range("db-[a:c]").unwrap(), ["db-a", "db-b", "db-c"]);
        assert_eq!(expand_range("n[1:9:4]").unwrap(), ["n1", "n5", "n9"]);
        assert_eq!(
            expand_range("r[1:2]-[a:b]").unwrap(),
            ["r1-a", "r1-b", "r2-a", "r2-b"]
        );
        assert_eq!(expand_range("n[8:10]").unwrap(), ["n8", "n9", "n10"]);
        assert!(expand_range("n[01:100]").is_err());
        assert!(expand_range("n[5:1]").is_err());
    }

    #[test]
    fn ports_split_from_patterns() {
        assert_eq!(split_port("web1:2222"), ("web1".into(), Some(2222)));
        assert_eq!(split_port("web[01:20]:22"), ("web[01:20]".into(), Some(22)));
        assert_eq!(split_port("web[01:20]"), ("web[01:20]".into(), None));
        assert_eq!(
            split_port("[2001:db8::1]:22"),
            ("2001:db8::1".into(), Some(22))
        );
    }

    #[test]
    fn ini_values_read_like_python_literals() {
        assert_eq!(python_value("2222"), Node::Int(2222));
        assert_eq!(python_value("0022"), Node::Str("0022".into()));
        assert_eq!(python_value("'a b'"), Node::Str("a b".into()));
        assert_eq!(python_value("True"), Node::Bool(true));
        assert_eq!(
            python_value("-o ProxyJump=x"),
            Node::Str("-o ProxyJump=x".into())
        );
    }

    #[test]
    fn shell_words_and_jump_hosts() {
        assert_eq!(
            shell_words(r#"web1 a="b c" d='e' # note"#, true).unwrap(),
            ["web1", "a=b c", "d=e"]
        );
        let (j, rest) =
            jump_from_ssh_args("-o ProxyJump=ops@bastion:2222 -o StrictHostKeyChecking=no")
                .unwrap();
        assert_eq!(j, ["ops@bastion:2222"]);
        assert_eq!(rest, ["-o StrictHostKeyChecking"]);
        let (j, rest) =
            jump_from_ssh_args(r#"-C -o ProxyCommand="sshpass -p s3cret ssh -q gw" x"#).unwrap();
        assert!(j.is_empty());
        assert_eq!(
            rest,
            ["-C", "-o ProxyCommand (not an `ssh -W` bastion)", "…"]
        );
        let (j, _) = jump_from_ssh_args(
            r#"-o ProxyCommand="ssh -W %h:%p -q -p 2200 ops@bastion.example.com""#,
        )
        .unwrap();
        assert_eq!(j, ["ops@bastion.example.com:2200"]);
        let (j, _) = jump_from_ssh_args("-J a@h1:22,b@h2").unwrap();
        assert_eq!(j, ["a@h1:22", "b@h2"]);
    }

    #[test]
    fn precedence_children_and_ungrouped() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("group_vars")).unwrap();
        std::fs::create_dir_all(d.path().join("host_vars")).unwrap();
        std::fs::write(
            d.path().join("hosts"),
            "lonely\n[web]\nweb1 ansible_user=own\nweb2\n[web:vars]\nansible_user=fromweb\nansible_port=2200\n\
             [all:vars]\nansible_user=fromall\nansible_port=22\n[prod:children]\nweb\n",
        )
        .unwrap();
        std::fs::write(d.path().join("group_vars/all.yml"), "ansible_port: 2300\n").unwrap();
        std::fs::write(
            d.path().join("host_vars/web2.yml"),
            "ansible_user: hostfile\n",
        )
        .unwrap();
        let inv = read(&d.path().join("hosts")).unwrap();
        let hosts = inv.resolve().unwrap();
        let get = |h: &str, k: &str| {
            hosts
                .iter()
                .find(|x| x.name == h)
                .and_then(|x| x.vars.get(k))
                .and_then(Node::text)
        };
        assert_eq!(get("web1", "ansible_user").as_deref(), Some("own"));
        assert_eq!(get("web2", "ansible_user").as_deref(), Some("hostfile"));
        assert_eq!(get("lonely", "ansible_user").as_deref(), Some("fromall"));
        // group_vars/all comes after every group's inventory vars.
        assert_eq!(get("web1", "ansible_port").as_deref(), Some("2300"));
        let web1 = hosts.iter().find(|x| x.name == "web1").unwrap();
        assert_eq!(web1.groups, ["prod", "web"]);
        let lonely = hosts.iter().find(|x| x.name == "lonely").unwrap();
        assert!(lonely.groups.is_empty());
    }
}
