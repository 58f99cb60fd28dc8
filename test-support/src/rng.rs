//! The seeded pseudo-random generator of the tests: xorshift64, tiny and identical on every
//! platform, so snapshots and failures reproduce.

use strata_ir::Tensor;

/// Marsaglia's xorshift64 (13, 7, 17). Not for anything but tests.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator whose state is `seed` spread over the word (any seed works, 0 included).
    pub fn seeded(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// A generator starting from exactly `state` (must be nonzero to be useful).
    pub fn from_state(state: u64) -> XorShift {
        XorShift(state)
    }

    /// The next state.
    pub fn next_u64(&mut self) -> u64 {
        let mut s = self.0;
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        self.0 = s;
        s
    }

    /// A value in `0..m` (`m > 0`; slightly biased, fine for tests).
    pub fn below(&mut self, m: u64) -> u64 {
        self.next_u64() % m
    }

    /// A value in [-1, 1) with 24 random bits.
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// `n` seeded values in [-1, 1), the same for a given seed on every machine.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = XorShift::seeded(seed);
    (0..n).map(|_| rng.unit()).collect()
}

/// An f32 tensor of seeded values in [-1, 1).
pub fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_f32(shape.to_vec(), values(shape.iter().product(), seed))
        .expect("data length matches the shape")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_fixed_and_in_range() {
        // The sequence is part of every snapshot: it must never change.
        let v = values(3, 1);
        assert_eq!(v, values(3, 1));
        assert_ne!(v, values(3, 2));
        assert!(values(1000, 7).iter().all(|x| (-1.0..1.0).contains(x)));
        let mut r = XorShift::from_state(12345);
        assert_eq!(r.next_u64(), 13_289_605_635_609);
    }
}
