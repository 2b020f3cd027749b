//! Card numbers and SSNs: runs of digit groups separated by single spaces or dashes.
//!
//! Hand-written rather than a regex because a card may sit inside a longer run
//! (`order 12 4111 1111 1111 1111`) and must still be found; one pass over the groups,
//! each window bounded to 19 digits, keeps it linear.

use crate::detect::Detector;

const CARD_MIN: usize = 13;
const CARD_MAX: usize = 19;

struct Group {
    start: usize,
    end: usize,
    /// The separator before this group (`0` for the first).
    sep: u8,
}

/// Emits card numbers (`card`) and SSNs (`ssn`) in `s`.
pub(crate) fn find(s: &[u8], card: bool, ssn: bool, emit: &mut impl FnMut(Detector, usize, usize)) {
    let mut groups: Vec<Group> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if !s[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        groups.clear();
        let mut sep = 0;
        loop {
            let start = i;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            groups.push(Group { start, end: i, sep });
            if i + 1 < s.len() && matches!(s[i], b' ' | b'-') && s[i + 1].is_ascii_digit() {
                sep = s[i];
                i += 1;
            } else {
                break;
            }
        }
        let first_ok = open_left(s, groups[0].start);
        let last_ok = open_right(s, i);
        let run = Run {
            s,
            groups: &groups,
            first_ok,
            last_ok,
        };
        if card {
            run.cards(emit);
        }
        if ssn {
            run.ssns(emit);
        }
    }
}

struct Run<'a> {
    s: &'a [u8],
    groups: &'a [Group],
    /// Whether the first group may start a match (not glued to a letter or decimal).
    first_ok: bool,
    /// Whether the last group may end one.
    last_ok: bool,
}

impl Run<'_> {
    fn usable(&self, from: usize, to: usize) -> bool {
        (from > 0 || self.first_ok) && (to + 1 < self.groups.len() || self.last_ok)
    }

    fn cards(&self, emit: &mut impl FnMut(Detector, usize, usize)) {
        let g = self.groups;
        let mut from = 0;
        while from < g.len() {
            let mut best = None;
            let mut digits = 0;
            for to in from..g.len() {
                let len = g[to].end - g[to].start;
                digits += len;
                let fits = to == from
                    || (g[from].end - g[from].start == 4
                        && (1..=6).contains(&len)
                        && g[to].sep == g[from + 1].sep);
                if !fits || digits > CARD_MAX {
                    break;
                }
                if digits >= CARD_MIN
                    && self.usable(from, to)
                    && (to == from || self.is_card_layout(from, to))
                    && is_card(self.digits(from, to))
                {
                    best = Some(to);
                }
            }
            match best {
                Some(to) => {
                    emit(Detector::CreditCard, g[from].start, g[to].end);
                    from = to + 1;
                }
                None => from += 1,
            }
        }
    }

    /// The layouts cards are printed in: groups of 4 with a shorter last group
    /// (4-4-4-4, 4-4-4-1, 4-4-4-4-3), or Amex and Diners' 4-6-5 and 4-6-4. Number
    /// lists (`2048 4096 8192 14010`) mostly fail this.
    fn is_card_layout(&self, from: usize, to: usize) -> bool {
        let lens = self.groups[from..=to].iter().map(|g| g.end - g.start);
        let n = to - from + 1;
        let fours = lens.clone().take(n - 1).all(|l| l == 4)
            && (1..=4).contains(&(self.groups[to].end - self.groups[to].start));
        let amex = n == 3 && lens.eq([4, 6, 5]);
        let diners = n == 3
            && self.groups[from..=to]
                .iter()
                .map(|g| g.end - g.start)
                .eq([4, 6, 4]);
        fours || amex || diners
    }

    fn ssns(&self, emit: &mut impl FnMut(Detector, usize, usize)) {
        let g = self.groups;
        for from in 0..g.len().saturating_sub(2) {
            let lens = [0, 1, 2].map(|k| g[from + k].end - g[from + k].start);
            let joined_before = from > 0 && g[from].sep == b'-';
            let joined_after = g.get(from + 3).is_some_and(|n| n.sep == b'-');
            if lens == [3, 2, 4]
                && g[from + 1].sep == b'-'
                && g[from + 2].sep == b'-'
                && !joined_before
                && !joined_after
                && self.usable(from, from + 2)
                && is_ssn(
                    &self.s[g[from].start..g[from].end],
                    &self.s[g[from + 1].start..g[from + 1].end],
                    &self.s[g[from + 2].start..g[from + 2].end],
                )
            {
                emit(Detector::Ssn, g[from].start, g[from + 2].end);
            }
        }
    }

    fn digits(&self, from: usize, to: usize) -> impl DoubleEndedIterator<Item = u8> + Clone + '_ {
        self.groups[from..=to]
            .iter()
            .flat_map(|g| self.s[g.start..g.end].iter().map(|b| b - b'0'))
    }
}

