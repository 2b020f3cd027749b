//! IBAN validation: country length and the ISO 7064 mod-97 check.

/// IBAN lengths by country (SWIFT IBAN registry).
#[rustfmt::skip]
const LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24), (b"AE", 23), (b"AL", 28), (b"AT", 20), (b"AZ", 28), (b"BA", 20),
    (b"BE", 16), (b"BG", 22), (b"BH", 22), (b"BR", 29), (b"BY", 28), (b"CH", 21),
    (b"CR", 22), (b"CY", 28), (b"CZ", 24), (b"DE", 22), (b"DK", 18), (b"DO", 28),
    (b"EE", 20), (b"EG", 29), (b"ES", 24), (b"FI", 18), (b"FO", 18), (b"FR", 27),
    (b"GB", 22), (b"GE", 22), (b"GI", 23), (b"GL", 18), (b"GR", 27), (b"GT", 28),
    (b"HR", 21), (b"HU", 28), (b"IE", 22), (b"IL", 23), (b"IQ", 23), (b"IS", 26),
    (b"IT", 27), (b"JO", 30), (b"KW", 30), (b"KZ", 20), (b"LB", 28), (b"LC", 32),
    (b"LI", 21), (b"LT", 20), (b"LU", 20), (b"LV", 21), (b"MC", 27), (b"MD", 24),
    (b"ME", 22), (b"MK", 19), (b"MR", 27), (b"MT", 31), (b"MU", 30), (b"NL", 18),
    (b"NO", 15), (b"PK", 24), (b"PL", 28), (b"PS", 29), (b"PT", 25), (b"QA", 29),
    (b"RO", 24), (b"RS", 22), (b"SA", 24), (b"SC", 31), (b"SE", 24), (b"SI", 19),
    (b"SK", 24), (b"SM", 27), (b"ST", 25), (b"SV", 28), (b"TL", 23), (b"TN", 24),
    (b"TR", 26), (b"UA", 29), (b"VA", 22), (b"VG", 24), (b"XK", 20),
];

/// Countries that joined the registry recently: any length from 15 to 34. A code in
/// neither list is no IBAN (a ULID like `ZH60DQH4…` passes mod-97 one time in 97).
const RECENT: &[&[u8; 2]] = &[
    b"BI", b"DJ", b"FK", b"HN", b"LY", b"MN", b"NI", b"OM", b"RU", b"SD", b"SO", b"YE",
];

const MIN: usize = 15;
const MAX: usize = 34;

/// The length of the longest valid IBAN that `candidate` starts with, trying the whole
/// and then dropping space-separated groups from its end (the pattern may have taken
/// a following word: `AT61 1904 3002 3457 3201 ABCD`).
pub(crate) fn valid_prefix(candidate: &str) -> Option<usize> {
    let mut end = candidate.len();
    loop {
        if is_valid(&candidate.as_bytes()[..end]) {
            return Some(end);
        }
        end = candidate[..end].rfind(' ')?;
    }
}

/// Whether `text` (spaces allowed) is a valid IBAN.
pub(crate) fn is_valid(text: &[u8]) -> bool {
    let mut buf = [0u8; MAX];
    let mut n = 0;
    for &b in text {
        if b == b' ' {
            continue;
        }
        if n == MAX || !b.is_ascii_alphanumeric() {
            return false;
        }
        buf[n] = b.to_ascii_uppercase();
        n += 1;
    }
    let iban = &buf[..n];
    if n < MIN
        || !iban[..2].iter().all(u8::is_ascii_uppercase)
        || !iban[2..4].iter().all(u8::is_ascii_digit)
    {
        return false;
    }
    match LENGTHS.iter().find(|(c, _)| c[..] == iban[..2]) {
        Some((_, len)) if n != *len => return false,
        Some(_) => {}
        None if !RECENT.iter().any(|c| c[..] == iban[..2]) => return false,
        None => {}
    }
    // Move the first four characters to the end, read letters as 10..=35, mod 97.
    let mut rem = 0u32;
    for &b in iban[4..].iter().chain(&iban[..4]) {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ibans_valid_and_invalid() {
        for s in [
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "GB82 WEST 1234 5698 7654 32",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "NO9386011117947",
            "BE68539007547034",
        ] {
            assert!(is_valid(s.as_bytes()), "{s}");
        }
        for s in [
            "DE88370400440532013000",   // check digits
            "DE8937040044053201300",    // length for DE
            "GB82 WEST 1234 5698 7654", // too short for GB
            "DE89-3704-0044-0532-0130-00",
            "ZH60DQH4FBT6QGX5R1ACSS311Y", // mod-97 valid, no such country
        ] {
            assert!(!is_valid(s.as_bytes()), "{s}");
        }
        assert_eq!(
            valid_prefix("AT61 1904 3002 3457 3201 ABCD"),
            Some("AT61 1904 3002 3457 3201".len())
        );
    }
}
