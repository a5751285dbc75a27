//! The command line: every subcommand's arguments, parsed by clap.

use std::path::PathBuf;

use aisle_train::{names_where, Kind};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Aisle: an e-commerce search and recommendation engine.
///
/// Start with `aisle demo`, which writes a synthetic shop, ingests it and
/// prints its data-quality report.
#[derive(Parser, Debug)]
#[command(name = "aisle", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// Log verbosity (-v info, -vv debug); AISLE_LOG overrides (e.g. AISLE_LOG=debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// The demo shop end to end: generate it, ingest it (data-quality report), train and
    /// promote a SASRec model, and serve the API on --addr with example requests.
    Demo(DemoArgs),
    /// Write a seeded synthetic shop (catalog.csv + events.csv, with a little dirt).
    DemoData(DemoDataArgs),
    /// Read, validate and clean an events file (and catalog) into a store.
    ///
    /// Every input row is either accepted or quarantined with a reason; the
    /// quarantined rows go to STORE/quarantine/. Exit status 0 whenever the file
    /// could be read, even with quarantined rows.
    Ingest(IngestArgs),
    /// Append events from standard input (one JSON object per line) to a store.
    ///
    /// Prints `ack N` on stdout after each durable commit: every event counted in
    /// an ack survives a crash. Fields: user_id, item_id, type, timestamp
    /// (Unix seconds or RFC 3339; now when absent), event_id (idempotency),
    /// quantity, price, session_id.
    Append(AppendArgs),
    /// Link aliases (anonymous or device ids) to users from a file of `user,alias` lines:
    /// each alias's events then make one history with its user's (as
    /// `POST /v1/users/{id}/aliases` does). Prints what each line did.
    Link(LinkArgs),
    /// Print users, items, events by type and time span of a store.
    Stats(StatsArgs),
    /// Build per-user sequences and a train/validation/test split, and export them.
    Split(SplitArgs),
    /// List the dataset presets, print one as TOML (a starting point for --config), or print
    /// the reference of every config key (--reference).
    Presets(PresetsArgs),
    /// Ingest (or reuse a store), split leave-one-out, train and evaluate models, print a leaderboard.
    ///
    /// Protocol: shared/baselines/PROTOCOL.md (full ranking; seen items masked for general
    /// models, not for repeat/sequence models). Writes bench.json, leaderboard.md and
    /// leaderboard.svg to --out. With --json the report goes to stdout, logs to stderr.
    Bench(BenchArgs),
    /// Evaluate models on the leave-one-out split of an existing store (same report as bench).
    Evaluate(EvaluateArgs),
    /// Train a model on all of a store's sequences and save a versioned artifact.
    Train(TrainArgs),
    /// Serve the HTTP API (events, recommendations, catalog, admin) over a store.
    ///
    /// Serves the promoted sequence model (popularity when none). Without
    /// --api-key/--admin-key the server is open and binds loopback only.
    #[command(args_override_self = true)]
    Serve(Box<ServeArgs>),
    /// The model registry of a store: list, promote, rollback.
    Models(ModelsArgs),
    /// Store maintenance: `copy` a store into another (e.g. SQLite into PostgreSQL).
    Store(StoreArgs),
    /// The shops of a deployment: `create` (prints its keys, once), `list`, `delete`,
    /// `rotate-keys`. Shop NAME of --store DIR lives in DIR/shops/NAME; of --store
    /// postgres://…/DB in the database DB__NAME. A server answers for it at /v1/shops/NAME/….
    Shops(ShopsArgs),
    /// Search a store's catalog (keyword, re-ranked for --user by the promoted model).
    ///
    /// Prints what GET /v1/search answers; --json prints it as JSON.
    Search(SearchArgs),
    /// Build a store's search indexes ahead of serving, with progress bars: the keyword
    /// index, the item vectors (all-MiniLM-L6-v2) and, for large catalogs, the HNSW graph.
    /// `aisle serve` and `aisle search` reuse them (only changed items are re-embedded).
    Index(IndexArgs),
    /// Search quality on a store's purchases: keyword, keyword + popularity,
    /// keyword + personal (query = head noun of each held-out purchase).
    BenchSearch(crate::search_bench::BenchSearchArgs),
    /// Online experiments of a store: list them, print one's report (what
    /// GET /v1/admin/experiments/NAME/report answers).
    Experiments(ExperimentsArgs),
    /// Drive a running server like a storefront with simulated shoppers (hidden tastes over
    /// categories, a position-based click model, carts and purchases at catalog prices), and
    /// print the true CTR of each arm beside what --experiment's report measured.
    Simulate(SimulateArgs),
    /// Off-policy estimates of a candidate model's CTR (clicks per recommendation list) from
    /// the lists a server showed with --explore: IPS, self-normalised IPS and doubly robust,
    /// with 95% intervals, before the candidate is shown to anyone.
    Ope(OpeArgs),
}

