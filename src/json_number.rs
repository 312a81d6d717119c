//! Numbers in the proto3 JSON mapping (an int64 as `"5"` or as `5`), for the generated serde
//! code of [`crate::pb`]: build.rs puts this [`NumberDeserialize`] where pbjson-build wrote
//! `pbjson::private::NumberDeserialize`.
//!
//! pbjson's reads every number through an untagged enum: the value is buffered, tried as a
//! string first and only then as a number, so a number sent as a JSON number (what most
//! clients send) costs a formatted error that is built and thrown away: about 4,300
//! instructions per number field. With this one instead, a JSON SubmitJob with one number
//! costs the server 3,100 instructions (5 %) less (BENCHMARKS.md, "The JSON face's
//! numbers"). This one asks the JSON for what it holds and
//! takes either form at once. It accepts what pbjson's accepts and refuses what it refuses,
//! with an error that says why instead of "did not match any variant".

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserialize, Deserializer, IntoDeserializer, Visitor};

/// A number given as a JSON number or as a string holding one.
#[derive(Debug, Copy, Clone, PartialOrd, PartialEq, Hash, Ord, Eq)]
pub(crate) struct NumberDeserialize<T>(pub T);

impl<'de, T> Deserialize<'de> for NumberDeserialize<T>
where
    T: FromStr + Deserialize<'de>,
    <T as FromStr>::Err: std::error::Error,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumberVisitor(PhantomData))
            .map(NumberDeserialize)
    }
}

struct NumberVisitor<T>(PhantomData<T>);

impl<'de, T> Visitor<'de> for NumberVisitor<T>
where
    T: FromStr + Deserialize<'de>,
    <T as FromStr>::Err: std::error::Error,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number, or a string holding one")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }

    // A JSON number goes to T's own Deserialize, as pbjson's number branch did: range
    // checks (300 for a u8, -1 for a u64) and integers refusing fractions are T's.
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::deserialize(IntoDeserializer::<E>::into_deserializer(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::deserialize(IntoDeserializer::<E>::into_deserializer(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        T::deserialize(IntoDeserializer::<E>::into_deserializer(v))
    }
}

#[cfg(test)]
mod tests {
    use super::NumberDeserialize;

    fn read<T>(json: &str) -> Result<T, String>
    where
        T: std::str::FromStr + serde::de::DeserializeOwned,
        <T as std::str::FromStr>::Err: std::error::Error,
    {
        serde_json::from_str::<NumberDeserialize<T>>(json)
            .map(|n| n.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_come_as_numbers_or_strings() {
        assert_eq!(read::<i64>("1765000000000"), Ok(1_765_000_000_000));
        assert_eq!(read::<i64>("\"1765000000000\""), Ok(1_765_000_000_000));
        assert_eq!(read::<i64>("-5"), Ok(-5));
        assert_eq!(read::<i64>("\"-5\""), Ok(-5));
        assert_eq!(read::<u64>("18446744073709551615"), Ok(u64::MAX));
        assert_eq!(read::<u32>("\"7\""), Ok(7));
        assert_eq!(read::<i32>("-2147483648"), Ok(i32::MIN));
        assert_eq!(read::<f64>("1.5"), Ok(1.5));
        assert_eq!(read::<f64>("2"), Ok(2.0));
        assert_eq!(read::<f64>("\"1.5\""), Ok(1.5));
        assert!(read::<f64>("\"NaN\"").unwrap().is_nan());
        assert_eq!(read::<f32>("\"Infinity\""), Ok(f32::INFINITY));
    }

    #[test]
    fn what_does_not_fit_is_refused_with_a_reason() {
        for (bad, why) in [
            (read::<u32>("4294967296").unwrap_err(), "4294967296"),
            (read::<u64>("-1").unwrap_err(), "-1"),
            (read::<i64>("1.5").unwrap_err(), "floating point"),
            (read::<i64>("\"x\"").unwrap_err(), "invalid digit"),
            (read::<i64>("\"\"").unwrap_err(), "empty"),
            (
                read::<i64>("true").unwrap_err(),
                "a number, or a string holding one",
            ),
            (
                read::<i64>("{}").unwrap_err(),
                "a number, or a string holding one",
            ),
            (read::<u32>("\"4294967296\"").unwrap_err(), "too large"),
        ] {
            assert!(bad.contains(why), "{bad:?} should say {why:?}");
        }
    }
}
