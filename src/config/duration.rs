//! Human durations in config files: `"500ms"`, `"15s"`, `"30m"`, `"2h"`, `"30d"`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A config duration. Kept as its own type so that the TOML form round-trips (`check-config`
/// prints `"30m"`, not a struct of seconds and nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(std::time::Duration);

impl Duration {
    /// The std duration.
    pub fn get(self) -> std::time::Duration {
        self.0
    }

    /// True for `"0s"`; most keys refuse it.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(d)
    }
}

/// Why a duration string was refused.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a duration like \"500ms\", \"15s\", \"30m\", \"2h\" or \"30d\"")]
pub struct ParseDurationError(String);

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDurationError(s.to_owned());
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| err())?;
        let millis_per_unit: u64 = match unit.trim() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(err()),
        };
        let millis = n.checked_mul(millis_per_unit).ok_or_else(err)?;
        Ok(Duration(std::time::Duration::from_millis(millis)))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let units: [(u128, &str); 4] = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ];
        for (size, unit) in units {
            if ms != 0 && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_prints_the_largest_exact_one() {
        for (text, ms, shown) in [
            ("500ms", 500, "500ms"),
            ("15s", 15_000, "15s"),
            ("90s", 90_000, "90s"),
            ("30m", 1_800_000, "30m"),
            ("2h", 7_200_000, "2h"),
            ("30d", 2_592_000_000, "30d"),
            ("0s", 0, "0ms"),
        ] {
            let d: Duration = text.parse().unwrap();
            assert_eq!(d.get().as_millis(), ms, "{text}");
            assert_eq!(d.to_string(), shown);
        }
    }

    #[test]
    fn refuses_missing_units_signs_and_overflow() {
        for bad in [
            "15",
            "s",
            "-1s",
            "1.5s",
            "1 week",
            "",
            "99999999999999999999d",
        ] {
            assert!(bad.parse::<Duration>().is_err(), "{bad} parsed");
        }
    }
}
