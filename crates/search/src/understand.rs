//! Query understanding: what a shopper's sentence asks for, before
//! retrieval.
//!
//! - **Function and filler words** ("for", "a", "my", "something",
//!   "looking") never match on their own: keyword retrieval searches the
//!   content words only (a query of nothing but such words is searched as
//!   typed). A filler word that forms a catalog phrase with its neighbour
//!   ("keep calm", "gift box") stays.
//! - **Price**: "under 5 pounds", "below £3", "less than 10", "over 20" set a
//!   price limit (a filter) and leave both texts; "cheap" asks for low prices
//!   (a boost).
//! - **Colours and materials** named in the query are reported as intents
//!   (the results that carry them are boosted by the caller).
//! - **Spelling**: a word of 5+ letters that no catalog text holds, and
//!   that is not a word of the language the caller supplied (the sentence
//!   encoder's whole words), is replaced by the closest catalog word (edit distance 1, or 2 for words
//!   of 8+ letters; the more frequent word wins a tie), in both texts.
//! - **A class** (`short`, `sentence`, `corrected`) that the caller maps to
//!   fusion weights.
//!
//! Everything here is English and Latin-script: other words pass through
//! unchanged (Chinese queries keep their words).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

/// Words that carry no product meaning in a query.
pub const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "anything",
    "are",
    "as",
    "at",
    "be",
    "been",
    "best",
    "buy",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "find",
    "for",
    "from",
    "get",
    "gift",
    "gifts",
    "good",
    "got",
    "great",
    "has",
    "have",
    "he",
    "her",
    "here",
    "him",
    "his",
    "how",
    "i",
    "i'm",
    "idea",
    "ideas",
    "if",
    "im",
    "in",
    "into",
    "is",
    "it",
    "it's",
    "its",
    "just",
    "keep",
    "like",
    "likes",
    "looking",
    "lovely",
    "loves",
    "me",
    "my",
    "need",
    "needs",
    "nice",
    "of",
    "on",
    "onto",
    "or",
    "our",
    "please",
    "present",
    "presents",
    "pretty",
    "put",
    "say",
    "says",
    "she",
    "show",
    "so",
    "some",
    "someone",
    "something",
    "somewhere",
    "stuff",
    "that",
    "the",
    "their",
    "them",
    "there",
    "these",
    "they",
    "thing",
    "things",
    "this",
    "those",
    "to",
    "up",
    "us",
    "use",
    "used",
    "very",
    "want",
    "wants",
    "was",
    "we",
    "what",
    "where",
    "which",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "would",
    "you",
    "your",
];

/// Stop words dropped even inside a catalog phrase.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "for", "to", "of", "and", "or", "in", "on", "my",
];

/// Colour words.
pub const COLOURS: &[&str] = &[
    "amber",
    "aqua",
    "beige",
    "black",
    "blue",
    "bronze",
    "brown",
    "cream",
    "gold",
    "golden",
    "green",
    "grey",
    "gray",
    "ivory",
    "lilac",
    "multicolour",
    "navy",
    "orange",
    "pink",
    "purple",
    "red",
    "silver",
    "turquoise",
    "white",
    "yellow",
];

/// Material words.
pub const MATERIALS: &[&str] = &[
    "acrylic",
    "bamboo",
    "brass",
    "ceramic",
    "cotton",
    "crystal",
    "enamel",
    "felt",
    "glass",
    "leather",
    "linen",
    "metal",
    "paper",
    "porcelain",
    "rattan",
    "silk",
    "slate",
    "tin",
    "wicker",
    "wood",
    "wooden",
    "wool",
    "zinc",
];

/// Words that ask for low prices.
const CHEAP: &[&str] = &["cheap", "cheapest", "inexpensive", "budget", "affordable"];

/// The catalog's words (from titles, categories and descriptions, lower
/// case), with how many items hold each, and the word pairs that follow each
/// other in titles: what spelling correction and phrase detection read.
#[derive(Debug, Default, Clone)]
pub struct Vocabulary {
    words: HashMap<String, u32>,
    pairs: HashSet<(String, String)>,
    /// Category names: their words (lower case) → the name as stored.
    categories: HashMap<Vec<String>, String>,
    /// Words of the language (e.g. the sentence encoder's whole words,
    /// shared by every shop): never corrected, though the catalog lacks
    /// them.
    language: Option<std::sync::Arc<HashSet<String>>>,
}

