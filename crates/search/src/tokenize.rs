//! The analyzer shared by indexing and queries: words of letters and digits
//! (Latin, Cyrillic, ...) and Chinese runs segmented by jieba, then
//! lower-cased and stemmed (English Snowball; other words pass unchanged).

use std::sync::{Arc, OnceLock};

use jieba_rs::Jieba;
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, Stemmer, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// The analyzer's name in tantivy's tokenizer registry.
pub const ANALYZER: &str = "aisle";

fn jieba() -> Arc<Jieba> {
    static J: OnceLock<Arc<Jieba>> = OnceLock::new();
    J.get_or_init(|| Arc::new(Jieba::new())).clone()
}

/// CJK ideographs (the unified blocks and extension A, compatibility).
pub fn is_cjk(c: char) -> bool {
    matches!(c, '\u{4E00}'..='\u{9FFF}' | '\u{3400}'..='\u{4DBF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{2A6DF}')
}

/// Splits text into words; Chinese runs go through jieba's search mode
/// (whole words and their dictionary sub-words, so 连衣裙 also finds 衣裙).
#[derive(Clone)]
pub struct AisleTokenizer {
    jieba: Arc<Jieba>,
    tokens: Vec<Token>,
}

impl Default for AisleTokenizer {
    fn default() -> Self {
        AisleTokenizer {
            jieba: jieba(),
            tokens: Vec::new(),
        }
    }
}

pub struct OwnedTokenStream<'a> {
    tokens: &'a mut Vec<Token>,
    next: usize,
}

impl TokenStream for OwnedTokenStream<'_> {
    fn advance(&mut self) -> bool {
        self.next += 1;
        self.next <= self.tokens.len()
    }
    fn token(&self) -> &Token {
        &self.tokens[self.next - 1]
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.tokens[self.next - 1]
    }
}

impl Tokenizer for AisleTokenizer {
    type TokenStream<'a> = OwnedTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> OwnedTokenStream<'a> {
        self.tokens.clear();
        let push = |tokens: &mut Vec<Token>, from: usize, to: usize| {
            let position = tokens.len();
            tokens.push(Token {
                offset_from: from,
                offset_to: to,
                position,
                text: text[from..to].to_string(),
                position_length: 1,
            });
        };
        let mut chars = text.char_indices().peekable();
        while let Some((start, c)) = chars.next() {
            if is_cjk(c) {
                let mut end = start + c.len_utf8();
                while let Some(&(i, d)) = chars.peek() {
                    if !is_cjk(d) {
                        break;
                    }
                    end = i + d.len_utf8();
                    chars.next();
                }
                let run = &text[start..end];
                for t in self.jieba.cut_for_search(run, true) {
                    push(&mut self.tokens, start + t.byte_start, start + t.byte_end);
                }
            } else if c.is_alphanumeric() {
                let mut end = start + c.len_utf8();
                while let Some(&(i, d)) = chars.peek() {
                    if !d.is_alphanumeric() || is_cjk(d) {
                        break;
                    }
                    end = i + d.len_utf8();
                    chars.next();
                }
                push(&mut self.tokens, start, end);
            }
        }
        OwnedTokenStream {
            tokens: &mut self.tokens,
            next: 0,
        }
    }
}

/// The analyzer: [`AisleTokenizer`], words over 40 bytes dropped,
/// lower-cased, English-stemmed.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(AisleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(Stemmer::new(Language::English))
        .build()
}

/// One analyzed word of a query: the indexed form and the word as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryWord {
    pub term: String,
    pub original: String,
}

/// Analyzes `text` into distinct words (first occurrence kept), at most `max`.
pub fn query_words(analyzer: &mut TextAnalyzer, text: &str, max: usize) -> Vec<QueryWord> {
    let mut out: Vec<QueryWord> = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        let t = stream.token();
        if out.iter().any(|w| w.term == t.text) {
            continue;
        }
        out.push(QueryWord {
            term: t.text.clone(),
            original: text[t.offset_from..t.offset_to].to_lowercase(),
        });
        if out.len() >= max {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        query_words(&mut analyzer(), text, 100)
            .into_iter()
            .map(|w| w.term)
            .collect()
    }

    #[test]
    fn english_words_are_lowercased_and_stemmed() {
        assert_eq!(
            terms("White HANGING Heart T-Light Holders"),
            ["white", "hang", "heart", "t", "light", "holder"]
        );
        assert!(terms("!!! ... ???").is_empty());
        // Repeated words count once.
        assert_eq!(terms("mug mugs MUG"), ["mug"]);
    }

    #[test]
    fn chinese_runs_are_segmented_and_mixed_scripts_split() {
        let t = terms("连衣裙女夏季 red dress2024");
        assert!(t.contains(&"连衣裙".to_string()), "{t:?}");
        assert!(t.contains(&"夏季".to_string()), "{t:?}");
        assert!(
            t.contains(&"red".to_string()) && t.contains(&"dress2024".to_string()),
            "{t:?}"
        );
        // Search mode also emits the dictionary sub-words of long words.
        let t = terms("中华人民共和国");
        assert!(
            t.contains(&"中华".to_string()) && t.contains(&"共和国".to_string()),
            "{t:?}"
        );
    }

    #[test]
    fn emoji_and_markup_do_not_break_it() {
        assert_eq!(terms("🎉 <b>mug</b> 🎉"), ["b", "mug"]);
        assert_eq!(terms("'; DROP TABLE items; --"), ["drop", "tabl", "item"]);
    }
}
