//! Values, edge cases and errors of the quantization arithmetic.

use super::*;

// The tests' shared seeded generator, so the property tests reproduce.
use strata_test_support::rng::XorShift;

const COLS: [usize; 6] = [1, 63, 64, 65, 128, 200];

#[test]
fn row_bytes_rounds_up_to_words() {
    assert_eq!(row_bytes(0), 0);
    assert_eq!(row_bytes(1), 8);
    assert_eq!(row_bytes(64), 8);
    assert_eq!(row_bytes(65), 16);
    assert_eq!(row_bytes(200), 32);
}

#[test]
fn quantize_known_values() {
    // Row 0: max 1.27 → s = 0.01; 0.005 rounds half away from zero to 1 (0.5 → 1).
    // Row 1: all zero → scale 1, codes 0. Row 2: negative extreme reaches -127, not -128.
    let w = [
        1.27, -0.635, 0.005, -0.005, 0.0, 0.0, 0.0, 0.0, -2.0, 1.0, 0.0, 0.0,
    ];
    let (q, s) = quantize_rows(&w, 3, 4, 8).unwrap();
    assert_eq!(s, vec![0.01, 1.0, 2.0 / 127.0]);
    assert_eq!(&q[0..4], &[127, -64, 1, -1]);
    assert_eq!(&q[4..8], &[0, 0, 0, 0]);
    assert_eq!(&q[8..12], &[-127, 64, 0, 0]);
    // 2 bits: Q = 1.
    let (q, s) = quantize_rows(&[0.4, -1.0, 0.6, 0.0], 1, 4, 2).unwrap();
    assert_eq!(s, vec![1.0]);
    assert_eq!(q, vec![0, -1, 1, 0]);
}

#[test]
fn prefix_property_random() {
    let mut rng = XorShift::seeded(0x9e37_79b9_7f4a_7c15);
    for bits in 2..=8u8 {
        for &cols in &COLS {
            let rows = 3;
            let w: Vec<f32> = (0..rows * cols).map(|_| rng.unit() * 3.0).collect();
            let (q, _) = quantize_rows(&w, rows, cols, bits).unwrap();
            let planes = pack_planes(&q, rows, cols, bits).unwrap();
            assert_eq!(planes.len(), bits as usize * rows * row_bytes(cols));
            assert_eq!(
                check_layout(planes.len(), bits as usize, rows, cols, bits),
                Ok(())
            );
            for k in 1..=bits {
                let want: Vec<i32> = q.iter().map(|&v| v >> (bits - k)).collect();
                assert_eq!(
                    prefix_codes(&planes, rows, cols, k).unwrap(),
                    want,
                    "B={bits} k={k} K={cols}"
                );
                // Only the first k planes are needed: a truncated buffer gives the same codes.
                let cut = k as usize * rows * row_bytes(cols);
                assert_eq!(prefix_codes(&planes[..cut], rows, cols, k).unwrap(), want);
                // The same codes element by element.
                let each: Vec<i32> = q
                    .iter()
                    .map(|&v| truncate_code(v, bits, k).unwrap())
                    .collect();
                assert_eq!(each, want);
            }
        }
    }
}

#[test]
fn prefix_property_all_codes() {
    // Every code of every width, including the extremes -2^(B-1) and 2^(B-1)-1.
    for bits in 2..=8u8 {
        let q: Vec<i32> = (-(1 << (bits - 1))..(1 << (bits - 1))).collect();
        let cols = q.len();
        let planes = pack_planes(&q, 1, cols, bits).unwrap();
        for k in 1..=bits {
            let want: Vec<i32> = q.iter().map(|&v| v >> (bits - k)).collect();
            assert_eq!(prefix_codes(&planes, 1, cols, k).unwrap(), want);
        }
    }
}

