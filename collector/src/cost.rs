//! What a model call cost: a price table (USD per million input, output and cache-read
//! tokens, each price from an effective date on) and the arithmetic. Pure: no I/O.
//!
//! The collector computes a cost at ingest from the record's provider
//! (`gen_ai.provider.name`), model (`gen_ai.response.model`, else
//! `gen_ai.request.model`), time and token counts, and keeps it apart from the cost the
//! provider reported (`gen_ai.usage.cost`): the two are different facts, and neither
//! overwrites the other.
//!
//! Cached tokens are never counted twice: by the GenAI convention
//! `gen_ai.usage.input_tokens` includes the cache reads
//! (`gen_ai.usage.cache_read.input_tokens`), so only the difference is billed at the
//! input price and the cache reads at the cache-read price.
//!
//! The built-in table ([`PriceTable::builtin`]) holds the list prices of current
//! OpenAI, Anthropic and Gemini models as they were on [`PRICES_AS_OF`]. Prices change
//! and negotiated prices differ: override or extend the table in `logbook.toml`, one
//! `[[prices]]` table per price:
//!
//! ```toml
//! [[prices]]
//! model = "gpt-4o*"        # exact model name, or a prefix ending in '*'
//! provider = "openai"      # optional: gen_ai.provider.name; omitted matches any
//! effective = "2026-01-01" # the price applies from this date on (UTC midnight)
//! input = 2.0              # USD per million uncached input tokens
//! output = 8.0             # USD per million output tokens
//! cache_read = 1.0         # optional: USD per million cache-read tokens [default: input]
//! ```
//!
//! An override with the same model, provider and effective date as a built-in price
//! replaces it; any other is added, so a new effective date records a price change and
//! keeps the old price for older records. Built-in OpenAI and Anthropic prices name
//! their provider; an override meant to take their place for those providers should
//! name it too, since a price for a named provider beats one for any provider (see
//! [`PriceTable::lookup`]). Built-in Gemini prices name no provider, so they apply
//! whichever name (`gcp.gemini`, `gcp.vertex_ai`, …) the instrumentation reports.

use std::fmt;
use std::str::FromStr;

use logbook_proto::time::{days_from_civil, days_in_month};
use logbook_proto::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// The date the built-in price table was last checked against the providers' price lists.
pub const PRICES_AS_OF: &str = "2025-11-24";

/// One price: USD per million tokens, from a date on.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// The exact model name (`gpt-4o-2024-08-06`), or a prefix ending in `*` (`gpt-4o*`)
    /// that matches every model whose name starts with it. Compared case-insensitively
    /// and without a leading `vendor/` (`openai/gpt-4o` is `gpt-4o`).
    pub model: String,
    /// The provider (`gen_ai.provider.name`: `openai`, `anthropic`, …) this price is
    /// for; `None` matches any provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The date (UTC midnight) from which this price applies.
    pub effective: Date,
    /// USD per million uncached input tokens.
    #[serde(deserialize_with = "usd")]
    pub input: f64,
    /// USD per million output tokens.
    #[serde(deserialize_with = "usd")]
    pub output: f64,
    /// USD per million cache-read input tokens; `None`: billed as input.
    #[serde(
        default,
        deserialize_with = "usd_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub cache_read: Option<f64>,
}

impl Price {
    /// The cost of `usage` at this price, in USD.
    ///
    /// Uncached input is `input_tokens - cache_read_tokens` (saturating at zero: by the
    /// GenAI convention the input count includes the cache reads, so they are never
    /// billed twice), billed at [`Price::input`]; the cache reads at
    /// [`Price::cache_read`] (or `input`); the output at [`Price::output`]. Cache reads
    /// above the input count (an emitter that reported them separately) are all billed
    /// at the cache-read price, and no input at the input price.
    pub fn cost(&self, usage: &Usage) -> f64 {
        let uncached = usage.input_tokens.saturating_sub(usage.cache_read_tokens);
        let cache_read = self.cache_read.unwrap_or(self.input);
        (uncached as f64 * self.input
            + usage.cache_read_tokens as f64 * cache_read
            + usage.output_tokens as f64 * self.output)
            / 1_000_000.0
    }

    /// Whether this price is for the same model, provider and date as `other` (compared
    /// case-insensitively): an override of it.
    fn same_slot(&self, other: &Price) -> bool {
        self.model.eq_ignore_ascii_case(&other.model)
            && self.effective == other.effective
            && match (&self.provider, &other.provider) {
                (None, None) => true,
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }
}

fn usd<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    check_usd(f64::deserialize(d)?)
}