/// A digit run may start at `i`: not glued to a letter, `_`, or a decimal point.
fn open_left(s: &[u8], i: usize) -> bool {
    match i.checked_sub(1).map(|p| s[p]) {
        None => true,
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => false,
        Some(b'.' | b',') => !(i >= 2 && s[i - 2].is_ascii_digit()),
        Some(_) => true,
    }
}

/// A digit run may end before `i`.
fn open_right(s: &[u8], i: usize) -> bool {
    match s.get(i) {
        None => true,
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' => false,
        Some(b'.' | b',') => !s.get(i + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

/// Luhn-valid, 13–19 digits, and a payment network's first digit (2–6: Mastercard,
/// Amex, Diners, JCB, Visa, Discover, UnionPay, Maestro). The first-digit test keeps
/// nanosecond and millisecond timestamps (which start with 1) out.
fn is_card(digits: impl DoubleEndedIterator<Item = u8> + Clone) -> bool {
    let n = digits.clone().count();
    (CARD_MIN..=CARD_MAX).contains(&n)
        && digits.clone().next().is_some_and(|d| (2..=6).contains(&d))
        && luhn(digits)
}

fn luhn(digits: impl DoubleEndedIterator<Item = u8>) -> bool {
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether an integer field holds a card number.
pub(crate) fn is_card_number(v: u64) -> bool {
    const MIN: u64 = 1_000_000_000_000; // 13 digits
    if v < MIN {
        return false;
    }
    let mut buf = [0u8; 20];
    let mut n = 0;
    let mut x = v;
    while x > 0 {
        buf[n] = (x % 10) as u8;
        x /= 10;
        n += 1;
    }
    is_card(buf[..n].iter().rev().copied())
}

/// Area not 000, 666 or 9xx; group not 00; serial not 0000.
fn is_ssn(area: &[u8], group: &[u8], serial: &[u8]) -> bool {
    area != b"000" && area != b"666" && area[0] != b'9' && group != b"00" && serial != b"0000"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(s: &str) -> Vec<(Detector, &str)> {
        let mut out = Vec::new();
        find(s.as_bytes(), true, true, &mut |d, a, b| {
            out.push((d, &s[a..b]))
        });
        out
    }

    #[test]
    fn cards_valid_and_invalid() {
        for card in [
            "4111111111111111",
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "5555555555554444",
            "378282246310005",
            "3782 822463 10005",
            "6011111111111117",
            "4000056655665556",
        ] {
            assert_eq!(
                found(&format!("pay {card}.")),
                [(Detector::CreditCard, card)],
                "{card}"
            );
        }
        for s in [
            "4111111111111112",      // Luhn
            "1700000000000000008",   // first digit (a nanosecond timestamp shape)
            "a4111111111111111",     // glued to a letter
            "0.4111111111111111",    // a decimal
            "4111 1111-1111 1111",   // mixed separators
            "41111 111 1111 1111",   // first group not 4 digits
            "2048 4096 8192 14017",  // Luhn-valid, but not a card layout
            "411111111111111111111", // too long
            "4111 1111 1111 1",      // too short
        ] {
            assert!(found(s).is_empty(), "{s}");
        }
    }

    #[test]
    fn card_inside_a_longer_run_is_found() {
        assert_eq!(
            found("ids 12 4111 1111 1111 1111 99"),
            [(Detector::CreditCard, "4111 1111 1111 1111")]
        );
        assert_eq!(
            found("4111111111111111 and 5555555555554444"),
            [
                (Detector::CreditCard, "4111111111111111"),
                (Detector::CreditCard, "5555555555554444")
            ]
        );
    }

    #[test]
    fn ssns_valid_and_invalid() {
        assert_eq!(found("ssn 123-45-6789"), [(Detector::Ssn, "123-45-6789")]);
        assert_eq!(found("(078-05-1120)"), [(Detector::Ssn, "078-05-1120")]);
        for s in [
            "000-12-3456",
            "666-12-3456",
            "912-12-3456",
            "123-00-4567",
            "123-45-0000",
            "2024-123-45-6789",
            "123-45-6789-1",
            "123 45 6789",
            "x123-45-6789",
        ] {
            assert!(found(s).is_empty(), "{s}");
        }
    }

    #[test]
    fn integer_cards() {
        assert!(is_card_number(4111111111111111));
        assert!(!is_card_number(4111111111111112));
        assert!(!is_card_number(1_700_000_000_000_000_000));
        assert!(!is_card_number(42));
    }
}