#[test]
fn padding_bits_are_zero() {
    let mut rng = XorShift::seeded(42);
    for &cols in &COLS {
        let rows = 2;
        // All -1 codes set every bit of every plane: the padding must still be zero.
        let q = vec![-1i32; rows * cols];
        let planes = pack_planes(&q, rows, cols, 8).unwrap();
        let rb = row_bytes(cols);
        for p in 0..8 {
            for r in 0..rows {
                let row = &planes[(p * rows + r) * rb..(p * rows + r + 1) * rb];
                for (i, &b) in row.iter().enumerate() {
                    let valid = cols.saturating_sub(8 * i).min(8);
                    let mask = if valid == 8 { 0xff } else { (1u8 << valid) - 1 };
                    assert_eq!(b, mask, "K={cols} plane {p} row {r} byte {i}");
                }
            }
        }
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.unit()).collect();
        let (q, _) = quantize_rows(&w, rows, cols, 5).unwrap();
        let planes = pack_planes(&q, rows, cols, 5).unwrap();
        for p in 0..5 {
            for r in 0..rows {
                let off = (p * rows + r) * rb;
                let last = u64::from_le_bytes(planes[off + rb - 8..off + rb].try_into().unwrap());
                let used = cols - 64 * (rb / 8 - 1);
                if used < 64 {
                    assert_eq!(last >> used, 0, "padding of K={cols}");
                }
            }
        }
    }
}

#[test]
fn plane_bit_positions() {
    // Element 64·w + j is bit j of word w; plane 0 is the sign bit.
    let mut q = vec![0i32; 70];
    q[0] = -128; // only the sign plane set
    q[65] = 1; // only the last plane set
    let planes = pack_planes(&q, 1, 70, 8).unwrap();
    assert_eq!(planes.len(), 8 * 16);
    assert_eq!(planes[0], 1); // plane 0, word 0, bit 0
    assert!(planes[1..16].iter().all(|&b| b == 0));
    let last = &planes[7 * 16..8 * 16];
    assert_eq!(last[8], 0b10); // plane 7, word 1, bit 1
}

#[test]
fn midpoints() {
    assert_eq!(midpoint_side(0.5, 8, 8), Ok((0.5, 0.0)));
    assert_eq!(midpoint_side(0.5, 8, 6), Ok((2.0, 0.75)));
    assert_eq!(midpoint_side(1.0, 4, 1), Ok((8.0, 3.5)));
    // The midpoint reconstructs the centre of each truncation bucket.
    let (a, b) = midpoint_side(1.0, 8, 5).unwrap();
    for qb in -128i32..128 {
        let qk = qb >> 3;
        let lo = (qk << 3) as f32;
        assert_eq!(a * qk as f32 + b, lo + 3.5);
    }
}

#[test]
fn layout_errors() {
    assert_eq!(
        check_layout(8, 1, 1, 1, 1),
        Err(QuantError::Bits { bits: 1 })
    );
    assert_eq!(
        check_layout(8, 1, 1, 1, 9),
        Err(QuantError::Bits { bits: 9 })
    );
    assert_eq!(
        check_layout(0, 0, 1, 1, 8),
        Err(QuantError::PlaneCount { k: 0, bits: 8 })
    );
    assert_eq!(
        check_layout(72, 9, 1, 1, 8),
        Err(QuantError::PlaneCount { k: 9, bits: 8 })
    );
    assert!(matches!(
        check_layout(15, 2, 1, 1, 8),
        Err(QuantError::Length {
            got: 15,
            expected: 16,
            ..
        })
    ));
    assert!(matches!(
        check_layout(0, 2, usize::MAX, 65, 8),
        Err(QuantError::Overflow { .. })
    ));
}

