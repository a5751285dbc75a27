//! `aisle demo`: the demo shop end to end.

use aisle_ingest::DatasetConfig;
use aisle_train::hyper;
use anyhow::Result;

use super::data::{demo_data, run_ingest, stats};
use super::serve::serve;
use super::{registry, unix_now, write_json, Bars};
use crate::args::{
    DemoArgs, DemoDataArgs, EvaluateArgs, HyperArgs, ModelArgs, ServeArgs, StatsArgs,
};

pub fn demo(a: DemoArgs) -> Result<()> {
    let data = a.dir.join("data");
    let store = a.dir.join("store");
    println!("== 1. generating the demo shop in {}", data.display());
    demo_data(DemoDataArgs {
        out: data.clone(),
        seed: a.seed,
        users: a.users,
        items: a.items,
        days: 90,
    })?;
    println!("\n== 2. ingesting it into {}", store.display());
    let report = run_ingest(
        DatasetConfig::preset("demo")?,
        &data.join("events.csv"),
        Some(&data.join("catalog.csv")),
        &store.display().to_string(),
    )?;
    write_json(&a.dir.join("quality-report.json"), &report)?;
    println!("{}", report.summary());
    println!("\n== 3. the store");
    stats(StatsArgs {
        store: store.display().to_string(),
        json: false,
    })?;
    println!(
        "      report JSON: {}",
        a.dir.join("quality-report.json").display()
    );
    let store_url = store.display().to_string();
    if a.train_seconds > 0.0 {
        println!(
            "\n== 4. training SASRec for up to {:.0} s and promoting it",
            a.train_seconds
        );
        let overrides = hyper::parse_overrides(&["max_len=50".to_string()])?;
        let arch_cfg = hyper::seq_config("sasrec", &overrides, Some(a.train_seconds))?;
        let out = store
            .join("models")
            .join(format!("sasrec-{}.safetensors", unix_now()));
        let data = aisle_train::StoreData::load(&store_url)?;
        let r = aisle_train::stepped(&Bars, "sasrec", |progress| {
            aisle_train::train_sequence(
                &store_url,
                &data,
                (arch_cfg.0, &arch_cfg.1),
                &out,
                progress,
            )
        })?;
        let reg = registry(&store_url)?;
        reg.promote(&reg.version_of(&out)?)?;
        println!(
            "   {} epochs, best validation NDCG@10 {:.4} (epoch {}), saved {}",
            r.epochs.unwrap_or(0),
            r.best_valid_ndcg10.unwrap_or(0.0),
            r.best_epoch.unwrap_or(0),
            out.display()
        );
    }
    println!("\n== 5. evaluating pop, itemknn and ease on the store (leave-one-out, full ranking; the console's models page shows it)");
    super::models::evaluate(EvaluateArgs {
        store: store_url.clone(),
        m: ModelArgs {
            models: ["pop", "itemknn", "ease"].map(String::from).to_vec(),
            h: HyperArgs {
                set: Vec::new(),
                model_config: None,
                time_budget: None,
                seq_feature: None,
            },
            masking: None,
            two_stage_seq: "none".into(),
            json: false,
            out: None,
            in_process: true,
            part: None,
        },
    })?;
    if a.no_serve {
        println!(
            "\nNext: aisle serve --store {} --addr {}",
            store.display(),
            a.addr
        );
        return Ok(());
    }
    let base = format!("http://{}", a.addr);
    println!("\n== 6. serving the shop on {base} (Ctrl-C stops; nothing acknowledged is lost)");
    println!("   the operator's console: {base}/ (open it in a browser)");
    println!("   curl {base}/v1/users/u00165/recommendations?k=5");
    println!("   curl {base}/v1/popular?k=5");
    println!(
        "   curl -X POST {base}/v1/events -H 'content-type: application/json' \\\n        -d '{{\"user_id\":\"u00001\",\"item_id\":\"P10000\",\"type\":\"view\"}}'"
    );
    println!("   curl {base}/v1/items/P10000/similar?k=5");
    println!("   curl '{base}/v1/search?q=gift+for+a+tea+lover&user=u00165&k=5'");
    println!("   curl '{base}/v1/search/suggest?q=mu'");
    println!("   curl {base}/metrics");
    println!(
        "   curl {base}/v1/admin/kpis      # lists shown, joined clicks and purchases, CTR by position"
    );
    let retrain = a.train_seconds > 0.0;
    if retrain {
        println!(
            "   curl {base}/v1/admin/jobs      # SASRec retrains after every 1,000 new events (or: curl -X POST {base}/v1/admin/jobs)"
        );
    }
    serve(ServeArgs {
        config: None,
        print_config: false,
        store: store_url,
        addr: a.addr,
        role: crate::args::RoleArg::All,
        redis: None,
        api_key: None,
        admin_key: None,
        read_key: None,
        write_key: None,
        read_key_file: None,
        write_key_file: None,
        admin_key_file: None,
        cors_origins: Vec::new(),
        header_timeout: 10.0,
        body_timeout: 30.0,
        max_connections: None,
        max_body_bytes: 1 << 20,
        rate_limit: None,
        retrain_model: retrain.then(|| "sasrec".to_string()),
        retrain_every: None,
        retrain_after_events: retrain.then_some(1000),
        retrain_budget: a.train_seconds,
        retrain_set: vec!["max_len=50".to_string()],
        ann_min_items: aisle_serve::search::SearchConfig::default().ann_min_items,
        ann_ef: aisle_serve::search::SearchConfig::default().ann_ef,
        search_out_of_stock: "filter".into(),
        ranker: None,
        attribution_window_hours: 24.0,
        impression_retention_days: 90.0,
        explore: a.explore,
        explore_pool: 50,
    })
}
