//! `$include` resolution, following OpenClaw's `src/config/includes.ts`: the value is a path or a
//! list of paths relative to the including file; a list is deep-merged in order (later files
//! win); keys next to `$include` are merged over the included content (the including file wins);
//! objects merge recursively, arrays concatenate, anything else is replaced. Includes nest up to
//! 10 deep; a cycle is an error naming the chain.
//!
//! Besides the merged value, this keeps every parsed file and where its content landed, so a
//! merged config path can be traced back to the file, line and column it came from.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{ConfigError, SourcePos};
use super::parse::{parse_document, Document, Seg, Span};

pub(crate) const INCLUDE_KEY: &str = "$include";
const MAX_INCLUDE_DEPTH: usize = 10;
/// Included files one load may read (a file included twice counts twice): nesting a list of two
/// includes ten deep would otherwise read 2^10 files.
pub(crate) const MAX_INCLUDE_FILES: usize = 256;
/// Bytes one load may read, the config itself and every included file together.
pub(crate) const MAX_INCLUDE_BYTES: u64 = 16 * 1024 * 1024;

/// The merged config and the files it came from.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub value: Value,
    pub locator: Locator,
    /// Included files in load order, each once.
    pub included_files: Vec<PathBuf>,
}

/// Maps merged config paths back to source positions.
#[derive(Debug)]
pub(crate) struct Locator {
    root_file: PathBuf,
    docs: Vec<Document>,
    /// `(merged path prefix, doc index)` in priority order: the first whose document has a path
    /// is where that path's value came from.
    order: Vec<(Vec<Seg>, usize)>,
}

impl Locator {
    /// A locator for one document without includes.
    pub fn single(doc: Document) -> Locator {
        Locator {
            root_file: doc.file.clone(),
            docs: vec![doc],
            order: vec![(Vec::new(), 0)],
        }
    }

    /// The document and span a merged path's value came from.
    pub fn find(&self, path: &[Seg]) -> Option<(&Document, &Span)> {
        self.order.iter().find_map(|(prefix, doc)| {
            let rest = path.strip_prefix(prefix.as_slice())?;
            let doc = self.docs.get(*doc)?;
            doc.spans.get(rest).map(|span| (doc, span))
        })
    }

    /// The nearest known position for `path`: its key (or value), else its closest parent's.
    pub fn key_pos(&self, path: &[Seg]) -> SourcePos {
        self.nearest(path, |span| span.key.unwrap_or(span.value))
    }

    /// Like [`Locator::key_pos`], but the value's position.
    pub fn value_pos(&self, path: &[Seg]) -> SourcePos {
        self.nearest(path, |span| span.value)
    }

    /// Where `needle` (e.g. `${VAR}`) occurs inside the string at `path`; an occurrence right
    /// after a `$` (the `$${VAR}` escape) does not count.
    pub fn occurrence_pos(&self, path: &[Seg], needle: &str) -> SourcePos {
        if let Some((doc, span)) = self.find(path) {
            if let Some(raw) = doc.text.get(span.raw.clone()) {
                let mut from = 0;
                while let Some(found) = raw.get(from..).and_then(|r| r.find(needle)) {
                    let at = from + found;
                    if !raw[..at].ends_with('$') {
                        return doc.pos(span.raw.start + at);
                    }
                    from = at + needle.len();
                }
            }
            return doc.pos(span.value);
        }
        self.value_pos(path)
    }

    fn nearest(&self, path: &[Seg], pick: impl Fn(&Span) -> usize) -> SourcePos {
        for len in (0..=path.len()).rev() {
            if let Some((doc, span)) = self.find(&path[..len]) {
                return doc.pos(pick(span));
            }
        }
        SourcePos::file(&self.root_file)
    }
}

/// Resolves every `$include` in `root` (already parsed).
pub(crate) fn resolve(mut root: Document) -> Result<Resolved, ConfigError> {
    let root_file = root.file.clone();
    let value = std::mem::take(&mut root.value);
    let bytes_read = root.text.len() as u64;
    let mut resolver = Resolver {
        docs: vec![root],
        prefixes: vec![Vec::new()],
        children: vec![Vec::new()],
        included_files: Vec::new(),
        files_read: 0,
        bytes_read,
    };
    let chain = vec![normalize(&root_file)];
    let value = resolver.process(value, 0, &mut Vec::new(), &mut Vec::new(), &chain)?;

    let mut order = Vec::new();
    resolver.priority_order(0, &mut order);
    Ok(Resolved {
        value,
        locator: Locator {
            root_file,
            docs: resolver.docs,
            order,
        },
        included_files: resolver.included_files,
    })
}