#[test]
fn inconsistent_arguments_are_typed_errors() {
    // Wrong lengths, unsupported widths, short planes: errors naming the problem, no panic,
    // no allocation sized by the bogus arguments.
    assert_eq!(
        quantize_rows(&[1.0], 2, 2, 8),
        Err(QuantError::Length {
            what: "weights",
            got: 1,
            expected: 4,
            rows: 2,
            cols: 2
        })
    );
    assert_eq!(
        quantize_rows(&[1.0; 4], 2, 2, 1),
        Err(QuantError::Bits { bits: 1 })
    );
    assert!(matches!(
        quantize_rows(&[1.0; 4], usize::MAX, 2, 8),
        Err(QuantError::Overflow { .. })
    ));
    assert!(matches!(
        pack_planes(&[1, 2], 1 << 40, 2, 8),
        Err(QuantError::Length { what: "codes", .. })
    ));
    assert_eq!(
        pack_planes(&[1, 2], 1, 2, 9),
        Err(QuantError::Bits { bits: 9 })
    );
    assert_eq!(
        prefix_codes(&[], 1, 3, 4),
        Err(QuantError::Short {
            k: 4,
            got: 0,
            need: 32
        })
    );
    assert!(matches!(
        prefix_codes(&[0xff; 8], usize::MAX / 2, 64, 2),
        Err(QuantError::Overflow { .. })
    ));
    assert_eq!(
        prefix_codes(&[0xff; 8], 1, 64, 0),
        Err(QuantError::PlaneCount { k: 0, bits: 8 })
    );
    assert_eq!(
        prefix_codes(&[0xff; 8], 1, 64, 9),
        Err(QuantError::PlaneCount { k: 9, bits: 8 })
    );
    assert_eq!(midpoint_side(1.0, 0, 0), Err(QuantError::Bits { bits: 0 }));
    assert_eq!(
        midpoint_side(1.0, 8, 9),
        Err(QuantError::PlaneCount { k: 9, bits: 8 })
    );
    assert_eq!(
        truncate_code(5, 4, 0),
        Err(QuantError::PlaneCount { k: 0, bits: 4 })
    );
    let (q, _) = quantize_rows(&[f32::NAN, 1.0], 1, 2, 8).unwrap();
    assert_eq!(q, vec![0, 127]); // the NaN is skipped by max and its own code is 0
}

#[test]
fn codes_with_given_scales() {
    // Row 0 scale 0.5, row 1 scale 2: half away from zero, clamped to the 4-bit range.
    let w = [0.25, -0.25, 100.0, -100.0, 1.0, -3.0, 0.0, f32::NAN];
    assert_eq!(
        quantize_with_scales(&w, &[0.5, 2.0], 4, 4),
        Ok(vec![1, -1, 7, -8, 1, -2, 0, 0])
    );
    // The same codes quantize_rows computes from its own scales.
    let mut rng = XorShift::seeded(7);
    let w: Vec<f32> = (0..3 * 70).map(|_| rng.unit()).collect();
    let (q, s) = quantize_rows(&w, 3, 70, 6).unwrap();
    assert_eq!(quantize_with_scales(&w, &s, 70, 6), Ok(q));
    assert!(matches!(
        quantize_with_scales(&w, &s[..2], 70, 6),
        Err(QuantError::Length {
            what: "weights",
            ..
        })
    ));
    assert_eq!(
        quantize_with_scales(&w, &s, 70, 9),
        Err(QuantError::Bits { bits: 9 })
    );
    assert_eq!(weight_limits(2), Ok((-2, 1)));
    assert_eq!(weight_limits(8), Ok((-128, 127)));
    assert_eq!(truncate_code(-128, 8, 1), Ok(-1));
    assert_eq!(truncate_code(127, 8, 2), Ok(1));
    assert_eq!(truncate_code(-3, 4, 3), Ok(-2)); // floor, not towards zero
}

