//! Points on the 160-bit identifier circle and the interval tests Chord is
//! built from. An `Id` is a big-endian 160-bit number, so byte order is
//! numeric order.

use sha1::{Digest, Sha1};
use std::fmt;

pub const ID_BITS: usize = 160;
pub const ID_LEN: usize = 20;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Id(pub [u8; ID_LEN]);

impl Id {
    pub const ZERO: Id = Id([0; ID_LEN]);

    /// SHA-1 of `bytes`: how node addresses and DHT keys are placed on the ring.
    pub fn hash(bytes: &[u8]) -> Id {
        let digest = Sha1::digest(bytes);
        let mut id = [0; ID_LEN];
        id.copy_from_slice(&digest);
        Id(id)
    }

    /// Up to 40 hex digits, read as the most significant digits (the rest
    /// are zero), so `--id 8` puts a node half-way round the ring.
    pub fn from_hex(text: &str) -> Result<Id, String> {
        if text.is_empty() || text.len() > 2 * ID_LEN {
            return Err(format!("an ID is 1 to 40 hex digits, not '{text}'"));
        }
        let mut digits = [0u8; 2 * ID_LEN];
        for (i, c) in text.chars().enumerate() {
            digits[i] = c
                .to_digit(16)
                .ok_or_else(|| format!("'{c}' is not a hex digit in ID '{text}'"))?
                as u8;
        }
        let mut id = [0; ID_LEN];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = digits[2 * i] << 4 | digits[2 * i + 1];
        }
        Ok(Id(id))
    }

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `self + 2^bit` modulo 2^160: where finger `bit` starts.
    pub fn add_pow2(&self, bit: usize) -> Id {
        assert!(bit < ID_BITS);
        let mut out = self.0;
        let mut index = ID_LEN - 1 - bit / 8;
        let mut carry = 1u16 << (bit % 8);
        loop {
            let sum = out[index] as u16 + carry;
            out[index] = sum as u8;
            carry = sum >> 8;
            if carry == 0 || index == 0 {
                break;
            }
            index -= 1;
        }
        Id(out)
    }

    /// Clockwise distance from `self` to `to`: `(to - self)` modulo 2^160.
    pub fn distance_to(&self, to: &Id) -> Id {
        let mut out = [0u8; ID_LEN];
        let mut borrow = 0i16;
        for i in (0..ID_LEN).rev() {
            let mut diff = to.0[i] as i16 - self.0[i] as i16 - borrow;
            borrow = 0;
            if diff < 0 {
                diff += 256;
                borrow = 1;
            }
            out[i] = diff as u8;
        }
        Id(out)
    }

    /// `self` lies in the open interval (a, b) going clockwise; (a, a) is
    /// every point but a.
    pub fn in_open(&self, a: &Id, b: &Id) -> bool {
        if a < b {
            a < self && self < b
        } else if a > b {
            self > a || self < b
        } else {
            self != a
        }
    }

    /// `self` lies in (a, b] going clockwise; (a, a] is the whole ring (a
    /// lone node owns every key).
    pub fn in_half_open(&self, a: &Id, b: &Id) -> bool {
        self == b || self.in_open(a, b)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..8])
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(hex: &str) -> Id {
        Id::from_hex(hex).unwrap()
    }

    #[test]
    fn hex_digits_are_the_high_end() {
        assert_eq!(id("8").0[0], 0x80);
        assert_eq!(id("8").0[1..], [0; 19]);
        assert_eq!(id("0123").to_hex()[..4], *"0123");
        assert!(Id::from_hex("xy").is_err());
        assert!(Id::from_hex(&"0".repeat(41)).is_err());
    }

    #[test]
    fn adding_powers_of_two_carries_and_wraps() {
        assert_eq!(Id::ZERO.add_pow2(0).0[19], 1);
        assert_eq!(Id::ZERO.add_pow2(159), id("8"));
        assert_eq!(id("8").add_pow2(159), Id::ZERO);
        let all_ones = Id([0xff; 20]);
        assert_eq!(all_ones.add_pow2(0), Id::ZERO);
        let mut low = [0u8; 20];
        low[19] = 0xff;
        let mut want = [0u8; 20];
        want[18] = 1;
        assert_eq!(Id(low).add_pow2(0), Id(want));
    }

    #[test]
    fn distance_goes_clockwise() {
        assert_eq!(id("4").distance_to(&id("8")), id("4"));
        assert_eq!(id("c").distance_to(&id("4")), id("8"));
        assert_eq!(id("4").distance_to(&id("4")), Id::ZERO);
    }

    #[test]
    fn intervals_wrap_around_zero() {
        let (a, b, c) = (id("2"), id("8"), id("e"));
        assert!(b.in_open(&a, &c));
        assert!(!a.in_open(&b, &c));
        assert!(a.in_open(&c, &b)); // wraps
        assert!(!b.in_open(&b, &c));
        assert!(c.in_half_open(&b, &c));
        assert!(a.in_open(&b, &b) && !b.in_open(&b, &b));
        assert!(b.in_half_open(&b, &b));
    }
}
