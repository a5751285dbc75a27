//! Keyword retrieval: a tantivy index over the catalog (BM25 with field
//! boosts), queried with a boolean query built from our own analysis of the
//! query text (so a Chinese word segmented into several tokens is an OR of
//! its tokens, not a phrase), fuzzy terms for words of 5+ letters, a prefix
//! term for the last word, filters and category facets.

use std::collections::HashSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aisle_core::CatalogItem;
use tantivy::collector::TopDocs;
use tantivy::query::{
    BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{
    Facet, FacetOptions, Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing,
    TextOptions, Value, STORED, STRING,
};
use tantivy::{
    Index, IndexReader, IndexSettings, IndexWriter, ReloadPolicy, TantivyDocument, Term,
};

use crate::collect::{Matches, MetaCache};
use crate::tokenize::{analyzer, query_words, QueryWord, ANALYZER};
use crate::{Result, SearchError};

/// Field boosts: a word in the title counts 3x one in the description.
pub const BOOST_TITLE: f32 = 3.0;
pub const BOOST_CATEGORY: f32 = 2.0;
pub const BOOST_DESCRIPTION: f32 = 1.0;
/// Fuzzy (edit distance 1) and prefix matches score below exact ones.
pub const BOOST_FUZZY: f32 = 0.5;
pub const BOOST_PREFIX: f32 = 0.3;
/// Words of at least this many characters also match with one typo.
pub const FUZZY_MIN_CHARS: usize = 5;
/// A word found as it is in at least this many titles is not also looked up
/// with a typo (the typo-tolerance threshold of Typesense and others: a
/// correctly spelt common word gains only near-miss noise from its
/// neighbours, "metal" -> "medal", and costs a second pass over its postings).
pub const FUZZY_MAX_TITLE_DOCS: u64 = 100;
/// Query words beyond this are ignored (a 10 kB query stays cheap).
pub const MAX_QUERY_WORDS: usize = 32;

/// Filters every result must pass.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    pub category: Option<String>,
    pub price_min: Option<f64>,
    pub price_max: Option<f64>,
    /// Only items in stock (serving sets it; evaluation may not).
    pub in_stock_only: bool,
}

/// One keyword hit and why it matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub item_id: String,
    pub title: String,
    pub score: f32,
    /// Query words found in the item's title, category or description.
    pub matched: Vec<String>,
    /// Query words matched only approximately (typo or prefix).
    pub approximate: Vec<String>,
}

/// One keyword candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub item_id: String,
    /// BM25 with field boosts.
    pub score: f32,
}

#[derive(Default)]
pub struct KeywordResults {
    /// Best first.
    pub candidates: Vec<Candidate>,
    /// Items matching the query and filters.
    pub total: usize,
    /// Matching items per category, most first (empty without facets).
    pub facets: Vec<(String, u64)>,
    /// The query as analyzed (indexed forms).
    pub words: Vec<String>,
    query_words: Vec<QueryWord>,
    found: Option<Found>,
}

/// The index snapshot the candidates came from, to explain them.
struct Found {
    searcher: tantivy::Searcher,
    addrs: Vec<tantivy::DocAddress>,
    f: Fields,
}

impl std::fmt::Debug for KeywordResults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeywordResults")
            .field("candidates", &self.candidates)
            .field("total", &self.total)
            .field("facets", &self.facets)
            .field("words", &self.words)
            .finish()
    }
}

