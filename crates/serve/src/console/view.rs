//! The console's pages as HTML, from typed data. Every value spliced in is
//! escaped by `maud` (a product titled `<script>` is text); nothing here
//! builds markup from strings. Actions are `<button data-api>` and
//! `<form data-api>` elements that `console.js` turns into calls of the
//! documented `/v1/admin/...` routes.

use maud::{html, Markup, DOCTYPE};

use crate::auth::Scope;
use crate::http::data::{DataReport, Day, Drift, IngestRun};
use crate::http::insights::{Overview, Shopper};
use crate::http::types::{ModelRef, RecItem};

/// Who is looking: buttons only for an admin.
pub struct Viewer {
    pub scope: Scope,
    /// The session's CSRF token (None in development mode or with a key
    /// header, where no cookie authenticates the calls).
    pub csrf: Option<String>,
    /// A login session (it can log out).
    pub session: bool,
}

impl Viewer {
    fn admin(&self) -> bool {
        self.scope >= Scope::Admin
    }
}

pub const PAGES: [(&str, &str); 6] = [
    ("overview", "Overview"),
    ("data", "Data"),
    ("models", "Models"),
    ("experiments", "Experiments"),
    ("search", "Search"),
    ("shopper", "Shopper"),
];

/// The frame every page shares: navigation, the status line actions report
/// to, the CSRF token for `console.js`.
pub fn layout(page: &str, v: &Viewer, body: Markup) -> Markup {
    let title = PAGES
        .iter()
        .find(|p| p.0 == page)
        .map_or("Console", |p| p.1);
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, v.csrf.as_deref(), true))
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    nav aria-label="Console pages" {
                        span.brand { "Aisle" }
                        ul {
                            @for (slug, name) in PAGES {
                                li {
                                    @if slug == page {
                                        a href={"/console/" (slug)} aria-current="page" { (name) }
                                    } @else {
                                        a href={"/console/" (slug)} { (name) }
                                    }
                                }
                            }
                        }
                        span.scope { "scope: " (v.scope.as_str()) }
                        @if v.session {
                            form method="post" action="/console/logout" {
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main #main {
                    h1 { (title) }
                    p #status role="status" aria-live="polite" {}
                    (body)
                }
            }
        }
    }
}

/// A page's head: its title, the CSRF token for `console.js`, the assets.
fn head(title: &str, csrf: Option<&str>, script: bool) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            @if let Some(t) = csrf { meta name="csrf-token" content=(t); }
            title { (title) " · Aisle console" }
            link rel="icon" href="data:,";
            link rel="stylesheet" href="/console/assets/console.css";
            @if script { script src="/console/assets/console.js" defer {} }
        }
    }
}

/// The login form (a key is required).
pub fn login(error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head("Log in", None, false))
            body {
                main #main .login {
                    h1 { "Aisle console" }
                    @if let Some(e) = error { p.error role="alert" { (e) } }
                    form method="post" action="/console/login" {
                        label for="key" { "API key" }
                        input #key name="key" type="password" autocomplete="current-password" required autofocus;
                        button type="submit" { "Log in" }
                    }
                    p.hint { "An admin key can act; a read key can look." }
                }
            }
        }
    }
}

pub fn fmt_int(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn fmt_pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

fn fmt_ms(x: f64) -> String {
    format!("{x:.1} ms")
}

pub fn fmt_time(unix_s: i64) -> String {
    aisle_core::time::format_rfc3339(unix_s)
}

/// A bar chart of counts as SVG (no inline styles: the page's CSP forbids them).
fn bars(label: &str, values: &[u64], id: &str) -> Markup {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = values.len().max(1) as f64;
    let w = 600.0 / n;
    html! {
        svg #(id) .bars viewBox="0 0 600 100" preserveAspectRatio="none" role="img" aria-label=(label) {
            @for (i, &v) in values.iter().enumerate() {
                @let h = (v as f64 / max * 96.0).max(if v > 0 { 2.0 } else { 0.0 });
                rect x=(format!("{:.1}", i as f64 * w + 0.5)) y=(format!("{:.1}", 100.0 - h))
                    width=(format!("{:.1}", (w - 1.0).max(0.5))) height=(format!("{h:.1}")) {
                    title { (v) }
                }
            }
        }
    }
}