fn usd_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(d)?.map(check_usd).transpose()
}

fn check_usd<E: serde::de::Error>(v: f64) -> Result<f64, E> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(E::custom(format!(
            "invalid price {v}: expected USD per million tokens, a number >= 0"
        )))
    }
}

/// Token counts of one model call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// All input tokens, cache reads included (`gen_ai.usage.input_tokens`).
    pub input_tokens: u64,
    /// Output tokens (`gen_ai.usage.output_tokens`).
    pub output_tokens: u64,
    /// Input tokens served from the provider's cache, a part of `input_tokens`
    /// (`gen_ai.usage.cache_read.input_tokens`).
    pub cache_read_tokens: u64,
}

/// A calendar date, `YYYY-MM-DD` in text (years 1970 to 2261, so that its midnight is a
/// [`Timestamp`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

/// Text that is not a valid `YYYY-MM-DD` date.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("invalid date {input:?}: {reason}")]
pub struct DateError {
    input: String,
    reason: String,
}

const FIRST_YEAR: u16 = 1970;
const LAST_YEAR: u16 = 2261;
const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

impl Date {
    /// The date `year-month-day`, if it exists in the proleptic Gregorian calendar and
    /// the year is 1970 to 2261.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, DateError> {
        let err = |reason: String| DateError {
            input: format!("{year:04}-{month:02}-{day:02}"),
            reason,
        };
        if !(FIRST_YEAR..=LAST_YEAR).contains(&year) {
            return Err(err(format!("the year must be {FIRST_YEAR} to {LAST_YEAR}")));
        }
        if !(1..=12).contains(&month) {
            return Err(err("the month must be 01 to 12".to_owned()));
        }
        let last = days_in_month(i64::from(year), u32::from(month));
        if !(1..=last).contains(&u32::from(day)) {
            return Err(err(format!(
                "the day must be 01 to {last} in {year:04}-{month:02}"
            )));
        }
        Ok(Self { year, month, day })
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Result<Self, DateError> {
        let b = s.as_bytes();
        let digits = |r: std::ops::Range<usize>| -> Option<u16> {
            b[r].iter().try_fold(0u16, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + u16::from(c - b'0'))
            })
        };
        let fields = if b.len() == 10 && b[4] == b'-' && b[7] == b'-' {
            digits(0..4).zip(digits(5..7)).zip(digits(8..10))
        } else {
            None
        };
        let Some(((year, month), day)) = fields else {
            return Err(DateError {
                input: s.to_owned(),
                reason: "expected YYYY-MM-DD, e.g. 2025-01-01".to_owned(),
            });
        };
        // Two digits each: below 100, so the casts are exact.
        Self::new(year, month as u8, day as u8).map_err(|e| DateError {
            input: s.to_owned(),
            ..e
        })
    }

    /// The year.
    pub fn year(self) -> u16 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(self) -> u8 {
        self.month
    }

    /// The day of the month, from 1.
    pub fn day(self) -> u8 {
        self.day
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(self) -> i64 {
        days_from_civil(
            i64::from(self.year),
            u32::from(self.month),
            u32::from(self.day),
        )
    }

    /// Midnight UTC at the start of this date.
    pub fn to_timestamp(self) -> Timestamp {
        // At most 2261-12-31: within the i64 nanosecond range.
        Timestamp(self.days_since_epoch() * NANOS_PER_DAY)
    }
}

impl From<Date> for Timestamp {
    fn from(d: Date) -> Self {
        d.to_timestamp()
    }
}

impl FromStr for Date {
    type Err = DateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The price list: the built-in prices, possibly with operator overrides.
#[derive(Clone, Debug, PartialEq)]
pub struct PriceTable {
    entries: Vec<Price>,
}

impl Default for PriceTable {
    fn default() -> Self {
        Self::builtin()
    }
}

/// How well a price's model pattern matches a model name: an exact name beats any
/// prefix, a longer prefix a shorter one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Prefix(usize),
    Exact,
}

impl PriceTable {
    /// The built-in prices (list prices as of [`PRICES_AS_OF`]).
    pub fn builtin() -> Self {
        let entries = BUILTIN
            .iter()
            .map(
                |&(model, provider, effective, input, output, cache_read)| Price {
                    model: format!("{model}*"),
                    provider: provider.map(str::to_owned),
                    effective: Date::parse(effective)
                        .unwrap_or_else(|e| panic!("built-in price: {e}")),
                    input,
                    output,
                    cache_read: Some(cache_read),
                },
            )
            .collect();
        Self { entries }
    }