impl KeywordResults {
    /// Candidate `i` with its title and the query words it matched exactly
    /// or only approximately (typo, prefix).
    pub fn explain(&self, i: usize) -> Result<Hit> {
        let c = &self.candidates[i];
        let Some(found) = &self.found else {
            return Ok(Hit {
                item_id: c.item_id.clone(),
                title: String::new(),
                score: c.score,
                matched: Vec::new(),
                approximate: Vec::new(),
            });
        };
        let doc: TantivyDocument = found.searcher.doc(found.addrs[i])?;
        let get = |field: Field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or("");
        let title = get(found.f.title).to_string();
        let terms = |text: &str| -> HashSet<String> {
            query_words(&mut analyzer(), text, usize::MAX)
                .into_iter()
                .map(|w| w.term)
                .collect()
        };
        // The title first (typo and prefix alternatives search only the
        // title); category and description only for words it lacks.
        let in_title = terms(&title);
        let mut rest: Option<HashSet<String>> = None;
        let last = self.query_words.len().saturating_sub(1);
        let mut matched = Vec::new();
        let mut approximate = Vec::new();
        for (n, w) in self.query_words.iter().enumerate() {
            let exact = in_title.contains(&w.term)
                || rest
                    .get_or_insert_with(|| {
                        terms(&format!(
                            "{} {}",
                            get(found.f.category),
                            get(found.f.description)
                        ))
                    })
                    .contains(&w.term);
            if exact {
                matched.push(w.original.clone());
                continue;
            }
            // Approximate: one edit away (words of FUZZY_MIN_CHARS+), or the
            // last word as a prefix; words that matched nothing are left out.
            let chars = w.original.chars().count();
            if in_title.iter().any(|t| {
                (chars >= FUZZY_MIN_CHARS && within_one_edit(&w.term, t))
                    || (n == last && chars >= 3 && t.starts_with(&w.term))
            }) {
                approximate.push(w.original.clone());
            }
        }
        Ok(Hit {
            item_id: c.item_id.clone(),
            title,
            score: c.score,
            matched,
            approximate,
        })
    }

    /// Every candidate explained (tests, small lists).
    pub fn hits(&self) -> Result<Vec<Hit>> {
        (0..self.candidates.len())
            .map(|i| self.explain(i))
            .collect()
    }
}

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    /// Hash of the id as a u64 fast field: candidates resolve to ids
    /// through a map, without reading stored documents.
    key: Field,
    title: Field,
    description: Field,
    category_text: Field,
    category: Field,
    category_facet: Field,
    price: Field,
    in_stock: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = |stored: bool| {
        let o = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(ANALYZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        if stored {
            o.set_stored()
        } else {
            o
        }
    };
    let f = Fields {
        id: b.add_text_field("id", STRING | STORED),
        key: b.add_u64_field("key", NumericOptions::default().set_fast()),
        title: b.add_text_field("title", text(true)),
        description: b.add_text_field("description", text(true)),
        category_text: b.add_text_field("category_text", text(false)),
        category: b.add_text_field("category", STRING | STORED),
        category_facet: b.add_facet_field(FACET_FIELD, FacetOptions::default()),
        price: b.add_f64_field(
            "price",
            NumericOptions::default()
                .set_indexed()
                .set_fast()
                .set_stored(),
        ),
        in_stock: b.add_bool_field("in_stock", NumericOptions::default().set_indexed()),
    };
    (b.build(), f)
}

/// Stored documents (title, description, id and category, ~150 bytes an
/// item) are kept uncompressed in 2 kB blocks: explaining a result reads
/// (copies) its block, which took decompressing 16 kB with tantivy's
/// default (lz4, 16 kB blocks): a twentieth of the keyword step on the 100k
/// demo. The store grows from ~6 to ~15 MB there.
fn settings() -> IndexSettings {
    IndexSettings {
        docstore_compression: tantivy::store::Compressor::None,
        docstore_blocksize: 2048,
        ..IndexSettings::default()
    }
}

/// Order-independent fingerprint of a catalog (XOR of item hashes), so an
/// on-disk index is reused only for the catalog it was built from and
/// incremental updates keep it current.
fn id_key(id: &str) -> u64 {
    aisle_core::hash::hash_fields([b"id".as_slice(), id.as_bytes()])
}

fn item_hash(c: &CatalogItem) -> u64 {
    aisle_core::hash::hash_fields([
        c.id.as_bytes(),
        c.title.as_deref().unwrap_or("").as_bytes(),
        c.description.as_deref().unwrap_or("").as_bytes(),
        c.category.as_deref().unwrap_or("").as_bytes(),
        &c.price.unwrap_or(f64::NAN).to_le_bytes(),
        &[u8::from(c.in_stock)],
        b"v1",
    ])
}

/// The category facet field's name.
const FACET_FIELD: &str = "category_facet";

const FINGERPRINT: &str = "aisle-catalog.fingerprint";