/// Lower-case words of letters and digits (apostrophes kept inside).
fn words_of(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

impl Vocabulary {
    /// Adds an item's texts (title first: its word pairs are phrases).
    pub fn add(&mut self, title: &str, other: &[&str]) {
        let t = words_of(title);
        for pair in t.windows(2) {
            self.pairs.insert((pair[0].clone(), pair[1].clone()));
        }
        let mut seen = HashSet::new();
        for w in t.into_iter().chain(other.iter().flat_map(|o| words_of(o))) {
            if seen.insert(w.clone()) {
                *self.words.entry(w).or_default() += 1;
            }
        }
    }

    /// Adds a category name (a query that names it asks for the category).
    pub fn add_category(&mut self, name: &str) {
        let words = words_of(name);
        if !words.is_empty() && words.len() <= 4 {
            self.categories.insert(words, name.to_string());
        }
    }

    /// Sets the words of the language, which spelling correction leaves
    /// alone ("drying" is not "frying" misspelt because no title says
    /// drying).
    pub fn set_language_words(&mut self, words: std::sync::Arc<HashSet<String>>) {
        self.language = Some(words);
    }

    /// Builds the vocabulary of a catalog.
    pub fn of<'a>(items: impl IntoIterator<Item = &'a aisle_core::CatalogItem>) -> Vocabulary {
        let mut v = Vocabulary::default();
        for c in items {
            if let Some(cat) = &c.category {
                v.add_category(cat);
            }
            let other: Vec<&str> = [&c.category, &c.description]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            v.add(c.title.as_deref().unwrap_or(""), &other);
        }
        v
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Whether the catalog holds `w` (or `w` without a plural ending).
    pub fn knows(&self, w: &str) -> bool {
        self.words.contains_key(w)
            || w.strip_suffix("es")
                .is_some_and(|s| self.words.contains_key(s))
            || w.strip_suffix('s')
                .is_some_and(|s| self.words.contains_key(s))
            || self.words.contains_key(&format!("{w}s"))
    }

    /// The closest catalog word to an unknown word (see the module's rule).
    pub fn correct(&self, w: &str) -> Option<String> {
        let n = w.chars().count();
        if n < 5
            || !w.chars().all(|c| c.is_ascii_alphabetic())
            || self.knows(w)
            || self.language.as_ref().is_some_and(|l| l.contains(w))
        {
            return None;
        }
        let max = if n >= 8 { 2 } else { 1 };
        let mut best: Option<(usize, u32, &str)> = None;
        for (cand, &count) in &self.words {
            let m = cand.chars().count();
            if m.abs_diff(n) > max || m < 4 {
                continue;
            }
            let Some(d) = distance_within(w, cand, max) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((bd, bc, bw)) => {
                    (d, std::cmp::Reverse(count), cand.as_str()) < (bd, std::cmp::Reverse(bc), bw)
                }
            };
            if better {
                best = Some((d, count, cand));
            }
        }
        best.map(|(_, _, w)| w.to_string())
    }

    fn is_phrase(&self, a: &str, b: &str) -> bool {
        self.pairs.contains(&(a.to_string(), b.to_string()))
    }
}

/// Optimal string alignment distance (a transposition counts one), if at
/// most `max`.
pub fn distance_within(a: &str, b: &str, max: usize) -> Option<usize> {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (j, cell) in d.iter_mut().take(w).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        d[i * w] = i;
        let mut row_min = usize::MAX;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
            row_min = row_min.min(v);
        }
        if row_min > max {
            return None;
        }
    }
    let v = d[a.len() * w + b.len()];
    (v <= max).then_some(v)
}

/// How a query reads, for the choice of fusion weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryClass {
    /// One or two content words and nothing else ("lantern", "red apron").
    Short,
    /// A sentence: function or filler words around the content, or four or
    /// more words ("something to hold tea lights").
    Sentence,
    /// A word was corrected ("lanturn").
    Corrected,
}

