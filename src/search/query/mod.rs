//! From a parsed [`SearchRequest`] to results: the tantivy query (text with
//! typo tolerance, filters), the sort key and cursor, facet counts, and the
//! highlighter; and prefix suggestions.
//!
//! Text: every word of `q` must match some field (name, description,
//! attributes, SKUs), exactly (BM25, name weighted highest) or within an edit
//! distance that grows with the word's length; the last word may also be a
//! prefix. The whole query equal to a product's name or a SKU, or the words as
//! a phrase in the name, adds a large bonus: an exact name ranks first.
//! Filters never change scores.
//!
//! Sorting and cursors: every sort is descending on a key `(primary,
//! tiebreak)`, where `tiebreak` is a hash of the product id, so keys are total.
//! The cursor is the last key returned; the next page keeps keys below it.
//! Under relevance the primary is the score, which may shift while the index
//! changes between two pages (so may any key: a cursor is a position, not a
//! snapshot).

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use tantivy::collector::{Count, FacetCollector, TopDocs};
use tantivy::columnar::{ColumnValues, EmptyColumnValues};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, FuzzyTermQuery, Occur, PhraseQuery, Query,
    RangeQuery, TermQuery,
};
use tantivy::schema::{Facet, Field, IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocAddress, Score, Searcher, SegmentReader, TantivyDocument, Term};

mod facets;

pub use facets::{FacetCount, Facets};

use super::{category_facet, Fields, Result, SearchIndex};
use facets::facets_of;

/// Most words of a query that are used.
pub const MAX_WORDS: usize = 10;
/// Terms a fuzzy word may expand to when highlighting.
const MAX_EXPANSIONS: usize = 32;
/// Separates an attribute's name from its value in `attr` terms and facets.
pub const ATTR_SEP: char = '\u{1f}';

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    Relevance,
    PriceAsc,
    PriceDesc,
    Newest,
    Popularity,
}

impl SortBy {
    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "relevance" => Self::Relevance,
            "price_asc" => Self::PriceAsc,
            "price_desc" => Self::PriceDesc,
            "newest" => Self::Newest,
            "popularity" => Self::Popularity,
            _ => return None,
        })
    }
}

/// A position in a sorted result list: the key of the last hit returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub primary: u64,
    pub tiebreak: u64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        format!("{:x}.{:x}", self.primary, self.tiebreak)
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let (a, b) = raw.split_once('.')?;
        Some(Self {
            primary: u64::from_str_radix(a, 16).ok()?,
            tiebreak: u64::from_str_radix(b, 16).ok()?,
        })
    }
}

/// A search or a filtered listing (no text).
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub text: Option<String>,
    /// A category id and its path (root first, ending with the id): the
    /// category filter, and the level whose children the category facet counts.
    pub category: Option<Vec<String>>,
    /// Bounds on the lowest variant price, minor units, inclusive.
    pub min_price: Option<u64>,
    pub max_price: Option<u64>,
    /// (name, value): values of one name are alternatives, names all apply.
    pub attributes: Vec<(String, String)>,
    /// Alternatives.
    pub vendors: Vec<String>,
    pub in_stock: bool,
    pub sort: SortBy,
    pub after: Option<Cursor>,
    pub limit: usize,
}

