//! Deterministic f32 `tanh` and `erf`: the one definition the runtime executes and the C and
//! MLIR backends repeat, so a network that uses them gives the same bits on every ISA.
//!
//! Why not the C library's: glibc's `tanhf` rounds differently on aarch64 and riscv64 than on
//! x86-64 (its polynomial evaluation is contracted into fused multiply-adds where the ISA has
//! them), and Rust's `erf` is the `libm` crate's, not the C library's. Here every step is an
//! IEEE basic operation (`+ − × ÷`, `floor`, exact scaling by a power of two built from its
//! bits, `copysign`) in `double`, which rounds the same way on every target the C backend
//! supports (x86-64 SSE2, aarch64, armhf VFP, riscv64 D, and soft-float on Cortex-M), with no
//! call into a math library. The C text of the same functions is [`C_SOURCE`]; it is built by
//! the same macro from the same constant tokens, and a test compiles it and compares it with
//! these functions bit for bit. The C must be compiled without contraction (ISO C mode or
//! `-ffp-contract=off`; the C backend's source turns it off itself for clang and gcc), as
//! Rust never contracts.
//!
//! Method (both in `double`, rounded once to f32 at the end; ≤ 1 ULP from the exact value,
//! measured ≤ 1 ULP against the f64 library functions on every f32 in the tested ranges):
//! - `exp` core: `y = k·ln2 + r` with `k = floor(y/ln2 + 0.5)`, `|r| ≤ ln2/2` (Cody–Waite,
//!   `ln2` split so `k·LN2_HI` is exact), `expm1(r)` by its Taylor series to `r^13/13!`
//!   (truncation < 4e-18), scaled by `2^k` through the exponent bits.
//! - `tanh(x) = sign(x)·e/(e + 2)` with `e = expm1(2|x|)`; `|x| ≥ 10` gives ±1 (the exact
//!   value is within 2^-28 of 1, below half an f32 ULP).
//! - `erf(x) = sign(x)·(2/√π)·|x|·exp(−x²)·Σ (2x²)^n/(2n+1)!!` (a series of positive terms, so
//!   nothing cancels), 48 terms (relative truncation below 1e-12 at |x| = 4); `|x| ≥ 4`
//!   gives ±1 (`erfc(4) ≈ 1.5e-8`, below half an f32 ULP of 1).
//! - NaN is returned as it came in; ±0 keep their sign (`copysign`).

// The constant tokens are also the C literals, so they are spelled as fdlibm and the series
// tables give them (LN2_HI with its full decimal expansion), not as `std::f64::consts`.
#![allow(clippy::excessive_precision, clippy::approx_constant)]

