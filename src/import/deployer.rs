//! Hosts from a Deployer YAML recipe (`deploy.yaml`): each entry of `hosts:` becomes a node
//! (`hostname`, `remote_user`, `port`, `identity_file`, `deploy_path`), its `labels` become roles
//! and its `stage` (or a `stage`/`env` label) its environment; the recipe's `shared_files`,
//! `shared_dirs`, `keep_releases` and `application` carry over to `[app]`.
//!
//! Deployer's `{{name}}` placeholders are filled from the recipe's own settings; PHP recipes
//! (`deploy.php`) are not read, and tasks are not translated: the template's phases take their
//! place, and the import says so.

use std::path::Path;

use super::yaml::{self, Node};
use super::{AppHints, ImportError, ImportedEnvironment, ImportedNode, NameMap, Servers};

/// Read the recipe at `path`.
pub fn import(path: &Path) -> Result<Servers, ImportError> {
    if path.extension().is_some_and(|e| e == "php") {
        return Err(ImportError::Unusable {
            path: path.to_path_buf(),
            message: "this is a PHP recipe; only Deployer's YAML recipes can be read".into(),
            help:
                "point --from-deployer at deploy.yaml, or describe the hosts with --from-ssh-config"
                    .into(),
        });
    }
    let doc = yaml::load(
        path,
        "give the Deployer recipe with --from-deployer deploy.yaml",
    )?;
    if !doc.is_map() {
        return Err(not_a_recipe(path, "the file is not a YAML mapping"));
    }
    let config = doc.get("config").cloned().unwrap_or(Node::Map(Vec::new()));
    let hosts = match doc.get("hosts") {
        Some(h @ Node::Map(_)) if !h.entries().is_empty() => h.clone(),
        _ => return Err(not_a_recipe(path, "it has no `hosts:` entries")),
    };
    let laravel = doc
        .get("import")
        .map(|i| i.strings())
        .unwrap_or_default()
        .iter()
        .any(|r| r.contains("laravel"));
    let fill = |text: &str, host: &Node| expand(text, host, &config);

    let mut servers = Servers {
        source: format!("the Deployer recipe {}", path.display()),
        ..Servers::default()
    };
    let application = config.get("application").and_then(Node::text);
    servers.app = AppHints {
        name: application
            .as_deref()
            .map(super::plain_name)
            .filter(|n| crate::util::valid_name(n)),
        deploy_path: None,
        keep_releases: config
            .get("keep_releases")
            .and_then(Node::text)
            .and_then(|k| k.parse().ok())
            .filter(|k: &u32| *k > 0),
        shared_files: config.get("shared_files").map(Node::strings),
        shared_dirs: config.get("shared_dirs").map(Node::strings),
        laravel,
    };
    if laravel {
        // recipe/laravel.php's defaults, unless the recipe names its own.
        servers
            .app
            .shared_files
            .get_or_insert_with(|| vec![".env".into()]);
        servers
            .app
            .shared_dirs
            .get_or_insert_with(|| vec!["storage".into()]);
    }
    if let Some(repo) = config.get("repository").and_then(Node::text) {
        servers.left_out.push(format!(
            "repository {}: put it into the phase that fetches the code (pull_latest_code)",
            without_password(&repo)
        ));
    }
    if doc.get("tasks").is_some() || doc.get("after").is_some() || doc.get("before").is_some() {
        servers.left_out.push(
            "the recipe's tasks and hooks: deckhand runs the phases below instead; move custom steps into [[phases]]".into(),
        );
    }

    let mut names = NameMap::new("host");
    let mut role_names = NameMap::new("label");
    let mut env_names = NameMap::new("stage");
    let mut envs: Vec<ImportedEnvironment> = Vec::new();
    let mut deploy_paths: Vec<Option<String>> = Vec::new();
    for (alias, host) in hosts.entries() {
        let name = names.name(alias);
        let get = |k: &str| host.get(k).and_then(Node::text).map(|v| fill(&v, host));
        let address = get("hostname")
            .or_else(|| get("host"))
            .unwrap_or_else(|| alias.clone());
        let user = get("remote_user").or_else(|| get("user"));
        let port = match get("port") {
            Some(p) => match p.parse::<u16>() {
                Ok(p) => Some(p),
                Err(_) => {
                    servers
                        .left_out
                        .push(format!("host {alias}: port {p:?} is not a port number"));
                    None
                }
            },
            None => None,
        };
        let mut note = None;
        let deploy_path = get("deploy_path")
            .or_else(|| config.get("deploy_path").and_then(Node::text).map(|v| fill(&v, host)))
            .and_then(|p| {
                if p.starts_with('/') {
                    Some(p)
                } else if let (Some(rest), Some(u)) = (p.strip_prefix("~/"), user.as_deref()) {
                    let abs = format!("/home/{u}/{rest}");
                    note = Some(format!(
                        "Deployer host {alias}: deploy_path {p} taken as {abs} (deckhand needs an absolute path; check it)"
                    ));
                    Some(abs)
                } else {
                    servers.left_out.push(format!(
                        "host {alias}: deploy_path {p:?} is not absolute; set deploy_path for it"
                    ));
                    None
                }
            });
        deploy_paths.push(deploy_path.clone());
        let mut roles = Vec::new();
        let mut stage = get("stage");
        for (k, v) in host.get("labels").map(Node::entries).unwrap_or(&[]) {
            let values = v.strings();
            if matches!(k.as_str(), "stage" | "env" | "environment") {
                if stage.is_none() {
                    stage = values.first().cloned();
                }
                continue;
            }
            for value in values {
                let role = if matches!(k.as_str(), "role" | "roles" | "type") {
                    value
                } else {
                    format!("{k}-{value}")
                };
                let role = role_names.name(&role);
                if !roles.contains(&role) {
                    roles.push(role);
                }
            }
        }
        if roles.is_empty() {
            roles.push("app".into());
        }
        for k in [
            "forward_agent",
            "ssh_arguments",
            "config_file",
            "become",
            "ssh_multiplexing",
        ] {
            if host.get(k).is_some() {
                servers.left_out.push(format!(
                    "host {alias}: {k} (put ssh options into your ssh config; deckhand uses it)"
                ));
            }
        }
        let env = match stage {
            Some(s) => env_names.name(&s),
            None if super::is_environment_word(alias) => env_names.name(alias),
            None => "production".to_string(),
        };
        servers.nodes.push(ImportedNode {
            name: name.clone(),
            host: address,
            port,
            user,
            identity_file: get("identity_file"),
            jump: Vec::new(),
            roles,
            deploy_path,
            note,
        });
        match envs.iter_mut().find(|e| e.name == env) {
            Some(e) => e.nodes.push(name),
            None => envs.push(ImportedEnvironment {
                name: env.clone(),
                nodes: vec![name],
                from: format!("hosts with stage {env}"),
            }),
        }
    }
    // One deploy path for every host goes to [app]; different ones stay per node.
    if let Some(first) = deploy_paths.first().cloned().flatten() {
        if deploy_paths
            .iter()
            .all(|p| p.as_deref() == Some(first.as_str()))
        {
            servers.app.deploy_path = Some(first);
            for n in &mut servers.nodes {
                n.deploy_path = None;
            }
        }
    }
    servers.environment_note = vec![
        "Environments: each host's `stage` (or its `stage`/`env` label); hosts without one are in"
            .into(),
        "production. Roles: the hosts' other labels. Edit the `nodes` lists to change them.".into(),
    ];
    servers.environments = envs;
    servers.renamed = names.renamed;
    servers.renamed.extend(role_names.renamed);
    servers.renamed.extend(env_names.renamed);
    Ok(servers)
}

