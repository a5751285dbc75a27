//! `aisle serve`, `aisle index` and `aisle search`: the HTTP server and the
//! search indexes over a store.

use std::path::PathBuf;

use aisle_train::{hyper, Kind};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;

use super::{bar, embedder_dir};
use crate::args::{IndexArgs, SearchArgs, ServeArgs};

/// A server configuration for `store` and `addr`, with the encoder's folder.
fn serve_config(store: &str, addr: std::net::SocketAddr) -> aisle_serve::ServeConfig {
    let mut cfg = aisle_serve::ServeConfig::new(store, addr);
    cfg.search.embedder_dir = Some(embedder_dir());
    cfg
}

/// The retraining scheduler's settings: `aisle train --promote-if-better`
/// of `m`, its overrides checked now rather than in every failed run.
fn retrain_config(a: &ServeArgs, m: &str) -> Result<aisle_serve::RetrainConfig> {
    let kind = Kind::parse(m).filter(|k| k.served()).with_context(|| {
        format!(
            "--retrain-model {m:?}: the server retrains the models it serves ({})",
            aisle_train::names_where(Kind::served)
        )
    })?;
    // Check the overrides now rather than in every failed run.
    let overrides = hyper::parse_overrides(&a.retrain_set)?;
    let exe = std::env::current_exe().context("locating the aisle binary")?;
    let mut command = vec![
        exe.display().to_string(),
        "train".into(),
        "--store".into(),
        a.store.clone(),
        "--model".into(),
        m.to_string(),
        "--promote-if-better".into(),
    ];
    if let Kind::Sequence(_) = kind {
        hyper::seq_config(m, &overrides, Some(a.retrain_budget))?;
        command.extend(["--time-budget".into(), a.retrain_budget.to_string()]);
    } else {
        hyper::model_configs(&[m.to_string()], &overrides)?;
    }
    for kv in &a.retrain_set {
        command.extend(["--set".to_string(), kv.clone()]);
    }
    Ok(aisle_serve::RetrainConfig {
        model: m.to_string(),
        command,
        interval: a
            .retrain_every
            .map(std::time::Duration::try_from_secs_f64)
            .transpose()
            .context("--retrain-every")?,
        min_new_events: a.retrain_after_events,
        low_priority: true,
    })
}