/// The keyword index of one catalog.
pub struct KeywordIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    f: Fields,
    /// Catalog fingerprint and the hash of each indexed item.
    state: Mutex<(u64, std::collections::HashMap<String, u64>)>,
    /// Id of each key (see `Fields::key`).
    ids: std::sync::RwLock<std::collections::HashMap<u64, String>>,
    /// Category and stock flag of every document, per segment.
    meta: MetaCache,
    dir: Option<PathBuf>,
}

impl KeywordIndex {
    /// An in-memory index of `items`.
    pub fn in_ram(items: &[CatalogItem]) -> Result<KeywordIndex> {
        let (schema, f) = schema();
        let index = Index::builder()
            .schema(schema)
            .settings(settings())
            .create_in_ram()?;
        let k = KeywordIndex::wrap(index, f, None)?;
        k.rebuild(items)?;
        Ok(k)
    }

    /// The index in `dir` if it was built from exactly `items`, else a new
    /// one built there.
    pub fn open(dir: &Path, items: &[CatalogItem]) -> Result<KeywordIndex> {
        let want = items.iter().fold(0u64, |a, c| a ^ item_hash(c));
        let have = std::fs::read_to_string(dir.join(FINGERPRINT))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        let (schema, f) = schema();
        if have == Some(want) {
            if let Ok(index) = Index::open_in_dir(dir) {
                if index.schema() == schema {
                    let k = KeywordIndex::wrap(index, f, Some(dir.to_path_buf()))?;
                    let mut st = k.lock_state();
                    st.0 = want;
                    st.1 = items.iter().map(|c| (c.id.clone(), item_hash(c))).collect();
                    drop(st);
                    k.set_ids(items.iter().map(|c| c.id.clone()), true);
                    tracing::debug!(dir = %dir.display(), docs = k.len(), "keyword index reused");
                    return Ok(k);
                }
            }
        }
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
        }
        std::fs::create_dir_all(dir).map_err(|e| SearchError::io(dir, e))?;
        let index = Index::builder()
            .schema(schema)
            .settings(settings())
            .create_in_dir(dir)?;
        let k = KeywordIndex::wrap(index, f, Some(dir.to_path_buf()))?;
        k.rebuild(items)?;
        Ok(k)
    }

    fn wrap(index: Index, f: Fields, dir: Option<PathBuf>) -> Result<KeywordIndex> {
        index.tokenizers().register(ANALYZER, analyzer());
        let writer = index.writer_with_num_threads(1, 30_000_000)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(KeywordIndex {
            reader,
            writer: Mutex::new(writer),
            f,
            state: Mutex::new((0, Default::default())),
            ids: Default::default(),
            meta: MetaCache::default(),
            dir,
        })
    }

    fn set_ids(&self, ids: impl Iterator<Item = String>, clear: bool) {
        let mut m = self.ids.write().unwrap_or_else(|e| e.into_inner());
        if clear {
            m.clear();
        }
        for id in ids {
            m.insert(id_key(&id), id);
        }
    }

    fn lock_state(
        &self,
    ) -> std::sync::MutexGuard<'_, (u64, std::collections::HashMap<String, u64>)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn document(&self, c: &CatalogItem) -> TantivyDocument {
        let f = &self.f;
        let mut d = TantivyDocument::default();
        d.add_text(f.id, &c.id);
        d.add_u64(f.key, id_key(&c.id));
        d.add_text(f.title, c.title.as_deref().unwrap_or(""));
        if let Some(x) = &c.description {
            d.add_text(f.description, x);
        }
        if let Some(x) = &c.category {
            d.add_text(f.category_text, x);
            d.add_text(f.category, x);
            d.add_facet(f.category_facet, Facet::from_path([x.as_str()]));
        }
        if let Some(p) = c.price.filter(|p| p.is_finite()) {
            d.add_f64(f.price, p);
        }
        d.add_bool(f.in_stock, c.in_stock);
        d
    }

    /// Replaces everything with `items`.
    pub fn rebuild(&self, items: &[CatalogItem]) -> Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.delete_all_documents()?;
        for c in items {
            w.add_document(self.document(c))?;
        }
        w.commit()?;
        drop(w);
        self.set_ids(items.iter().map(|c| c.id.clone()), true);
        let mut st = self.lock_state();
        st.1 = items.iter().map(|c| (c.id.clone(), item_hash(c))).collect();
        st.0 = st.1.values().fold(0, |a, h| a ^ h);
        let fp = st.0;
        drop(st);
        self.finish(fp)
    }

    /// Adds or replaces items (one commit for the batch).
    pub fn upsert(&self, items: &[CatalogItem]) -> Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        for c in items {
            w.delete_term(Term::from_field_text(self.f.id, &c.id));
            w.add_document(self.document(c))?;
        }
        w.commit()?;
        drop(w);
        self.set_ids(items.iter().map(|c| c.id.clone()), false);
        let mut st = self.lock_state();
        for c in items {
            let h = item_hash(c);
            if let Some(old) = st.1.insert(c.id.clone(), h) {
                st.0 ^= old;
            }
            st.0 ^= h;
        }
        let fp = st.0;
        drop(st);
        self.finish(fp)
    }

    /// Removes an item (no-op if absent).
    pub fn delete(&self, id: &str) -> Result<()> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        w.delete_term(Term::from_field_text(self.f.id, id));
        w.commit()?;
        drop(w);
        let mut st = self.lock_state();
        if let Some(old) = st.1.remove(id) {
            st.0 ^= old;
        }
        let fp = st.0;
        drop(st);
        self.finish(fp)
    }

    fn finish(&self, fingerprint: u64) -> Result<()> {
        self.reader.reload()?;
        self.meta.retain(&self.reader.searcher());
        if let Some(d) = &self.dir {
            let p = d.join(FINGERPRINT);
            std::fs::write(&p, fingerprint.to_string()).map_err(|e| SearchError::io(&p, e))?;
        }
        Ok(())
    }

    /// Documents in the index.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The analyzed words of a query.
    pub fn words(&self, text: &str) -> Vec<QueryWord> {
        query_words(&mut analyzer(), text, MAX_QUERY_WORDS)
    }

    fn text_query(
        &self,
        words: &[QueryWord],
        searcher: &tantivy::Searcher,
    ) -> Option<Box<dyn Query>> {
        let f = &self.f;
        // One flat disjunction of every (word, field) term and every typo or
        // prefix alternative: the sum of the scores of what matched, as a
        // nested per-word disjunction would give, without a second layer of
        // union scorers (and, when there is no typo or prefix alternative,
        // tantivy's term-only union).
        let mut alts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (n, w) in words.iter().enumerate() {
            for (field, boost) in [
                (f.title, BOOST_TITLE),
                (f.category_text, BOOST_CATEGORY),
                (f.description, BOOST_DESCRIPTION),
            ] {
                let t = TermQuery::new(
                    Term::from_field_text(field, &w.term),
                    IndexRecordOption::WithFreqs,
                );
                alts.push((Occur::Should, Box::new(BoostQuery::new(Box::new(t), boost))));
            }
            let chars = w.original.chars().count();
            let common = || {
                searcher
                    .doc_freq(&Term::from_field_text(f.title, &w.term))
                    .is_ok_and(|n| n >= FUZZY_MAX_TITLE_DOCS)
            };
            if chars >= FUZZY_MIN_CHARS && !common() {
                let t = FuzzyTermQuery::new(Term::from_field_text(f.title, &w.term), 1, true);
                alts.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(t), BOOST_FUZZY)),
                ));
            }
            if n + 1 == words.len() && chars >= 3 {
                // The last word may still be being typed.
                let t =
                    FuzzyTermQuery::new_prefix(Term::from_field_text(f.title, &w.term), 0, true);
                alts.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(t), BOOST_PREFIX)),
                ));
            }
        }
        (!alts.is_empty()).then(|| Box::new(BooleanQuery::new(alts)) as Box<dyn Query>)
    }

    fn filter_clauses(&self, filters: &Filters) -> Vec<(Occur, Box<dyn Query>)> {
        let f = &self.f;
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(c) = &filters.category {
            must.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_text(f.category, c),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if filters.price_min.is_some() || filters.price_max.is_some() {
            let b = |v: Option<f64>| match v {
                Some(x) => Bound::Included(Term::from_field_f64(f.price, x)),
                None => Bound::Unbounded,
            };
            must.push((
                Occur::Must,
                Box::new(RangeQuery::new(b(filters.price_min), b(filters.price_max))),
            ));
        }
        // In-stock is not a clause: the collector skips out-of-stock items
        // through a per-segment flag array (a must-not clause seeked an
        // exclusion list at every match; BENCHMARKS §5).
        must
    }

    /// BM25 search: the top `limit` candidates for `text` that pass
    /// `filters` (ids and scores; [`KeywordResults::explain`] says why one
    /// matched), the number of matches and the category facets.
    pub fn search(&self, text: &str, filters: &Filters, limit: usize) -> Result<KeywordResults> {
        self.search_with(text, filters, limit, true)
    }

    /// [`KeywordIndex::search`] without facet counting (evaluation).
    pub fn search_no_facets(
        &self,
        text: &str,
        filters: &Filters,
        limit: usize,
    ) -> Result<KeywordResults> {
        self.search_with(text, filters, limit, false)
    }

    fn search_with(
        &self,
        text: &str,
        filters: &Filters,
        limit: usize,
        with_facets: bool,
    ) -> Result<KeywordResults> {
        let words = self.words(text);
        let searcher = self.reader.searcher();
        let Some(q) = self.text_query(&words, &searcher) else {
            return Ok(KeywordResults::default());
        };
        let mut clauses = self.filter_clauses(filters);
        let query: Box<dyn Query> = if clauses.is_empty() {
            q
        } else {
            clauses.push((Occur::Must, q));
            Box::new(BooleanQuery::new(clauses))
        };
        let collected = searcher.search(
            &query,
            &Matches {
                k: limit.max(1),
                facets: with_facets,
                in_stock_only: filters.in_stock_only,
                facet_field: FACET_FIELD,
                in_stock: self.f.in_stock,
                cache: &self.meta,
            },
        )?;
        let (top, total, mut facets) = (collected.top, collected.count, collected.categories);
        facets.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let ids = self.ids.read().unwrap_or_else(|e| e.into_inner());
        let mut columns = std::collections::HashMap::new();
        let mut candidates = Vec::with_capacity(top.len());
        let mut addrs = Vec::with_capacity(top.len());
        for (score, addr) in top.into_iter().take(limit) {
            let col = match columns.entry(addr.segment_ord) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(
                    searcher
                        .segment_reader(addr.segment_ord)
                        .fast_fields()
                        .u64("key")?,
                ),
            };
            let Some(key) = col.first(addr.doc_id) else {
                continue;
            };
            let Some(id) = ids.get(&key) else { continue };
            candidates.push(Candidate {
                item_id: id.clone(),
                score,
            });
            addrs.push(addr);
        }
        Ok(KeywordResults {
            candidates,
            total,
            facets,
            words: words.iter().map(|w| w.term.clone()).collect(),
            query_words: words,
            found: Some(Found {
                searcher,
                addrs,
                f: self.f,
            }),
        })
    }

    /// Titles that contain every word of `prefix` (the last one as a
    /// prefix), best BM25 first: autocomplete from the catalog.
    pub fn suggest_titles(&self, prefix: &str, k: usize) -> Result<Vec<String>> {
        let words = self.words(prefix);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let f = &self.f;
        let mut must: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (n, w) in words.iter().enumerate() {
            let term = Term::from_field_text(f.title, &w.term);
            let q: Box<dyn Query> = if n + 1 == words.len() {
                Box::new(FuzzyTermQuery::new_prefix(term, 0, true))
            } else {
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs))
            };
            must.push((Occur::Must, q));
        }
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &BooleanQuery::new(must),
            &TopDocs::with_limit(k.max(1) * 3).order_by_score(),
        )?;
        let mut out: Vec<String> = Vec::new();
        for (_, addr) in top {
            let doc: TantivyDocument = searcher.doc(addr)?;
            if let Some(t) = doc.get_first(f.title).and_then(|v| v.as_str()) {
                if !t.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(t)) {
                    out.push(t.to_string());
                }
            }
            if out.len() >= k {
                break;
            }
        }
        Ok(out)
    }
}