#[test]
fn activation_params_include_zero_and_map_range_ends() {
    let q = act_params(ActRange { lo: 0.0, hi: 2.55 }, 8).unwrap();
    assert!((q.scale - 0.01).abs() < 1e-7);
    assert_eq!(q.zero, -128.0);
    let a = ActQuantizer::new(q, 8).unwrap();
    assert_eq!(a.quantize(0.0), -128);
    assert_eq!(a.quantize(2.55), 127);
    assert_eq!(a.quantize(100.0), 127);
    assert_eq!(a.quantize(-5.0), -128);
    assert_eq!(a.quantize(f32::NAN), -128);
    // A positive-only range is widened to 0.
    let q = act_params(ActRange { lo: 1.0, hi: 2.55 }, 8).unwrap();
    assert_eq!(q.zero, -128.0);
    // Symmetric range: real 0 stays exactly 0.
    let q = act_params(ActRange { lo: -1.0, hi: 1.0 }, 8).unwrap();
    assert!((q.scale - 2.0 / 255.0).abs() < 1e-7);
    assert_eq!(ActQuantizer::new(q, 8).unwrap().fake_quant(0.0), 0.0);
    // Degenerate range: unit scale.
    assert_eq!(
        act_params(ActRange { lo: 0.0, hi: 0.0 }, 8),
        Ok(ActQuant {
            scale: 1.0,
            zero: 0.0
        })
    );
    assert_eq!(
        act_params(ActRange { lo: 0.0, hi: 1.0 }, 17),
        Err(QuantError::ActBits { bits: 17 })
    );
    assert_eq!(act_limits(4), Ok((-8, 7)));
    assert_eq!(act_limits(16), Ok((-32768, 32767)));
    assert_eq!(act_limits(1), Err(QuantError::ActBits { bits: 1 }));
}

#[test]
fn activation_quantization_rounds_half_to_even_and_clamps() {
    // scale 0.5, zero 3: x/scale = 0.5 → 0, 1.5 → 2, 2.5 → 2, -0.5 → -0; clamp at 127 / -128.
    let a = ActQuantizer::new(
        ActQuant {
            scale: 0.5,
            zero: 3.0,
        },
        8,
    )
    .unwrap();
    let xs = [
        0.25,
        0.75,
        1.25,
        -0.25,
        1000.0,
        -1000.0,
        f32::NAN,
        f32::INFINITY,
    ];
    let u: Vec<i32> = xs.iter().map(|&x| a.centered(x)).collect();
    assert_eq!(u, vec![0, 2, 2, 0, 124, -131, 0, 124]);
    let q: Vec<i32> = xs.iter().map(|&x| a.quantize(x)).collect();
    assert_eq!(q, vec![3, 5, 5, 3, 127, -128, 3, 127]);
    let f: Vec<f32> = xs.iter().map(|&x| a.fake_quant(x)).collect();
    assert_eq!(f, vec![0.0, 1.0, 1.0, 0.0, 62.0, -65.5, 0.0, 62.0]);
    assert_eq!(a.limits(), (-128.0, 127.0));
    assert_eq!(a.bits(), 8);
    assert_eq!(a.params().zero, 3.0);
    // Two bits: codes -2..=1.
    let a = ActQuantizer::new(
        ActQuant {
            scale: 1.0,
            zero: 0.0,
        },
        2,
    )
    .unwrap();
    let q: Vec<i32> = [-5.0, -1.5, 0.5, 1.5, 9.0]
        .iter()
        .map(|&x| a.quantize(x))
        .collect();
    assert_eq!(q, vec![-2, -2, 0, 1, 1]);
}

#[test]
fn activation_parameter_errors() {
    let new = |scale: f32, zero: f32, bits: u8| ActQuantizer::new(ActQuant { scale, zero }, bits);
    for scale in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(
            matches!(new(scale, 0.0, 8), Err(QuantError::ActScale { .. })),
            "{scale}"
        );
    }
    for zero in [0.5, 257.0, -257.0, f32::NAN, f32::INFINITY] {
        assert!(
            matches!(
                new(0.1, zero, 8),
                Err(QuantError::ZeroPoint { bound: 256, .. })
            ),
            "{zero}"
        );
    }
    // The bound itself is allowed.
    assert!(new(0.1, -256.0, 8).is_ok());
    assert_eq!(new(0.1, 0.0, 1), Err(QuantError::ActBits { bits: 1 }));
    assert_eq!(
        new(0.1, 0.5, 8).unwrap_err().to_string(),
        "activation zero point 0.5 must be an integer in ±256"
    );
}