    /// The built-in table with `overrides` taking precedence: an override with the same
    /// model, provider and effective date as an entry (case-insensitively) replaces it;
    /// others are added.
    pub fn with_overrides(overrides: &[Price]) -> Self {
        let mut table = Self::builtin();
        for o in overrides {
            match table.entries.iter_mut().find(|e| e.same_slot(o)) {
                Some(e) => *e = o.clone(),
                None => table.entries.push(o.clone()),
            }
        }
        table
    }

    /// The price for `model` (the response or request model) from `provider` at `at`.
    ///
    /// A leading `vendor/` of the model name (OpenRouter style: `openai/gpt-4o`) is
    /// ignored in matching and counts as a second provider name. Names compare
    /// case-insensitively. Of the entries in effect at `at` (effective date no later)
    /// whose model pattern matches and whose provider is unnamed or is `provider` or
    /// the vendor, only those with the most specific pattern count (an exact name beats
    /// a prefix, a longer prefix beats a shorter one: `gpt-4o-mini*` beats `gpt-4o*` for
    /// `gpt-4o-mini-2024-07-18`). Of those, an entry naming the reported provider beats
    /// one naming the vendor, which beats one naming none, and then the latest
    /// effective date wins. When `provider` is `None` and the name has no vendor,
    /// entries of every provider match and rank alike. So a price added for an exact
    /// name from a later date leaves earlier calls with the price they had.
    ///
    /// `None` when nothing in effect matches.
    pub fn lookup(&self, provider: Option<&str>, model: &str, at: Timestamp) -> Option<&Price> {
        let (vendor, name) = split_vendor(model.trim());
        let provider = provider.map(str::trim).filter(|p| !p.is_empty());
        let ranked = || {
            self.entries
                .iter()
                .filter(move |p| p.effective.to_timestamp() <= at)
                .filter_map(move |p| {
                    let spec = specificity(&p.model, name)?;
                    let rank = provider_rank(p.provider.as_deref(), provider, vendor)?;
                    Some((spec, rank, p))
                })
        };
        let best = ranked().map(|(spec, _, _)| spec).max()?;
        ranked()
            .filter(|&(spec, _, _)| spec == best)
            // On a tie the later entry (an override) wins: `max_by_key` keeps the last.
            .max_by_key(|&(_, rank, p)| (rank, p.effective))
            .map(|(_, _, p)| p)
    }

    /// The cost in USD of `usage` for `model` from `provider` at `at` (see
    /// [`Price::cost`]); `None` when no price matches.
    pub fn cost(
        &self,
        provider: Option<&str>,
        model: &str,
        at: Timestamp,
        usage: &Usage,
    ) -> Option<f64> {
        self.lookup(provider, model, at).map(|p| p.cost(usage))
    }

    /// Every price, built-in ones first, then the added overrides in their order.
    pub fn entries(&self) -> &[Price] {
        &self.entries
    }
}

/// `openai/gpt-4o` → (`Some("openai")`, `gpt-4o`); the part after the last `/`.
fn split_vendor(model: &str) -> (Option<&str>, &str) {
    match model.rsplit_once('/') {
        Some((vendor, name)) => {
            let vendor = vendor.rsplit('/').next().filter(|v| !v.is_empty());
            (vendor, name)
        }
        None => (None, model),
    }
}

/// How `pattern` (an exact name or a prefix ending in `*`, with an optional `vendor/`)
/// matches `name`, or `None`.
fn specificity(pattern: &str, name: &str) -> Option<Specificity> {
    let pattern = split_vendor(pattern.trim()).1;
    match pattern.strip_suffix('*') {
        Some(prefix) => {
            let head = name.as_bytes().get(..prefix.len())?;
            head.eq_ignore_ascii_case(prefix.as_bytes())
                .then_some(Specificity::Prefix(prefix.len()))
        }
        None => pattern
            .eq_ignore_ascii_case(name)
            .then_some(Specificity::Exact),
    }
}

/// Whether a price for `entry` (its provider) applies to a call reported from
/// `provider` with model vendor `vendor`, and how closely: 2 the reported provider,
/// 1 the vendor, 0 any provider (or an unknown one).
fn provider_rank(entry: Option<&str>, provider: Option<&str>, vendor: Option<&str>) -> Option<u8> {
    let Some(entry) = entry.map(str::trim) else {
        return Some(0);
    };
    let is = |p: Option<&str>| p.is_some_and(|p| p.eq_ignore_ascii_case(entry));
    if is(provider) {
        Some(2)
    } else if is(vendor) {
        Some(1)
    } else if provider.is_none() && vendor.is_none() {
        Some(0)
    } else {
        None
    }
}

