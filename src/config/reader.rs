//! A typed reader over TOML's spanned tree: every getter knows its key path and span, so an
//! error can always say where it is and what was expected.

use super::error::{ConfigError, did_you_mean};
use super::source::Source;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub type Value<'i> = Spanned<DeValue<'i>>;

/// Collects errors for one file.
pub struct Diags<'s> {
    pub source: &'s Source,
    pub errors: Vec<ConfigError>,
}

impl<'s> Diags<'s> {
    pub fn new(source: &'s Source) -> Self {
        Self {
            source,
            errors: Vec::new(),
        }
    }

    pub fn error(&mut self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let (line, column) = self.source.position(span);
        self.errors.push(ConfigError {
            path: self.source.path.clone(),
            line,
            column,
            key: (!key.is_empty()).then(|| key.to_owned()),
            message: message.into(),
        });
    }
}

pub fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// A TOML table at a known key path, with its set of valid keys.
pub struct Table<'a, 'i> {
    pub path: String,
    pub span: Range<usize>,
    map: &'a DeTable<'i>,
}

impl<'a, 'i> Table<'a, 'i> {
    /// Opens `value` as a table; reports a type error or unknown keys (with a suggestion).
    /// `known = None` accepts any key (for maps keyed by user-chosen names).
    pub fn open(
        d: &mut Diags<'_>,
        path: String,
        value: &'a Value<'i>,
        known: Option<&[&str]>,
    ) -> Option<Self> {
        let DeValue::Table(map) = value.get_ref() else {
            d.error(
                &value.span(),
                &path,
                format!("expected a table, found {}", type_name(value.get_ref())),
            );
            return None;
        };
        let table = Self {
            path,
            span: value.span(),
            map,
        };
        if let Some(known) = known {
            for (key, _) in map.iter() {
                let name: &str = key.get_ref();
                if !known.contains(&name) {
                    d.error(
                        &key.span(),
                        &table.key_path(name),
                        format!(
                            "unknown key (expected one of: {}){}",
                            known.join(", "),
                            did_you_mean(name, known.iter().copied())
                        ),
                    );
                }
            }
        }
        Some(table)
    }

    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn entries(&self) -> impl Iterator<Item = (&'a str, Range<usize>, &'a Value<'i>)> {
        self.map
            .iter()
            .map(|(k, v)| (k.get_ref().as_ref(), k.span(), v))
    }