mod resolve {
    use super::super::*;
    use crate::ops::bitplane::{Bitplane, BitplaneKernel, PlaneSpec};
    use crate::{DType, Tensor, TensorData};

    /// A 3×70 linear layer with 8 planes and side tables for 2, 4 and 8 planes.
    struct Layer {
        op: Bitplane,
        codes: Vec<i32>,
        planes: Tensor,
        alpha: Tensor,
        beta: Tensor,
        bias: Tensor,
        act: Tensor,
    }

    fn layer() -> Layer {
        let (rows, cols) = (3, 70);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let (codes, _) = quantize_rows(&w, rows, cols, 8).unwrap();
        let bytes = pack_planes(&codes, rows, cols, 8).unwrap();
        let table = |base: f32| {
            Tensor::from_f32(
                vec![3, rows],
                (0..3 * rows).map(|i| base + i as f32).collect(),
            )
            .unwrap()
        };
        Layer {
            op: Bitplane {
                kernel: BitplaneKernel::Linear,
                spec: PlaneSpec {
                    bits: 8,
                    plane_counts: vec![2, 4, 8],
                    act_bits: 8,
                    rows,
                    cols,
                    act_bits_k: vec![],
                },
            },
            codes,
            planes: Tensor::new(vec![8, rows, row_bytes(cols)], TensorData::U8(bytes)).unwrap(),
            alpha: table(100.0),
            beta: table(200.0),
            bias: table(300.0),
            act: Tensor::from_f32(vec![3, 2], vec![0.1, 0.0, 0.2, -3.0, 0.3, 5.0]).unwrap(),
        }
    }

    impl Layer {
        fn weights(&self) -> Vec<&Tensor> {
            vec![&self.planes, &self.alpha, &self.beta, &self.bias, &self.act]
        }
    }

    #[test]
    fn picks_the_side_row_and_keeps_only_k_planes() {
        let l = layer();
        let r = l.op.resolve(&l.weights(), 4).unwrap();
        assert_eq!((r.k, r.side, r.present, r.rows, r.cols), (4, 1, 8, 3, 70));
        assert_eq!(r.planes.len(), 4 * 3 * 16);
        assert_eq!(r.alpha, &[103.0, 104.0, 105.0]);
        assert_eq!(r.beta, &[203.0, 204.0, 205.0]);
        assert_eq!(r.bias, &[303.0, 304.0, 305.0]);
        assert_eq!(
            r.act.params(),
            ActQuant {
                scale: 0.2,
                zero: -3.0
            }
        );
        let want: Vec<i32> = l.codes.iter().map(|&q| q >> 4).collect();
        assert_eq!(r.codes().unwrap(), want);
        let r8 = l.op.resolve(&l.weights(), 8).unwrap();
        assert_eq!(r8.codes().unwrap(), l.codes);
    }

