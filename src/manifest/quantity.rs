//! Kubernetes resource quantities (`500m`, `128Mi`, `1e3`, `0.5`), parsed with
//! the API server's grammar and held exactly, in nano-units.
//!
//! ```text
//! quantity ::= signedNumber suffix
//! number   ::= digits | digits "." digits | digits "." | "." digits
//! suffix   ::= binarySI (Ki Mi Gi Ti Pi Ei) | decimalSI (n u m "" k M G T P E)
//!            | ("e" | "E") signedNumber
//! ```

use std::fmt;

/// The API server's own wording for a quantity that does not parse; kubectl
/// users recognise it.
pub const FORMAT_MESSAGE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

const NANOS_PER_UNIT: i128 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{FORMAT_MESSAGE}")]
    Format,
    #[error("quantity is too large")]
    TooLarge,
}

/// An exact quantity. Values finer than one nano-unit are rounded up, as the
/// API server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Quantity {
    nanos: i128,
}

impl Quantity {
    pub const ZERO: Quantity = Quantity { nanos: 0 };

    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        parse(text)
    }

    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    pub fn is_negative(&self) -> bool {
        self.nanos < 0
    }

    /// Whole units, rounded up (Kubernetes' `Quantity.Value()`).
    pub fn value_ceil(&self) -> i128 {
        div_ceil(self.nanos, NANOS_PER_UNIT)
    }

    /// Thousandths of a unit, rounded up (Kubernetes' `Quantity.MilliValue()`).
    pub fn millis_ceil(&self) -> i128 {
        div_ceil(self.nanos, 1_000_000)
    }

    /// True when the quantity is a whole number of units.
    pub fn is_integer(&self) -> bool {
        self.nanos % NANOS_PER_UNIT == 0
    }

    /// Adds, saturating instead of overflowing: sums of validated quantities
    /// cannot realistically overflow i128 nanos, and saturation keeps the
    /// planner total.
    pub fn saturating_add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
        }
    }
}

/// The page size of a `hugepages-<size>` resource name, when it names a
/// positive size.
pub fn hugepage_size(resource: &str) -> Option<Quantity> {
    let size = Quantity::parse(resource.strip_prefix("hugepages-")?).ok()?;
    (!size.is_zero() && !size.is_negative()).then_some(size)
}

fn div_ceil(n: i128, d: i128) -> i128 {
    let q = n / d;
    if n % d > 0 { q + 1 } else { q }
}

/// Shows the quantity in the shortest plain form: whole units, or milli-units,
/// or the decimal value (`1`, `250m`, `0.000001`).
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos % NANOS_PER_UNIT == 0 {
            write!(f, "{}", self.nanos / NANOS_PER_UNIT)
        } else if self.nanos % 1_000_000 == 0 {
            write!(f, "{}m", self.nanos / 1_000_000)
        } else {
            let sign = if self.nanos < 0 { "-" } else { "" };
            let abs = self.nanos.unsigned_abs();
            let whole = abs / NANOS_PER_UNIT as u128;
            let frac = format!("{:09}", abs % NANOS_PER_UNIT as u128);
            write!(f, "{sign}{whole}.{}", frac.trim_end_matches('0'))
        }
    }
}

fn parse(text: &str) -> Result<Quantity, QuantityError> {
    let bytes = text.as_bytes();
    let mut pos = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            pos += 1;
            true
        }
        Some(b'+') => {
            pos += 1;
            false
        }
        _ => false,
    };
    let int_start = pos;
    while pos < bytes.len() && bytes[pos].is_ascii_digit() {
        pos += 1;
    }
    let int_digits = &text[int_start..pos];
    let mut frac_digits = "";
    if pos < bytes.len() && bytes[pos] == b'.' {
        pos += 1;
        let frac_start = pos;
        while pos < bytes.len() && bytes[pos].is_ascii_digit() {
            pos += 1;
        }
        frac_digits = &text[frac_start..pos];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return Err(QuantityError::Format);
    }
    let scale = parse_suffix(&text[pos..])?;

    // mantissa * 10^(exp10 - len(frac)) * 2^exp2, expressed in nanos.
    let digits = format!("{int_digits}{frac_digits}");
    let digits = digits.trim_start_matches('0');
    let mut exp10 = scale.exp10 + 9 - frac_digits.len() as i64;
    // Significant digits beyond what i128 holds would overflow; anything this
    // long is not a resource amount anyone means.
    if digits.len() > 36 {
        return Err(QuantityError::TooLarge);
    }
    let mut mantissa: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().map_err(|_| QuantityError::Format)?
    };
    for _ in 0..scale.exp2 {
        mantissa = mantissa.checked_mul(2).ok_or(QuantityError::TooLarge)?;
    }
    let mut round_up = false;
    while exp10 < 0 {
        if mantissa % 10 != 0 {
            round_up = true;
        }
        mantissa /= 10;
        exp10 += 1;
        if mantissa == 0 {
            break;
        }
    }
    if mantissa != 0 {
        while exp10 > 0 {
            mantissa = mantissa.checked_mul(10).ok_or(QuantityError::TooLarge)?;
            exp10 -= 1;
        }
    }
    if round_up {
        mantissa += 1;
    }
    // The API server caps quantities near 2^63 units; keep well inside i128.
    if mantissa > i128::from(i64::MAX) * NANOS_PER_UNIT {
        return Err(QuantityError::TooLarge);
    }
    Ok(Quantity {
        nanos: if negative { -mantissa } else { mantissa },
    })
}