/// Declares the constants once and derives both the Rust items and their C text.
macro_rules! det_math {
    (
        ln2_hi: $ln2_hi:literal, ln2_lo: $ln2_lo:literal, inv_ln2: $inv_ln2:literal,
        two_over_sqrt_pi: $tsp:literal,
        tanh_saturate: $tsat:literal, erf_saturate: $esat:literal,
        expm1_taylor: [$($e:literal),* $(,)?],
        erf_series: [$($s:literal),* $(,)?] $(,)?
    ) => {
        /// High part of ln 2 (low 21 bits of its significand zero, so `k·LN2_HI` is exact).
        pub const LN2_HI: f64 = $ln2_hi;
        /// `ln 2 − LN2_HI`.
        pub const LN2_LO: f64 = $ln2_lo;
        /// `1 / ln 2`.
        pub const INV_LN2: f64 = $inv_ln2;
        /// `2 / √π`.
        pub const TWO_OVER_SQRT_PI: f64 = $tsp;
        /// `|x|` from which `tanh` returns ±1.
        pub const TANH_SATURATE: f32 = $tsat;
        /// `|x|` from which `erf` returns ±1.
        pub const ERF_SATURATE: f32 = $esat;
        /// `1/i!` for `i = 1 ..= 13`: `expm1(r) = r·Σ EXPM1_TAYLOR[i]·r^i`.
        pub const EXPM1_TAYLOR: [f64; 13] = [$($e),*];
        /// `1/(2n+1)!!` for `n = 0 .. 48`.
        pub const ERF_SERIES: [f64; 48] = [$($s),*];

        /// The C text of [`tanh_f32`] and [`erf_f32`] (`strata_tanhf`, `strata_erff`), C99
        /// with `<math.h>` (`floor`, `fabsf`, `copysignf`) and `<string.h>` (`memcpy`).
        pub const C_SOURCE: &str = concat!(
            "/* Deterministic tanh and erf (strata_ir::math): IEEE double operations only, the\n",
            " * same bits on every ISA; the Rust runtime computes the same statements. */\n",
            "static const double strata_expm1_taylor[13] = {",
            $(stringify!($e), ", ",)*
            "};\n",
            "static const double strata_erf_series[48] = {",
            $(stringify!($s), ", ",)*
            "};\n",
            "/* expm1(r) for |r| <= ln2/2 after y = k*ln2 + r; returns expm1(r), sets *k. */\n",
            "static double strata_exp_split(double y, int *k)\n",
            "{\n",
            "    double kf = floor(y * ", stringify!($inv_ln2), " + 0.5);\n",
            "    double r = y - kf * ", stringify!($ln2_hi), ";\n",
            "    double q = strata_expm1_taylor[12];\n",
            "    int i;\n",
            "    r = r - kf * ", stringify!($ln2_lo), ";\n",
            "    for (i = 11; i >= 0; --i) {\n",
            "        q = q * r;\n",
            "        q = q + strata_expm1_taylor[i];\n",
            "    }\n",
            "    *k = (int)kf;\n",
            "    return r * q;\n",
            "}\n",
            "/* v * 2^k, exact for -1022 <= k <= 1023. */\n",
            "static double strata_scale2(double v, int k)\n",
            "{\n",
            "    uint64_t bits = (uint64_t)(k + 1023) << 52;\n",
            "    double s;\n",
            "    memcpy(&s, &bits, sizeof s);\n",
            "    return v * s;\n",
            "}\n",
            "static float strata_tanhf(float x)\n",
            "{\n",
            "    float a = fabsf(x);\n",
            "    double t;\n",
            "    if (x != x)\n",
            "        return x;\n",
            "    if (a >= ", stringify!($tsat), "f) {\n",
            "        t = 1.0;\n",
            "    } else {\n",
            "        int k;\n",
            "        double e = strata_exp_split((double)a + (double)a, &k);\n",
            "        if (k != 0) {\n",
            "            e = e + 1.0;\n",
            "            e = strata_scale2(e, k);\n",
            "            e = e - 1.0;\n",
            "        }\n",
            "        t = e / (e + 2.0);\n",
            "    }\n",
            "    return copysignf((float)t, x);\n",
            "}\n",
            "static float strata_erff(float x)\n",
            "{\n",
            "    float a = fabsf(x);\n",
            "    double t;\n",
            "    if (x != x)\n",
            "        return x;\n",
            "    if (a >= ", stringify!($esat), "f) {\n",
            "        t = 1.0;\n",
            "    } else {\n",
            "        double ad = (double)a, z = ad * ad, s = strata_erf_series[47], e;\n",
            "        double w = z + z;\n",
            "        int i, k;\n",
            "        for (i = 46; i >= 0; --i) {\n",
            "            s = s * w;\n",
            "            s = s + strata_erf_series[i];\n",
            "        }\n",
            "        e = strata_exp_split(0.0 - z, &k);\n",
            "        e = strata_scale2(e + 1.0, k);\n",
            "        t = ", stringify!($tsp), " * ad;\n",
            "        t = t * e;\n",
            "        t = t * s;\n",
            "    }\n",
            "    return copysignf((float)t, x);\n",
            "}\n",
        );
    };
}

