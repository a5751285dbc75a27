//! What `aisle bench` and `aisle evaluate` write: the report as JSON, a
//! markdown leaderboard, an SVG chart and each sequence model's training curve.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use aisle_train::leaderboard::{BenchReport, ResultRow, Row};
use aisle_train::purchase::PurchaseRow;
use anyhow::{Context, Result};

/// Writes `bench.json`, `leaderboard.md`, `leaderboard.svg` and each
/// sequence model's `MODEL-curve.json`/`.svg` into `dir`.
pub fn write_outputs(dir: &Path, report: &BenchReport) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for fit in &report.curves {
        std::fs::write(
            dir.join(format!("{}-curve.json", fit.model)),
            serde_json::to_string_pretty(fit)? + "\n",
        )?;
        std::fs::write(dir.join(format!("{}-curve.svg", fit.model)), curve_svg(fit))?;
    }
    std::fs::write(
        dir.join("bench.json"),
        serde_json::to_string_pretty(report)? + "\n",
    )?;
    let mut md = String::new();
    let _ = writeln!(md, "# Leaderboard: {}\n", report.dataset);
    let _ = writeln!(
        md,
        "Leave-one-out, full ranking over {} items, {} users; test metrics of models trained on the train part. Masking per row. Best by validation NDCG@10: **{}**.\n",
        report.protocol["items"],
        report.protocol["users"],
        report.best_by_validation.as_deref().unwrap_or("-")
    );
    let best = &report.best_by_masking;
    let _ = writeln!(
        md,
        "Best per masking rule (rules are not comparable): on **{}**, off **{}**. {:.1}% of test targets are items the user already had (seen).\n",
        best.on.as_deref().unwrap_or("-"),
        best.off.as_deref().unwrap_or("-"),
        100.0 * report.seen_target_share
    );
    for w in &report.warnings {
        let _ = writeln!(md, "> **Warning:** {w}\n");
    }
    let _ = writeln!(md, "| model | masking | NDCG@10 | Recall@10 | MRR@10 | NDCG@20 | Recall@20 | NDCG@10 seen (users) | NDCG@10 new (users) | coverage@10 | pop. bias@10 | valid NDCG@10 | fit s | fit CPU s | eval s | peak RSS MB |");
    let _ = writeln!(
        md,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut rows: Vec<&Row> = report
        .results
        .iter()
        .filter_map(|r| match r {
            ResultRow::Ranking(r) => Some(r),
            ResultRow::Purchase(_) => None,
        })
        .collect();
    rows.sort_by(|a, b| b.ndcg10.total_cmp(&a.ndcg10));
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} ({}) | {:.4} ({}) | {:.3} | {:.2} | {:.4} | {:.2} | {:.2} | {:.2} | {:.0} |",
            r.model, if r.masking { "on" } else { "off" }, r.ndcg10, r.recall10, r.mrr10, r.ndcg20, r.recall20,
            r.by_target.seen.ndcg10, r.by_target.seen.users, r.by_target.new.ndcg10, r.by_target.new.users,
            r.coverage10, r.popularity_bias10, r.valid_ndcg10, r.fit_s, r.fit_cpu_s, r.eval_s, r.peak_rss_mb
        );
    }
    let purchase: Vec<&PurchaseRow> = report
        .results
        .iter()
        .filter_map(|r| match r {
            ResultRow::Purchase(p) => Some(p),
            ResultRow::Ranking(_) => None,
        })
        .collect();
    if !purchase.is_empty() {
        let _ = writeln!(
            md,
            "\n## Purchase probability (temporal hold-out)\n\n| model | AUC | AUC − logreg [95% CI] | log loss | prior log loss | accuracy | ECE | train rows (pos) | test rows (pos) | epochs (best) | fit s |\n|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for p in purchase {
            let vs = p.auc_vs_logreg.as_ref().map_or("–".to_string(), |d| {
                format!("{:+.4} [{:+.4}, {:+.4}]", d.diff, d.ci95[0], d.ci95[1])
            });
            let _ = writeln!(
                md,
                "| {} | {:.4} | {vs} | {:.4} | {:.4} | {:.4} | {:.4} | {} ({}) | {} ({}) | {} ({}) | {:.1} |",
                p.model, p.auc, p.logloss, p.prior_logloss, p.accuracy, p.ece, p.train_rows,
                p.train_positives, p.test_rows, p.test_positives, p.epochs, p.best_epoch, p.fit_s
            );
        }
    }
    for s in &report.skipped {
        let _ = writeln!(md, "\nSkipped {}: {}", s.model, s.reason);
    }
    std::fs::write(dir.join("leaderboard.md"), md)?;
    std::fs::write(
        dir.join("leaderboard.svg"),
        svg_chart(&report.dataset, &rows),
    )?;
    Ok(())
}

