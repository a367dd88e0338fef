//! A strict JSON scanner: reads a document token by token over its bytes, borrowing from it,
//! and checks every value it passes over. What [`super`] builds the common request from.
//!
//! Every method returns `None` at the first byte that is not what it reads (or not valid
//! JSON), and the caller gives up on the whole document: the scanner never recovers, guesses
//! or allocates. Strings it hands out have no escapes (a string with one is `None`); strings it
//! passes over have their escapes checked, except a `\u` escape of a surrogate outside a
//! pair, which is `None` too.

/// Deeper values are `None` (serde's own limit is 128).
pub(super) const MAX_DEPTH: u32 = 100;

/// A position in a document that is valid UTF-8, so every slice between the ASCII bytes the
/// scanner stops at is valid UTF-8 too.
pub(super) struct Scanner<'a> {
    text: &'a str,
    i: usize,
}

impl<'a> Scanner<'a> {
    /// At the start of `text`.
    pub fn new(text: &'a str) -> Scanner<'a> {
        Scanner { text, i: 0 }
    }

    fn byte(&self) -> Option<u8> {
        self.text.as_bytes().get(self.i).copied()
    }

    /// The next byte after JSON whitespace.
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.byte() {
            self.i += 1;
        }
        self.byte()
    }

    pub fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// Nothing but whitespace is left.
    pub fn end(&mut self) -> Option<()> {
        (self.peek().is_none()).then_some(())
    }

    /// `null`, consumed: true; anything else is left for the caller.
    pub fn null(&mut self) -> Option<bool> {
        if self.peek()? != b'n' {
            return Some(false);
        }
        self.literal("null")?;
        Some(true)
    }

    pub fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.i + word.len();
        (self.text.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// An object: `field` is called for each key with the scanner at its value, and must
    /// consume it.
    pub fn object(
        &mut self,
        mut field: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            let key = self.string()?;
            self.eat(b':')?;
            field(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// A string without escapes, borrowed.
    pub fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = plain_end(self.text.as_bytes(), start);
        (self.text.as_bytes().get(end) == Some(&b'"')).then_some(())?;
        self.i = end + 1;
        self.text.get(start..end)
    }

    /// Any value, checked, as its text.
    pub fn raw(&mut self) -> Option<&'a str> {
        self.peek()?;
        let start = self.i;
        self.skip()?;
        self.text.get(start..self.i)
    }

    /// An integer without fraction or exponent, as a sign and a magnitude that fits a `u64`.
    pub fn integer(&mut self) -> Option<(bool, u64)> {
        self.peek()?;
        let negative = self.byte() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let start = self.i;
        let mut n: u64 = 0;
        while let Some(d @ b'0'..=b'9') = self.byte() {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            self.i += 1;
        }
        let digits = self.i - start;
        let leading_zero = digits > 1 && self.text.as_bytes().get(start) == Some(&b'0');
        if digits == 0 || leading_zero || matches!(self.byte(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        Some((negative, n))
    }

    /// Any JSON value, checked and passed over. Iterative: `kinds` holds one bit per open
    /// container (set for an object).
    pub fn skip(&mut self) -> Option<()> {
        let mut depth: u32 = 0;
        let mut kinds: u128 = 0;
        loop {
            // A value.
            match self.peek()? {
                open @ (b'{' | b'[') => {
                    self.i += 1;
                    let object = open == b'{';
                    let close = if object { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.i += 1;
                    } else {
                        if depth >= MAX_DEPTH {
                            return None;
                        }
                        kinds = (kinds & !(1 << depth)) | (u128::from(object) << depth);
                        depth += 1;
                        if object {
                            self.skip_string()?;
                            self.eat(b':')?;
                        }
                        continue;
                    }
                }
                b'"' => self.skip_string()?,
                b't' => self.literal("true")?,
                b'f' => self.literal("false")?,
                b'n' => self.literal("null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            // After a value: close what ends here, up to the next value or the end.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let object = kinds >> (depth - 1) & 1 == 1;
                match (self.peek()?, object) {
                    (b',', _) => {
                        self.i += 1;
                        if object {
                            self.skip_string()?;
                            self.eat(b':')?;
                        }
                        break;
                    }
                    (b'}', true) | (b']', false) => {
                        self.i += 1;
                        depth -= 1;
                    }
                    _ => return None,
                }
            }
        }
    }

    /// Any string, its escapes checked (a `\u` of a surrogate outside a pair is left to serde).
    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        let bytes = self.text.as_bytes();
        loop {
            self.i = plain_end(bytes, self.i);
            let c = *bytes.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return Some(()),
                b'\\' => {
                    let e = *bytes.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => match self.unit()? {
                            0xD800..=0xDBFF => {
                                // A pair, or left to serde.
                                self.literal("\\u")?;
                                if !(0xDC00..=0xDFFF).contains(&self.unit()?) {
                                    return None;
                                }
                            }
                            0xDC00..=0xDFFF => return None,
                            _ => {}
                        },
                        _ => return None,
                    }
                }
                0..=0x1F => return None,
                _ => {}
            }
        }
    }

    /// The four hex digits of a `\u` escape.
    fn unit(&mut self) -> Option<u32> {
        let hex = self.text.as_bytes().get(self.i..self.i + 4)?;
        let mut unit = 0;
        for &h in hex {
            unit = unit * 16 + char::from(h).to_digit(16)?;
        }
        self.i += 4;
        Some(unit)
    }

    /// A number as JSON writes one: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.byte() == Some(b'-') {
            self.i += 1;
        }
        match self.byte()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.byte() == Some(b'.') {
            self.i += 1;
            self.byte().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        if let Some(b'e' | b'E') = self.byte() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.byte() {
                self.i += 1;
            }
            self.byte().filter(u8::is_ascii_digit)?;
            self.digits();
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.byte().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
    }
}