    pub fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.map.get(key)
    }

    /// A key's string value, lower-cased, without diagnostics (for checks across tables that
    /// must run even when the rest of a table is invalid, such as duplicate names).
    pub fn peek_str(&self, key: &str) -> Option<String> {
        match self.get(key)?.get_ref() {
            DeValue::String(s) => Some(s.to_ascii_lowercase()),
            _ => None,
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.map.get(key).is_some()
    }

    /// Span of a key's value, or of the table when the key is absent.
    pub fn span_of(&self, key: &str) -> Range<usize> {
        self.get(key)
            .map_or_else(|| self.span.clone(), |v| v.span())
    }

    pub fn missing(&self, d: &mut Diags<'_>, key: &str, expected: &str) {
        d.error(
            &self.span,
            &self.key_path(key),
            format!("missing required key (expected {expected})"),
        );
    }

    /// A key that is present but does not fit the rest of its table.
    pub fn invalid(&self, d: &mut Diags<'_>, key: &str, why: &str) {
        d.error(&self.span_of(key), &self.key_path(key), why.to_owned());
    }

    pub fn str(&self, d: &mut Diags<'_>, key: &str) -> Option<(&'a str, Range<usize>)> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.as_ref(), v.span())),
            other => {
                d.error(
                    &v.span(),
                    &self.key_path(key),
                    format!("expected a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    pub fn bool(&self, d: &mut Diags<'_>, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                d.error(
                    &v.span(),
                    &self.key_path(key),
                    format!("expected true or false, found {}", type_name(other)),
                );
                None
            }
        }
    }

    pub fn int(&self, d: &mut Diags<'_>, key: &str, range: Range<i64>) -> Option<i64> {
        let v = self.get(key)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => {
                i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()
            }
            _ => None,
        };
        match parsed {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                d.error(
                    &v.span(),
                    &self.key_path(key),
                    format!(
                        "expected an integer from {} to {}, found {}",
                        range.start,
                        range.end - 1,
                        describe(v.get_ref())
                    ),
                );
                None
            }
        }
    }

    pub fn float(&self, d: &mut Diags<'_>, key: &str) -> Option<f64> {
        let v = self.get(key)?;
        let parsed = match v.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
            DeValue::Integer(i) => i.as_str().replace('_', "").parse().ok(),
            _ => None,
        };
        if parsed.is_none() {
            d.error(
                &v.span(),
                &self.key_path(key),
                format!("expected a number, found {}", describe(v.get_ref())),
            );
        }
        parsed
    }

    /// A string run through `parse`; the parse error becomes the message.
    pub fn parsed<T>(
        &self,
        d: &mut Diags<'_>,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        self.parsed_as(d, key, "a string", parse)
    }

    /// Like [`Self::parsed`], naming the expected form (`what`) when the value is no string.
    pub fn parsed_as<T>(
        &self,
        d: &mut Diags<'_>,
        key: &str,
        what: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let v = self.get(key)?;
        let DeValue::String(s) = v.get_ref() else {
            d.error(
                &v.span(),
                &self.key_path(key),
                format!("expected {what}, found {}", type_name(v.get_ref())),
            );
            return None;
        };
        let (s, span) = (s.as_ref(), v.span());
        match parse(s) {
            Ok(v) => Some(v),
            Err(e) => {
                d.error(&span, &self.key_path(key), e);
                None
            }
        }
    }

    /// An array of strings, each with its span. Items of another type are reported and
    /// skipped, so the rest are still checked.
    pub fn str_list(&self, d: &mut Diags<'_>, key: &str) -> Option<Vec<(&'a str, Range<usize>)>> {
        let v = self.get(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            d.error(
                &v.span(),
                &self.key_path(key),
                format!(
                    "expected an array of strings, found {}",
                    type_name(v.get_ref())
                ),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::String(s) => out.push((s.as_ref(), item.span())),
                other => d.error(
                    &item.span(),
                    &format!("{}[{i}]", self.key_path(key)),
                    format!("expected a string, found {}", type_name(other)),
                ),
            }
        }
        Some(out)
    }

    /// An array of strings each run through `parse`; every bad item is reported.
    pub fn parsed_list<T>(
        &self,
        d: &mut Diags<'_>,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let items = self.str_list(d, key)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, (s, span)) in items.iter().enumerate() {
            match parse(s) {
                Ok(v) => out.push(v),
                Err(e) => {
                    ok = false;
                    d.error(span, &format!("{}[{i}]", self.key_path(key)), e);
                }
            }
        }
        ok.then_some(out)
    }

    /// An array of tables (`[[x.y]]`), each opened with the known keys.
    pub fn table_list(&self, d: &mut Diags<'_>, key: &str, known: &[&str]) -> Vec<Table<'a, 'i>> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = v.get_ref() else {
            d.error(
                &v.span(),
                &self.key_path(key),
                format!(
                    "expected an array of tables ([[{}]]), found {}",
                    self.key_path(key),
                    type_name(v.get_ref())
                ),
            );
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| {
                Table::open(d, format!("{}[{i}]", self.key_path(key)), item, Some(known))
            })
            .collect()
    }

    pub fn sub_table(
        &self,
        d: &mut Diags<'_>,
        key: &str,
        known: Option<&[&str]>,
    ) -> Option<Table<'a, 'i>> {
        let v = self.get(key)?;
        Table::open(d, self.key_path(key), v, known)
    }
}

fn describe(v: &DeValue<'_>) -> String {
    match v {
        DeValue::Integer(i) => i.as_str().to_owned(),
        DeValue::Float(f) => f.as_str().to_owned(),
        other => type_name(other).to_owned(),
    }
}