fn svg_chart(title: &str, rows: &[&Row]) -> String {
    let (w, bar_h, gap, left) = (640.0, 14.0, 10.0, 90.0);
    let h = 50.0 + rows.len() as f64 * (2.0 * bar_h + gap) + 30.0;
    let max = rows
        .iter()
        .map(|r| r.recall10.max(r.ndcg10))
        .fold(1e-9, f64::max);
    let scale = (w - left - 70.0) / max;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">{} — leave-one-out, full ranking</text>"#,
        xml(title)
    );
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="30" width="10" height="10" fill="#3b6ea8"/><text x="{}" y="39">NDCG@10</text><rect x="{}" y="30" width="10" height="10" fill="#e39a3b"/><text x="{}" y="39">Recall@10</text>"##,
        left + 14.0,
        left + 90.0,
        left + 104.0
    );
    for (k, r) in rows.iter().enumerate() {
        let y = 50.0 + k as f64 * (2.0 * bar_h + gap);
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + bar_h + 4.0,
            xml(&r.model)
        );
        for (j, (v, color)) in [(r.ndcg10, "#3b6ea8"), (r.recall10, "#e39a3b")]
            .iter()
            .enumerate()
        {
            let yy = y + j as f64 * bar_h;
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{yy}" width="{:.1}" height="{}" fill="{color}"/>"#,
                v * scale,
                bar_h - 2.0
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}">{v:.4}</text>"#,
                left + v * scale + 4.0,
                yy + bar_h - 4.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Default output folder of a bench run.
pub fn default_out(dataset: &str) -> PathBuf {
    PathBuf::from("bench-out").join(dataset)
}

/// Loss and validation NDCG@10 per epoch as an SVG line chart.
fn curve_svg(fit: &aisle_seq::SeqFit) -> String {
    let (w, h, pad) = (600.0, 260.0, 40.0);
    let n = fit.curve.len().max(2) as f64;
    let max_loss = fit.curve.iter().map(|e| e.loss).fold(1e-9, f64::max);
    let max_ndcg = fit
        .curve
        .iter()
        .map(|e| e.valid_ndcg10)
        .fold(1e-9, f64::max);
    let pts = |f: &dyn Fn(&aisle_seq::EpochLog) -> f64, max: f64| -> String {
        fit.curve
            .iter()
            .enumerate()
            .map(|(i, e)| {
                format!(
                    "{:.1},{:.1}",
                    pad + i as f64 / (n - 1.0) * (w - 2.0 * pad),
                    h - pad - f(e) / max * (h - 2.0 * pad)
                )
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="#fff"/>
<text x="10" y="18" font-weight="bold">{} training: loss (blue, max {max_loss:.3}) and validation NDCG@10 (orange, max {max_ndcg:.4}); best epoch {}</text>
<polyline fill="none" stroke="#3b6ea8" stroke-width="2" points="{}"/>
<polyline fill="none" stroke="#e39a3b" stroke-width="2" points="{}"/>
<text x="{pad}" y="{}">epoch 1</text><text x="{}" y="{}" text-anchor="end">epoch {}</text>
</svg>
"##,
        fit.model,
        fit.best_epoch,
        pts(&|e| e.loss, max_loss),
        pts(&|e| e.valid_ndcg10, max_ndcg),
        h - 10.0,
        w - pad,
        h - 10.0,
        fit.curve.len()
    )
}