/// Where the plain run of string bytes from `at` ends: the first `"`, `\\` or control byte (or
/// the end). Eight bytes a step: a byte of `v` is flagged in `(v - 0x01…) & !v & 0x80…` when
/// it is zero, and the lowest flag is always exact.
fn plain_end(bytes: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let v = u64::from_le_bytes(word);
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        let found = zero(v ^ (ONES * u64::from(b'"')))
            | zero(v ^ (ONES * u64::from(b'\\')))
            | (v.wrapping_sub(ONES * 0x20) & !v & HIGH);
        if found != 0 {
            return at + (found.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while let Some(&b) = bytes.get(at) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return at;
        }
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_runs_end_at_the_first_quote_backslash_or_control_byte() {
        let naive = |b: &[u8], at: usize| {
            (at..b.len())
                .find(|&i| b[i] == b'"' || b[i] == b'\\' || b[i] < 0x20)
                .unwrap_or(b.len())
        };
        let mut text: Vec<u8> = "héllo wörld, plain ascii and ünïcödé \u{1F600} ".into();
        text.extend([0x1F, b' ', b'"', b'x', 0x00, b'\\', 0x7F, 0xC3, 0xA9, b'"']);
        for at in 0..text.len() {
            for end in at..=text.len() {
                let mut b = text[..end].to_vec();
                assert_eq!(plain_end(&b, at), naive(&b, at), "{b:?} from {at}");
                b.rotate_left(at);
                assert_eq!(plain_end(&b, 0), naive(&b, 0), "{b:?}");
            }
        }
    }

    #[test]
    fn values_are_passed_over_only_when_valid() {
        let skips = |t: &str| {
            let mut s = Scanner::new(t);
            s.skip().and_then(|()| s.end()).is_some()
        };
        for ok in [
            "0",
            "-0",
            "-1.5e+10",
            "1E-2",
            "true",
            "null",
            r#""a\"\\\/\b\f\n\r\t\u00e9""#,
            r#""\ud83d\ude00""#,
            "[]",
            "{}",
            r#" [ 1 , { "a" : [ ] } ] "#,
            "\"é\"",
        ] {
            assert!(skips(ok), "refused {ok}");
        }
        for bad in [
            "",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\"}",
            "{1:2}",
            "[1 2]",
            "\"a",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"tab\there\"",
            "[}",
            "{]",
            "[1]]",
            "NaN",
        ] {
            assert!(!skips(bad), "passed over {bad:?}");
        }
    }
}
