//! How long a simulated link takes to carry something, drawn from the
//! simulator's one seeded random source.

use rand::Rng;
use std::time::Duration;

/// A one-way delay distribution.
#[derive(Debug, Clone, PartialEq)]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// Uniformly between `min` and `max` (inclusive).
    Uniform { min: Duration, max: Duration },
    /// `min` plus an exponential tail with mean `mean`: mostly fast, sometimes
    /// slow, as a loaded network is.
    Exponential { min: Duration, mean: Duration },
}

impl Default for Latency {
    /// A LAN: 50–500 µs.
    fn default() -> Self {
        Latency::Uniform {
            min: Duration::from_micros(50),
            max: Duration::from_micros(500),
        }
    }
}

/// No delay is ever drawn above this, whatever the distribution says.
const MAX_DELAY: Duration = Duration::from_secs(60);

impl Latency {
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        let delay = match *self {
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } => {
                if max <= min {
                    min
                } else {
                    let span = (max - min).as_nanos().min(u64::MAX as u128) as u64;
                    min + Duration::from_nanos(rng.gen_range(0..=span))
                }
            }
            Latency::Exponential { min, mean } => {
                // Inverse transform: -ln(U) is exponential with mean 1.
                let u: f64 = rng.gen_range(f64::EPSILON..1.0);
                let tail = mean.as_secs_f64() * -u.ln();
                min + Duration::from_secs_f64(tail.min(MAX_DELAY.as_secs_f64()))
            }
        };
        delay.min(MAX_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn samples_stay_in_their_range_and_repeat_with_the_seed() {
        let uniform = Latency::Uniform {
            min: Duration::from_micros(10),
            max: Duration::from_micros(20),
        };
        let exp = Latency::Exponential {
            min: Duration::from_micros(5),
            mean: Duration::from_millis(1),
        };
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..1000)
                .map(|_| (uniform.sample(&mut rng), exp.sample(&mut rng)))
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        for (u, e) in &a {
            assert!((Duration::from_micros(10)..=Duration::from_micros(20)).contains(u));
            assert!(*e >= Duration::from_micros(5) && *e <= MAX_DELAY);
        }
        let mean_tail: f64 = a
            .iter()
            .map(|(_, e)| (*e - Duration::from_micros(5)).as_secs_f64())
            .sum::<f64>()
            / 1000.0;
        assert!(
            (0.0005..0.002).contains(&mean_tail),
            "mean tail {mean_tail}"
        );
    }
}