    #[test]
    fn errors_name_the_plane_count_and_input() {
        let l = layer();
        let w = l.weights();
        assert_eq!(
            l.op.resolve(&w, 3),
            Err(ResolveError::NoSideTable {
                k: 3,
                plane_counts: vec![2, 4, 8]
            })
        );
        assert_eq!(
            l.op.resolve(&w[..4], 8),
            Err(ResolveError::Arity {
                got: 4,
                expected: 5
            })
        );
        // A truncated model with 5 planes runs at 4 but not at 8.
        let TensorData::U8(bytes) = l.planes.data() else {
            unreachable!()
        };
        let five = Tensor::new(vec![5, 3, 16], TensorData::U8(bytes[..5 * 48].to_vec())).unwrap();
        let mut cut = w.clone();
        cut[0] = &five;
        assert_eq!(l.op.resolve(&cut, 4).unwrap().present, 5);
        assert_eq!(
            l.op.resolve(&cut, 8),
            Err(ResolveError::PlanesUnavailable { k: 8, available: 5 })
        );
        // Planes whose byte count does not match their claimed shape.
        let mut bad = w.clone();
        let short = Tensor::new(vec![8, 3, 8], TensorData::U8(vec![0; 8 * 24])).unwrap();
        bad[0] = &short;
        assert!(matches!(
            l.op.resolve(&bad, 8),
            Err(ResolveError::Layout(QuantError::Length { .. }))
        ));
        let f = Tensor::from_f32(vec![8, 3, 16], vec![0.0; 8 * 48]).unwrap();
        bad[0] = &f;
        assert!(matches!(
            l.op.resolve(&bad, 8),
            Err(ResolveError::DType {
                input: 1,
                got: DType::F32,
                ..
            })
        ));
        // Side tables of the wrong size or type.
        let mut bad = w.clone();
        let two_rows = Tensor::from_f32(vec![2, 3], vec![0.0; 6]).unwrap();
        bad[2] = &two_rows;
        assert!(matches!(
            l.op.resolve(&bad, 8),
            Err(ResolveError::SideTable {
                input: 3,
                what: "beta",
                got: 6,
                expected: 9
            })
        ));
        let u8s = Tensor::new(vec![3, 2], TensorData::U8(vec![0; 6])).unwrap();
        bad[2] = &l.beta;
        bad[4] = &u8s;
        assert!(matches!(
            l.op.resolve(&bad, 8),
            Err(ResolveError::DType { input: 5, .. })
        ));
        // Unusable activation parameters name the plane count.
        let act = Tensor::from_f32(vec![3, 2], vec![0.1, 0.0, 0.0, 0.0, 0.3, 0.5]).unwrap();
        bad[4] = &act;
        assert!(l.op.resolve(&bad, 2).is_ok());
        assert!(matches!(
            l.op.resolve(&bad, 4),
            Err(ResolveError::Activation {
                k: 4,
                source: QuantError::ActScale { .. }
            })
        ));
        assert!(matches!(
            l.op.resolve(&bad, 8),
            Err(ResolveError::Activation {
                k: 8,
                source: QuantError::ZeroPoint { .. }
            })
        ));
        // Inconsistent attributes are caught before any input is read.
        let mut op = l.op.clone();
        op.spec.plane_counts = vec![4, 2];
        assert!(matches!(op.resolve(&w, 4), Err(ResolveError::Spec(_))));
    }
}

#[test]
fn round_half_even_matches_the_standard_library_bit_for_bit() {
    let edges = [
        0.0f32,
        -0.0,
        0.5,
        -0.5,
        1.5,
        2.5,
        -2.5,
        0.49999997,
        8_388_607.5,
        -8_388_607.5,
        8_388_608.0,
        16_777_217.0,
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE / 2.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    let mut rng = XorShift::seeded(7);
    let random = (0..200_000).map(|_| f32::from_bits(rng.next_u64() as u32));
    // Half-integers and values near them, where ties are decided.
    let ties = (-4000..4000).flat_map(|i| {
        let h = i as f32 + 0.5;
        let b = h.to_bits();
        [h, f32::from_bits(b + 1), f32::from_bits(b - 1)]
    });
    for x in edges.into_iter().chain(random).chain(ties) {
        let (want, got) = (x.round_ties_even(), round_half_even(x));
        if x.is_nan() {
            assert!(got.is_nan(), "{x:?}");
        } else {
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "x = {x:e} ({:#x})",
                x.to_bits()
            );
        }
    }
}