impl SearchRequest {
    /// A listing of everything, newest first.
    pub fn browse(limit: usize) -> Self {
        Self {
            text: None,
            category: None,
            min_price: None,
            max_price: None,
            attributes: vec![],
            vendors: vec![],
            in_stock: false,
            sort: SortBy::Newest,
            after: None,
            limit,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub id: String,
    /// The relevance score, under relevance sort.
    pub score: Option<f32>,
}

pub struct SearchResults {
    /// Documents matching the query and filters (all pages).
    pub total: usize,
    pub hits: Vec<Hit>,
    pub facets: Facets,
    pub next_after: Option<String>,
    pub highlighter: Option<Highlighter>,
}

/// Marks the matched words of a hit's name and description.
pub struct Highlighter {
    name: SnippetGenerator,
    description: SnippetGenerator,
}

impl Highlighter {
    /// The name with matches in `<em>`, and a fragment of the description
    /// around its best matches (`None` when nothing matched there). HTML in
    /// the text is escaped.
    pub fn highlight(&self, name: &str, description: &str) -> (Option<String>, Option<String>) {
        let mark = |g: &SnippetGenerator, text: &str| {
            let mut s = g.snippet(text);
            if s.highlighted().is_empty() {
                return None;
            }
            s.set_snippet_prefix_postfix("<em>", "</em>");
            Some(s.to_html())
        };
        (mark(&self.name, name), mark(&self.description, description))
    }
}

/// A word of the query, as the text fields' tokenizer produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// Edit distance tolerated.
    pub distance: u8,
    /// The last word of the query: it may also be a prefix.
    pub prefix: bool,
}

/// Typo tolerance: none for short words, one edit from 4 characters, two from 8.
pub fn distance_for(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

/// Splits `text` with the text fields' tokenizer.
pub fn words(analyzer: &mut TextAnalyzer, text: &str) -> Vec<Word> {
    let mut out: Vec<Word> = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() && out.len() < MAX_WORDS {
        let t = stream.token().text.clone();
        if !out.iter().any(|w| w.text == t) {
            out.push(Word {
                distance: distance_for(&t),
                text: t,
                prefix: false,
            });
        }
    }
    // Only when the text does not end with a separator is its last word still being typed.
    let typing = text.chars().last().is_some_and(char::is_alphanumeric);
    if let Some(last) = out.last_mut() {
        last.prefix = typing;
    }
    out
}

fn boxed(q: impl Query) -> Box<dyn Query> {
    Box::new(q)
}

fn boost(q: impl Query, by: Score) -> Box<dyn Query> {
    Box::new(BoostQuery::new(Box::new(q), by))
}

fn term(field: Field, text: &str) -> TermQuery {
    TermQuery::new(
        Term::from_field_text(field, text),
        IndexRecordOption::WithFreqs,
    )
}

/// A clause that does not change the score.
fn filter(q: Box<dyn Query>) -> (Occur, Box<dyn Query>) {
    (Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0)))
}

/// Only sellable products are found.
fn visible(f: &Fields) -> (Occur, Box<dyn Query>) {
    filter(boxed(TermQuery::new(
        Term::from_field_u64(f.visible, 1),
        IndexRecordOption::Basic,
    )))
}

/// The fuzzy (and, for the last word, prefix) variants of `word` in `field`.
fn loose(field: Field, word: &Word) -> Vec<FuzzyTermQuery> {
    let t = Term::from_field_text(field, &word.text);
    let mut out = Vec::new();
    if word.distance > 0 {
        out.push(FuzzyTermQuery::new(t.clone(), word.distance, true));
    }
    if word.prefix {
        out.push(FuzzyTermQuery::new_prefix(t, 0, true));
    }
    out
}

/// One word: it must match some field, exactly or loosely.
fn word_query(f: &Fields, word: &Word) -> Box<dyn Query> {
    let mut should: Vec<(Occur, Box<dyn Query>)> = vec![
        (Occur::Should, boost(term(f.name, &word.text), 3.0)),
        (Occur::Should, boost(term(f.skus, &word.text), 2.0)),
        (Occur::Should, boost(term(f.attributes, &word.text), 1.5)),
        (Occur::Should, boxed(term(f.description, &word.text))),
    ];
    // Loose matches score a constant below any exact match of the name.
    for (field, weight) in [
        (f.name, 0.5),
        (f.skus, 0.3),
        (f.attributes, 0.2),
        (f.description, 0.1),
    ] {
        for q in loose(field, word) {
            should.push((Occur::Should, boost(q, weight)));
        }
    }
    Box::new(BooleanQuery::new(should))
}

/// The whole query for `req`, with `words` already tokenized from its text.
pub fn build_query(
    f: &Fields,
    req: &SearchRequest,
    words: &[Word],
    exact: Option<&str>,
) -> Box<dyn Query> {
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![visible(f)];
    if words.is_empty() {
        clauses.push((Occur::Must, boxed(AllQuery)));
    }
    for w in words {
        clauses.push((Occur::Must, word_query(f, w)));
    }
    if let Some(exact) = exact.filter(|_| !words.is_empty()) {
        clauses.push((Occur::Should, boost(term(f.exact, exact), 20.0)));
    }
    if words.len() > 1 {
        let terms = words
            .iter()
            .map(|w| Term::from_field_text(f.name, &w.text))
            .collect();
        clauses.push((Occur::Should, boost(PhraseQuery::new(terms), 5.0)));
    }
    if let Some(path) = &req.category {
        if let Some(id) = path.last() {
            clauses.push(filter(boxed(term(f.category, id))));
        }
    }
    if req.min_price.is_some() || req.max_price.is_some() {
        let bound = |v: Option<u64>| match v {
            Some(v) => Bound::Included(Term::from_field_u64(f.price, v)),
            None => Bound::Unbounded,
        };
        clauses.push(filter(boxed(RangeQuery::new(
            bound(req.min_price),
            bound(req.max_price),
        ))));
    }
    let mut by_name: BTreeMap<&str, Vec<Box<dyn Query>>> = BTreeMap::new();
    for (name, value) in &req.attributes {
        by_name
            .entry(name)
            .or_default()
            .push(boxed(term(f.attr, &format!("{name}{ATTR_SEP}{value}"))));
    }
    for (_, alternatives) in by_name {
        clauses.push(filter(boxed(BooleanQuery::union(alternatives))));
    }
    if !req.vendors.is_empty() {
        let alternatives = req
            .vendors
            .iter()
            .map(|v| boxed(term(f.vendor, v)))
            .collect();
        clauses.push(filter(boxed(BooleanQuery::union(alternatives))));
    }
    if req.in_stock {
        clauses.push(filter(boxed(TermQuery::new(
            Term::from_field_u64(f.in_stock, 1),
            IndexRecordOption::Basic,
        ))));
    }
    Box::new(BooleanQuery::new(clauses))
}