pub fn serve(a: ServeArgs) -> Result<()> {
    let mut cfg = serve_config(&a.store, a.addr);
    if a.retrain_model.is_none() && (a.retrain_every.is_some() || a.retrain_after_events.is_some())
    {
        bail!("--retrain-every/--retrain-after-events need --retrain-model");
    }
    let retrain = match &a.retrain_model {
        Some(m) => Some(retrain_config(&a, m)?),
        None => None,
    };
    let on_command_line: Vec<&str> = ["--api-key", "--admin-key", "--read-key", "--write-key"]
        .into_iter()
        .filter(|f| std::env::args().any(|x| x == *f || x.starts_with(&format!("{f}="))))
        .collect();
    if !on_command_line.is_empty() {
        eprintln!(
            "warning: {} on the command line can be read by anyone who lists processes; prefer --read-key-file/--write-key-file/--admin-key-file or AISLE_READ_KEY/AISLE_WRITE_KEY/AISLE_ADMIN_KEY",
            on_command_line.join(", ")
        );
    }
    let read_file = |p: &Option<PathBuf>| -> Result<Option<String>> {
        let Some(p) = p else { return Ok(None) };
        let text = std::fs::read_to_string(p)
            .with_context(|| format!("reading the key file {}", p.display()))?;
        // One line; the newline an editor adds is not part of the key.
        let key = text.strip_suffix('\n').unwrap_or(&text);
        let key = key.strip_suffix('\r').unwrap_or(key);
        Ok(Some(key.to_string()))
    };
    let one = |scope: &str, keys: Vec<Option<String>>| -> Result<Option<String>> {
        let given: Vec<String> = keys.into_iter().flatten().collect();
        match given.as_slice() {
            [] => Ok(None),
            [k] => Ok(Some(k.clone())),
            [k, rest @ ..] if rest.iter().all(|r| r == k) => Ok(Some(k.clone())),
            _ => bail!("two different {scope} keys were given; give one"),
        }
    };
    cfg.read_key = one("read", vec![a.read_key, read_file(&a.read_key_file)?])?;
    cfg.api_key = one(
        "write",
        vec![a.api_key, a.write_key, read_file(&a.write_key_file)?],
    )?;
    cfg.admin_key = one("admin", vec![a.admin_key, read_file(&a.admin_key_file)?])?;
    cfg.cors_origins = a.cors_origins;
    for (flag, v) in [
        ("--header-timeout", a.header_timeout),
        ("--body-timeout", a.body_timeout),
    ] {
        if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
            bail!("{flag} must be a number of seconds above 0 (at most a day)");
        }
    }
    cfg.conn.header_timeout = std::time::Duration::from_secs_f64(a.header_timeout);
    cfg.body_timeout = std::time::Duration::from_secs_f64(a.body_timeout);
    if let Some(n) = a.max_connections {
        if n == 0 {
            bail!("--max-connections must be at least 1");
        }
        cfg.conn.max_connections = n;
    }
    cfg.max_body_bytes = a.max_body_bytes;
    cfg.search.ann_min_items = a.ann_min_items;
    cfg.search.ann_ef = a.ann_ef;
    cfg.search.demote_out_of_stock = a.search_out_of_stock == "demote";
    cfg.ranker = a.ranker;
    if let Some(r) = a.rate_limit {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate-limit must be a positive number of requests per second");
        }
        cfg.rate_limit = Some(r);
    }
    cfg.retrain = retrain;
    cfg.role = a.role.into();
    cfg.redis = a.redis;
    for (v, name) in [
        (a.attribution_window_hours, "--attribution-window-hours"),
        (a.impression_retention_days, "--impression-retention-days"),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{name} must be a positive number");
        }
    }
    cfg.online.attribution_window =
        std::time::Duration::from_secs_f64(a.attribution_window_hours * 3600.0);
    cfg.online.retention =
        std::time::Duration::from_secs_f64(a.impression_retention_days * 86_400.0);
    if !(0.0..=0.5).contains(&a.explore) {
        bail!("--explore must be a share from 0 to 0.5");
    }
    if a.explore_pool == 0 {
        bail!("--explore-pool must be at least 1");
    }
    cfg.online.explore = a.explore;
    cfg.online.explore_pool = a.explore_pool;
    aisle_store::open_existing(&a.store)?;
    let app = aisle_serve::App::open(cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let s = app.current();
    eprintln!(
        "serving {} (model {} {}) on http://{}",
        a.store, s.name, s.version, a.addr
    );
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        aisle_serve::serve(app, async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("shutting down (in-flight requests finish; acknowledged events are on disk)");
        })
        .await
        .map_err(anyhow::Error::from)
    })?;
    Ok(())
}