/// What the query asks for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Intent {
    /// A price limit read from the query ("under 5 pounds": 5).
    pub price_max: Option<f64>,
    pub price_min: Option<f64>,
    /// The query asks for low prices ("cheap").
    pub cheap: bool,
    pub colours: Vec<String>,
    pub materials: Vec<String>,
    /// Catalog categories the query names (as stored).
    pub categories: Vec<String>,
    /// Words left out of keyword retrieval.
    pub ignored: Vec<String>,
    /// Spelling corrections: [typed, corrected].
    pub corrected: Vec<[String; 2]>,
}

/// A query after understanding.
#[derive(Debug, Clone, PartialEq)]
pub struct Understood {
    /// What keyword retrieval searches.
    pub keyword_text: String,
    /// What the sentence encoder reads.
    pub semantic_text: String,
    pub intent: Intent,
    pub class: QueryClass,
    /// The word that names the product asked for, as a guess: the last
    /// word of the first run of content words ("lamp" in "lamp for
    /// candles", "holder" in "white t-light holder"); None when every word
    /// is a function word.
    pub head: Option<String>,
}

fn number(w: &str) -> Option<f64> {
    let w = w
        .trim_start_matches('£')
        .trim_end_matches("gbp")
        .trim_end_matches('£');
    w.parse::<f64>().ok().filter(|x| x.is_finite() && *x >= 0.0)
}

