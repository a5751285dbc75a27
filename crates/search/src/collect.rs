//! One pass over the matches of a keyword query that keeps the top `k` by
//! score, counts the matches and their categories, and drops out-of-stock
//! items: what tantivy's `TopDocs`, `Count`, `FacetCollector` and a
//! must-not clause did as four layers. Per segment, each document's
//! category and stock flag are read once into plain arrays (cached by
//! segment id; segments are immutable), so a match costs two array reads
//! instead of a column lookup through the facet dictionary and a seek in
//! an exclusion list (BENCHMARKS §5).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::index::SegmentId;
use tantivy::schema::{Facet, Field, IndexRecordOption};
use tantivy::{DocAddress, DocId, DocSet, Score, SegmentOrdinal, SegmentReader, Term};

/// No category.
const NONE: u32 = u32::MAX;

/// What one segment's documents are, for collection.
pub(crate) struct SegmentMeta {
    /// Category number of each document (into `names`), or `NONE`.
    category: Vec<u32>,
    names: Vec<String>,
    /// Whether each document is marked out of stock.
    out_of_stock: Vec<bool>,
}

impl SegmentMeta {
    fn read(
        reader: &SegmentReader,
        facet_field: &str,
        in_stock: Field,
    ) -> tantivy::Result<SegmentMeta> {
        let n = reader.max_doc() as usize;
        let facets = reader.facet_reader(facet_field)?;
        let mut names = Vec::with_capacity(facets.num_facets());
        let mut facet = Facet::root();
        for ord in 0..facets.num_facets() as u64 {
            facets.facet_from_ord(ord, &mut facet)?;
            let path = facet.to_path();
            names.push(path.last().map_or(String::new(), |s| s.to_string()));
        }
        let mut category = vec![NONE; n];
        for (doc, c) in category.iter_mut().enumerate() {
            if let Some(ord) = facets.facet_ords(doc as DocId).next() {
                *c = ord as u32;
            }
        }
        let mut out_of_stock = vec![false; n];
        let inverted = reader.inverted_index(in_stock)?;
        if let Some(mut p) = inverted.read_postings(
            &Term::from_field_bool(in_stock, false),
            IndexRecordOption::Basic,
        )? {
            let mut doc = p.doc();
            while doc != tantivy::TERMINATED {
                out_of_stock[doc as usize] = true;
                doc = p.advance();
            }
        }
        Ok(SegmentMeta {
            category,
            names,
            out_of_stock,
        })
    }
}

/// Segment metadata by segment id, kept for the segments still searched.
#[derive(Default)]
pub(crate) struct MetaCache {
    by_segment: RwLock<HashMap<SegmentId, Arc<SegmentMeta>>>,
}

impl MetaCache {
    fn get(
        &self,
        reader: &SegmentReader,
        facet_field: &str,
        in_stock: Field,
    ) -> tantivy::Result<Arc<SegmentMeta>> {
        let id = reader.segment_id();
        if let Some(m) = self
            .by_segment
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return Ok(m.clone());
        }
        let m = Arc::new(SegmentMeta::read(reader, facet_field, in_stock)?);
        self.by_segment
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, m.clone());
        Ok(m)
    }

    /// Forgets segments no longer in `searcher` (merged away).
    pub(crate) fn retain(&self, searcher: &tantivy::Searcher) {
        let live: std::collections::HashSet<SegmentId> = searcher
            .segment_readers()
            .iter()
            .map(|r| r.segment_id())
            .collect();
        self.by_segment
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|id, _| live.contains(id));
    }
}

/// The collector: top `k`, match count, category counts (when `facets`),
/// out-of-stock items skipped (when `in_stock_only`).
pub(crate) struct Matches<'a> {
    pub k: usize,
    pub facets: bool,
    pub in_stock_only: bool,
    pub facet_field: &'a str,
    pub in_stock: Field,
    pub cache: &'a MetaCache,
}

/// Higher score first, then lower document (tantivy's order for ties).
fn best_first<D: Ord>(a: &(Score, D), b: &(Score, D)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

pub(crate) struct SegmentMatches {
    k: usize,
    facets: bool,
    in_stock_only: bool,
    segment: SegmentOrdinal,
    meta: Arc<SegmentMeta>,
    /// Candidates for the `k` best, up to `2k` of them: when full, the
    /// best `k` are kept (a linear-time selection) and the `k`-th score
    /// becomes the bar a later document must pass (tantivy's TopNComputer;
    /// a heap costs a sift at every better document).
    top: Vec<(Score, DocId)>,
    /// A document must score above this to enter `top`.
    bar: Score,
    count: usize,
    per_category: Vec<u64>,
}

/// What one search collected.
#[derive(Default)]
pub(crate) struct Collected {
    /// Best first.
    pub top: Vec<(Score, DocAddress)>,
    pub count: usize,
    /// Category name and matches, in no particular order.
    pub categories: Vec<(String, u64)>,
}

impl Collector for Matches<'_> {
    type Fruit = Collected;
    type Child = SegmentMatches;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentMatches> {
        let meta = self.cache.get(reader, self.facet_field, self.in_stock)?;
        Ok(SegmentMatches {
            k: self.k,
            facets: self.facets,
            in_stock_only: self.in_stock_only,
            segment,
            per_category: vec![0; if self.facets { meta.names.len() } else { 0 }],
            meta,
            top: Vec::with_capacity(2 * self.k),
            bar: Score::NEG_INFINITY,
            count: 0,
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, parts: Vec<Collected>) -> tantivy::Result<Collected> {
        let mut out = Collected::default();
        let mut by_name: HashMap<String, u64> = HashMap::new();
        for p in parts {
            out.count += p.count;
            out.top.extend(p.top);
            for (name, n) in p.categories {
                *by_name.entry(name).or_default() += n;
            }
        }
        out.top.sort_by(best_first);
        out.top.truncate(self.k);
        out.categories = by_name.into_iter().collect();
        Ok(out)
    }
}

impl SegmentMatches {
    /// Keeps the best `k` of `top` (when it holds more) and raises the bar
    /// to the `k`-th score.
    fn keep_best(&mut self) {
        if self.top.len() <= self.k {
            return;
        }
        self.top.select_nth_unstable_by(self.k - 1, best_first);
        self.top.truncate(self.k);
        self.bar = self.top[self.k - 1].0;
    }
}

impl SegmentCollector for SegmentMatches {
    type Fruit = Collected;

    #[inline]
    fn collect(&mut self, doc: DocId, score: Score) {
        let d = doc as usize;
        if self.in_stock_only && self.meta.out_of_stock[d] {
            return;
        }
        self.count += 1;
        if self.facets {
            let c = self.meta.category[d];
            if c != NONE {
                self.per_category[c as usize] += 1;
            }
        }
        // Documents come in increasing order, so on a tie with the bar the
        // new one loses (tantivy's order: lower address first).
        if score > self.bar {
            if self.top.len() == 2 * self.k {
                self.keep_best();
                if score <= self.bar {
                    return;
                }
            }
            self.top.push((score, doc));
        }
    }

    fn harvest(mut self) -> Collected {
        self.keep_best();
        let segment = self.segment;
        let mut top: Vec<(Score, DocAddress)> = self
            .top
            .iter()
            .map(|&(score, doc)| (score, DocAddress::new(segment, doc)))
            .collect();
        top.sort_by(best_first);
        let categories = self
            .per_category
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| (self.meta.names[c].clone(), *n))
            .collect();
        Collected {
            top,
            count: self.count,
            categories,
        }
    }
}