pub fn index(a: IndexArgs) -> Result<()> {
    let t = std::time::Instant::now();
    aisle_store::open_existing(&a.store)?;
    let mut cfg = serve_config(&a.store, "127.0.0.1:0".parse().expect("literal address"));
    cfg.search.ann_min_items = a.ann_min_items;
    let bars: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, ProgressBar>>> =
        Default::default();
    let b2 = bars.clone();
    cfg.search.progress = aisle_serve::search::Progress(Some(std::sync::Arc::new(
        move |stage: &str, done: u64, total: u64| {
            let mut m = b2.lock().unwrap_or_else(|e| e.into_inner());
            let pb = m
                .entry(stage.to_string())
                .or_insert_with(|| bar(total, stage));
            pb.set_length(total);
            pb.set_position(done);
            if done >= total {
                pb.finish();
            }
        },
    )));
    let app = aisle_serve::App::open(cfg)?;
    let s = &app.search;
    let semantic = s.semantic.as_ref().map(|sem| {
        let ix = sem.index.read().unwrap_or_else(|e| e.into_inner());
        serde_json::json!({"vectors": aisle_search::VectorIndex::len(&*ix), "graph": ix.has_graph()})
    });
    let summary = serde_json::json!({
        "store": a.store,
        "keyword": s.keyword.is_some(),
        "keyword_error": s.error,
        "semantic": semantic,
        "semantic_note": s.semantic_note,
        "seconds": t.elapsed().as_secs_f64(),
    });
    if a.json {
        println!("{summary}");
    } else {
        println!(
            "indexed {}: keyword {}, semantic {} ({:.1} s)",
            a.store,
            if s.keyword.is_some() {
                "ready"
            } else {
                "unavailable"
            },
            match &summary["semantic"] {
                serde_json::Value::Null => s.semantic_note.clone(),
                v => format!("{} vectors, graph {}", v["vectors"], v["graph"]),
            },
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

pub fn search(a: SearchArgs) -> Result<()> {
    let t = std::time::Instant::now();
    if a.query.trim().is_empty() {
        bail!("the query is empty");
    }
    if a.k == 0 || a.k > 1000 {
        bail!("--k must be from 1 to 1000");
    }
    for (name, p) in [("--price-min", a.price_min), ("--price-max", a.price_max)] {
        if p.is_some_and(|p| !p.is_finite() || p < 0.0) {
            bail!("{name} must be a non-negative number");
        }
    }
    aisle_store::open_existing(&a.store)?;
    let app = aisle_serve::App::open(serve_config(
        &a.store,
        "127.0.0.1:0".parse().expect("literal address"),
    ))?;
    let req = aisle_serve::search::SearchRequest {
        q: a.query.trim().to_string(),
        user: a.user.clone(),
        k: a.k,
        filters: aisle_search::Filters {
            category: a.category.clone(),
            price_min: a.price_min,
            price_max: a.price_max,
            in_stock_only: true,
        },
        personal: true,
        mode: a.mode.clone(),
        weights: None,
        rerank: aisle_serve::search::Rerank::Configured,
    };
    let t_search = std::time::Instant::now();
    let mut out = app.search(&req).map_err(anyhow::Error::msg)?;
    out.took_ms = t_search.elapsed().as_secs_f64() * 1000.0;
    let out = serde_json::to_value(&out)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let results = out["results"].as_array().cloned().unwrap_or_default();
    println!(
        "{} results for {:?} ({} matching; search {:.2} ms, {:.1} s with loading the store)",
        results.len(),
        a.query,
        out["total"],
        out["took_ms"].as_f64().unwrap_or(0.0),
        t.elapsed().as_secs_f64()
    );
    for (n, r) in results.iter().enumerate() {
        let why = &r["why"];
        let mut reasons = Vec::new();
        if let Some(m) = why["matched"].as_array().filter(|m| !m.is_empty()) {
            let words: Vec<&str> = m.iter().filter_map(|w| w.as_str()).collect();
            reasons.push(format!("matched {}", words.join(", ")));
        }
        if let Some(m) = why["approximate"].as_array().filter(|m| !m.is_empty()) {
            let words: Vec<&str> = m.iter().filter_map(|w| w.as_str()).collect();
            reasons.push(format!("approximately {}", words.join(", ")));
        }
        if let Some(p) = why["personal"]["rank"].as_u64() {
            reasons.push(format!("personal rank {p}"));
        }
        println!(
            "{:>3}. {:<12} {:<45} {}",
            n + 1,
            r["item_id"].as_str().unwrap_or(""),
            r["title"].as_str().unwrap_or(""),
            reasons.join("; ")
        );
    }
    if let Some(note) = out["query"]["personal"].as_str() {
        println!("personal: {note}");
    }
    Ok(())
}