struct Scale {
    exp10: i64,
    exp2: u32,
}

fn parse_suffix(suffix: &str) -> Result<Scale, QuantityError> {
    let decimal = |exp10| Ok(Scale { exp10, exp2: 0 });
    let binary = |exp2| Ok(Scale { exp10: 0, exp2 });
    match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or(QuantityError::Format)?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(QuantityError::Format);
            }
            // The exponent is bounded by what fits in i128 nanos anyway.
            let exp: i64 = rest.parse().map_err(|_| QuantityError::TooLarge)?;
            if exp.abs() > 60 {
                return Err(QuantityError::TooLarge);
            }
            decimal(exp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn accepts_the_kubernetes_forms() {
        assert_eq!(q("128Mi").value_ceil(), 128 * 1024 * 1024);
        assert_eq!(q("0.5").millis_ceil(), 500);
        assert_eq!(q("500m").millis_ceil(), 500);
        assert_eq!(q("1e3").value_ceil(), 1000);
        assert_eq!(q("1E3").value_ceil(), 1000);
        assert_eq!(q("1G").value_ceil(), 1_000_000_000);
        assert_eq!(q("1Gi").value_ceil(), 1 << 30);
        assert_eq!(q("2Ei").value_ceil(), 2i128 << 60);
        assert_eq!(q(".5").millis_ceil(), 500);
        assert_eq!(q("5.").value_ceil(), 5);
        assert_eq!(q("+1").value_ceil(), 1);
        assert_eq!(q("-1").value_ceil(), -1);
        assert_eq!(q("1.5Gi").value_ceil(), 3 << 29);
        assert_eq!(q("100u").millis_ceil(), 1);
        assert_eq!(q("1n").millis_ceil(), 1);
        assert_eq!(q("0").value_ceil(), 0);
        assert_eq!(q("000").value_ceil(), 0);
        assert_eq!(q("12e-3").millis_ceil(), 12);
        assert_eq!(q("1e+2").value_ceil(), 100);
    }

    #[test]
    fn rounds_up_like_the_api_server() {
        // 1.5m cpu is 2 millicores; 0.1 byte is 1 byte.
        assert_eq!(q("1.5m").millis_ceil(), 2);
        assert_eq!(q("0.1").value_ceil(), 1);
        // below a nano-unit rounds up to one nano.
        assert_eq!(q("0.1n"), q("1n"));
    }

    #[test]
    fn refuses_what_the_api_server_refuses() {
        for bad in [
            "", "12Mib", "1.2.3", "Mi", "1 Mi", " 1", "1 ", "e3", "1e", "1e+", "1.5e1.5", "1Ki2",
            "one", "1mi", "1KI", "--1", "+-1", "1m2", ".", "1e3Mi", "0x10",
        ] {
            assert_eq!(Quantity::parse(bad), Err(QuantityError::Format), "{bad:?}");
        }
        assert_eq!(Quantity::parse("1e100"), Err(QuantityError::TooLarge));
        assert_eq!(
            Quantity::parse("99999999999999999999999999999999999999999"),
            Err(QuantityError::TooLarge)
        );
    }

    #[test]
    fn compares_across_suffixes() {
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("1000m"), q("1"));
        assert_eq!(q("1k"), q("1e3"));
        assert!(q("1024Mi") == q("1Gi"));
    }

    #[test]
    fn displays_plainly() {
        assert_eq!(q("1000m").to_string(), "1");
        assert_eq!(q("0.25").to_string(), "250m");
        assert_eq!(q("1u").to_string(), "0.000001");
        assert_eq!(q("128Mi").to_string(), "134217728");
    }
}