/// Whether `a` and `b` are at most one edit apart (insert, delete,
/// substitute, or swap of neighbours), by characters.
fn within_one_edit(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a == b {
        return true;
    }
    let (la, lb) = (a.len(), b.len());
    if la.abs_diff(lb) > 1 {
        return false;
    }
    let p = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if la == lb {
        // substitution, or transposition of p and p + 1
        a[p + 1..] == b[p + 1..]
            || (p + 1 < la && a[p] == b[p + 1] && a[p + 1] == b[p] && a[p + 2..] == b[p + 2..])
    } else if la > lb {
        a[p + 1..] == b[p..]
    } else {
        a[p..] == b[p + 1..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::{Count, FacetCollector};
    use tantivy::DocAddress;

    /// The one-pass collector returns what tantivy's own collectors return
    /// for the same query with the in-stock filter as a must-not clause:
    /// the same top `k` (ties included: titles share words, so many
    /// documents score alike), match count and category counts, across
    /// segments and after deletes.
    #[test]
    fn one_pass_collector_matches_tantivys_collectors() {
        let vocab = ["red", "tea", "light", "holder", "candle", "mug", "metal"];
        let mut rng = aisle_core::rng::Rng::seed(7);
        let item = |i: usize, rng: &mut aisle_core::rng::Rng| {
            let words: Vec<&str> = (0..1 + rng.below(3)).map(|_| *rng.pick(&vocab)).collect();
            CatalogItem {
                id: format!("i{i}"),
                title: Some(words.join(" ")),
                description: (rng.below(2) == 0).then(|| format!("a {}", rng.pick(&vocab))),
                category: (rng.below(5) != 0).then(|| format!("c{}", rng.below(6))),
                price: Some(1.0 + rng.below(50) as f64),
                in_stock: rng.below(10) != 0,
            }
        };
        let items: Vec<CatalogItem> = (0..1500).map(|i| item(i, &mut rng)).collect();
        let k = KeywordIndex::in_ram(&items).unwrap();
        // More segments: updates in two commits, one of them replacing items.
        let more: Vec<CatalogItem> = (1200..1900).map(|i| item(i, &mut rng)).collect();
        k.upsert(&more[..350]).unwrap();
        k.upsert(&more[350..]).unwrap();
        k.delete("i3").unwrap();
        assert!(k.reader.searcher().segment_readers().len() >= 2);
        for q in ["red", "tea light", "red metal mug", "holdr", "cand", "zzz"] {
            for in_stock_only in [false, true] {
                for limit in [1, 3, 10, 100, 5000] {
                    let filters = Filters {
                        in_stock_only,
                        ..Filters::default()
                    };
                    let ours = k.search(q, &filters, limit).unwrap();
                    let searcher = k.reader.searcher();
                    let words = k.words(q);
                    let Some(text) = k.text_query(&words, &searcher) else {
                        assert!(ours.candidates.is_empty());
                        continue;
                    };
                    let mut clauses = vec![(Occur::Must, text)];
                    if in_stock_only {
                        clauses.push((
                            Occur::MustNot,
                            Box::new(TermQuery::new(
                                Term::from_field_bool(k.f.in_stock, false),
                                IndexRecordOption::Basic,
                            )) as Box<dyn Query>,
                        ));
                    }
                    let mut fc = FacetCollector::for_field(FACET_FIELD);
                    fc.add_facet(Facet::root());
                    let (top, total, counts) = searcher
                        .search(
                            &BooleanQuery::new(clauses),
                            &(TopDocs::with_limit(limit).order_by_score(), Count, fc),
                        )
                        .unwrap();
                    let want: Vec<(f32, DocAddress)> = top;
                    let got: Vec<(f32, DocAddress)> = ours
                        .found
                        .as_ref()
                        .unwrap()
                        .addrs
                        .iter()
                        .zip(&ours.candidates)
                        .map(|(a, c)| (c.score, *a))
                        .collect();
                    assert_eq!(got, want, "{q:?} in_stock_only={in_stock_only} k={limit}");
                    assert_eq!(ours.total, total, "{q:?}");
                    let mut facets: Vec<(String, u64)> = counts
                        .get(Facet::root())
                        .map(|(f, n)| (f.to_path()[0].to_string(), n))
                        .collect();
                    facets.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                    assert_eq!(ours.facets, facets, "{q:?}");
                }
            }
        }
    }
}