pub fn overview(o: &Overview) -> Markup {
    let events: Vec<u64> = o.per_minute.iter().map(|m| m.events).collect();
    let requests: Vec<u64> = o.per_minute.iter().map(|m| m.requests).collect();
    html! {
        section.cards aria-label="The shop at a glance" {
            div.card { h2 { "Serving model" } p.big #serving { (o.serving.name) } p { "version " code { (o.serving.version) } }
                p { "status " strong #status-text { (o.status) } @if let Some(r) = &o.degraded_reason { " — " (r) } } }
            div.card { h2 { "Catalog items" } p.big #catalog-items { (fmt_int(o.catalog_items)) } }
            div.card { h2 { "Users" } p.big #users { (fmt_int(o.users)) } p { span #active-users { (fmt_int(o.active_users)) } " active (30 min of event time)" } }
            div.card { h2 { "Events" } p.big #events { (fmt_int(o.events)) } p { span #events-ingested { (fmt_int(o.events_ingested)) } " since start" } }
            div.card { h2 { "Requests last minute" } p.big #requests-last-minute { (fmt_int(o.requests_last_minute)) } }
        }
        section aria-labelledby="epm" {
            h2 #epm { "Events per minute (last hour)" }
            (bars("events per minute over the last hour", &events, "events-chart"))
            h2 { "Requests per minute (last hour)" }
            (bars("requests per minute over the last hour", &requests, "requests-chart"))
        }
        section aria-labelledby="routes-h" {
            h2 #routes-h { "Routes since start" }
            div.scroll {
                table #routes {
                    thead { tr { th scope="col" { "Route" } th.num scope="col" { "Requests" } th.num scope="col" { "4xx" }
                        th.num scope="col" { "5xx" } th.num scope="col" { "Error rate" } th.num scope="col" { "p50" } th.num scope="col" { "p99" } } }
                    tbody {
                        @for r in &o.routes {
                            tr { td { code { (r.route) } } td.num { (fmt_int(r.requests)) } td.num { (fmt_int(r.client_errors)) }
                                td.num { (fmt_int(r.server_errors)) } td.num { (fmt_pct(r.error_rate)) }
                                td.num { (fmt_ms(r.p50_ms)) } td.num { (fmt_ms(r.p99_ms)) } }
                        }
                    }
                }
            }
            p.hint { "Percentiles are interpolated within the latency histogram's buckets, as "
                a href="/metrics" { "/metrics" } " exports them." }
        }
    }
}

/// One registry version as the models page lists it.
pub struct VersionRow {
    pub version: String,
    pub model: String,
    pub promoted: bool,
    pub bytes: u64,
    pub created: Option<String>,
    /// Hold-out and training figures from the artifact's metadata.
    pub metrics: Vec<(String, String)>,
    pub data: Vec<(String, String)>,
    /// The training curve: (epoch, loss, validation NDCG@10).
    pub curve: Vec<(u64, f64, f64)>,
}

pub fn models(
    v: &Viewer,
    serving: &ModelRef,
    versions: &[VersionRow],
    jobs: &serde_json::Value,
    evaluation: &Result<crate::http::data::Evaluation, crate::http::error::ApiError>,
) -> Markup {
    html! {
        p { "Serving " strong #serving { (serving.name) } " " code { (serving.version) } }
        @if v.admin() {
            p.actions {
                button type="button" data-api="/v1/admin/models/rollback" data-confirm="Roll back to the previous version?" #rollback { "Roll back" }
                " "
                button type="button" data-api="/v1/admin/jobs" #retrain { "Retrain now" }
            }
        }
        h2 { "Registry" }
        @if versions.is_empty() { p { "No trained versions in this store's registry." } }
        div.scroll {
            table #versions {
                thead { tr { th scope="col" { "Version" } th scope="col" { "Model" } th scope="col" { "Trained" }
                    th scope="col" { "Hold-out metrics" } th scope="col" { "Data" } th.num scope="col" { "Size" } th scope="col" { "" } } }
                tbody {
                    @for r in versions {
                        tr.promoted[r.promoted] data-version=(r.version) {
                            td { code { (r.version) } @if r.promoted { " " span.badge { "promoted" } } }
                            td { (r.model) }
                            td { (r.created.as_deref().unwrap_or("—")) }
                            td { dl.kv { @for (k, val) in &r.metrics { dt { (k) } dd { (val) } } } }
                            td { dl.kv { @for (k, val) in &r.data { dt { (k) } dd { (val) } } } }
                            td.num { (fmt_int(r.bytes / 1024)) " KiB" }
                            td {
                                @if v.admin() && !r.promoted {
                                    button type="button" data-api="/v1/admin/models/promote"
                                        data-body=(serde_json::json!({"version": r.version}).to_string())
                                        data-confirm={"Promote " (r.version) "?"} { "Promote" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @let curves: Vec<&VersionRow> = versions.iter().filter(|r| r.curve.len() > 1).take(6).collect();
        @if !curves.is_empty() {
            h2 { "Training curves" }
            div.curves { @for r in curves { (curve_chart(r)) } }
        }
        h2 { "Last evaluation" }
        (leaderboard(evaluation))
        h2 { "Retraining jobs" }
        (jobs_table(jobs))
    }
}

/// A version's training loss and validation NDCG@10 per epoch, each scaled
/// to its own range (the caption gives the figures).
fn curve_chart(r: &VersionRow) -> Markup {
    let (w, h, pad) = (300.0, 110.0, 6.0);
    let n = r.curve.len();
    let line = |pick: &dyn Fn(&(u64, f64, f64)) -> f64| -> String {
        let ys: Vec<f64> = r.curve.iter().map(pick).collect();
        let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let span = (hi - lo).max(1e-12);
        ys.iter()
            .enumerate()
            .map(|(i, y)| {
                let x = pad + (w - 2.0 * pad) * i as f64 / (n - 1).max(1) as f64;
                let y = h - pad - (h - 2.0 * pad) * (y - lo) / span;
                format!("{x:.1},{y:.1}")
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let first = r.curve[0];
    let last = r.curve[n - 1];
    let best = r
        .curve
        .iter()
        .copied()
        .max_by(|a, b| a.2.total_cmp(&b.2))
        .unwrap_or(last);
    let caption = format!(
        "{} epochs; loss {:.4} → {:.4}; validation NDCG@10 best {:.4} at epoch {}",
        n, first.1, last.1, best.2, best.0
    );
    html! {
        figure.curve data-version=(r.version) {
            svg viewBox=(format!("0 0 {w} {h}")) role="img" aria-label={(r.version) ": " (caption)} {
                polyline.loss points=(line(&|e| e.1)) {}
                polyline.ndcg points=(line(&|e| e.2)) {}
            }
            figcaption { code { (r.version) } br; span.key-loss { "— loss" } " " span.key-ndcg { "— validation NDCG@10" } br; (caption) }
        }
    }
}

/// The rows of the last `aisle evaluate` (ranking models), best by
/// validation first marked.
fn leaderboard(
    evaluation: &Result<crate::http::data::Evaluation, crate::http::error::ApiError>,
) -> Markup {
    use crate::http::error::Code;
    let e = match evaluation {
        Ok(e) => e,
        Err(e) if e.code == Code::NoEvaluation => {
            return html! { p #leaderboard-none { "No evaluation yet: " code { "aisle evaluate --store STORE" }
            " writes one (leave-one-out, full ranking) that shows here." } }
        }
        Err(e) => return html! { p.error { (e.message) } },
    };
    let r = &e.report;
    let best = r.get("best_by_validation").and_then(|b| b.as_str());
    let rows: Vec<&serde_json::Value> = r
        .get("results")
        .and_then(|x| x.as_array())
        .map(|a| a.iter().filter(|x| x.get("ndcg@10").is_some()).collect())
        .unwrap_or_default();
    let num = |x: &serde_json::Value, k: &str, d: usize| -> String {
        x.get(k)
            .and_then(|v| v.as_f64())
            .map_or("—".into(), |v| format!("{v:.d$}"))
    };
    let text = |x: &serde_json::Value, k: &str| -> String {
        match x.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "—".into(),
            Some(v) => v.to_string(),
        }
    };
    html! {
        p { "Data set " strong { (text(r, "dataset")) } ", evaluated " (fmt_time(e.at)) ". "
            span.hint { "Leave-one-out, full ranking (" (text(&r["protocol"], "rule")) "); the model to use is the best by validation NDCG@10." } }
        @for w in r.get("warnings").and_then(|w| w.as_array()).into_iter().flatten() {
            p.hint { "Note: " (w.as_str().unwrap_or_default()) }
        }
        div.scroll { table #leaderboard {
            thead { tr { th scope="col" { "Model" } th scope="col" { "Masking" } th.num scope="col" { "NDCG@10" }
                th.num scope="col" { "Recall@10" } th.num scope="col" { "MRR@10" } th.num scope="col" { "Coverage@10" }
                th.num scope="col" { "Valid NDCG@10" } th.num scope="col" { "Fit s" } } }
            tbody { @for x in rows {
                @let model = text(x, "model");
                tr data-model=(model) {
                    td { (model) @if best == Some(model.as_str()) { " " span.badge.running { "best by validation" } } }
                    td { @match x.get("masking").and_then(|m| m.as_bool()) { Some(true) => "on", Some(false) => "off", None => "—" } }
                    td.num.ndcg { (num(x, "ndcg@10", 4)) }
                    td.num { (num(x, "recall@10", 4)) }
                    td.num { (num(x, "mrr@10", 4)) }
                    td.num { (num(x, "coverage@10", 3)) }
                    td.num { (num(x, "valid_ndcg@10", 4)) }
                    td.num { (num(x, "fit_s", 2)) }
                }
            } }
        } }
    }
}

fn jobs_table(jobs: &serde_json::Value) -> Markup {
    let list = jobs
        .get("jobs")
        .and_then(|j| j.as_array())
        .cloned()
        .unwrap_or_default();
    let s = |j: &serde_json::Value, k: &str| -> String {
        match j.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "—".into(),
            Some(x) => x.to_string(),
        }
    };
    html! {
        @if list.is_empty() { p #jobs { "No retraining job has run since the server started." } }
        @else {
            div.scroll { table #jobs {
                thead { tr { th scope="col" { "Job" } th scope="col" { "Status" } th scope="col" { "Trigger" } th scope="col" { "Version" } th scope="col" { "Log (tail)" } } }
                tbody { @for j in list.iter().rev() {
                    tr { td { (s(j, "id")) } td { (s(j, "status")) } td { (s(j, "trigger")) } td { code { (s(j, "version")) } }
                        td { details { summary { "log" } pre { (s(j, "log_tail")) } } } }
                } }
            } }
        }
    }
}

fn est(e: &serde_json::Value, pct: bool) -> Markup {
    let f = |k: &str| e.get(k).and_then(|x| x.as_f64());
    match (f("value"), f("low"), f("high")) {
        (Some(v), Some(l), Some(h)) => {
            let show = |x: f64| {
                if pct {
                    fmt_pct(x)
                } else {
                    format!("{x:.2}")
                }
            };
            html! { (show(v)) span.ci { " [" (show(l)) ", " (show(h)) "]" } }
        }
        _ => html! { "—" },
    }
}

/// An interval as a bar on a shared axis (SVG), for the arms of one metric.
fn interval_bars(label: &str, rows: &[(String, f64, f64, f64)]) -> Markup {
    let lo = rows
        .iter()
        .map(|r| r.2)
        .fold(f64::INFINITY, f64::min)
        .min(0.0);
    let hi = rows
        .iter()
        .map(|r| r.3)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(lo + 1e-9);
    let x = |v: f64| 110.0 + (v - lo) / (hi - lo) * 480.0;
    let h = 22.0;
    html! {
        svg.intervals viewBox=(format!("0 0 600 {}", rows.len() as f64 * h + 4.0)) role="img" aria-label=(label) {
            @for (i, (name, v, l, u)) in rows.iter().enumerate() {
                @let y = i as f64 * h + 12.0;
                text x="0" y=(format!("{:.1}", y + 4.0)) { (name) }
                line x1=(format!("{:.1}", x(*l))) x2=(format!("{:.1}", x(*u))) y1=(format!("{y:.1}")) y2=(format!("{y:.1}")) {}
                circle cx=(format!("{:.1}", x(*v))) cy=(format!("{y:.1}")) r="4" { title { (format!("{v:.4} [{l:.4}, {u:.4}]")) } }
            }
        }
    }
}

pub fn verdict_words(report: &serde_json::Value) -> String {
    let s = |k: &str| report.get(k).and_then(|x| x.as_str()).unwrap_or("");
    match s("verdict") {
        "winner" => format!(
            "Arm “{}” wins on the primary metric ({}).",
            s("winner"),
            s("primary_metric")
        ),
        "no_detectable_difference" => {
            "No detectable difference: the arms perform alike within what this test can see."
                .into()
        }
        "keep_running" => match report.get("users_needed").and_then(|x| x.as_u64()) {
            Some(n) => format!(
                "Keep running: about {} users in all are needed to tell the arms apart at the effect seen so far.",
                fmt_int(n)
            ),
            None => "Keep running: not enough data to decide yet.".into(),
        },
        "sample_ratio_mismatch" => {
            "Sample-ratio mismatch: the traffic split is broken, so nothing else in this report can be trusted."
                .into()
        }
        other => other.to_string(),
    }
}

/// One experiment with its report (the API's JSON).
pub struct ExperimentRow {
    pub view: serde_json::Value,
    pub report: Option<serde_json::Value>,
}

pub fn experiments(v: &Viewer, rows: &[ExperimentRow], models: &[String]) -> Markup {
    html! {
        @if rows.is_empty() { p { "No experiment yet." } }
        @for r in rows {
            @let name = r.view["name"].as_str().unwrap_or("");
            @let running = r.view["running"].as_bool().unwrap_or(false);
            section.experiment data-experiment=(name) aria-label={"Experiment " (name)} {
                h2 { (name) " " span.badge.running[running] { @if running { "running" } @else { "stopped" } } }
                p { (r.view["mode"].as_str().unwrap_or("")) " on " (r.view["surface"].as_str().unwrap_or(""))
                    ", started " (fmt_time(r.view["started_ms"].as_i64().unwrap_or(0) / 1000))
                    @if let Some(s) = r.view["stopped_ms"].as_i64() { ", stopped " (fmt_time(s / 1000)) } }
                @if v.admin() && running {
                    p.actions { button type="button" data-api={"/v1/admin/experiments/" (name) "/stop"}
                        data-confirm={"Stop " (name) "?"} { "Stop" } }
                }
                @if let Some(rep) = &r.report {
                    p.verdict data-verdict=(rep["verdict"].as_str().unwrap_or("")) { strong { (verdict_words(rep)) } }
                    @if rep["srm"]["flagged"].as_bool() == Some(true) {
                        p.warning role="alert" { "Sample-ratio mismatch (p = " (format!("{:.2e}", rep["srm"]["p_value"].as_f64().unwrap_or(0.0))) "): users did not split as configured." }
                    }
                    div.scroll { table.arms {
                        thead { tr { th scope="col" { "Arm" } th.num scope="col" { "Users" } th.num scope="col" { "Impressions" }
                            th.num scope="col" { "Clicks" } th scope="col" { "CTR [95%]" } th scope="col" { "Conversion [95%]" } th scope="col" { "GMV per user [95%]" } } }
                        tbody { @for a in rep["arms"].as_array().into_iter().flatten() {
                            tr data-arm=(a["name"].as_str().unwrap_or("")) {
                                td { (a["name"].as_str().unwrap_or("")) }
                                td.num.users { (fmt_int(a["users"].as_u64().unwrap_or(0))) }
                                td.num.impressions { (fmt_int(a["impressions"].as_u64().unwrap_or(0))) }
                                td.num.clicks { (fmt_int(a["clicks"].as_u64().unwrap_or(0))) }
                                td { (est(&a["ctr"], true)) } td { (est(&a["cvr"], true)) } td { (est(&a["gmv_per_user"], false)) }
                            }
                        } }
                    } }
                    @let ctr: Vec<(String, f64, f64, f64)> = rep["arms"].as_array().into_iter().flatten().filter_map(|a| Some((
                        a["name"].as_str()?.to_string(), a["ctr"]["value"].as_f64()?, a["ctr"]["low"].as_f64()?, a["ctr"]["high"].as_f64()?))).collect();
                    @if !ctr.is_empty() { (interval_bars("CTR by arm with 95% intervals", &ctr)) }
                    @if let Some(cs) = rep["comparisons"].as_array().filter(|c| !c.is_empty()) {
                        div.scroll { table.comparisons {
                            thead { tr { th scope="col" { "Arm vs control" } th scope="col" { "Metric" } th scope="col" { "Lift [95%]" }
                                th.num scope="col" { "p-value" } th.num scope="col" { "Always-valid p" } } }
                            tbody { @for c in cs {
                                tr { td { (c["arm"].as_str().unwrap_or("")) } td { (c["metric"].as_str().unwrap_or("")) }
                                    td { (fmt_pct(c["lift"].as_f64().unwrap_or(0.0))) span.ci { " [" (fmt_pct(c["low"].as_f64().unwrap_or(0.0))) ", " (fmt_pct(c["high"].as_f64().unwrap_or(0.0))) "]" } }
                                    td.num { (format!("{:.4}", c["p_value"].as_f64().unwrap_or(1.0))) }
                                    td.num.always-valid { (format!("{:.4}", c["always_valid_p_value"].as_f64().unwrap_or(1.0))) } }
                            } }
                        } }
                        p.hint { "Read the always-valid p-value if you look every day; the plain one holds only when read once, at the planned end." }
                    }
                }
            }
        }
        @if v.admin() {
            section aria-labelledby="new-exp" {
                h2 #new-exp { "New experiment" }
                form #create-experiment data-api="/v1/admin/experiments" data-method="POST" {
                    div.field { label for="x-name" { "Name" } input #x-name name="name" required pattern="[A-Za-z0-9_\\-]+" maxlength="64" title="letters, digits, - or _"; }
                    div.field { label for="x-surface" { "Surface" }
                        select #x-surface name="surface" { option value="recommendations" { "recommendations" } option value="search" { "search" } option value="similar" { "similar" } } }
                    div.field { label for="x-mode" { "Mode" }
                        select #x-mode name="mode" { option value="ab" { "A/B (users split)" } option value="interleave" { "team-draft interleaving" } } }
                    @for (i, (arm, model)) in [("control", "pop"), ("treatment", "promoted")].iter().enumerate() {
                        fieldset {
                            legend { "Arm " (i + 1) }
                            div.field { label for={"x-arm" (i) "-name"} { "Name" } input id={"x-arm" (i) "-name"} name={"arms." (i) ".name"} value=(arm) required; }
                            div.field { label for={"x-arm" (i) "-model"} { "Model" }
                                input id={"x-arm" (i) "-model"} name={"arms." (i) ".model"} value=(model) required list="models"; }
                            div.field { label for={"x-arm" (i) "-traffic"} { "Traffic %" }
                                input id={"x-arm" (i) "-traffic"} name={"arms." (i) ".traffic"} type="number" value="50" min="0" max="100" step="any" required; }
                        }
                    }
                    datalist #models { option value="pop" {} option value="promoted" {} @for m in models { option value=(m) {} } }
                    div.field { label for="x-salt" { "Salt" } input #x-salt name="salt" placeholder="(optional)"; }
                    button type="submit" { "Start experiment" }
                }
            }
        }
    }
}

pub fn search(
    kpis: &serde_json::Value,
    queries: &aisle_store::online::QueryStats,
    user: Option<&str>,
) -> Markup {
    let by_pos: Vec<f64> = kpis["ctr_by_position"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_f64())
        .collect();
    html! {
        section.cards aria-label="Search in the last 7 days" {
            div.card { h2 { "Searches (7 days)" } p.big #searches { (fmt_int(queries.searches)) } }
            div.card { h2 { "Zero-result rate" } p.big #zero-result-rate {
                @if queries.searches > 0 { (fmt_pct(queries.zero_result_searches as f64 / queries.searches as f64)) } @else { "—" } } }
            div.card { h2 { "Distinct queries" } p.big #distinct-queries { (fmt_int(queries.distinct_queries)) } }
            div.card { h2 { "Search CTR" } p.big #search-ctr { @if let Some(c) = kpis["ctr"].as_f64() { (fmt_pct(c)) } @else { "—" } } }
        }
        section aria-labelledby="live-h" {
            h2 #live-h { "Try a search" }
            form #live-search role="search" {
                label for="q" { "Query" }
                input #q name="q" type="search" autocomplete="off";
                label for="q-user" { "As shopper (optional)" }
                input #q-user name="user" value=(user.unwrap_or(""));
                button type="submit" { "Search" }
            }
            ol #live-results aria-live="polite" {}
            p.hint { "Results come from " code { "GET /v1/search" } " with each hit's explanation: matched words, semantic score, personal boost." }
        }
        div.two {
            section aria-labelledby="top-h" {
                h2 #top-h { "Top queries" }
                (query_table("top-queries", &queries.top))
            }
            section aria-labelledby="zero-h" {
                h2 #zero-h { "Zero-result queries" }
                (query_table("zero-queries", &queries.zero_result))
            }
        }
        section aria-labelledby="pos-h" {
            h2 #pos-h { "Search CTR by position (24 h)" }
            @if by_pos.is_empty() { p { "No search impressions in the last 24 hours." } }
            @else {
                div.scroll { table #ctr-by-position {
                    thead { tr { th scope="col" { "Position" } @for i in 0..by_pos.len() { th.num scope="col" { (i + 1) } } } }
                    tbody { tr { th scope="row" { "CTR" } @for c in &by_pos { td.num { (fmt_pct(*c)) } } } }
                } }
            }
        }
    }
}

fn query_table(id: &str, rows: &[aisle_store::online::QueryCount]) -> Markup {
    html! {
        @if rows.is_empty() { p id=(id) { "None in the last 7 days." } }
        @else {
            table id=(id) {
                thead { tr { th scope="col" { "Query" } th.num scope="col" { "Searches" } th.num scope="col" { "No results" } th.num scope="col" { "Clicks" } } }
                tbody { @for q in rows {
                    tr { td { (q.query) } td.num { (fmt_int(q.searches)) } td.num { (fmt_int(q.zero_results)) } td.num { (fmt_int(q.clicks)) } }
                } }
            }
        }
    }
}

/// What the shopper page shows about one shopper.
pub struct ShopperView {
    pub shopper: Shopper,
    pub recs: Vec<RecItem>,
    pub titles: Vec<Option<String>>,
    pub model: ModelRef,
    pub arm: Option<String>,
}

pub fn shopper(
    user: Option<&str>,
    found: Option<&ShopperView>,
    item: Option<&str>,
    similar: Option<&[(RecItem, Option<String>)]>,
) -> Markup {
    html! {
        form #pick-user method="get" action="/console/shopper" {
            label for="user" { "Shopper id" }
            input #user name="user" value=(user.unwrap_or("")) required;
            button type="submit" { "Show" }
        }
        @if let Some(s) = found {
            section aria-labelledby="who" {
                h2 #who { "Shopper " (s.shopper.user_id) }
                @if !s.shopper.known { p { "No stored event of this shopper: they get the cold-start list." } }
                p { "Experiments: "
                    @if s.shopper.experiments.is_empty() { "none running." }
                    @for (i, a) in s.shopper.experiments.iter().enumerate() {
                        @if i > 0 { "; " }
                        (a.experiment) " (" (a.surface) "): arm " strong.arm { (a.arm) }
                    }
                }
                h3 { "Recommendations now" }
                p.hint { "From " (s.model.name) " " code { (s.model.version) }
                    @if let Some(a) = &s.arm { ", the shopper's arm “" (a) "”" }
                    ". Computed for this page only: not logged as shown." }
                ol #recs { @for (r, t) in s.recs.iter().zip(&s.titles) {
                    li { strong { (t.as_deref().unwrap_or(&r.item_id)) } " " code { (r.item_id) } br; span.reason { (r.reason) } }
                } }
                h3 { "History (latest first)" }
                div.scroll { table #history {
                    thead { tr { th scope="col" { "Time" } th scope="col" { "Event" } th scope="col" { "Item" } } }
                    tbody { @for e in &s.shopper.events {
                        tr { td { (fmt_time(e.ts)) } td { (e.event_type) } td { (e.title.as_deref().unwrap_or("")) " " code { (e.item_id) } } }
                    } }
                } }
            }
        }
        section aria-labelledby="sim-h" {
            h2 #sim-h { "Similar items" }
            form #pick-item method="get" action="/console/shopper" {
                @if let Some(u) = user { input type="hidden" name="user" value=(u); }
                label for="item" { "Product id" }
                input #item name="item" value=(item.unwrap_or("")) required;
                button type="submit" { "Show similar" }
            }
            @match similar {
                Some(list) => { ol #similar { @for (r, t) in list {
                    li { strong { (t.as_deref().unwrap_or(&r.item_id)) } " " code { (r.item_id) } br; span.reason { (r.reason) } } } } }
                None => { @if item.is_some() { p #similar { "Unknown product." } } }
            }
        }
    }
}

pub fn data(d: &DataReport) -> Markup {
    let st = &d.store;
    html! {
        section.cards aria-label="The store" {
            div.card { h2 { "Events" } p.big #store-events { (fmt_int(st.events)) } }
            div.card { h2 { "Users" } p.big #store-users { (fmt_int(st.users)) } }
            div.card { h2 { "Items with events" } p.big #store-items { (fmt_int(st.items)) } }
            div.card { h2 { "Catalog" } p.big #store-catalog { (fmt_int(st.catalog_items)) } }
        }
        p { "Events from "
            (st.time_min.map(fmt_time).unwrap_or_else(|| "—".into())) " to "
            (st.time_max.map(fmt_time).unwrap_or_else(|| "—".into())) ". "
            span.hint #computed-at { "Figures as of " (fmt_time(d.computed_at))
                @if d.refreshing { "; newer ones are being computed (reload in a moment)" } "." } }
        h2 { "Event types" }
        table #event-types {
            thead { tr { th scope="col" { "Type" } th.num scope="col" { "Events" } th.num scope="col" { "Share" } } }
            tbody { @for (t, n) in &st.events_by_type {
                tr { td { (t) } td.num { (fmt_int(*n)) } td.num { (fmt_pct(*n as f64 / st.events.max(1) as f64)) } }
            } }
        }
        h2 { "Per day" }
        (daily(&d.daily))
        h2 { "Drift of recent events" }
        (drift(&d.drift))
        h2 { "Ingests" }
        (ingests(&d.ingests))
        h2 { "Quarantined rows by ingest" }
        @if d.quarantine.is_empty() { p { "No ingest into this store quarantined a row." } }
        @for q in &d.quarantine {
            section.quarantine aria-label={"Quarantine " (q.file)} id={"q-" (q.file)} {
                h3 { code { (q.file) } " — " (fmt_int(q.rows)) " rows" }
                table { thead { tr { th scope="col" { "Reason" } th.num scope="col" { "Rows" } } }
                    tbody { @for r in &q.by_reason { tr { td { (r.reason) } td.num { (fmt_int(r.rows)) } } } } }
                details { summary { "Sample rows" } pre { @for s in &q.samples { (s) "\n" } } }
            }
        }
    }
}

/// The event types in the order a shop's funnel reads.
const FUNNEL: [&str; 7] = [
    "view",
    "click",
    "favorite",
    "add_to_cart",
    "purchase",
    "cancel",
    "rating",
];

fn daily(days: &[Day]) -> Markup {
    use std::collections::BTreeSet;
    // The types present, funnel order first.
    let present: BTreeSet<&str> = days
        .iter()
        .flat_map(|d| d.by_type.keys().map(String::as_str))
        .collect();
    let mut types: Vec<&str> = FUNNEL
        .iter()
        .copied()
        .filter(|t| present.contains(t))
        .collect();
    types.extend(present.iter().filter(|t| !FUNNEL.contains(t)));
    let max = days.iter().map(|d| d.events).max().unwrap_or(0).max(1);
    html! {
        @if days.is_empty() {
            p { "No dated events (the data set's times are an order, or the store is empty)." }
        } @else {
            p.hint { "Each day (UTC) of the last " (crate::http::data::DAYS) " before the newest event. The bar is the day's events, split by type: "
                @for (i, t) in types.iter().enumerate() { span class={"swatch t" (i % 7)} {} " " (t) " " } }
            div.scroll { table #daily {
                thead { tr { th scope="col" { "Day" } th scope="col" { "Mix" } th.num scope="col" { "Events" }
                    @for t in &types { th.num scope="col" { (t) } }
                    th.num scope="col" { "New users" } th.num scope="col" { "New items" } } }
                tbody { @for run in day_runs(days) { @match run {
                    DayRun::Quiet(first, last, n) => {
                        tr.quiet data-quiet-from=(first) {
                            td.date { (first) @if n > 1 { " – " (last) } }
                            td colspan=(types.len() + 4) { span.hint { "no events" @if n > 1 { " (" (n) " days)" } } }
                        }
                    }
                    DayRun::Day(d) => {
                    tr data-day=(d.date) {
                        td.date { (d.date) }
                        td { svg.mix width="120" height="12" viewBox="0 0 120 12" role="img"
                                aria-label={(d.events) " events"} {
                            @for (i, x, w) in segments(d, &types, max) {
                                rect class={"t" (i % 7)} x=(format!("{x:.2}")) y="0" width=(format!("{w:.2}")) height="12" {}
                            }
                        } }
                        td.num { (fmt_int(d.events)) }
                        @for t in &types { td.num { (fmt_int(d.by_type.get(*t).copied().unwrap_or(0))) } }
                        td.num.new-users { (fmt_int(d.new_users)) }
                        td.num.new-items { (fmt_int(d.new_items)) }
                    }
                    }
                } } }
            } }
        }
    }
}

/// A row of the per-day table: a day with events, or a run of days
/// without any (first date, last date, days), shown as one row.
enum DayRun<'a> {
    Day(&'a Day),
    Quiet(&'a str, &'a str, usize),
}

fn day_runs(days: &[Day]) -> Vec<DayRun<'_>> {
    let mut out: Vec<DayRun<'_>> = Vec::new();
    for d in days {
        if d.events > 0 {
            out.push(DayRun::Day(d));
        } else if let Some(DayRun::Quiet(_, last, n)) = out.last_mut() {
            *last = &d.date;
            *n += 1;
        } else {
            out.push(DayRun::Quiet(&d.date, &d.date, 1));
        }
    }
    out
}

/// A day's bar: (type index, x, width) of each type, 120 wide for the
/// busiest day.
fn segments(d: &Day, types: &[&str], max: u64) -> Vec<(usize, f64, f64)> {
    let mut x = 0.0;
    types
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let w = 120.0 * d.by_type.get(*t).copied().unwrap_or(0) as f64 / max as f64;
            x += w;
            (i, x - w, w)
        })
        .collect()
}

fn ingests(runs: &[IngestRun]) -> Markup {
    html! {
        @if runs.is_empty() {
            p { "No ingest report is kept in this store (" code { "aisle ingest" } " keeps each one in its "
                code { "reports/" } " folder)." }
        } @else {
            div.scroll { table #ingests {
                thead { tr { th scope="col" { "Finished" } th scope="col" { "Input" } th.num scope="col" { "Rows read" }
                    th.num scope="col" { "Accepted" } th.num scope="col" { "Quarantined" } th scope="col" { "By reason" }
                    th.num scope="col" { "New events" } } }
                tbody { @for r in runs {
                    tr data-file=(r.file) {
                        td { (fmt_time(r.at)) }
                        td { code { (r.input) } " (" (r.dataset) ")" }
                        td.num { (fmt_int(r.rows_read)) }
                        td.num { (fmt_int(r.accepted)) }
                        td.num { (fmt_int(r.quarantined)) }
                        td { @for (i, (reason, n)) in r.by_reason.iter().enumerate() {
                                @if i > 0 { ", " } (reason) " " (fmt_int(*n)) }
                            @if let Some(q) = &r.quarantine_file { " " a href={"#q-" (q)} { "sample rows" } } }
                        td.num { (r.inserted.map(fmt_int).unwrap_or_else(|| "—".into())) }
                    }
                } }
            } }
        }
    }
}

fn drift(d: &Drift) -> Markup {
    use aisle_ingest::drift::Level;
    let shifted: Vec<&str> = d
        .signals
        .iter()
        .filter(|s| s.level == Some(Level::Major))
        .map(|s| s.signal.as_str())
        .collect();
    html! {
        p { "Reference: " (d.reference_is) ", " (fmt_time(d.reference_from)) " to " (fmt_time(d.reference_to))
            " (" (fmt_int(d.reference_events)) " events). Recent: " (fmt_time(d.recent_from)) " to " (fmt_time(d.recent_to))
            " (" (fmt_int(d.recent_events)) " events)." }
        @if d.recent_events == 0 {
            p #drift-none { "No events in the recent window yet: nothing to compare." }
        } @else {
            @if d.recent_events < d.min_events || d.reference_events < d.min_events {
                p #drift-few { "Too few events to read a shift yet: each side needs " (fmt_int(d.min_events))
                    " (PSI on a handful of events is noise)." }
            }
            @if !shifted.is_empty() {
                p.warning #drift-warning role="alert" { "Shifted beyond PSI " (d.major) ": " (shifted.join(", "))
                    ". The serving model was trained on behaviour unlike today's: consider retraining." }
            }
            table #drift {
                thead { tr { th scope="col" { "Signal" } th.num scope="col" { "PSI" } th scope="col" { "Reading" } } }
                tbody { @for s in &d.signals {
                    tr data-signal=(s.signal) { td { (s.signal) } td.num { @match s.psi { Some(p) => (format!("{p:.4}")), None => "—" } }
                        td { @match s.level { Some(Level::Stable) => "stable", Some(Level::Moderate) => "moderate shift",
                            Some(Level::Major) => strong { "major shift" }, None => span.hint { "too few events" } } } }
                } }
            }
            p.hint { "Population stability index of each signal's distribution, recent against reference: below "
                (d.moderate) " stable, " (d.moderate) "–" (d.major) " moderate, above " (d.major) " a shift worth acting on." }
        }
    }
}
