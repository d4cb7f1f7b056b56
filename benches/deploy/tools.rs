//! The same deploy with Capistrano and with Ansible, for comparison. The bench writes their files
//! at run time from the step list (`steps.rs`, through `Rig::commands`): a JSON plan with every
//! command text, a Capfile and stage file that read it, an Ansible inventory and playbook that
//! carry it. Drain and enable go through one helper both tools call on this machine (`lb`):
//! HAProxy's runtime API over its admin socket with socat, the way a team would script it.
//!
//! Settings are each tool's usual ones for speed: Capistrano without the pause between hosts
//! (`wait: 0`), Ansible with pipelining, persistent SSH connections and no fact gathering, and
//! the same key exchange deckhand prefers on this OpenSSH (curve25519).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::rig::Rig;

/// `lb drain|enable SERVER`: set the server's state and read it back in one request to HAProxy's
/// admin socket, then ask again until it is idle (drain) or UP (enable).
fn lb_script(socket: &Path) -> String {
    format!(
        r#"#!/bin/sh
set -eu
sock={sock}
srv=$2
case $1 in
  drain) state=drain ;;
  enable) state=ready ;;
  *) echo "usage: lb drain|enable SERVER" >&2; exit 2 ;;
esac
req="set server app/$srv state $state; show stat"
i=0
while :; do
  line=$(printf '%s\n' "$req" | socat -t 5 - "UNIX-CONNECT:$sock" | grep "^app,$srv," || true)
  [ -n "$line" ] || {{ echo "HAProxy does not know app/$srv" >&2; exit 1; }}
  qcur=$(echo "$line" | cut -d, -f3); scur=$(echo "$line" | cut -d, -f5); status=$(echo "$line" | cut -d, -f18)
  if [ "$1" = drain ] && [ "$qcur" = 0 ] && [ "$scur" = 0 ]; then exit 0; fi
  if [ "$1" = enable ] && [ "$status" = UP ]; then exit 0; fi
  i=$((i + 1))
  [ "$i" -lt 1000 ] || {{ echo "app/$srv: still $status, $scur sessions, $qcur queued" >&2; exit 1; }}
  req="show stat"
  sleep 0.01
done
"#,
        sock = deckhand::util::sh_quote(&socket.display().to_string())
    )
}

