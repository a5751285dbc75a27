//! ARCHITECTURE.md's dependency block matches the workspace as cargo sees it.

use std::collections::{BTreeMap, BTreeSet};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn documented() -> Graph {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ARCHITECTURE.md");
    let text = std::fs::read_to_string(path).unwrap();
    let block = text
        .split("```deps\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("ARCHITECTURE.md has a ```deps block");
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, deps) = l.split_once(':').expect("`crate: deps` lines");
            let deps = deps.split_whitespace().map(str::to_string).collect();
            (name.trim().to_string(), deps)
        })
        .collect()
}

fn actual() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let short = |n: &str| n.strip_prefix("aisle-").map(str::to_string);
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let name = short(p["name"].as_str()?)?;
            let deps = p["dependencies"]
                .as_array()?
                .iter()
                .filter(|d| d["kind"].is_null())
                .filter_map(|d| short(d["name"].as_str()?))
                .collect();
            Some((name, deps))
        })
        .collect()
}

#[test]
fn the_documented_dependency_graph_is_the_real_one() {
    let (doc, real) = (documented(), actual());
    assert!(real.len() >= 10, "{real:?}");
    assert_eq!(doc, real, "update the ```deps block in ARCHITECTURE.md");
}

/// The modules of the binary's source (path from the crate root) and the
/// modules each one names in a `crate::`, `super::`, `self::` or child-module
/// path (comments left out; `mod` declarations are not references).
fn cli_module_graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
    let mut paths = Vec::new();
    files(src, &mut paths);
    let module_of = |p: &std::path::Path| -> Vec<String> {
        let rel = p.strip_prefix(src).unwrap().with_extension("");
        let mut m: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        if matches!(m.last().map(String::as_str), Some("main" | "mod")) {
            m.pop();
        }
        m
    };
    let modules: BTreeSet<Vec<String>> = paths.iter().map(|p| module_of(p)).collect();
    let ident = |s: &str| -> usize {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    };
    let mut graph = BTreeMap::new();
    for p in &paths {
        let me = module_of(p);
        let file = std::fs::read_to_string(p).unwrap();
        // Inline test modules (at the end of a file) have their own `super`.
        let text: String = file
            .split("#[cfg(test)]")
            .next()
            .unwrap_or("")
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let children: Vec<&Vec<String>> = modules
            .iter()
            .filter(|m| m.len() == me.len() + 1 && m.starts_with(&me))
            .collect();
        let mut edges = BTreeSet::new();
        for (at, _) in text.match_indices("::") {
            // The path segment before `::`, which must start a path.
            let head_start = text[..at]
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            if text[..head_start].ends_with(':') {
                continue;
            }
            let head = &text[head_start..at];
            let base: Vec<String> = match head {
                "crate" => Vec::new(),
                "self" => me.clone(),
                "super" => me[..me.len().saturating_sub(1)].to_vec(),
                h => match children
                    .iter()
                    .find(|c| c.last().map(String::as_str) == Some(h))
                {
                    Some(c) => (*c).clone(),
                    None => continue,
                },
            };
            // The segments after it: one path, or each path of a `{..}` group.
            let rest = &text[at + 2..];
            let mut tails: Vec<Vec<String>> = Vec::new();
            if let Some(group) = rest.strip_prefix('{') {
                let body = &group[..group.find('}').unwrap_or(group.len())];
                for item in body.split(',') {
                    let item = item.trim();
                    tails.push(
                        item.split("::")
                            .map(|s| s[..ident(s)].to_string())
                            .collect(),
                    );
                }
            } else {
                let mut segs = Vec::new();
                let mut r = rest;
                loop {
                    let n = ident(r);
                    segs.push(r[..n].to_string());
                    match r[n..].strip_prefix("::") {
                        Some(next) if !next.starts_with('{') => r = next,
                        _ => break,
                    }
                }
                tails.push(segs);
            }
            for tail in tails {
                let mut target = base.clone();
                for seg in tail {
                    let mut next = target.clone();
                    next.push(seg);
                    if !modules.contains(&next) {
                        break;
                    }
                    target = next;
                }
                if target != me {
                    edges.insert(target);
                }
            }
        }
        graph.insert(me, edges);
    }
    graph
}

#[test]
fn the_binarys_modules_import_one_another_without_a_cycle() {
    let graph = cli_module_graph();
    let root: Vec<String> = Vec::new();
    let commands = vec!["commands".to_string()];
    assert!(
        graph[&root].contains(&commands),
        "the parser sees main.rs call into commands: {graph:?}"
    );
    // Depth-first search; a module met again while on the stack closes a cycle.
    fn visit(
        m: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = stack.iter().position(|s| s == m) {
            let cycle: Vec<String> = stack[at..]
                .iter()
                .chain([m])
                .map(|s| format!("crate::{}", s.join("::")))
                .collect();
            panic!("import cycle: {}", cycle.join(" -> "));
        }
        stack.push(m.clone());
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, stack, done);
        }
        stack.pop();
        done.insert(m.clone());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}
