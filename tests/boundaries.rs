//! The module boundaries ARCHITECTURE.md states ("Architecture invariant" lines), checked on
//! the source: a `crate::X` path in a module that must not depend on X fails this test.
//! Lower layers never reach up to the faces that serve them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// module → the top-level modules it must not name.
const RULES: &[(&str, &[&str])] = &[
    // The scheduler (core, actor, backends' seam) knows nothing of wires, faces, nodes or
    // the store behind its `durable::Durable` seam.
    (
        "scheduler",
        &[
            "store",
            "rpc",
            "http",
            "periodic",
            "cluster",
            "cli",
            "pb",
            "load",
            "auth",
            "telemetry",
            "server",
            "config",
            "admission",
            "net",
            "metrics",
        ],
    ),
    // Stores persist the scheduler's ops; they do not know who asked.
    (
        "store",
        &[
            "cluster",
            "rpc",
            "http",
            "periodic",
            "cli",
            "pb",
            "load",
            "auth",
            "telemetry",
            "server",
        ],
    ),
    // Cluster mode is a backend under the faces.
    (
        "cluster",
        &[
            "rpc",
            "http",
            "periodic",
            "cli",
            "pb",
            "auth",
            "telemetry",
            "server",
        ],
    ),
    // The Periodic face speaks its own protocol into the scheduler's model, not protobuf's.
    (
        "periodic",
        &["rpc", "pb", "http", "cli", "cluster", "server"],
    ),
    // The load runner is driven by the faces, never the other way.
    (
        "load",
        &[
            "rpc", "http", "periodic", "cli", "pb", "cluster", "auth", "server",
        ],
    ),
    // Traces sit beside the faces, with the scheduler's trace context as their only input.
    (
        "telemetry",
        &[
            "rpc", "http", "periodic", "cli", "pb", "cluster", "load", "store", "server", "auth",
        ],
    ),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to (`src/scheduler/core.rs` → scheduler).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::X` a file names, with its line.
fn crate_refs(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.push((n + 1, name));
            }
            rest = after;
        }
    }
    out
}

#[test]
fn no_module_names_a_layer_it_must_not_depend_on() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let rules: BTreeMap<&str, &[&str]> = RULES.iter().copied().collect();
    let mut broken = Vec::new();
    let mut checked = 0;
    for f in &files {
        let module = module_of(&src, f);
        let Some(forbidden) = rules.get(module.as_str()) else {
            continue;
        };
        checked += 1;
        let text = std::fs::read_to_string(f).unwrap();
        for (line, name) in crate_refs(&text) {
            if forbidden.contains(&name.as_str()) {
                broken.push(format!(
                    "{}:{line}: {module} names crate::{name}",
                    f.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} files checked: is the layout as expected?"
    );
    assert!(
        broken.is_empty(),
        "forbidden imports:\n{}",
        broken.join("\n")
    );
}

/// The pure core (`scheduler/core.rs`, `scheduler/core/`) names nothing outside the scheduler:
/// its output (`write::JobWrite`) and its start-up input (`stored::StoredJobs`) are the
/// scheduler's own types, which the store converts.
#[test]
fn the_pure_core_names_only_the_scheduler() {
    let sched = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/scheduler");
    let mut files = vec![sched.join("core.rs")];
    rust_files(&sched.join("core"), &mut files);
    assert!(files.len() > 10, "the core's files moved?");
    let mut broken = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (line, name) in crate_refs(&text) {
            if name != "scheduler" {
                broken.push(format!("{}:{line}: crate::{name}", f.display()));
            }
        }
    }
    assert!(broken.is_empty(), "the core names:\n{}", broken.join("\n"));
}

#[test]
fn the_check_sees_a_forbidden_path() {
    let refs = crate_refs("use crate::pb;\nlet x = crate::rpc::convert::f(); // crate::http\n");
    let names: Vec<&str> = refs.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(names, ["pb", "rpc"]);
}

/// The product binary carries no peer's protocol driver: the Gearman driver lives in
/// `bench/peers/` (the `taskhive-bench` binary), and nothing under `src/` names Gearman's
/// packet types or the driver. (Periodic's frames share Gearman's `\0REQ` magic; its face
/// is the product's own.)
#[test]
fn the_product_carries_no_peer_protocol() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            // Code only: the bench's help text may name the peer's packets.
            let code = line.split("//").next().unwrap_or("");
            if ["SUBMIT_JOB_BG", "GRAB_JOB_UNIQ", "mod gearman"]
                .iter()
                .any(|w| code.contains(w))
            {
                found.push(format!("{}:{}", f.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a peer's protocol in the product:\n{}",
        found.join("\n")
    );
    // The driver is where the bench binary takes it from.
    let driver = std::fs::read_to_string(root.join("bench/peers/gearman.rs")).unwrap();
    assert!(driver.contains("SUBMIT_JOB_BG") && driver.contains("GRAB_JOB_UNIQ"));
}

/// `taskhive bench` refuses a peer's scenario before starting anything and says where it
/// runs; `taskhive-bench` offers it.
#[test]
fn peer_scenarios_run_from_the_bench_binary() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_taskhive"))
        .args(["bench", "--smoke", "--scenarios", "submit,gearman-submit"])
        .args(["--gearman", "mem=127.0.0.1:1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("scenario gearman-submit") && err.contains("taskhive-bench"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_taskhive-bench"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("gearman-e2e"));
}

/// The top-level modules form no circle: every `crate::X` path is an edge, and a depth-first
/// walk finds no edge back to a module still on its path. (A circle is how "lower" modules
/// came to reach up to the faces: config → periodic → config, rpc ↔ http, auth ↔ http.)
#[test]
fn the_modules_form_no_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut deps: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let module = module_of(&src, f);
        let text = std::fs::read_to_string(f).unwrap();
        for (_, name) in crate_refs(&text) {
            if name != module {
                deps.entry(module.clone()).or_default().insert(name);
            }
        }
    }
    assert!(deps.len() > 10, "the modules moved?");
    assert_eq!(find_circle(&deps), None);
    // The check itself sees one.
    let mut with_circle = deps.clone();
    with_circle
        .entry("scheduler".into())
        .or_default()
        .insert("server".into());
    assert!(find_circle(&with_circle).is_some());
}

/// A circle of modules, as the path around it.
fn find_circle(deps: &BTreeMap<String, std::collections::BTreeSet<String>>) -> Option<Vec<String>> {
    fn walk(
        m: &str,
        deps: &BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut circle = path[i..].to_vec();
            circle.push(m.to_string());
            return Some(circle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in deps.get(m).into_iter().flatten() {
            if let Some(c) = walk(next, deps, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    deps.keys()
        .find_map(|m| walk(m, deps, &mut Vec::new(), &mut done))
}
