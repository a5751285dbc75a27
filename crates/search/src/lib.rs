//! `aisle-search`: product search over the catalog.
//!
//! - [`KeywordIndex`]: tantivy BM25 over title (x3), category (x2) and
//!   description, with our analyzer ([`tokenize`]: words, jieba for Chinese,
//!   lower-case, English stemming), typo-tolerant terms for words of 5+
//!   letters (unless the word itself is in 100+ titles), a prefix term for
//!   the last word, filters (category, price,
//!   in stock), category facets and incremental updates.
//! - [`vector`]: item vectors with exact search ([`ExactIndex`]) or an HNSW
//!   graph ([`AnnIndex`], [`hnsw`]) for large catalogs.
//! - [`fuse`]: reciprocal rank fusion of result lists and the personal
//!   re-ranking of the fused top N.
//! - [`understand`]: what a shopper's query asks for (content words, price
//!   limits, colours, materials, spelling corrections, a class for the
//!   fusion weights, the head word).
//! - [`rerank`]: a linear ranker over features of the fused top candidates,
//!   fitted pairwise on judged queries.

mod collect;
pub mod fuse;
pub mod hnsw;
mod keyword;
pub mod rerank;
pub mod tokenize;
pub mod understand;
pub mod vector;

use std::path::{Path, PathBuf};

pub use keyword::{
    Candidate, Filters, Hit, KeywordIndex, KeywordResults, BOOST_CATEGORY, BOOST_DESCRIPTION,
    BOOST_FUZZY, BOOST_PREFIX, BOOST_TITLE, FUZZY_MAX_TITLE_DOCS, FUZZY_MIN_CHARS, MAX_QUERY_WORDS,
};

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SearchError {
    fn io(path: &Path, source: std::io::Error) -> SearchError {
        SearchError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub use vector::{AnnIndex, ExactIndex, VectorIndex};

/// The text an item is embedded from: title, category, description.
pub fn item_text(c: &aisle_core::CatalogItem) -> String {
    let mut t = c.title.clone().unwrap_or_default();
    for extra in [&c.category, &c.description].into_iter().flatten() {
        if !extra.is_empty() {
            t.push_str(". ");
            t.push_str(extra);
        }
    }
    t
}

/// Hash of [`item_text`] (a stored vector is reused while it matches).
pub fn text_hash(text: &str) -> u64 {
    aisle_core::hash::hash_fields([b"embed-v1".as_slice(), text.as_bytes()])
}

pub type Result<T, E = SearchError> = std::result::Result<T, E>;