/// Reads a query (see the module's rules).
pub fn understand(q: &str, vocab: &Vocabulary) -> Understood {
    let raw: Vec<String> = q.split_whitespace().map(|w| w.to_lowercase()).collect();
    let mut intent = Intent::default();
    // Price clauses: "under|below|less than|cheaper than|max|up to N [pounds]",
    // "over|above|more than N [pounds]".
    let mut keep = vec![true; raw.len()];
    let mut i = 0;
    while i < raw.len() {
        let w = raw[i].trim_matches(|c: char| c.is_ascii_punctuation() && c != '£');
        let (span, upper) = match w {
            "under" | "below" | "max" | "within" => (1, true),
            "over" | "above" => (1, false),
            "less" | "cheaper" | "lower" if raw.get(i + 1).is_some_and(|n| n == "than") => {
                (2, true)
            }
            "more" | "dearer" if raw.get(i + 1).is_some_and(|n| n == "than") => (2, false),
            "up" if raw.get(i + 1).is_some_and(|n| n == "to") => (2, true),
            _ => (0, false),
        };
        if span > 0 {
            if let Some(x) = raw.get(i + span).and_then(|n| number(n)) {
                let mut end = i + span + 1;
                if raw.get(end).is_some_and(|u| {
                    matches!(
                        u.trim_end_matches('.'),
                        "pounds" | "pound" | "quid" | "gbp" | "£"
                    )
                }) {
                    end += 1;
                }
                if upper {
                    intent.price_max = Some(x);
                } else {
                    intent.price_min = Some(x);
                }
                for k in keep.iter_mut().take(end).skip(i) {
                    *k = false;
                }
                i = end;
                continue;
            }
        }
        i += 1;
    }
    // The words left, cleaned of punctuation at their ends.
    let mut words: Vec<(String, bool)> = raw
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(w, _)| {
            (
                w.trim_matches(|c: char| c.is_ascii_punctuation())
                    .to_string(),
                true,
            )
        })
        .filter(|(w, _)| !w.is_empty())
        .collect();
    for (w, _) in words.iter_mut() {
        if let Some(c) = vocab.correct(w) {
            intent.corrected.push([w.clone(), c.clone()]);
            *w = c;
        }
    }
    // Category names: runs of the query's words (a singular or plural
    // form of the name's last word).
    if !vocab.categories.is_empty() {
        let ws: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
        for len in 1..=4.min(ws.len()) {
            for run in ws.windows(len) {
                let mut key: Vec<String> = run.iter().map(|w| w.to_string()).collect();
                let found = vocab.categories.get(&key).or_else(|| {
                    let last = key.last_mut()?;
                    *last = match last.strip_suffix('s') {
                        Some(s) => s.to_string(),
                        None => format!("{last}s"),
                    };
                    vocab.categories.get(&key)
                });
                if let Some(name) = found {
                    if !intent.categories.contains(name) {
                        intent.categories.push(name.clone());
                    }
                }
            }
        }
    }
    let stop = |w: &str| STOP_WORDS.contains(&w) || CHEAP.contains(&w);
    let n = words.len();
    for k in 0..n {
        let w = words[k].0.clone();
        if CHEAP.contains(&w.as_str()) {
            intent.cheap = true;
        }
        if COLOURS.contains(&w.as_str()) && !intent.colours.contains(&w) {
            intent.colours.push(w.clone());
        }
        if MATERIALS.contains(&w.as_str()) && !intent.materials.contains(&w) {
            intent.materials.push(w.clone());
        }
        if stop(&w) {
            // A catalog phrase with a neighbour keeps it ("keep calm").
            let phrase =
                (k + 1 < n && !stop(&words[k + 1].0) && vocab.is_phrase(&w, &words[k + 1].0))
                    || (k > 0 && !stop(&words[k - 1].0) && vocab.is_phrase(&words[k - 1].0, &w));
            if FUNCTION_WORDS.contains(&w.as_str()) || !phrase {
                words[k].1 = false;
            }
        }
    }
    let content: Vec<&str> = words
        .iter()
        .filter(|(_, c)| *c)
        .map(|(w, _)| w.as_str())
        .collect();
    intent.ignored = words
        .iter()
        .filter(|(_, c)| !*c)
        .map(|(w, _)| w.clone())
        .collect();
    let all: Vec<&str> = words.iter().map(|(w, _)| w.as_str()).collect();
    let keyword_text = if content.is_empty() {
        // Nothing but function words: search what was typed.
        intent.ignored.clear();
        all.join(" ")
    } else {
        content.join(" ")
    };
    let semantic_text = if all.is_empty() {
        q.trim().to_string()
    } else {
        all.join(" ")
    };
    // The first run of content words ends at the first word left out.
    let head = words
        .iter()
        .skip_while(|(_, c)| !*c)
        .take_while(|(_, c)| *c)
        .last()
        .map(|(w, _)| w.clone());
    let class = if !intent.corrected.is_empty() {
        QueryClass::Corrected
    } else if !intent.ignored.is_empty() || all.len() >= 4 {
        QueryClass::Sentence
    } else {
        QueryClass::Short
    };
    Understood {
        keyword_text,
        semantic_text,
        intent,
        class,
        head,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vocab() -> Vocabulary {
        let mut v = Vocabulary::default();
        for t in [
            "WHITE METAL LANTERN",
            "HANGING HEART T-LIGHT HOLDER",
            "GLASS NECKLACE CRYSTAL",
            "RED RETROSPOT UMBRELLA",
            "DOORMAT KEEP CALM AND COME IN",
            "JEWELLERY BOX",
            "CHOCOLATE CANDLE",
            "WHEELBARROW FOR CHILDREN",
            "GIFT BOX",
        ] {
            v.add(t, &[]);
        }
        v
    }

    #[test]
    fn the_head_is_the_last_word_before_the_first_left_out_word() {
        let v = vocab();
        let head = |q: &str| understand(q, &v).head;
        assert_eq!(head("lamp for candles").as_deref(), Some("lamp"));
        assert_eq!(head("white t-light holder").as_deref(), Some("holder"));
        assert_eq!(
            head("something to hold tea lights").as_deref(),
            Some("lights")
        );
        assert_eq!(head("for the"), None);
    }

    #[test]
    fn function_words_never_match_on_their_own() {
        let u = understand("lamp for candles", &vocab());
        assert_eq!(u.keyword_text, "lamp candles");
        assert_eq!(u.semantic_text, "lamp for candles");
        assert_eq!(u.intent.ignored, ["for"]);
        assert_eq!(u.class, QueryClass::Sentence);
        let u = understand("something to hold tea lights", &vocab());
        assert_eq!(u.keyword_text, "hold tea lights");
    }

    #[test]
    fn a_query_of_function_words_only_is_searched_as_typed() {
        let u = understand("for the", &vocab());
        assert_eq!(u.keyword_text, "for the");
        assert!(u.intent.ignored.is_empty());
    }

    #[test]
    fn a_filler_word_in_a_catalog_phrase_stays() {
        assert_eq!(understand("keep calm", &vocab()).keyword_text, "keep calm");
        assert_eq!(understand("gift box", &vocab()).keyword_text, "gift box");
        assert_eq!(
            understand("gift for a teacher", &vocab()).keyword_text,
            "teacher"
        );
    }

    #[test]
    fn price_limits_are_read_and_left_out_of_both_texts() {
        let u = understand("candles under 2 pounds", &vocab());
        assert_eq!(u.intent.price_max, Some(2.0));
        assert_eq!(
            (u.keyword_text.as_str(), u.semantic_text.as_str()),
            ("candles", "candles")
        );
        assert_eq!(
            understand("mugs less than £3", &vocab()).intent.price_max,
            Some(3.0)
        );
        assert_eq!(
            understand("clock up to 10", &vocab()).intent.price_max,
            Some(10.0)
        );
        assert_eq!(
            understand("lamps over 20 pounds", &vocab())
                .intent
                .price_min,
            Some(20.0)
        );
        // A number that is not a price limit stays a word.
        let u = understand("set of 6 candles", &vocab());
        assert_eq!(
            (u.intent.price_max, u.keyword_text.as_str()),
            (None, "set 6 candles")
        );
        assert!(understand("cheap mugs", &vocab()).intent.cheap);
    }

    #[test]
    fn a_named_category_is_an_intent_in_either_number() {
        let mut v = vocab();
        v.add_category("Home Decor");
        v.add_category("Mugs");
        assert_eq!(
            understand("cheap home decor", &v).intent.categories,
            ["Home Decor"]
        );
        assert_eq!(understand("a red mug", &v).intent.categories, ["Mugs"]);
        assert!(understand("decor", &v).intent.categories.is_empty());
    }

    #[test]
    fn colours_and_materials_are_intents() {
        let u = understand("red glass vase", &vocab());
        assert_eq!(u.intent.colours, ["red"]);
        assert_eq!(u.intent.materials, ["glass"]);
    }

    #[test]
    fn unknown_words_are_corrected_to_the_closest_catalog_word() {
        let v = vocab();
        for (typed, want) in [
            ("lanturn", "lantern"),
            ("umbrela", "umbrella"),
            ("jewelery", "jewellery"),
            ("chocolat", "chocolate"),
        ] {
            let u = understand(typed, &v);
            assert_eq!(
                u.intent.corrected,
                [[typed.to_string(), want.to_string()]],
                "{typed}"
            );
            assert_eq!(u.keyword_text, want);
            assert_eq!(u.class, QueryClass::Corrected);
        }
        // Known words, plurals of known words, short words and far words stay.
        // (neckless is 3 edits from necklace.)
        for w in ["lantern", "lanterns", "wife", "anniversary", "neckless"] {
            assert!(understand(w, &v).intent.corrected.is_empty(), "{w}");
        }
    }

    #[test]
    fn a_word_of_the_language_is_not_corrected_to_a_catalog_word() {
        let mut v = vocab();
        // "glass" is a catalog word one edit from "grass".
        assert_eq!(understand("grass", &v).keyword_text, "glass");
        v.set_language_words(std::sync::Arc::new(HashSet::from(["grass".to_string()])));
        let u = understand("grass", &v);
        assert!(u.intent.corrected.is_empty());
        assert_eq!(u.keyword_text, "grass");
    }

    #[test]
    fn distances_count_a_transposition_as_one() {
        assert_eq!(distance_within("candel", "candle", 2), Some(1));
        assert_eq!(distance_within("neckless", "necklace", 3), Some(3));
        assert_eq!(distance_within("neckless", "necklace", 2), None);
        assert_eq!(distance_within("lantern", "teapot", 2), None);
        assert_eq!(distance_within("", "ab", 2), Some(2));
    }

    #[test]
    fn short_queries_are_short() {
        assert_eq!(understand("red apron", &vocab()).class, QueryClass::Short);
        assert_eq!(
            understand("wooden heart hanging decoration", &vocab()).class,
            QueryClass::Sentence
        );
    }
}