/// Where one included file's content landed: `(depth of the $include site, position in its
/// list, doc index)`.
type Child = (usize, usize, usize);

struct Resolver {
    docs: Vec<Document>,
    /// Merged path at which each doc's content landed.
    prefixes: Vec<Vec<Seg>>,
    children: Vec<Vec<Child>>,
    included_files: Vec<PathBuf>,
    /// Included files read so far (repeats count), against [`MAX_INCLUDE_FILES`].
    files_read: usize,
    /// Bytes read so far, the root config's included, against [`MAX_INCLUDE_BYTES`].
    bytes_read: u64,
}

impl Resolver {
    /// `doc_path` is the path inside the current document, `merged_path` the path in the
    /// merged result; `chain` the files being included, outermost first.
    fn process(
        &mut self,
        value: Value,
        doc: usize,
        doc_path: &mut Vec<Seg>,
        merged_path: &mut Vec<Seg>,
        chain: &[PathBuf],
    ) -> Result<Value, ConfigError> {
        match value {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    doc_path.push(Seg::Index(i));
                    merged_path.push(Seg::Index(i));
                    let r = self.process(item, doc, doc_path, merged_path, chain);
                    doc_path.pop();
                    merged_path.pop();
                    out.push(r?);
                }
                Ok(Value::Array(out))
            }
            Value::Object(mut map) => {
                // The included content first, then the keys beside it (OpenClaw's order).
                let included = match map.remove(INCLUDE_KEY) {
                    Some(include) => {
                        Some(self.resolve_include(include, doc, doc_path, merged_path, chain)?)
                    }
                    None => None,
                };
                let mut rest = Map::new();
                for (k, v) in map {
                    doc_path.push(Seg::Key(k.clone()));
                    merged_path.push(Seg::Key(k.clone()));
                    let r = self.process(v, doc, doc_path, merged_path, chain);
                    doc_path.pop();
                    merged_path.pop();
                    rest.insert(k, r?);
                }
                let Some(included) = included else {
                    return Ok(Value::Object(rest));
                };
                if rest.is_empty() {
                    return Ok(included);
                }
                if !included.is_object() {
                    let mut at = doc_path.clone();
                    at.push(Seg::Key(INCLUDE_KEY.into()));
                    return Err(self.include_error(
                        doc,
                        &at,
                        "Sibling keys require included content to be an object".into(),
                    ));
                }
                Ok(deep_merge(included, Value::Object(rest)))
            }
            other => Ok(other),
        }
    }

    fn resolve_include(
        &mut self,
        include: Value,
        doc: usize,
        doc_path: &mut Vec<Seg>,
        merged_path: &mut Vec<Seg>,
        chain: &[PathBuf],
    ) -> Result<Value, ConfigError> {
        doc_path.push(Seg::Key(INCLUDE_KEY.into()));
        let result = match include {
            Value::String(p) => self.load_file(&p, 0, doc, doc_path, merged_path, chain),
            Value::Array(items) => {
                let mut merged = Value::Object(Map::new());
                for (i, item) in items.into_iter().enumerate() {
                    doc_path.push(Seg::Index(i));
                    let loaded = match item {
                        Value::String(p) => {
                            self.load_file(&p, i, doc, doc_path, merged_path, chain)
                        }
                        other => Err(self.include_error(
                            doc,
                            doc_path,
                            format!(
                                "Invalid $include array item: expected string, got {}",
                                json_type(&other)
                            ),
                        )),
                    };
                    doc_path.pop();
                    match loaded {
                        Ok(v) => merged = deep_merge(merged, v),
                        Err(e) => {
                            doc_path.pop();
                            return Err(e);
                        }
                    }
                }
                Ok(merged)
            }
            other => Err(self.include_error(
                doc,
                doc_path,
                format!(
                    "Invalid $include value: expected string or array of strings, got {}",
                    json_type(&other)
                ),
            )),
        };
        doc_path.pop();
        result
    }

    fn load_file(
        &mut self,
        include_path: &str,
        list_index: usize,
        doc: usize,
        doc_path: &[Seg],
        merged_path: &mut Vec<Seg>,
        chain: &[PathBuf],
    ) -> Result<Value, ConfigError> {
        let including = &self.docs[doc].file;
        let base = including.parent().unwrap_or(Path::new("/"));
        let resolved = normalize(&base.join(include_path));
        if chain.contains(&resolved) {
            let mut cycle = chain.to_vec();
            cycle.push(resolved);
            return Err(ConfigError::IncludeCycle {
                at: self.value_pos(doc, doc_path),
                chain: cycle,
            });
        }
        if chain.len() > MAX_INCLUDE_DEPTH {
            return Err(self.include_error(
                doc,
                doc_path,
                format!("Maximum include depth ({MAX_INCLUDE_DEPTH}) exceeded at: {include_path}"),
            ));
        }
        if self.files_read >= MAX_INCLUDE_FILES {
            return Err(ConfigError::IncludeBudget {
                at: self.value_pos(doc, doc_path),
                what: format!("{} files", self.files_read + 1),
                limit: format!("{MAX_INCLUDE_FILES}"),
                include: include_path.to_string(),
            });
        }
        let text = self.read_within_budget(&resolved, include_path, doc, doc_path)?;
        self.files_read += 1;
        let mut included = parse_document(&resolved, text)?;
        if !self.included_files.contains(&resolved) {
            self.included_files.push(resolved.clone());
        }
        let value = std::mem::take(&mut included.value);
        let idx = self.docs.len();
        self.docs.push(included);
        self.prefixes.push(merged_path.clone());
        self.children.push(Vec::new());
        self.children[doc].push((doc_path.len(), list_index, idx));

        let mut nested_chain = chain.to_vec();
        nested_chain.push(resolved);
        self.process(value, idx, &mut Vec::new(), merged_path, &nested_chain)
    }

    /// Reads an included file, failing when it would take the load past [`MAX_INCLUDE_BYTES`]
    /// (read no further than that, so a huge or endless file costs nothing).
    fn read_within_budget(
        &mut self,
        resolved: &Path,
        include_path: &str,
        doc: usize,
        doc_path: &[Seg],
    ) -> Result<String, ConfigError> {
        use std::io::Read;
        let unreadable = |s: &Self, why: String| {
            s.include_error(
                doc,
                doc_path,
                format!(
                    "Failed to read include file: {include_path} (resolved: {}): {why}",
                    resolved.display()
                ),
            )
        };
        let file = std::fs::File::open(resolved).map_err(|e| unreadable(self, e.to_string()))?;
        let meta = file
            .metadata()
            .map_err(|e| unreadable(self, e.to_string()))?;
        if !meta.is_file() {
            return Err(unreadable(self, "not a regular file".into()));
        }
        let remaining = MAX_INCLUDE_BYTES.saturating_sub(self.bytes_read);
        let mut bytes = Vec::new();
        file.take(remaining + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| unreadable(self, e.to_string()))?;
        let size = meta.len().max(bytes.len() as u64);
        if bytes.len() as u64 > remaining {
            return Err(ConfigError::IncludeBudget {
                at: self.value_pos(doc, doc_path),
                what: format!("{} in all", mebibytes(self.bytes_read + size)),
                limit: mebibytes(MAX_INCLUDE_BYTES),
                include: include_path.to_string(),
            });
        }
        self.bytes_read += bytes.len() as u64;
        String::from_utf8(bytes).map_err(|_| unreadable(self, "not UTF-8 text".into()))
    }

    /// A document first (its own keys win), then its includes: deeper `$include` sites before
    /// shallower ones (their content is merged over the outer include), later list entries
    /// before earlier ones; each include followed by its own includes.
    fn priority_order(&self, doc: usize, out: &mut Vec<(Vec<Seg>, usize)>) {
        out.push((self.prefixes[doc].clone(), doc));
        let mut children = self.children[doc].clone();
        children.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        for (_, _, child) in children {
            self.priority_order(child, out);
        }
    }

    fn value_pos(&self, doc: usize, doc_path: &[Seg]) -> SourcePos {
        let d = &self.docs[doc];
        for len in (0..=doc_path.len()).rev() {
            if let Some(span) = d.spans.get(&doc_path[..len]) {
                return d.pos(span.value);
            }
        }
        SourcePos::file(&d.file)
    }

    fn include_error(&self, doc: usize, doc_path: &[Seg], message: String) -> ConfigError {
        ConfigError::Include {
            at: self.value_pos(doc, doc_path),
            message,
        }
    }
}

/// OpenClaw's `deepMerge`: arrays concatenate, objects merge recursively, otherwise `source`.
pub(crate) fn deep_merge(target: Value, source: Value) -> Value {
    match (target, source) {
        (Value::Array(mut t), Value::Array(s)) => {
            t.extend(s);
            Value::Array(t)
        }
        (Value::Object(mut t), Value::Object(s)) => {
            for (k, v) in s {
                let merged = match t.remove(&k) {
                    Some(existing) => deep_merge(existing, v),
                    None => v,
                };
                t.insert(k, merged);
            }
            Value::Object(t)
        }
        (_, source) => source,
    }
}

/// `16 MiB`, `17.3 MiB`.
fn mebibytes(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib.fract() == 0.0 {
        format!("{mib:.0} MiB")
    } else {
        format!("{mib:.1} MiB")
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(crate) use crate::fsutil::normalize;