/// A URL with the password of its user part (`https://user:token@host/…`) shown as `****`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let host_start = rest.find('/').unwrap_or(rest.len());
    match rest[..host_start].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:****@{}", &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

fn not_a_recipe(path: &Path, why: &str) -> ImportError {
    ImportError::Unusable {
        path: path.to_path_buf(),
        message: format!("not a Deployer recipe with hosts: {why}"),
        help: "a recipe lists its servers under `hosts:`, e.g. hosts: { prod: { hostname: 10.0.1.11, remote_user: deployer } }".into(),
    }
}

/// Fill Deployer's `{{name}}` from the host's settings, then the recipe's `config:`.
fn expand(text: &str, host: &Node, config: &Node) -> String {
    let mut out = text.to_string();
    for _ in 0..5 {
        let Some(start) = out.find("{{") else { break };
        let Some(len) = out[start..].find("}}") else {
            break;
        };
        let key = out[start + 2..start + len].trim().to_string();
        let value = host
            .get(&key)
            .or_else(|| config.get(&key))
            .and_then(Node::text)
            .unwrap_or_default();
        out.replace_range(start..start + len + 2, &value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_tokens_are_not_repeated() {
        assert_eq!(
            without_password("https://ci:ghp_s3cret@github.com/o/r.git"),
            "https://ci:****@github.com/o/r.git"
        );
        assert_eq!(
            without_password("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
    }

    #[test]
    fn placeholders_come_from_the_host_then_the_config() {
        let host = yaml::parse(Path::new("h"), "remote_user: deployer\n").unwrap();
        let config = yaml::parse(Path::new("c"), "application: shop\n").unwrap();
        assert_eq!(
            expand("/home/{{remote_user}}/{{application}}", &host, &config),
            "/home/deployer/shop"
        );
        assert_eq!(expand("/srv/{{ unknown }}/x", &host, &config), "/srv//x");
    }
}
