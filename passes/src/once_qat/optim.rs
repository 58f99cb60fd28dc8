//! The optimiser pieces of `once-qat`: Adam with per-parameter step units, the cosine
//! learning-rate schedule and the seeded batch sampler. Kept apart from the training loop so
//! that each is small enough to check by eye.

/// Adam state of one parameter vector.
#[derive(Debug, Clone)]
pub(super) struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
    /// Updates applied so far (Adam's bias correction counts this parameter's own steps, so a
    /// parameter that starts training late is not corrected as if it had a long history).
    t: i32,
}

impl Adam {
    const B1: f32 = 0.9;
    const B2: f32 = 0.999;
    const EPS: f32 = 1e-12;

    pub(super) fn new(n: usize) -> Adam {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
            t: 0,
        }
    }

    /// One bias-corrected Adam update, `x[i]` moving by at most about `lr·unit[i]`: Adam's
    /// step is scale-free, so a parameter whose natural size is tiny (the 8-plane `alpha ≈
    /// s_c`, an activation step size, a weight measured in code steps) needs its own unit or
    /// one step at a shared learning rate would wreck it. Non-finite gradients are skipped so
    /// one overflowing batch cannot poison the parameters.
    pub(super) fn step(&mut self, x: &mut [f32], g: &[f32], lr: f32, unit: &[f32]) {
        self.t += 1;
        let c1 = 1.0 - Self::B1.powi(self.t);
        let c2 = 1.0 - Self::B2.powi(self.t);
        for (i, (((x, &g), m), v)) in x
            .iter_mut()
            .zip(g)
            .zip(&mut self.m)
            .zip(&mut self.v)
            .enumerate()
        {
            if !g.is_finite() {
                continue;
            }
            let u = unit.get(i).or(unit.last()).copied().unwrap_or(1.0);
            *m = Self::B1 * *m + (1.0 - Self::B1) * g;
            *v = Self::B2 * *v + (1.0 - Self::B2) * g * g;
            *x -= lr * u * (*m / c1) / ((*v / c2).sqrt() + Self::EPS);
        }
    }
}

/// Half-cosine decay from `peak` at `step = 0` to 0 at `step = steps`.
pub(super) fn cosine(peak: f32, step: usize, steps: usize) -> f32 {
    let t = step as f64 / steps.max(1) as f64;
    (peak as f64 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())) as f32
}

/// xorshift64*: tiny, seedable and identical on every platform.
pub(super) struct XorShift(u64);

impl XorShift {
    pub(super) fn new(seed: u64) -> XorShift {
        // splitmix64 of the seed, so seed 0 is fine and nearby seeds decorrelate.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough index in `0..n` (`n ≥ 1`).
    pub(super) fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 11) % n as u64) as usize
    }

    /// A uniformly shuffled `0..n` (Fisher–Yates), for epoch-style batches that visit every
    /// sample once before any repeats.
    pub(super) fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            p.swap(i, self.below(i + 1));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_moves_by_about_lr_times_unit() {
        let mut a = Adam::new(2);
        let mut x = [1.0f32, 1.0];
        a.step(&mut x, &[3.0, -1e-6], 0.1, &[1.0, 0.01]);
        // The first bias-corrected step is exactly lr·unit·sign(g) (up to eps).
        assert!((x[0] - 0.9).abs() < 1e-6, "{x:?}");
        assert!((x[1] - 1.001).abs() < 1e-6, "{x:?}");
        // A non-finite gradient leaves the parameter alone.
        a.step(&mut x, &[f32::NAN, 0.0], 0.1, &[1.0]);
        assert!((x[0] - 0.9).abs() < 1e-6, "{x:?}");
    }

    #[test]
    fn cosine_decays_from_peak_to_zero() {
        assert_eq!(cosine(2.0, 0, 10), 2.0);
        assert!((cosine(2.0, 5, 10) - 1.0).abs() < 1e-6);
        assert!(cosine(2.0, 10, 10).abs() < 1e-6);
    }

    #[test]
    fn permutation_is_a_seeded_shuffle() {
        let p = XorShift::new(3).permutation(50);
        let mut s = p.clone();
        s.sort_unstable();
        assert_eq!(s, (0..50).collect::<Vec<_>>());
        assert_eq!(p, XorShift::new(3).permutation(50));
        assert_ne!(p, XorShift::new(4).permutation(50));
    }
}