#[derive(Args, Debug)]
pub(crate) struct OpeArgs {
    /// Store directory (its online.db holds the logged lists) or postgres:// URL (its database does).
    #[arg(long)]
    pub store: String,
    /// The candidate: a registry version, a model kind (its newest version), `promoted`
    /// or `pop`.
    #[arg(long, value_name = "VERSION")]
    pub candidate: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct SimulateArgs {
    /// The server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub url: String,
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Items per recommendation list.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// An experiment whose report to print beside the truth.
    #[arg(long)]
    pub experiment: Option<String>,
    #[arg(long)]
    pub json: bool,
    /// Write-scope key (events); also AISLE_API_KEY.
    #[arg(long, env = "AISLE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Admin-scope key (the report; used for every call when given); also AISLE_ADMIN_KEY.
    #[arg(long, env = "AISLE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct ExperimentsArgs {
    #[command(subcommand)]
    pub action: ExperimentsAction,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ExperimentsAction {
    /// Every experiment (oldest first): surface, mode, arms, running or stopped.
    List {
        /// Store directory or URL.
        #[arg(long)]
        store: String,
        #[arg(long)]
        json: bool,
    },
    /// One experiment's report: each arm's users, impressions, CTR, conversion and GMV per
    /// user with 95% intervals; each arm against control (lift, p-value, always-valid
    /// p-value, CUPED); the sample-ratio check; the verdict.
    Report {
        name: String,
        /// Store directory or URL.
        #[arg(long)]
        store: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub(crate) struct IndexArgs {
    /// Store directory or URL.
    #[arg(long)]
    pub store: String,
    /// Build the HNSW graph from this many items (fewer: exact scan, no graph).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub ann_min_items: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct SearchArgs {
    /// Store directory or URL.
    #[arg(long)]
    pub store: String,
    /// The query.
    pub query: String,
    /// Personalize for this user id.
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    #[arg(long)]
    pub category: Option<String>,
    #[arg(long)]
    pub price_min: Option<f64>,
    #[arg(long)]
    pub price_max: Option<f64>,
    /// keyword, semantic or hybrid (default: hybrid when the embedder is installed).
    #[arg(long)]
    pub mode: Option<String>,
    /// Print the JSON object the API returns.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RoleArg {
    Api,
    Worker,
    All,
}

impl From<RoleArg> for aisle_serve::Role {
    fn from(r: RoleArg) -> aisle_serve::Role {
        match r {
            RoleArg::Api => aisle_serve::Role::Api,
            RoleArg::Worker => aisle_serve::Role::Worker,
            RoleArg::All => aisle_serve::Role::All,
        }
    }
}

#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// A TOML file of settings: its keys are these flags' long names
    /// (`rate-limit = 50`, `cors-origin = ["https://shop.example"]`); the
    /// environment and the flags override it. `--print-config` prints every key.
    #[arg(long, env = "AISLE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print every setting a --config file may hold, at its default, and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Store directory or URL.
    #[arg(long)]
    pub store: String,
    /// Address and port to listen on (without keys, a loopback address only).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// What this process does: `api` answers requests and never retrains
    /// (run any number over one PostgreSQL store); `worker` also runs the
    /// retraining scheduler while it holds the store's worker lock (a second
    /// worker stands by and takes over when the first dies); `all`: both, the
    /// single-machine default.
    #[arg(long, value_enum, default_value = "all")]
    pub role: RoleArg,
    /// Redis (redis://HOST[:PORT][/DB]) shared by the replicas: rate limits and
    /// failed-authentication limits count across all of them. Optional; while it
    /// is down each replica counts on its own and /readyz says so.
    #[arg(long, value_name = "URL", env = "AISLE_REDIS")]
    pub redis: Option<String>,
    /// Write-scope key: reads, events and the catalog (header x-api-key or
    /// Authorization: Bearer). Also AISLE_API_KEY / AISLE_WRITE_KEY. A key given
    /// as a flag shows in the process list: prefer --write-key-file or the
    /// environment.
    #[arg(long, env = "AISLE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Admin-scope key: everything, /v1/admin and user erasure included.
    #[arg(long, env = "AISLE_ADMIN_KEY", hide_env_values = true)]
    pub admin_key: Option<String>,
    /// Read-scope key: recommendations, search, popular, similar, items, metrics.
    #[arg(long, env = "AISLE_READ_KEY", hide_env_values = true)]
    pub read_key: Option<String>,
    /// Write-scope key (the same scope as --api-key).
    #[arg(long, env = "AISLE_WRITE_KEY", hide_env_values = true)]
    pub write_key: Option<String>,
    /// File holding the read-scope key (one line; kept out of the process list).
    #[arg(long, value_name = "FILE")]
    pub read_key_file: Option<PathBuf>,
    /// File holding the write-scope key.
    #[arg(long, value_name = "FILE")]
    pub write_key_file: Option<PathBuf>,
    /// File holding the admin-scope key.
    #[arg(long, value_name = "FILE")]
    pub admin_key_file: Option<PathBuf>,
    /// A browser origin allowed to call the API cross-origin (CORS), e.g.
    /// https://shop.example; repeatable; `*` allows any origin.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    pub cors_origins: Vec<String>,
    /// Longest wait for a request's headers, and for the next request on an
    /// idle keep-alive connection (seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    pub header_timeout: f64,
    /// Longest time a request body may take to arrive (seconds; 408 after it).
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub body_timeout: f64,
    /// Most open connections; at the cap the idlest one is closed to make room
    /// (default: half the open-file limit, at most 10,000).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Requests per second per client (API key, else peer address) on /v1
    /// routes, with bursts of as many; 429 beyond. Unlimited when absent.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate_limit: Option<f64>,
    #[arg(long, value_name = "MODEL", help = retrain_model_help())]
    pub retrain_model: Option<String>,
    /// Retrain this many seconds after the previous run ended.
    #[arg(long, value_name = "SECONDS")]
    pub retrain_every: Option<f64>,
    /// Retrain once this many new events were acknowledged.
    #[arg(long, value_name = "N")]
    pub retrain_after_events: Option<u64>,
    /// Training time budget of one retraining run, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300.0)]
    pub retrain_budget: f64,
    /// Hyperparameter override for retraining runs `key=value`; repeatable.
    #[arg(long = "retrain-set", value_name = "KEY=VALUE")]
    pub retrain_set: Vec<String>,
    /// Semantic search uses an HNSW graph from this many catalog items (fewer: exact scan).
    #[arg(long, value_name = "N", default_value_t = 20_000)]
    pub ann_min_items: usize,
    /// Beam width of an HNSW search (recall against speed; at least the 100 candidates).
    #[arg(long, value_name = "N", default_value_t = 128)]
    pub ann_ef: usize,
    /// Out-of-stock products in search: `filter` (never shown) or `demote`
    /// (shown after every product in stock).
    #[arg(long, value_name = "HOW", default_value = "filter", value_parser = ["filter", "demote"])]
    pub search_out_of_stock: String,
    /// A purchase-probability model (`aisle train --model ranker`): recommendations for a
    /// known user are the sequence model's top candidates re-ranked by the probability of a
    /// purchase (`rerank=false` on a request turns it off).
    #[arg(long, value_name = "FILE")]
    pub ranker: Option<PathBuf>,
    /// A click, cart or purchase without a `request_id` is credited to the latest list
    /// that showed the item to the user this many hours before (last touch).
    #[arg(long, value_name = "HOURS", default_value_t = 24.0)]
    pub attribution_window_hours: f64,
    /// Impressions (lists shown) and their joined outcomes older than this are deleted.
    #[arg(long, value_name = "DAYS", default_value_t = 90.0)]
    pub impression_retention_days: f64,
    /// Share of recommendation requests (outside experiments, 0 to 0.5) that show a random
    /// draw of the model's top `--explore-pool` items, with each item's probability of
    /// being shown logged: what `aisle ope` estimates a candidate model's CTR from.
    #[arg(long, value_name = "SHARE", default_value_t = 0.0)]
    pub explore: f64,
    /// The model's top items an exploring request draws from.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub explore_pool: usize,
}

#[derive(Args, Debug)]
pub(crate) struct StoreArgs {
    #[command(subcommand)]
    pub action: StoreAction,
}

#[derive(Subcommand, Debug)]
pub(crate) enum StoreAction {
    /// Copy every event (in insertion order), the catalog and the data set's description
    /// of a store into another, then compare a digest of both (counts and a checksum of every
    /// field); exits non-zero when they differ. Idempotent: events the target holds are skipped.
    Copy {
        /// The store to read (a directory, sqlite:// or postgres:// URL).
        #[arg(long)]
        from: String,
        /// The store to write (created if needed).
        #[arg(long)]
        to: String,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub(crate) struct ShopsArgs {
    #[command(subcommand)]
    pub action: ShopsAction,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ShopsAction {
    /// Create a shop (an empty store beside the deployment's) with a read, a write and an
    /// admin key, printed once: the store keeps only their digests.
    Create {
        /// The shop's name: 1 to 32 of a-z, 0-9, - and _, starting with a letter or digit.
        name: String,
        /// The deployment's store (the default shop's: a directory or postgres:// URL).
        #[arg(long)]
        store: String,
        /// Print the shop and its keys as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the shops with their stores, events and catalog items.
    List {
        #[arg(long)]
        store: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete a shop and everything it holds (events, catalog, models, logs, keys).
    Delete {
        name: String,
        #[arg(long)]
        store: String,
    },
    /// Replace a shop's three keys with new ones (printed once).
    RotateKeys {
        name: String,
        #[arg(long)]
        store: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Debug)]
pub(crate) struct ModelsArgs {
    #[command(subcommand)]
    pub action: ModelsAction,
}

#[derive(Subcommand, Debug)]
pub(crate) enum ModelsAction {
    /// List the trained versions (oldest first) and which one is promoted.
    List {
        #[arg(long)]
        store: String,
        #[arg(long)]
        json: bool,
    },
    /// Promote a version (its file name) for serving; checks that it loads.
    Promote {
        #[arg(long)]
        store: String,
        version: String,
    },
    /// Promote the version promoted before the current one.
    Rollback {
        #[arg(long)]
        store: String,
    },
}

/// Hyperparameters of the models of `bench`, `evaluate` and `train`.
#[derive(Args, Debug)]
pub(crate) struct HyperArgs {
    /// Hyperparameter override, `key=value` (every selected model with that key) or
    /// `model.key=value`; repeatable. E.g. --set als.factors=128 --set epochs=50.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(crate) set: Vec<String>,
    /// Model hyperparameters from a TOML file (`[als] factors = 128`; see config/models.toml).
    /// --set wins over the file.
    #[arg(long, value_name = "FILE")]
    pub(crate) model_config: Option<PathBuf>,
    /// Wall-time budget for each sequence model's training, in seconds: training stops
    /// inside an epoch when one more step and a validation would overrun it, and keeps its
    /// best epoch; also the --seq-feature model's.
    #[arg(long, value_name = "SECONDS")]
    pub(crate) time_budget: Option<f64>,
    #[arg(long, value_name = "MODEL", help = seq_feature_help())]
    pub(crate) seq_feature: Option<String>,
}

#[derive(Args, Debug)]
pub(crate) struct ModelArgs {
    #[arg(
        long,
        help = models_help(),
        default_value = "pop,itemknn,ease,bpr,als,repeat",
        value_delimiter = ','
    )]
    pub(crate) models: Vec<String>,
    #[command(flatten)]
    pub(crate) h: HyperArgs,
    /// Force masking of seen items on or off for every model (default: per model).
    #[arg(long, value_name = "on|off")]
    pub(crate) masking: Option<String>,
    #[arg(long, value_name = "MODEL|none", default_value = "sasrec", help = two_stage_seq_help())]
    pub(crate) two_stage_seq: String,
    /// Print the report JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// Folder for bench.json, leaderboard.md and leaderboard.svg.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Run every model in this process (default: each in a child process of its own, so
    /// that each row's peak_rss_mb is that model's alone).
    #[arg(long)]
    pub(crate) in_process: bool,
    /// Internal: run only this part of the plan and print it as JSON (what each child
    /// process of a run does).
    #[arg(long, hide = true)]
    pub(crate) part: Option<usize>,
}

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Dataset preset (its defaults are the dataset's documented protocol).
    #[arg(long, conflicts_with = "config", required_unless_present_any = ["config", "store"])]
    pub(crate) preset: Option<String>,
    /// Dataset config TOML instead of a preset.
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Events file to ingest (not needed when --store already holds the data set).
    #[arg(long)]
    pub(crate) input: Option<PathBuf>,
    /// Store to use; reused when it already holds this data set (default bench-out/NAME/store).
    #[arg(long)]
    pub(crate) store: Option<String>,
    #[command(flatten)]
    pub(crate) m: ModelArgs,
}

#[derive(Args, Debug)]
pub(crate) struct EvaluateArgs {
    /// Store directory or URL (sqlite:///path/aisle.db).
    #[arg(long)]
    pub(crate) store: String,
    #[command(flatten)]
    pub(crate) m: ModelArgs,
}

#[derive(Args, Debug)]
pub(crate) struct TrainArgs {
    /// Store directory or URL (sqlite:///path/aisle.db).
    #[arg(long)]
    pub(crate) store: String,
    #[arg(long, help = train_model_help())]
    pub(crate) model: String,
    /// Purchase models: labelled samples `user,item,ts,label` (CSV with that header; ts in
    /// Unix seconds; label 0/1/true/false) instead of the views derived from the store.
    /// Rows that do not fit are counted and written to FILE.quarantine.jsonl.
    #[arg(long, value_name = "FILE")]
    pub(crate) samples: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) h: HyperArgs,
    /// Promote the new version for serving (see `aisle models`).
    #[arg(long, conflicts_with = "promote_if_better")]
    pub(crate) promote: bool,
    /// Evaluate the new version and the promoted one on the newest hold-out
    /// (each user's last item, full ranking, NDCG@10) and promote the new one
    /// only if it is not worse (any served kind). What the server's retraining
    /// scheduler runs.
    #[arg(long)]
    pub(crate) promote_if_better: bool,
    /// Artifact path (default STORE/models/MODEL-UNIXTIME.safetensors).
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub(crate) struct DemoArgs {
    /// Folder for the demo shop's files and store.
    #[arg(long, default_value = "demo-shop")]
    pub(crate) dir: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    #[arg(long, default_value_t = 2000)]
    pub(crate) users: usize,
    #[arg(long, default_value_t = 1200)]
    pub(crate) items: usize,
    /// Seconds of SASRec training for the served model (0: serve popularity only).
    #[arg(long, default_value_t = 60.0)]
    pub(crate) train_seconds: f64,
    /// Where the demo server listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) addr: std::net::SocketAddr,
    /// Share of recommendation lists drawn at random from the model's top 50 (propensities
    /// logged), so `aisle ope` can estimate other models' CTR from the demo's logs.
    #[arg(long, default_value_t = 0.05)]
    pub(crate) explore: f64,
    /// Stop after preparing the shop (do not start the server).
    #[arg(long)]
    pub(crate) no_serve: bool,
}

#[derive(Args, Debug)]
pub(crate) struct DemoDataArgs {
    /// Output folder (created).
    #[arg(long)]
    pub(crate) out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub(crate) seed: u64,
    #[arg(long, default_value_t = 2000)]
    pub(crate) users: usize,
    #[arg(long, default_value_t = 1200)]
    pub(crate) items: usize,
    /// Simulated period in days.
    #[arg(long, default_value_t = 90)]
    pub(crate) days: u32,
}

#[derive(Args, Debug)]
pub(crate) struct IngestArgs {
    /// A built-in dataset preset (see `aisle presets`).
    #[arg(long, conflicts_with = "config", required_unless_present = "config")]
    pub(crate) preset: Option<String>,
    /// A dataset config TOML file (unknown keys are errors).
    #[arg(long)]
    pub(crate) config: Option<PathBuf>,
    /// Events file: CSV, TSV, JSONL or sequence lines, plain or gzip.
    #[arg(long)]
    pub(crate) input: PathBuf,
    /// Catalog file (CSV/TSV with a header).
    #[arg(long)]
    pub(crate) catalog: Option<PathBuf>,
    /// Store directory or URL (sqlite:///path/aisle.db).
    #[arg(long, required_unless_present = "dry_run")]
    pub(crate) store: Option<String>,
    /// Write the data-quality report as JSON to this file.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
    /// Print the report JSON on stdout instead of the readable summary.
    #[arg(long)]
    pub(crate) json: bool,
    /// Quarantine the 2nd and later copies of identical rows.
    #[arg(long)]
    pub(crate) dedupe: bool,
    /// Quarantine fee/postage/adjustment codes (the preset's non-product list).
    #[arg(long)]
    pub(crate) drop_non_products: bool,
    /// Quarantine users with more than N events in any minute (bots).
    #[arg(long, value_name = "N")]
    pub(crate) bot_cap: Option<u32>,
    /// Keep only users and items with at least K events (iterated).
    #[arg(long, value_name = "K")]
    pub(crate) kcore: Option<u32>,
    /// Quarantine repeats of a user's previous event (same item and type) within S seconds.
    #[arg(long, value_name = "S")]
    pub(crate) consecutive_window: Option<i64>,
    /// Validate and report only: nothing is written to the store.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

#[derive(Args, Debug)]
pub(crate) struct AppendArgs {
    /// Store directory or URL (sqlite:///path/aisle.db).
    #[arg(long)]
    pub(crate) store: String,
    /// Events per durable commit.
    #[arg(long, default_value_t = 100)]
    pub(crate) batch: usize,
}

#[derive(Args, Debug)]
pub(crate) struct LinkArgs {
    /// Store directory or URL (sqlite:///path/aisle.db, postgres://…).
    #[arg(long)]
    pub(crate) store: String,
    /// The links: one `user,alias` per line (comma or tab; optional header `user_id,alias`; gzip ok).
    #[arg(long)]
    pub(crate) input: std::path::PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct StatsArgs {
    /// Store directory or URL (sqlite:///path/aisle.db).
    #[arg(long)]
    pub(crate) store: String,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
pub(crate) enum SplitProtocol {
    /// Leave-one-out: last item test, second-to-last validation.
    Loo,
    /// Global temporal: interactions at or after a time cutoff are test.
    Temporal,
}

#[derive(Args, Debug)]
pub(crate) struct SplitArgs {
    /// Store directory or URL (sqlite:///path/aisle.db).
    #[arg(long)]
    pub(crate) store: String,
    #[arg(long, value_enum)]
    pub(crate) protocol: SplitProtocol,
    /// Output folder (created).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Temporal split: share of interactions (by time) in the test part.
    #[arg(long, default_value_t = 0.1)]
    pub(crate) test_fraction: f64,
}

#[derive(Args, Debug)]
pub(crate) struct PresetsArgs {
    /// Print this preset's TOML.
    #[arg(long, conflicts_with = "reference")]
    pub(crate) show: Option<String>,
    /// Print every dataset-config key with its type, allowed values and default, as an
    /// annotated TOML (itself a valid config).
    #[arg(long)]
    pub(crate) reference: bool,
}

// Help texts that list model names take them from the one registry
// (aisle_train::kind), so a new kind appears in every list at once.

fn seq_names() -> String {
    names_where(|k| matches!(k, Kind::Sequence(_)))
}

fn models_help() -> String {
    format!(
        "Comma-separated models: {} (ranking); {} (purchase probability)",
        names_where(|k| !matches!(k, Kind::Purchase(_))),
        names_where(|k| matches!(k, Kind::Purchase(_)))
    )
}

fn train_model_help() -> String {
    format!("Model name: {}", names_where(|k| k != Kind::TwoStage))
}

fn retrain_model_help() -> String {
    format!(
        "Model the retraining scheduler trains (any served kind: {}; --retrain-budget bounds the sequence models). Without it, POST /v1/admin/jobs answers 409 and nothing retrains",
        names_where(Kind::served)
    )
}

fn two_stage_seq_help() -> String {
    format!(
        "The sequence model ({}; trained on the train part under --time-budget) that is a candidate source of `two-stage`; `none` for the classical sources alone",
        seq_names()
    )
}

fn seq_feature_help() -> String {
    format!(
        "Purchase models: add the `seq_score` feature from this sequence model ({}), trained on the events before the median training row's moment (earlier rows have it missing; `train` saves it beside the artifact as NAME.seq.safetensors, which the server loads); --time-budget and `--set MODEL.key=v` apply to it",
        seq_names()
    )
}