/// The sort key of a document: descending `(primary, tiebreak)`.
pub fn primary_key(sort: SortBy, score: Score, value: u64) -> u64 {
    match sort {
        // Scores are non-negative, and so ordered like their bit patterns.
        SortBy::Relevance => u64::from(score.max(0.0).to_bits()),
        SortBy::PriceAsc => u64::MAX - value,
        SortBy::PriceDesc | SortBy::Newest | SortBy::Popularity => value,
    }
}

fn sort_field(sort: SortBy) -> Option<&'static str> {
    match sort {
        SortBy::Relevance => None,
        SortBy::PriceAsc | SortBy::PriceDesc => Some("price"),
        SortBy::Newest => Some("created"),
        SortBy::Popularity => Some("popularity"),
    }
}

type Column = Arc<dyn ColumnValues<u64>>;

fn column(segment: &SegmentReader, name: &str) -> Column {
    // Every segment has the schema's fast fields; a segment without values reads 0.
    segment
        .fast_fields()
        .u64(name)
        .map(|c| c.first_or_default_col(0))
        .unwrap_or_else(|_| Arc::new(EmptyColumnValues) as Column)
}

fn read(column: &Column, doc: u32) -> u64 {
    if doc < column.num_vals() {
        column.get_val(doc)
    } else {
        0
    }
}

type Key = Option<(u64, u64)>;

impl SearchIndex {
    fn analyzer(&self) -> Result<TextAnalyzer> {
        Ok(self.index.tokenizer_for_field(self.fields.name)?)
    }

    fn exact_form(&self, text: &str) -> Result<Option<String>> {
        let mut analyzer = self.index.tokenizer_for_field(self.fields.exact)?;
        let mut stream = analyzer.token_stream(text.trim());
        Ok(if stream.advance() {
            Some(stream.token().text.clone())
        } else {
            None
        })
    }

    /// Runs `req`. Blocking (CPU and mmap reads): call it off the async runtime.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResults> {
        let f = self.fields;
        let text = req.text.as_deref().map(str::trim).filter(|t| !t.is_empty());
        let words = match text {
            Some(t) => words(&mut self.analyzer()?, t),
            None => vec![],
        };
        let exact = match text {
            Some(t) => self.exact_form(t)?,
            None => None,
        };
        // A text made only of separators searches nothing rather than everything.
        if text.is_some() && words.is_empty() {
            return Ok(SearchResults {
                total: 0,
                hits: vec![],
                facets: Facets::default(),
                next_after: None,
                highlighter: None,
            });
        }
        let sort = if words.is_empty() && req.sort == SortBy::Relevance {
            SortBy::Newest
        } else {
            req.sort
        };
        let query = build_query(&f, req, &words, exact.as_deref());
        let searcher = self.reader.searcher();

        let after = req.after;
        let top = TopDocs::with_limit(req.limit + 1).tweak_score(move |segment: &SegmentReader| {
            let values = sort_field(sort).map(|name| column(segment, name));
            let tiebreak = column(segment, "tiebreak");
            move |doc: u32, score: Score| -> Key {
                let value = values.as_ref().map_or(0, |c| read(c, doc));
                let key = (primary_key(sort, score, value), read(&tiebreak, doc));
                match after {
                    Some(c) if key >= (c.primary, c.tiebreak) => None,
                    _ => Some(key),
                }
            }
        });
        let mut facets = FacetCollector::for_field("facet");
        let category_parent = match &req.category {
            Some(path) => category_facet(path),
            None => Facet::from_path(["category"]),
        };
        facets.add_facet(category_parent.clone());
        facets.add_facet(Facet::from_path(["price"]));
        facets.add_facet(Facet::from_path(["vendor"]));
        facets.add_facet(Facet::from_path(["attr"]));
        let (top, total, counts) = searcher.search(&query, &(top, Count, facets))?;