fn chmod_x(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

fn write_lb(dir: &Path, socket: &Path) -> PathBuf {
    let lb = dir.join("lb");
    std::fs::write(&lb, lb_script(socket)).expect("lb helper");
    chmod_x(&lb);
    lb
}

/// Is `program` installed? (The bench script installs the tools; a run without them skips
/// them and says so.)
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn run(cmd: &mut Command, what: &str, log: &Path) -> Duration {
    let log_file = std::fs::File::create(log).expect("log file");
    let started = Instant::now();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log"))
        .stderr(log_file)
        .status()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let took = started.elapsed();
    if !status.success() {
        let said = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = said.lines().rev().take(30).collect();
        panic!(
            "{what} failed ({status}); the last lines of {}:\n{}",
            log.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    took
}

/// Capistrano: `cap bench rolling` in a project directory the bench writes.
pub fn capistrano(rig: &Rig, n: usize, batch: usize, release: &str, socket: &Path) -> Duration {
    let dir = rig.dir.join(format!("capistrano-{release}"));
    std::fs::create_dir_all(dir.join("config/deploy")).expect("capistrano dir");
    let lb = write_lb(&dir, socket);
    let plan = rig.commands(n, release).to_json(release, &lb, batch);
    std::fs::write(dir.join("plan.json"), plan.to_string()).expect("plan.json");
    std::fs::write(
        dir.join("Capfile"),
        r#"# Written by deckhand's deploy bench from its step list (plan.json): the same commands,
# the same order, drain and enable through the same helper.
require "capistrano/setup"
require "json"

PLAN = JSON.parse(File.read(File.expand_path("plan.json", __dir__)))

task :rolling do
  on primary(:app) do
    PLAN["before"].each { |c| execute c }
  end
  turns = PLAN["batch"] == 1 ? { in: :sequence, wait: 0 } : { in: :groups, limit: PLAN["batch"], wait: 0 }
  on roles(:app), turns do |host|
    node = PLAN["nodes"][host.properties.node]
    system(PLAN["lb"], "drain", host.properties.node, exception: true)
    node["steps"].each { |c| execute c }
    execute node["health"]
    system(PLAN["lb"], "enable", host.properties.node, exception: true)
  end
  on primary(:app) do
    PLAN["after"].each { |c| execute c }
  end
end
"#,
    )
    .expect("Capfile");
    std::fs::write(
        dir.join("config/deploy.rb"),
        "set :application, \"shop\"\n# No source control: the steps fetch the code themselves.\nset :scm, nil\n",
    )
        .expect("deploy.rb");
    let mut stage = format!(
        "set :ssh_options, {{ user: {:?}, keys: [{:?}], keys_only: true, auth_methods: [\"publickey\"], \
         user_known_hosts_file: {:?}, global_known_hosts_file: \"/dev/null\", verify_host_key: :always }}\n",
        rig.fleet.user,
        rig.fleet.client_key.display().to_string(),
        rig.fleet.known_hosts.display().to_string(),
    );
    for nd in &rig.fleet.nodes[..n] {
        stage.push_str(&format!(
            "server \"127.0.0.1\", port: {}, roles: %w[app], node: {:?}\n",
            nd.sshd.port, nd.name
        ));
    }
    std::fs::write(dir.join("config/deploy/bench.rb"), stage).expect("bench.rb");
    run(
        Command::new("cap")
            .args(["bench", "rolling"])
            .current_dir(&dir)
            .env("HOME", &dir),
        "Capistrano",
        &dir.join("cap.log"),
    )
}

/// Ansible: `ansible-playbook` with an inventory and playbook the bench writes (JSON, which is
/// YAML): the once-steps in plays of their own on the first node, the rolling play `serial`.
pub fn ansible(rig: &Rig, n: usize, batch: usize, release: &str, socket: &Path) -> Duration {
    let dir = rig.dir.join(format!("ansible-{release}"));
    std::fs::create_dir_all(dir.join("cp")).expect("ansible dir");
    let lb = write_lb(&dir, socket);
    let cmds = rig.commands(n, release);
    let mut hosts = serde_json::Map::new();
    for (i, (node, list)) in cmds.nodes.iter().enumerate() {
        let (health, steps) = list.split_last().expect("a health check");
        let mut h = serde_json::json!({
            "ansible_host": "127.0.0.1",
            "ansible_port": rig.fleet.nodes[i].sshd.port,
            "steps": steps.iter().map(|(_, c)| c.clone()).collect::<Vec<_>>(),
            "health": health.1,
        });
        if i == 0 {
            h["before"] = serde_json::json!(cmds
                .before
                .iter()
                .map(|(_, c)| c.clone())
                .collect::<Vec<_>>());
            h["after"] = serde_json::json!(cmds
                .after
                .iter()
                .map(|(_, c)| c.clone())
                .collect::<Vec<_>>());
        }
        hosts.insert(node.clone(), h);
    }
    let inventory = serde_json::json!({
        "all": {
            "vars": {
                "ansible_user": rig.fleet.user,
                "ansible_ssh_private_key_file": rig.fleet.client_key.display().to_string(),
            },
            "children": { "app": { "hosts": hosts } }
        }
    });
    std::fs::write(dir.join("inventory.yml"), inventory.to_string()).expect("inventory");
    // Each command is handed over as a variable, never as template text.
    let shell = |name: &str, expr: &str| serde_json::json!({ "name": name, "shell": format!("{{{{ {expr} }}}}") });
    let once = |which: &str, list: &[(String, String)]| -> Vec<serde_json::Value> {
        list.iter()
            .enumerate()
            .map(|(i, (name, _))| shell(name, &format!("{which}[{i}]")))
            .collect()
    };
    let mut rolling: Vec<serde_json::Value> = vec![serde_json::json!({
        "name": "drain",
        "delegate_to": "localhost",
        "command": format!("{} drain {{{{ inventory_hostname }}}}", lb.display()),
    })];
    for (i, (name, _)) in cmds.nodes[0]
        .1
        .split_last()
        .expect("steps")
        .1
        .iter()
        .enumerate()
    {
        rolling.push(shell(name, &format!("steps[{i}]")));
    }
    rolling.push(shell("health", "health"));
    rolling.push(serde_json::json!({
        "name": "enable",
        "delegate_to": "localhost",
        "command": format!("{} enable {{{{ inventory_hostname }}}}", lb.display()),
    }));
    let first = &cmds.first;
    let playbook = serde_json::json!([
        { "name": "before", "hosts": first, "gather_facts": false, "tasks": once("before", &cmds.before) },
        { "name": "rolling", "hosts": "app", "gather_facts": false, "serial": batch,
          "max_fail_percentage": 0, "tasks": rolling },
        { "name": "after", "hosts": first, "gather_facts": false, "tasks": once("after", &cmds.after) },
    ]);
    std::fs::write(dir.join("deploy.yml"), playbook.to_string()).expect("playbook");
    std::fs::write(
        dir.join("ansible.cfg"),
        format!(
            "[defaults]\ninventory = {inv}\nhost_key_checking = True\ngathering = explicit\nforks = {forks}\n\
             interpreter_python = /usr/bin/python3\nretry_files_enabled = False\nlocal_tmp = {dir}/tmp\n\n\
             [ssh_connection]\npipelining = True\ncontrol_path_dir = {dir}/cp\ncontrol_path = %(directory)s/%%C\n\
             ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o KexAlgorithms=curve25519-sha256 \
             -o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes\n",
            inv = dir.join("inventory.yml").display(),
            forks = batch.max(5),
            dir = dir.display(),
            known = rig.fleet.known_hosts.display(),
        ),
    )
    .expect("ansible.cfg");
    let took = run(
        Command::new("ansible-playbook")
            .arg(dir.join("deploy.yml"))
            .current_dir(&dir)
            .env("ANSIBLE_CONFIG", dir.join("ansible.cfg"))
            .env("ANSIBLE_NOCOLOR", "1"),
        "Ansible",
        &dir.join("ansible.log"),
    );
    // Its persistent connections would otherwise linger for a minute.
    for (i, _) in cmds.nodes.iter().enumerate() {
        let _ = Command::new("ssh")
            .args(["-O", "exit", "-o"])
            .arg(format!("ControlPath={}/cp/%C", dir.display()))
            .args(["-p", &rig.fleet.nodes[i].sshd.port.to_string()])
            .arg(format!("{}@127.0.0.1", rig.fleet.user))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    took
}