const OPENAI: Option<&str> = Some("openai");
const ANTHROPIC: Option<&str> = Some("anthropic");

/// Model family (a `*` is appended), provider, effective date, and USD per million
/// input, output and cache-read tokens.
type Builtin = (
    &'static str,
    Option<&'static str>,
    &'static str,
    f64,
    f64,
    f64,
);

#[rustfmt::skip]
const BUILTIN: &[Builtin] = &[
    // OpenAI
    ("gpt-4o", OPENAI, "2025-01-01", 2.50, 10.00, 1.25),
    ("gpt-4o-mini", OPENAI, "2025-01-01", 0.15, 0.60, 0.075),
    // Longer names that the families above would otherwise price wrongly (no cache
    // discount: the cache-read price is the input price).
    ("gpt-4o-2024-05-13", OPENAI, "2025-01-01", 5.00, 15.00, 5.00),
    ("gpt-4o-realtime", OPENAI, "2025-01-01", 5.00, 20.00, 2.50),
    ("gpt-4o-mini-realtime", OPENAI, "2025-01-01", 0.60, 2.40, 0.30),
    ("o1-mini", OPENAI, "2025-01-01", 1.10, 4.40, 0.55),
    ("o1-pro", OPENAI, "2025-03-19", 150.00, 600.00, 150.00),
    ("o3-pro", OPENAI, "2025-06-10", 20.00, 80.00, 20.00),
    ("gpt-5-pro", OPENAI, "2025-10-06", 15.00, 120.00, 15.00),
    ("gpt-4.1", OPENAI, "2025-04-14", 2.00, 8.00, 0.50),
    ("gpt-4.1-mini", OPENAI, "2025-04-14", 0.40, 1.60, 0.10),
    ("gpt-4.1-nano", OPENAI, "2025-04-14", 0.10, 0.40, 0.025),
    ("o1", OPENAI, "2025-01-01", 15.00, 60.00, 7.50),
    ("o3", OPENAI, "2025-04-16", 10.00, 40.00, 2.50),
    ("o3", OPENAI, "2025-06-10", 2.00, 8.00, 0.50),
    ("o3-mini", OPENAI, "2025-01-01", 1.10, 4.40, 0.55),
    ("o4-mini", OPENAI, "2025-04-16", 1.10, 4.40, 0.275),
    ("gpt-5", OPENAI, "2025-08-07", 1.25, 10.00, 0.125),
    ("gpt-5-mini", OPENAI, "2025-08-07", 0.25, 2.00, 0.025),
    ("gpt-5-nano", OPENAI, "2025-08-07", 0.05, 0.40, 0.005),
    // Anthropic
    ("claude-opus-4", ANTHROPIC, "2025-05-22", 15.00, 75.00, 1.50),
    ("claude-opus-4-1", ANTHROPIC, "2025-05-22", 15.00, 75.00, 1.50),
    ("claude-opus-4-5", ANTHROPIC, "2025-11-24", 5.00, 25.00, 0.50),
    ("claude-sonnet-4", ANTHROPIC, "2025-05-22", 3.00, 15.00, 0.30),
    ("claude-sonnet-4-5", ANTHROPIC, "2025-05-22", 3.00, 15.00, 0.30),
    ("claude-3-7-sonnet", ANTHROPIC, "2025-01-01", 3.00, 15.00, 0.30),
    ("claude-3-5-sonnet", ANTHROPIC, "2025-01-01", 3.00, 15.00, 0.30),
    ("claude-haiku-4-5", ANTHROPIC, "2025-10-15", 1.00, 5.00, 0.10),
    ("claude-3-5-haiku", ANTHROPIC, "2025-01-01", 0.80, 4.00, 0.08),
    // Gemini: any provider name (gcp.gemini, gcp.vertex_ai, …).
    ("gemini-2.5-pro", None, "2025-01-01", 1.25, 10.00, 0.31),
    ("gemini-2.5-flash", None, "2025-01-01", 0.30, 2.50, 0.075),
    ("gemini-2.5-flash-lite", None, "2025-01-01", 0.10, 0.40, 0.025),
    ("gemini-2.0-flash", None, "2025-01-01", 0.10, 0.40, 0.025),
    ("gemini-2.0-flash-lite", None, "2025-01-01", 0.075, 0.30, 0.075),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn at(date: &str) -> Timestamp {
        Date::parse(date).unwrap().to_timestamp()
    }

    fn approx(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    fn price(model: &str, provider: Option<&str>, effective: &str, input: f64) -> Price {
        Price {
            model: model.to_owned(),
            provider: provider.map(str::to_owned),
            effective: Date::parse(effective).unwrap(),
            input,
            output: input * 4.0,
            cache_read: None,
        }
    }

    const NOW: &str = "2025-12-01";

    #[test]
    fn builtin_table_is_well_formed() {
        let t = PriceTable::builtin();
        assert_eq!(t.entries().len(), BUILTIN.len());
        assert!(t.entries().iter().all(|p| p.model.ends_with('*')));
        assert!(Date::parse(PRICES_AS_OF).is_ok());
        // Every family resolves to its own entry, not a shorter prefix's.
        for &(family, provider, _, input, output, cache) in BUILTIN {
            let p = t.lookup(provider, family, at(NOW)).unwrap();
            assert_eq!(p.model, format!("{family}*"), "{family}");
            if family != "o3" {
                assert_eq!(
                    (p.input, p.output, p.cache_read),
                    (input, output, Some(cache))
                );
            }
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let t = PriceTable::builtin();
        let now = at(NOW);
        let model = |provider, m| t.lookup(provider, m, now).map(|p| p.model.as_str());
        let openai = Some("openai");
        let anthropic = Some("anthropic");
        assert_eq!(model(openai, "gpt-4o-2024-08-06"), Some("gpt-4o*"));
        assert_eq!(model(openai, "gpt-4o-mini"), Some("gpt-4o-mini*"));
        assert_eq!(
            model(openai, "gpt-4o-mini-2024-07-18"),
            Some("gpt-4o-mini*")
        );
        assert_eq!(model(openai, "o3-mini-2025-01-31"), Some("o3-mini*"));
        assert_eq!(model(openai, "o3-2025-04-16"), Some("o3*"));
        assert_eq!(model(openai, "gpt-5-mini-2025-08-07"), Some("gpt-5-mini*"));
        assert_eq!(model(openai, "gpt-5-2025-08-07"), Some("gpt-5*"));
        assert_eq!(model(openai, "gpt-4.1-nano"), Some("gpt-4.1-nano*"));
        assert_eq!(
            model(anthropic, "claude-opus-4-5-20251101"),
            Some("claude-opus-4-5*")
        );
        assert_eq!(
            model(anthropic, "claude-opus-4-20250514"),
            Some("claude-opus-4*")
        );
        assert_eq!(
            model(anthropic, "claude-opus-4-1-20250805"),
            Some("claude-opus-4-1*")
        );
        assert_eq!(
            model(anthropic, "claude-sonnet-4-5-20250929"),
            Some("claude-sonnet-4-5*")
        );
        assert_eq!(
            model(anthropic, "claude-3-5-sonnet-20241022"),
            Some("claude-3-5-sonnet*")
        );
        assert_eq!(
            model(None, "gemini-2.5-flash-lite"),
            Some("gemini-2.5-flash-lite*")
        );
        assert_eq!(model(None, "gemini-2.5-flash"), Some("gemini-2.5-flash*"));
        assert_eq!(
            model(Some("gcp.vertex_ai"), "gemini-2.5-pro"),
            Some("gemini-2.5-pro*")
        );
        let mini = t.lookup(openai, "gpt-4o-mini", now).unwrap();
        assert_eq!(mini.input, 0.15);
    }

    #[test]
    fn exact_beats_prefix() {
        let t = PriceTable::with_overrides(&[price("gpt-4o-custom", None, "2024-05-13", 5.0)]);
        let now = at(NOW);
        let p = t.lookup(Some("openai"), "gpt-4o-custom", now).unwrap();
        assert_eq!((p.model.as_str(), p.input), ("gpt-4o-custom", 5.0));
        // An exact entry matches only its own name.
        let p = t.lookup(Some("openai"), "gpt-4o-custom-x", now).unwrap();
        assert_eq!(p.model, "gpt-4o*");
    }

    #[test]
    fn matching_is_case_insensitive_and_ignores_the_vendor_prefix() {
        let t = PriceTable::builtin();
        let now = at(NOW);
        for m in [
            "GPT-4o",
            "Gpt-4O-2024-08-06",
            "openai/gpt-4o",
            "OpenAI/GPT-4o",
        ] {
            let p = t.lookup(Some("openai"), m, now).unwrap();
            assert_eq!(p.model, "gpt-4o*", "{m}");
        }
        assert_eq!(
            t.lookup(Some("OpenAI"), "gpt-4o", now).unwrap().model,
            "gpt-4o*"
        );
        // OpenRouter: the vendor in the name stands in for the provider.
        let p = t.lookup(Some("openrouter"), "anthropic/claude-sonnet-4-5", now);
        assert_eq!(p.unwrap().model, "claude-sonnet-4-5*");
        let p = t.lookup(None, "openai/gpt-4o-mini", now);
        assert_eq!(p.unwrap().model, "gpt-4o-mini*");
        // Another provider's price does not apply.
        assert_eq!(t.lookup(Some("azure.ai.openai"), "gpt-4o", now), None);
        assert_eq!(t.lookup(Some("openrouter"), "mistral/gpt-4o", now), None);
        // An unknown provider matches every provider's price.
        assert_eq!(t.lookup(None, "gpt-4o", now).unwrap().model, "gpt-4o*");
        assert_eq!(t.lookup(Some(""), "gpt-4o", now).unwrap().model, "gpt-4o*");
    }

    #[test]
    fn unknown_model_has_no_price() {
        let t = PriceTable::builtin();
        let now = at(NOW);
        assert_eq!(t.lookup(Some("openai"), "text-davinci-003", now), None);
        assert_eq!(t.lookup(None, "", now), None);
        assert_eq!(t.lookup(None, "gpt-4", now), None);
        let usage = Usage {
            input_tokens: 10,
            output_tokens: 10,
            cache_read_tokens: 0,
        };
        assert_eq!(t.cost(None, "llama-3-70b", now, &usage), None);
    }

    #[test]
    fn effective_dates() {
        let t = PriceTable::builtin();
        let o3 = |date| {
            t.lookup(Some("openai"), "o3-2025-04-16", at(date))
                .map(|p| p.input)
        };
        assert_eq!(o3("2025-04-15"), None);
        assert_eq!(o3("2025-04-16"), Some(10.0));
        assert_eq!(o3("2025-06-09"), Some(10.0));
        assert_eq!(o3("2025-06-10"), Some(2.0));
        assert_eq!(o3("2026-01-01"), Some(2.0));
        // One nanosecond before the change.
        let before = Timestamp(at("2025-06-10").0 - 1);
        assert_eq!(t.lookup(None, "o3", before).unwrap().input, 10.0);
        // Before any price of the family: none, not a shorter prefix's price.
        assert_eq!(t.lookup(None, "gpt-4o", at("2024-12-31")), None);
        // A later price for an exact name leaves earlier calls their family's price.
        let t = PriceTable::with_overrides(&[Price {
            model: "gpt-4o".to_owned(),
            provider: Some("openai".to_owned()),
            effective: Date::parse("2026-01-01").unwrap(),
            input: 2.0,
            output: 8.0,
            cache_read: Some(1.0),
        }]);
        let input = |date| {
            t.lookup(Some("openai"), "gpt-4o", at(date))
                .map(|p| p.input)
        };
        assert_eq!(input("2025-12-31"), Some(2.5));
        assert_eq!(input("2026-01-01"), Some(2.0));
        // Longer names are not priced as their shorter family.
        let t = PriceTable::builtin();
        let input = |m| {
            t.lookup(Some("openai"), m, at("2025-12-01"))
                .map(|p| p.input)
        };
        assert_eq!(input("o1-mini-2024-09-12"), Some(1.1));
        assert_eq!(input("o3-pro-2025-06-10"), Some(20.0));
        assert_eq!(input("gpt-5-pro"), Some(15.0));
        assert_eq!(input("gpt-4o-2024-05-13"), Some(5.0));
        assert_eq!(input("gpt-4o-2024-08-06"), Some(2.5));
    }

    #[test]
    fn overrides_replace_and_add() {
        let same_slot = Price {
            model: "GPT-4o*".to_owned(),
            provider: Some("OpenAI".to_owned()),
            effective: Date::parse("2025-01-01").unwrap(),
            input: 2.0,
            output: 8.0,
            cache_read: Some(1.0),
        };
        let later = price("gpt-4o*", Some("openai"), "2026-01-01", 3.0);
        let azure = price("gpt-4o*", Some("azure.ai.openai"), "2025-01-01", 2.75);
        let new_model = price("llama-3-70b*", None, "2025-01-01", 0.5);
        let t = PriceTable::with_overrides(&[same_slot, later, azure, new_model]);
        assert_eq!(t.entries().len(), BUILTIN.len() + 3);
        let gpt4o = |provider, date| t.lookup(provider, "gpt-4o", at(date)).map(|p| p.input);
        assert_eq!(gpt4o(Some("openai"), "2025-06-01"), Some(2.0));
        assert_eq!(gpt4o(Some("openai"), "2026-06-01"), Some(3.0));
        assert_eq!(gpt4o(Some("azure.ai.openai"), "2026-06-01"), Some(2.75));
        // The replaced built-in price is gone.
        assert!(!t
            .entries()
            .iter()
            .any(|p| p.model == "gpt-4o*" && p.input == 2.5));
        assert_eq!(
            t.lookup(Some("meta"), "llama-3-70b-instruct", at(NOW))
                .map(|p| p.input),
            Some(0.5)
        );
        // Untouched built-ins stay.
        assert_eq!(gpt4o(Some("openai"), "2024-12-31"), None);
        assert_eq!(
            t.lookup(Some("openai"), "gpt-4o-mini", at(NOW))
                .map(|p| p.input),
            Some(0.15)
        );
    }

    #[test]
    fn provider_specific_beats_provider_less() {
        let t = PriceTable::with_overrides(&[
            price("acme-1*", None, "2025-03-01", 1.0),
            price("acme-1*", Some("acme"), "2025-01-01", 2.0),
            price("acme-1*", Some("other"), "2025-01-01", 3.0),
        ]);
        let input = |provider, date| t.lookup(provider, "acme-1", at(date)).map(|p| p.input);
        assert_eq!(input(Some("acme"), NOW), Some(2.0));
        assert_eq!(input(Some("third"), NOW), Some(1.0));
        assert_eq!(input(Some("third"), "2025-02-01"), None);
        // Unknown provider: every entry ranks alike, the latest date wins.
        assert_eq!(input(None, NOW), Some(1.0));
        assert_eq!(input(None, "2025-02-01"), Some(3.0));
        // A provider-specific price not yet in effect leaves the provider-less one.
        let t = PriceTable::with_overrides(&[
            price("acme-1*", None, "2025-01-01", 1.0),
            price("acme-1*", Some("acme"), "2026-01-01", 2.0),
        ]);
        let input = |date| t.lookup(Some("acme"), "acme-1", at(date)).map(|p| p.input);
        assert_eq!(input(NOW), Some(1.0));
        assert_eq!(input("2026-01-01"), Some(2.0));
    }

    #[test]
    fn cost_bills_cache_reads_once() {
        let t = PriceTable::builtin();
        let now = at(NOW);
        let usage = Usage {
            input_tokens: 1000,
            output_tokens: 200,
            cache_read_tokens: 400,
        };
        let cost = t.cost(Some("openai"), "gpt-4o", now, &usage).unwrap();
        let expected = 600.0 * 2.5e-6 + 400.0 * 1.25e-6 + 200.0 * 10e-6;
        assert!(approx(cost, expected), "{cost} != {expected}");
        assert!(approx(cost, 0.004));
        // No cache reads.
        let usage = Usage {
            input_tokens: 1_000_000,
            output_tokens: 1_000_000,
            cache_read_tokens: 0,
        };
        let cost = t
            .cost(Some("anthropic"), "claude-sonnet-4-5-20250929", now, &usage)
            .unwrap();
        assert!(approx(cost, 18.0), "{cost}");
        // More cache reads than input: no uncached input, every cache read once.
        let usage = Usage {
            input_tokens: 100,
            output_tokens: 0,
            cache_read_tokens: 400,
        };
        let cost = t.cost(Some("openai"), "gpt-4o", now, &usage).unwrap();
        assert!(approx(cost, 400.0 * 1.25e-6), "{cost}");
        // No cache-read price: cache reads are billed as input.
        let p = price("acme*", None, "2025-01-01", 1.0);
        let usage = Usage {
            input_tokens: 1000,
            output_tokens: 10,
            cache_read_tokens: 400,
        };
        assert!(approx(p.cost(&usage), 1000.0 * 1e-6 + 10.0 * 4e-6));
        assert_eq!(p.cost(&Usage::default()), 0.0);
    }

    #[test]
    fn dates_parse_strictly() {
        let d = Date::parse("2025-01-01").unwrap();
        assert_eq!((d.year(), d.month(), d.day()), (2025, 1, 1));
        assert_eq!(d.to_string(), "2025-01-01");
        assert_eq!(d.to_timestamp(), Timestamp(1_735_689_600 * 1_000_000_000));
        assert_eq!(Timestamp::from(d), d.to_timestamp());
        assert_eq!(
            Date::parse("1970-01-01").unwrap().to_timestamp(),
            Timestamp(0)
        );
        assert_eq!(
            Date::parse("2000-03-01").unwrap().to_timestamp(),
            Timestamp(951_868_800 * 1_000_000_000)
        );
        assert!(Date::parse("2261-12-31").is_ok());
        assert!(Date::parse("2024-02-29").is_ok());
        assert!(Date::parse("2000-02-29").is_ok());
        assert!(Date::parse("2025-02-28").unwrap() < Date::parse("2025-03-01").unwrap());
        // Against the proto crate's calendar, every day over a few centuries' leap rules.
        for (from, to) in [
            ("1970-01-01", "1973-01-01"),
            ("2023-11-01", "2028-03-02"),
            ("2099-12-01", "2100-03-02"),
        ] {
            let mut t = Date::parse(from).unwrap().to_timestamp();
            while t < Date::parse(to).unwrap().to_timestamp() {
                let d = Date::parse(&t.to_string()[..10]).unwrap();
                assert_eq!(d.to_timestamp(), t, "{d}");
                assert_eq!(Timestamp::parse_rfc3339(&d.to_string()).unwrap(), t);
                t = Timestamp(t.0 + NANOS_PER_DAY);
            }
        }
        for bad in [
            "2025-02-29",
            "2100-02-29",
            "2025-13-01",
            "2025-00-10",
            "2025-04-31",
            "2025-01-00",
            "2025-1-01",
            "2025/01/01",
            "25-01-01",
            "2025-01-01T00:00:00Z",
            "2025-0a-01",
            "+025-01-01",
            "1969-12-31",
            "9999-01-01",
            "",
        ] {
            let e = Date::parse(bad).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        let e = Date::parse("2025-02-29").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid date \"2025-02-29\": the day must be 01 to 28 in 2025-02"
        );
        let e = Date::parse("2025-13-01").unwrap_err().to_string();
        assert_eq!(e, "invalid date \"2025-13-01\": the month must be 01 to 12");
    }

    #[test]
    fn price_deserializes() {
        let p: Price = serde_json::from_value(serde_json::json!({
            "model": "gpt-4o*", "effective": "2026-01-01", "input": 2, "output": 8.0
        }))
        .unwrap();
        assert_eq!(p.provider, None);
        assert_eq!(p.cache_read, None);
        assert_eq!(p.effective, Date::parse("2026-01-01").unwrap());
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["effective"], "2026-01-01");
        assert!(back.get("cache_read").is_none());
        let with_null = serde_json::json!({
            "model": "m", "effective": "2026-01-01", "input": 1, "output": 1, "cache_read": null
        });
        assert_eq!(
            serde_json::from_value::<Price>(with_null)
                .unwrap()
                .cache_read,
            None
        );
        assert_eq!(serde_json::from_value::<Price>(back).unwrap(), p);
        for bad in [
            serde_json::json!({"model": "m", "effective": "2026-02-30", "input": 1, "output": 1}),
            serde_json::json!({"model": "m", "effective": "2026-01-01", "input": -1, "output": 1}),
            serde_json::json!({"model": "m", "effective": "2026-01-01", "input": 1, "output": 1, "cache_read": -0.5}),
            serde_json::json!({"model": "m", "effective": "2026-01-01", "input": 1, "output": 1, "cached": 1}),
            serde_json::json!({"model": "m", "input": 1, "output": 1}),
        ] {
            assert!(
                serde_json::from_value::<Price>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let e = serde_json::from_value::<Price>(
            serde_json::json!({"model": "m", "effective": "2026-02-30", "input": 1, "output": 1}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("2026-02-30"), "{e}");
    }

    #[cfg(feature = "server")]
    #[test]
    fn prices_deserialize_from_toml() {
        #[derive(Deserialize)]
        struct File {
            prices: Vec<Price>,
        }
        let f: File = toml::from_str(
            r#"
            [[prices]]
            model = "gpt-4o*"
            provider = "openai"
            effective = "2026-01-01"
            input = 2.0
            output = 8.0
            cache_read = 1.0

            [[prices]]
            model = "my-model"
            effective = "2025-06-01"
            input = 1
            output = 2
            "#,
        )
        .unwrap();
        assert_eq!(
            f.prices[0],
            Price {
                model: "gpt-4o*".to_owned(),
                provider: Some("openai".to_owned()),
                effective: Date::new(2026, 1, 1).unwrap(),
                input: 2.0,
                output: 8.0,
                cache_read: Some(1.0),
            }
        );
        assert_eq!((f.prices[1].input, f.prices[1].cache_read), (1.0, None));
        let t = PriceTable::with_overrides(&f.prices);
        let p = t
            .lookup(Some("openai"), "gpt-4o-2024-11-20", at("2026-02-01"))
            .unwrap();
        assert_eq!(p.input, 2.0);
        let e = toml::from_str::<File>(
            "[[prices]]\nmodel = \"m\"\neffective = \"2026-1-1\"\ninput = 1\noutput = 1\n",
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("expected YYYY-MM-DD"), "{e}");
    }
}
