//! The deterministic functions against f64 references (accuracy) and against their own C
//! text compiled by gcc (bit for bit).

use super::*;
use std::io::Write;
use std::process::Command;

/// Distance in f32 units in the last place (ordered bit patterns; ±0 are one apart).
fn ulps(a: f32, b: f32) -> u64 {
    let key = |v: f32| {
        let b = v.to_bits() as i64;
        if b < 0 {
            -(b & 0x7fff_ffff)
        } else {
            b
        }
    };
    (key(a) - key(b)).unsigned_abs()
}

/// Every 2771st f32 bit pattern (1.55 M values over the whole line), plus the edges: ±0,
/// denormals, ±inf, NaNs, every f32 within 4,000 ULPs of the switch points (±4, ±10, the
/// first `k` changes at ±ln2/4 and ±ln2/2·…), large magnitudes.
fn inputs() -> Vec<f32> {
    let mut v: Vec<f32> = (0..u32::MAX / 2771)
        .map(|i| f32::from_bits(i * 2771))
        .collect();
    v.extend([
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::from_bits(0x8000_0001),
        f32::from_bits(0x007f_ffff),
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::MAX,
        f32::MIN,
        1e30,
        -1e30,
    ]);
    let ln2 = std::f32::consts::LN_2;
    let mut centres = vec![4.0f32, 10.0, 9.0, 3.9, 1e-4, 2f32.powi(-12)];
    centres.extend((1..60).map(|k| k as f32 * ln2 / 2.0 - ln2 / 4.0));
    centres.extend((1..24).map(|k| (k as f32 * ln2 - ln2 / 2.0).sqrt()));
    for c in centres {
        for s in [c, -c] {
            let b = s.to_bits();
            v.extend((b - 4000..b + 4000).map(f32::from_bits));
        }
    }
    v
}

fn check_accuracy(name: &str, f: fn(f32) -> f32, reference: fn(f64) -> f64) {
    let mut worst = (0, 0.0f32);
    for &x in &inputs() {
        let y = f(x);
        if x.is_nan() {
            assert_eq!(y.to_bits(), x.to_bits(), "{name}({x:?}) keeps the NaN");
            continue;
        }
        let r = reference(x as f64) as f32;
        let d = ulps(y, r);
        if d > worst.0 {
            worst = (d, x);
        }
        assert_eq!(
            y.is_sign_negative(),
            x.is_sign_negative(),
            "{name}({x:e}) sign"
        );
    }
    eprintln!("{name}: worst {} ULP at {:e}", worst.0, worst.1);
    assert!(worst.0 <= 2, "{name}: {} ULP at {:e}", worst.0, worst.1);
}

#[test]
fn tanh_within_two_ulps_of_f64() {
    check_accuracy("tanh", tanh_f32, f64::tanh);
    assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
    assert_eq!(tanh_f32(f32::INFINITY), 1.0);
    assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
    assert_eq!(
        tanh_f32(9.0),
        1.0 - f32::EPSILON / 2.0,
        "tanh(9) is not yet 1"
    );
    assert_eq!(tanh_f32(f32::from_bits(1)), f32::from_bits(1));
}

#[test]
fn erf_within_two_ulps_of_f64() {
    check_accuracy("erf", erf_f32, libm::erf);
    assert_eq!(erf_f32(-0.0).to_bits(), (-0.0f32).to_bits());
    assert_eq!(erf_f32(f32::NEG_INFINITY), -1.0);
    assert_eq!(erf_f32(1.0), 0.842_700_8);
}

/// The C text, compiled by gcc in strict C99 (no contraction), reads f32 bit patterns and
/// writes tanh and erf of each; every result must have the Rust function's bits.
#[test]
fn c_source_matches_rust_bit_for_bit() {
    let dir = std::env::temp_dir().join(format!("strata-math-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let main = format!(
        "#include <math.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <string.h>\n{C_SOURCE}\
         int main(void)\n{{\n    float x, y[2];\n    while (fread(&x, 4, 1, stdin) == 1) {{\n\
         y[0] = strata_tanhf(x);\n        y[1] = strata_erff(x);\n        fwrite(y, 4, 2, stdout);\n\
         }}\n    return 0;\n}}\n"
    );
    std::fs::write(dir.join("m.c"), main).unwrap();
    let exe = dir.join("m");
    let out = Command::new("gcc")
        .args([
            "-std=c99",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-o",
        ])
        .arg(&exe)
        .arg(dir.join("m.c"))
        .arg("-lm")
        .output()
        .expect("gcc is required by this test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xs = inputs();
    assert!(xs.len() >= 1_000_000);
    let bytes: Vec<u8> = xs.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut child = Command::new(&exe)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&bytes).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.stdout.len(), xs.len() * 8);
    for (x, c) in xs.iter().zip(out.stdout.chunks_exact(8)) {
        let t = u32::from_le_bytes(c[..4].try_into().unwrap());
        let e = u32::from_le_bytes(c[4..].try_into().unwrap());
        assert_eq!(t, tanh_f32(*x).to_bits(), "tanh({:#010x})", x.to_bits());
        assert_eq!(e, erf_f32(*x).to_bits(), "erf({:#010x})", x.to_bits());
    }
}