det_math! {
    ln2_hi: 6.93147180369123816490e-01,
    ln2_lo: 1.90821492927058770002e-10,
    inv_ln2: 1.4426950408889634,
    two_over_sqrt_pi: 1.1283791670955126,
    tanh_saturate: 10.0,
    erf_saturate: 4.0,
    expm1_taylor: [
        1.0, 0.5, 0.16666666666666666, 0.041666666666666664, 0.008333333333333333,
        0.001388888888888889, 0.0001984126984126984, 2.48015873015873e-05,
        2.7557319223985893e-06, 2.755731922398589e-07, 2.505210838544172e-08,
        2.08767569878681e-09, 1.6059043836821613e-10,
    ],
    erf_series: [
        1.0, 0.3333333333333333, 0.06666666666666667, 0.009523809523809525,
        0.0010582010582010583, 9.62000962000962e-05, 7.4000074000074e-06,
        4.9333382666716e-07, 2.901963686277412e-08, 1.5273493085670588e-09,
        7.273091945557423e-11, 3.1622138893727926e-12, 1.264885555749117e-13,
        4.684761317589322e-15, 1.6154349370997664e-16, 5.211080442257311e-18,
        1.5791152855325184e-19, 4.5117579586643385e-21, 1.2193940428822536e-22,
        3.1266513920057783e-24, 7.625979004892143e-26, 1.7734834895098008e-27,
        3.9410744211328905e-29, 8.38526472581466e-31, 1.7112785154723796e-32,
        3.3554480695536855e-34, 6.33103409349752e-36, 1.1510971079086399e-37,
        2.019468610366035e-39, 3.4228281531627713e-41, 5.611193693709461e-43,
        8.906656656681684e-45, 1.3702548702587206e-46, 2.04515652277421e-48,
        2.9639949605423333e-50, 4.174640789496244e-52, 5.718686013008554e-54,
        7.624914684011405e-56, 9.902486602612214e-58, 1.2534793167863561e-59,
        1.5475053293658718e-61, 1.8644642522480384e-63, 2.1934873555859273e-65,
        2.521249834006813e-67, 2.832864982030127e-69, 3.1130384417913484e-71,
        3.347353163216504e-73, 3.5235296454910565e-75,
    ],
}

/// `(expm1(r), k)` with `y = k·ln2 + r`: the shared exponential core (`strata_exp_split`).
pub fn exp_split(y: f64) -> (f64, i32) {
    let kf = (y * INV_LN2 + 0.5).floor();
    let mut r = y - kf * LN2_HI;
    r -= kf * LN2_LO;
    let mut q = EXPM1_TAYLOR[12];
    for &c in EXPM1_TAYLOR[..12].iter().rev() {
        q *= r;
        q += c;
    }
    (r * q, kf as i32)
}

/// `v·2^k`, exact for `-1022 ≤ k ≤ 1023` (`strata_scale2`).
pub fn scale2(v: f64, k: i32) -> f64 {
    v * f64::from_bits(((k + 1023) as u64) << 52)
}

/// Deterministic f32 `tanh` (`strata_tanhf`).
pub fn tanh_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let t = if a >= TANH_SATURATE {
        1.0
    } else {
        let (mut e, k) = exp_split(a as f64 + a as f64);
        if k != 0 {
            e = scale2(e + 1.0, k) - 1.0;
        }
        e / (e + 2.0)
    };
    (t as f32).copysign(x)
}

/// Deterministic f32 `erf` (`strata_erff`).
pub fn erf_f32(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let t = if a >= ERF_SATURATE {
        1.0
    } else {
        let ad = a as f64;
        let z = ad * ad;
        let w = z + z;
        let mut s = ERF_SERIES[47];
        for &c in ERF_SERIES[..47].iter().rev() {
            s *= w;
            s += c;
        }
        let (e, k) = exp_split(0.0 - z);
        let e = scale2(e + 1.0, k);
        TWO_OVER_SQRT_PI * ad * e * s
    };
    (t as f32).copysign(x)
}

#[cfg(test)]
mod tests;