        let mut keyed: Vec<((u64, u64), DocAddress)> =
            top.into_iter().filter_map(|(k, a)| Some((k?, a))).collect();
        let more = keyed.len() > req.limit;
        keyed.truncate(req.limit);
        let next_after = if more {
            keyed.last().map(|((p, t), _)| {
                Cursor {
                    primary: *p,
                    tiebreak: *t,
                }
                .encode()
            })
        } else {
            None
        };
        let mut hits = Vec::with_capacity(keyed.len());
        for ((primary, _), address) in keyed {
            let doc: TantivyDocument = searcher.doc(address)?;
            let id = doc
                .get_first(f.id)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string();
            let score = (sort == SortBy::Relevance).then(|| f32::from_bits(primary as u32));
            hits.push(Hit { id, score });
        }
        let highlighter = if words.is_empty() {
            None
        } else {
            Some(self.highlighter(&searcher, &words)?)
        };
        Ok(SearchResults {
            total,
            hits,
            facets: facets_of(&counts, &category_parent),
            next_after,
            highlighter,
        })
    }

    /// The terms of `field` that `words` match (exactly, fuzzily, as a prefix).
    fn matched_terms(
        &self,
        searcher: &Searcher,
        field: Field,
        words: &[Word],
    ) -> Result<BTreeMap<String, Score>> {
        let mut out = BTreeMap::new();
        for w in words {
            out.insert(w.text.clone(), 1.0);
            for q in loose(field, w) {
                let mut found = 0;
                for segment in searcher.segment_readers() {
                    let inverted = segment.inverted_index(field)?;
                    let mut stream = inverted.terms().search(q.automaton()?).into_stream()?;
                    while found < MAX_EXPANSIONS && stream.advance() {
                        if let Ok(t) = std::str::from_utf8(stream.key()) {
                            out.insert(t.to_string(), 0.5);
                            found += 1;
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    fn highlighter(&self, searcher: &Searcher, words: &[Word]) -> Result<Highlighter> {
        let f = self.fields;
        let generator = |field: Field, max_chars: usize| -> Result<SnippetGenerator> {
            let terms = self.matched_terms(searcher, field, words)?;
            Ok(SnippetGenerator::new(
                terms,
                self.index.tokenizer_for_field(field)?,
                field,
                max_chars,
            ))
        };
        Ok(Highlighter {
            name: generator(f.name, 300)?,
            description: generator(f.description, 160)?,
        })
    }

    /// Product names starting with `text` (the last word may be unfinished;
    /// earlier words tolerate typos), best match then most popular first.
    pub fn suggest(&self, text: &str, limit: usize) -> Result<Vec<Suggestion>> {
        let f = self.fields;
        let mut words = words(&mut self.analyzer()?, text);
        if let Some(last) = words.last_mut() {
            last.prefix = true;
        }
        if words.is_empty() {
            return Ok(vec![]);
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![visible(&f)];
        for w in &words {
            let mut should: Vec<(Occur, Box<dyn Query>)> =
                vec![(Occur::Should, boost(term(f.name, &w.text), 2.0))];
            for q in loose(f.name, w) {
                should.push((Occur::Should, boxed(q)));
            }
            if w.prefix && w.distance > 0 {
                // "sweatsh" → "sweatshirt", "swaetsh" too.
                let t = Term::from_field_text(f.name, &w.text);
                should.push((
                    Occur::Should,
                    boost(FuzzyTermQuery::new_prefix(t, 1, true), 0.5),
                ));
            }
            clauses.push((Occur::Must, boxed(BooleanQuery::new(should))));
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let top = TopDocs::with_limit(limit).tweak_score(move |segment: &SegmentReader| {
            let popularity = column(segment, "popularity");
            move |doc: u32, score: Score| (score.to_bits(), read(&popularity, doc))
        });
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (_, address) in searcher.search(&query, &top)? {
            let doc: TantivyDocument = searcher.doc(address)?;
            let get = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let name = get(f.name);
            if seen.insert(name.to_lowercase()) {
                out.push(Suggestion {
                    id: get(f.id),
                    name,
                });
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub id: String,
    pub name: String,
}

#[cfg(test)]
mod tests;
