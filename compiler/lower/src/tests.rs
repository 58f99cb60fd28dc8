//! Lowering decisions on small graphs: Relu fusion, aliasing and the arena, geometry, byte
//! counts, per-layer plane counts and errors.

use std::sync::Arc;

use strata_ir::ops::elementwise::{BinaryOp, UnaryOp};
use strata_ir::ops::pool::Pool;
use strata_ir::ops::{Bitplane, BitplaneKernel, Conv};
use strata_ir::{DType, Graph, Op, Tensor, TensorData, TensorType, ValueRef};

use crate::*;

use strata_test_support::bitplane::{layer_consts, plane_spec as spec};

fn conv(channels: usize, rows: usize, stride: usize) -> Bitplane {
    Bitplane {
        kernel: BitplaneKernel::Conv(Conv {
            kernel: vec![3, 3],
            strides: vec![stride, stride],
            pads: vec![1, 1, 1, 1],
            dilations: vec![1, 1],
            group: 1,
            has_bias: false,
        }),
        spec: spec(rows, channels * 9),
    }
}

fn op(g: &mut Graph, name: &str, op: Op, ins: &[ValueRef]) -> ValueRef {
    ValueRef::first(g.add_op_inferred(name, op, ins, vec![name.into()]).unwrap())
}

/// `x [1,4,6,6] → conv (6×36, stride 2) → relu → flatten → fc (3×54) → + c [1,3]`.
fn net() -> Graph {
    let mut g = Graph::new("net");
    let x = g.add_input("x", TensorType::known(DType::F32, &[1, 4, 6, 6]));
    let mut ins = vec![x];
    ins.extend(layer_consts(&mut g, "conv", 6, 36));
    let c = op(&mut g, "conv", Op::Bitplane(conv(4, 6, 2)), &ins);
    let r = op(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[c]);
    let f = op(&mut g, "flat", Op::Flatten { axis: 1 }, &[r]);
    let mut ins = vec![f];
    ins.extend(layer_consts(&mut g, "fc", 3, 54));
    let fc = Bitplane {
        kernel: BitplaneKernel::Linear,
        spec: spec(3, 54),
    };
    let y = op(&mut g, "fc", Op::Bitplane(fc), &ins);
    let k = g.add_constant(
        "k",
        Arc::new(Tensor::from_f32(vec![1, 3], vec![1.0, 2.0, 3.0]).unwrap()),
    );
    let out = op(&mut g, "add", Op::Binary(BinaryOp::Add), &[y, k]);
    g.set_outputs(vec![out]);
    g
}

fn options(planes: u8, layout: WeightLayout) -> LowerOptions {
    LowerOptions {
        planes,
        layer_planes: None,
        layout,
        code_bits: CodeBits::Fast,
    }
}

#[test]
fn relu_fuses_into_the_code_layout_epilogue() {
    let l = lower(&net(), &options(4, WeightLayout::Codes)).unwrap();
    let kernels: Vec<&Kernel> = l.steps.iter().map(|s| &s.kernel).collect();
    assert!(matches!(
        kernels.as_slice(),
        [
            Kernel::BitplaneConv {
                layer: 0,
                x: Loc::Input(0),
                relu: true
            },
            Kernel::BitplaneLinear {
                layer: 1,
                x: Loc::Buf(0),
                relu: false
            },
            Kernel::Binary {
                a: Loc::Buf(1),
                b: Operand::Const(0),
                n: 3,
                bcast: Broadcast { len: 3, inner: 1 },
                f: BinaryFn::Add,
            },
        ]
    ));
    let kinds: Vec<(&str, AliasKind)> = l
        .aliases
        .iter()
        .map(|a| (a.node.as_str(), a.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("relu", AliasKind::FusedRelu { step: 0 }),
            ("flat", AliasKind::View)
        ]
    );
    assert!(l.aliases.iter().all(|a| a.of == Loc::Buf(0)));
    assert_eq!(l.outputs[0].1, Loc::Buf(2));
    assert_eq!(l.constants[0].values, [1.0, 2.0, 3.0]);
}

#[test]
fn packed_planes_keep_a_relu_step() {
    let l = lower(&net(), &options(4, WeightLayout::Planes)).unwrap();
    let kernels: Vec<&Kernel> = l.steps.iter().map(|s| &s.kernel).collect();
    assert!(matches!(
        kernels.as_slice(),
        [
            Kernel::BitplaneConv { relu: false, .. },
            Kernel::Relu {
                x: Loc::Buf(0),
                n: 54
            },
            Kernel::BitplaneLinear {
                x: Loc::Buf(1),
                relu: false,
                ..
            },
            Kernel::Binary { .. },
        ]
    ));
    assert_eq!(l.aliases.len(), 1);
    assert_eq!(l.aliases[0].of, Loc::Buf(1));
}

#[test]
fn a_relu_with_a_sibling_reader_is_not_fused() {
    // conv → relu, and conv → add(relu, conv): the conv output is needed unrectified.
    let mut g = Graph::new("two");
    let x = g.add_input("x", TensorType::known(DType::F32, &[1, 4, 6, 6]));
    let mut ins = vec![x];
    ins.extend(layer_consts(&mut g, "conv", 6, 36));
    let c = op(&mut g, "conv", Op::Bitplane(conv(4, 6, 2)), &ins);
    let r = op(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[c]);
    let s = op(&mut g, "sum", Op::Binary(BinaryOp::Add), &[r, c]);
    g.set_outputs(vec![s]);
    let l = lower(&g, &options(8, WeightLayout::Codes)).unwrap();
    assert!(matches!(
        l.steps[1].kernel,
        Kernel::Relu { x: Loc::Buf(0), .. }
    ));
    assert!(matches!(
        l.steps[2].kernel,
        Kernel::Binary {
            a: Loc::Buf(1),
            b: Operand::Act(Loc::Buf(0)),
            ..
        }
    ));
    assert!(l.aliases.is_empty());
}

#[test]
fn buffers_live_from_writer_to_last_reader_and_share_the_arena() {
    // Packed planes: conv 54 | relu 54 | fc 3 | add 3. The relu buffer lives until fc (read
    // through the flatten alias); fc's output can reuse the conv buffer's memory.
    let g = net();
    let l = lower(&g, &options(4, WeightLayout::Planes)).unwrap();
    let sizes: Vec<usize> = l.buffers.iter().map(|b| b.size).collect();
    assert_eq!(sizes, [54, 54, 3, 3]);
    let step_of = |i: usize| l.buffers[l.steps[i].y].first;
    assert_eq!(l.buffers[1].last, step_of(2), "relu output read by fc");
    let nodes = g.node_ids().count();
    assert_eq!(l.buffers[3].last, nodes, "output kept past the last step");
    assert_eq!(l.arena.offsets, [0, 56, 0, 4]);
    assert_eq!(l.arena_bytes(), 4 * 110);
    // Codes: the fused relu writes nothing; conv's buffer lives until fc reads it.
    let l = lower(&net(), &options(4, WeightLayout::Codes)).unwrap();
    assert_eq!(l.arena.offsets, [0, 56, 0]);
    assert_eq!(l.arena_bytes(), 4 * 59);
    assert_eq!((l.inputs[0].size(), l.outputs[0].0.size()), (144, 3));
    assert_eq!(l.outputs[0].0.shape, [1, 3]);
}

#[test]
fn conv_and_pool_geometry() {
    let l = lower(&net(), &options(8, WeightLayout::Planes)).unwrap();
    let g = l.layers[0].conv.unwrap();
    assert_eq!(
        g,
        ConvGeometry {
            window: Window2d {
                input: [4, 6, 6],
                output: [3, 3],
                kernel: [3, 3],
                strides: [2, 2],
                dilations: [1, 1],
            },
            out_channels: 6,
            pads: [1, 1],
            group: 1,
        }
    );
    assert_eq!((g.group_channels(), g.positions()), (4, 9));
    assert_eq!(g.values(), [4, 6, 6, 6, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1]);
    assert_eq!(l.layers[1].conv, None);
    let c = Conv {
        kernel: vec![3],
        strides: vec![1],
        pads: vec![0, 0],
        dilations: vec![1],
        group: 1,
        has_bias: false,
    };
    // A 1-D convolution is the 2-D one of height 1: pads `[begin, end]` become the width's.
    let c1 = Conv {
        pads: vec![2, 1],
        strides: vec![2],
        ..c.clone()
    };
    let g1 = ConvGeometry::new(&c1, &[1, 2, 9], &[1, 5, 5]).unwrap();
    assert_eq!(g1.values(), [2, 1, 9, 5, 1, 5, 1, 3, 1, 2, 0, 2, 1, 1, 1]);
    // The rank of the shapes and of the attributes must agree.
    assert!(ConvGeometry::new(&c, &[1, 2, 8, 8], &[1, 2, 6, 6]).is_err());
    assert!(ConvGeometry::new(&c, &[1, 2, 2, 8], &[1, 2, 6]).is_err());
    // More than one image (a batch pinned above 1) is refused: the kernels compute one.
    let many = ConvGeometry::new(&c1, &[2, 2, 9], &[2, 5, 5]).unwrap_err();
    assert!(many.contains("of one image"), "{many}");
    let p = Pool {
        kernel: vec![2, 3],
        strides: vec![2, 1],
        pads: vec![0, 1, 1, 0],
        dilations: vec![1, 1],
        ceil_mode: false,
        count_include_pad: true,
    };
    let pg = PoolGeometry::new(&p, &[1, 5, 9, 8], &[1, 5, 5, 8]).unwrap();
    assert_eq!(
        (
            pg.window.input,
            pg.window.output,
            pg.window.kernel,
            pg.window.strides,
            pg.pads
        ),
        ([5, 9, 8], [5, 8], [2, 3], [2, 1], [0, 1, 1, 0])
    );
    assert!(pg.count_include_pad);
    assert_eq!(
        pg.values(),
        [5, 9, 8, 5, 8, 2, 3, 2, 1, 0, 1, 1, 0, 1, 1, 1]
    );
    assert!(PoolGeometry::new(&p, &[1, 5, 9], &[1, 5, 5]).is_err());
    assert!(PoolGeometry::new(&p, &[3, 5, 9, 8], &[3, 5, 5, 8]).is_err());
    let p1 = Pool {
        kernel: vec![3],
        strides: vec![2],
        pads: vec![1, 0],
        dilations: vec![1],
        ..p.clone()
    };
    let pg1 = PoolGeometry::new(&p1, &[1, 5, 9], &[1, 5, 4]).unwrap();
    assert_eq!(
        pg1.values(),
        [5, 1, 9, 1, 4, 1, 3, 1, 2, 0, 1, 0, 0, 1, 1, 1]
    );
}

#[test]
fn code_layout_taps_and_padding() {
    // 8 channels per group: one tap per kernel position over a padded input (no im2col).
    let mut g = Graph::new("taps");
    let x = g.add_input("x", TensorType::known(DType::F32, &[1, 8, 5, 5]));
    let mut ins = vec![x];
    ins.extend(layer_consts(&mut g, "conv", 20, 72));
    let c = op(&mut g, "conv", Op::Bitplane(conv(8, 20, 1)), &ins);
    g.set_outputs(vec![c]);
    let l = lower(&g, &options(8, WeightLayout::Codes)).unwrap();
    let Weights::Codes(b) = &l.layers[0].weights else {
        panic!("code layout")
    };
    assert_eq!((b.row_blocks, b.taps, b.channel_pairs), (2, 9, 4));
    assert_eq!(b.codes.len(), 2 * 9 * 4 * 32);
    assert_eq!(b.tap_offsets, [0, 1, 2, 7, 8, 9, 14, 15, 16]);
    assert_eq!(
        b.padded,
        Some(PaddedInput {
            height: 7,
            width: 7,
            im2col: false
        })
    );
    // Row 17 lives in block 1 at row 1; its code at (channel 3, tap 4) is at
    // [block 1][tap 4][pair 1][row 1][odd].
    let TensorData::U8(bytes) = g.constant_value(ins[1]).unwrap().data() else {
        panic!("u8 planes")
    };
    let q = strata_ir::quant::prefix_codes(bytes, 20, 72, 8).unwrap();
    let at = (((9 + 4) * 4 + 1) * 16 + 1) * 2 + 1;
    assert_eq!(b.codes[at] as i32, q[17 * 72 + 3 * 9 + 4]);
    assert_eq!(
        l.scratch,
        Scratch {
            quantized: 200,
            padded: 7 * 7 * 8,
            pixel_sums: 49,
            position_sums: 25,
            rows: 20,
            // One 16-row block of codes at the run-time count: 9 taps × 4 pairs × 32.
            unpacked: 9 * 4 * 32,
            ..Scratch::default()
        }
    );
}

#[test]
fn packed_chunks_round_trip_every_code() {
    // Every code of each width, in every slot of a chunk (the edge codes -2^(b-1) and
    // 2^(b-1) - 1 included): pack, unpack, compare.
    for k in 1u8..=8 {
        let fast = [2, 2, 2, 4, 4, 8, 8, 8, 8][usize::from(k)];
        let stream = [2, 2, 2, 4, 4, 5, 6, 8, 8][usize::from(k)];
        for linear in [false, true] {
            assert_eq!(crate::layer::code_bits(k, CodeBits::Fast, linear), fast);
            assert_eq!(
                crate::layer::code_bits(k, CodeBits::Exact, linear),
                k.max(2)
            );
            // Streaming: exact widths only where the split kernel streams faster, and only
            // in fully connected layers.
            let want = if linear { stream } else { fast };
            assert_eq!(crate::layer::code_bits(k, CodeBits::Stream, linear), want);
        }
        let bits = crate::layer::code_bits(k, CodeBits::Exact, false);
        assert_eq!(bits, k.max(2));
        let (lo, hi) = (-(1i16 << (bits - 1)), (1i16 << (bits - 1)) - 1);
        for shift in 0..32 {
            let chunk: Vec<i8> = (0..32)
                .map(|n| (lo + ((n + shift) % (hi - lo + 1))) as i8)
                .collect();
            let packed = crate::layer::pack_chunk(&chunk, bits);
            assert_eq!(packed.len(), 4 * usize::from(bits));
            assert_eq!(
                crate::layer::unpack_chunk(&packed, bits).to_vec(),
                chunk,
                "{bits} bits"
            );
        }
    }
    // Offset binary below 8 bits: the lowest code is an all-zero field, the highest all ones
    // (the byte kernels multiply the fields and correct by 2^(bits-1) per activation).
    // Every part is all zeros or all ones.
    for bits in 2u8..=7 {
        let lo = vec![-(1i8 << (bits - 1)); 32];
        let hi = vec![((1i16 << (bits - 1)) - 1) as i8; 32];
        assert!(crate::layer::pack_chunk(&lo, bits).iter().all(|&b| b == 0));
        assert!(crate::layer::pack_chunk(&hi, bits).iter().all(|&b| b == -1));
    }
    // Split widths: the parts of a 6-bit code f = q + 32 are f >> 2 (4 bits) and f & 3.
    let mut chunk = [0i8; 32];
    chunk[17] = 13; // f = 45 = 0b1011_01
    let packed = crate::layer::pack_chunk(&chunk, 6);
    assert_eq!(packed.len(), 24);
    // Nibbles: byte 1 holds codes 1 and 17 (low, high nibble); f >> 2 = 11 for code 17 and
    // 8 for code 1 (f = 32).
    assert_eq!(packed[1] as u8, 11 << 4 | 8);
    // Crumbs: byte 1 holds codes 1, 9, 17, 25; f & 3 = 1 for code 17, 0 for the others.
    assert_eq!(packed[16 + 1] as u8, 1 << 4);
    // A block of several chunks stores each part as one array: the 4-bit parts of all five
    // chunks, then their 2-bit parts.
    let block: Vec<i8> = (0..5 * 32).map(|n| ((n * 7) % 64) as i8 - 32).collect();
    for bits in 2u8..=8 {
        let codes: Vec<i8> = block
            .iter()
            .map(|&q| if bits == 8 { q } else { q >> (6 - bits.min(6)) })
            .collect();
        let packed = crate::layer::pack_block(&codes, bits);
        assert_eq!(packed.len(), 5 * 4 * usize::from(bits));
        for c in 0..5 {
            assert_eq!(
                crate::layer::unpack_block_chunk(&packed, bits, 5, c),
                codes[32 * c..32 * c + 32],
                "{bits} bits, chunk {c}"
            );
        }
    }
    let b6 = crate::layer::pack_block(&block, 6);
    for c in 0..5 {
        let chunk = crate::layer::pack_chunk(&block[32 * c..32 * c + 32], 6);
        assert_eq!(b6[16 * c..16 * c + 16], chunk[..16], "nibbles of chunk {c}");
        assert_eq!(
            b6[80 + 8 * c..88 + 8 * c],
            chunk[16..],
            "crumbs of chunk {c}"
        );
    }
    for (bits, parts) in [
        (3u8, &[2u8, 1][..]),
        (5, &[4, 1]),
        (6, &[4, 2]),
        (7, &[4, 2, 1]),
    ] {
        assert_eq!(crate::layer::code_parts(bits), parts);
        assert_eq!(parts.iter().sum::<u8>(), bits);
    }
}

#[test]
fn code_layout_shrinks_with_planes() {
    // The same layer at K = 2, 4 and 8: 2, 4 and 8 bits a code, and the unpacked chunks are
    // the K-plane codes (row 17, channel 3, tap 4 as in `code_layout_taps_and_padding`).
    let mut g = Graph::new("packed");
    let x = g.add_input("x", TensorType::known(DType::F32, &[1, 8, 5, 5]));
    let mut ins = vec![x];
    ins.extend(layer_consts(&mut g, "conv", 20, 72));
    let c = op(&mut g, "conv", Op::Bitplane(conv(8, 20, 1)), &ins);
    g.set_outputs(vec![c]);
    let TensorData::U8(bytes) = g.constant_value(ins[1]).unwrap().data() else {
        panic!("u8 planes")
    };
    let mut sizes = Vec::new();
    for (k, bits) in [(2u8, 2u8), (4, 4), (8, 8)] {
        let l = lower(&g, &options(k, WeightLayout::Codes)).unwrap();
        let Weights::Codes(b) = &l.layers[0].weights else {
            panic!("code layout")
        };
        assert_eq!(b.bits, bits);
        assert_eq!(b.codes.len(), 2 * 9 * 4 * 4 * usize::from(bits));
        let q = strata_ir::quant::prefix_codes(bytes, 20, 72, k).unwrap();
        let chunk = (9 + 4) * 4 + 1;
        let per = 4 * usize::from(bits);
        let codes = crate::layer::unpack_chunk(&b.codes[chunk * per..(chunk + 1) * per], bits);
        assert_eq!(codes[2 + 1] as i32, q[17 * 72 + 3 * 9 + 4], "K = {k}");
        // Row sums per count: row 17 at the layer's own count is the sum of its codes.
        let n = l.layers[0].counts.len();
        assert_eq!(b.row_sums.len(), n * 20);
        let own: i32 = q[17 * 72..18 * 72].iter().sum();
        assert_eq!(b.row_sums[(n - 1) * 20 + 17], own, "K = {k}");
        sizes.push(l.layers[0].weight_bytes());
    }
    assert!(
        sizes[0] * 3 < sizes[2] && sizes[1] * 3 / 2 < sizes[2],
        "{sizes:?}"
    );
}

#[test]
fn byte_counts_macs_and_scratch() {
    let g = net();
    // Packed planes at K = 4 keep planes 0..3 and the tables of counts 2 and 4:
    // conv 4·6·8 + 4·(3·6+4)·2 + 2 = 370, fc 4·3·8 + 4·(3·3+4)·2 + 2 = 202, constant 12
    // (per count: alpha, beta, bias rows and the activation scale, zero point and range).
    let l = lower(&g, &options(4, WeightLayout::Planes)).unwrap();
    let per_layer: Vec<(u8, &[u8], u64)> = l
        .layers
        .iter()
        .map(|l| (l.k, l.counts.as_slice(), l.weight_bytes()))
        .collect();
    assert_eq!(per_layer, [(4, &[2u8, 4][..], 370), (4, &[2, 4][..], 202)]);
    assert_eq!(l.weight_bytes(), 584);
    assert_eq!(l.macs, 6 * 9 * 36 + 3 * 54);
    assert_eq!(
        l.scratch,
        Scratch {
            input: 144,
            column: 36,
            ..Scratch::default()
        }
    );
    assert_eq!(l.scratch_bytes(), 2 * (144 + 36));
    let Weights::Planes {
        bytes,
        words_per_row,
    } = &l.layers[1].weights
    else {
        panic!("planes")
    };
    assert_eq!((bytes.len(), *words_per_row), (96, 1));
    // At K = 8 every plane and every table is kept.
    let l8 = lower(&g, &options(8, WeightLayout::Planes)).unwrap();
    assert_eq!(l8.layers[0].weight_bytes(), 8 * 48 + 4 * 22 * 3 + 3);
    // Codes (im2col for 4 channels): at K = 4 four bits per weight in chunks of 16×2 (16
    // bytes), plus one offset and each row's code sum per count (2 counts).
    let l = lower(&g, &options(4, WeightLayout::Codes)).unwrap();
    assert_eq!(l.layers[0].weight_bytes(), 18 * 16 + 4 + 6 * 2 * 4 + 178);
    assert_eq!(l.layers[1].weight_bytes(), 27 * 16 + 4 + 3 * 2 * 4 + 106);
    assert_eq!(l.weight_bytes(), 518 + 566 + 12);
    // Plus the conv's 4-bit codes of one 16-row block unpacked to int8 (18 chunks of 32).
    assert_eq!(
        l.scratch_bytes(),
        2 * (144 + 9 * 36) + 4 * (9 + 2 * 6) + 18 * 32
    );
    // The side tables are the rows of the kept counts; the activation range is 8-bit.
    assert_eq!(l.layers[1].act, [0.02, 0.0, 0.03, -3.0]);
    assert_eq!(l.layers[1].act_limits, [(-128.0, 127.0); 2]);
    let bias: Vec<f32> = (0..6).map(|i| 0.01 * i as f32).collect();
    assert_eq!(l.layers[1].bias, bias);
}

/// A `W k A k` layer lowered at K = 8 keeps each count's own code range, so running it at 2
/// or 4 planes clamps to 2- or 4-bit codes.
#[test]
fn wkak_activation_ranges_per_count() {
    let mut g = net();
    let ids: Vec<_> = g.node_ids().collect();
    for id in ids {
        if let strata_ir::NodeKind::Op(Op::Bitplane(b)) = &mut g.node_mut(id).unwrap().kind {
            b.spec.act_bits_k = vec![2, 4, 8];
        }
    }
    let l = lower(&g, &options(8, WeightLayout::Planes)).unwrap();
    for layer in &l.layers {
        assert_eq!(layer.counts, [2, 4, 8]);
        assert_eq!(
            layer.act_limits,
            [(-2.0, 1.0), (-8.0, 7.0), (-128.0, 127.0)]
        );
    }
    let l = lower(&g, &options(4, WeightLayout::Codes)).unwrap();
    assert_eq!(l.layers[1].act_limits, [(-2.0, 1.0), (-8.0, 7.0)]);
}

#[test]
fn per_layer_plane_counts() {
    let g = net();
    assert_eq!(layer_names(&g).unwrap(), ["conv", "fc"]);
    let mixed = |ks: Vec<u8>| {
        lower(
            &g,
            &LowerOptions {
                planes: 8,
                layer_planes: Some(ks),
                layout: WeightLayout::Planes,
                code_bits: CodeBits::Fast,
            },
        )
    };
    let l = mixed(vec![2, 8]).unwrap();
    assert_eq!((l.layers[0].k, l.layers[1].k), (2, 8));
    assert_eq!(l.layers[0].counts, [2]);
    assert_eq!(l.layers[0].weight_bytes(), 2 * 48 + 4 * 22 + 1);
    assert!(matches!(
        mixed(vec![2]),
        Err(LowerError::LayerPlanes {
            expected: 2,
            got: 1
        })
    ));
    assert!(matches!(
        mixed(vec![2, 4, 8]),
        Err(LowerError::LayerPlanes {
            expected: 2,
            got: 3
        })
    ));
    assert!(matches!(
        mixed(vec![0, 8]),
        Err(LowerError::Planes { planes: 0, .. })
    ));
    // A count without a side table names the layer.
    match mixed(vec![8, 3]) {
        Err(LowerError::Planes {
            node,
            planes: 3,
            reason,
        }) => {
            assert_eq!(node, "fc");
            assert!(reason.contains("no side table"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn errors_name_the_node() {
    let g = net();
    assert!(matches!(
        lower(&g, &options(9, WeightLayout::Planes)),
        Err(LowerError::BadPlanes { planes: 9 })
    ));
    assert!(matches!(
        lower(&g, &options(1, WeightLayout::Planes)),
        Err(LowerError::Planes { planes: 1, .. })
    ));
    // An activation operand that repeats over two separate runs of axes (a constant one is
    // stored expanded instead: `ops_tests`).
    let mut s = Graph::new("s");
    let x = s.add_input("x", TensorType::known(DType::F32, &[1, 2, 2, 2]));
    let c = s.add_input("m", TensorType::known(DType::F32, &[1, 2, 1, 2]));
    let y = op(&mut s, "bcast", Op::Binary(BinaryOp::Add), &[x, c]);
    s.set_outputs(vec![y]);
    assert!(matches!(
        lower(&s, &options(4, WeightLayout::Codes)),
        Err(LowerError::Unsupported { node, op: "add", .. }) if node == "bcast"
    ));
}

/// `conv [1,6,3,3]` → squeeze-excitation gate (ReduceMean over H, W, Sigmoid) → `gate ·
/// conv` (gate first) → `k − ·` → Transpose to NHWC → Softmax over the channels.
#[test]
fn float_ops_become_steps_with_their_broadcast() {
    use strata_ir::ops::{ReduceMean, Softmax};
    let mut g = Graph::new("se");
    let x = g.add_input("x", TensorType::known(DType::F32, &[1, 4, 6, 6]));
    let mut ins = vec![x];
    ins.extend(layer_consts(&mut g, "conv", 6, 36));
    let c = op(&mut g, "conv", Op::Bitplane(conv(4, 6, 2)), &ins);
    let rm = Op::ReduceMean(ReduceMean {
        axes: vec![3, 2],
        keep_dims: true,
    });
    let m = op(&mut g, "mean", rm, &[c]);
    let s = op(&mut g, "gate", Op::Unary(UnaryOp::Sigmoid), &[m]);
    let p = op(&mut g, "se", Op::Binary(BinaryOp::Mul), &[s, c]);
    let k = g.add_constant("k", Arc::new(Tensor::scalar_f32(2.0)));
    let d = op(&mut g, "from_k", Op::Binary(BinaryOp::Sub), &[k, p]);
    let t = op(
        &mut g,
        "nhwc",
        Op::Transpose {
            perm: vec![0, 2, 3, 1],
        },
        &[d],
    );
    let sm = Op::Softmax(Softmax {
        axis: 3,
        coerce_2d: false,
    });
    let y = op(&mut g, "sm", sm, &[t]);
    g.set_outputs(vec![y]);
    let l = lower(&g, &options(4, WeightLayout::Codes)).unwrap();
    let kernels: Vec<&Kernel> = l.steps.iter().map(|s| &s.kernel).collect();
    assert_eq!(kernels.len(), 7, "{kernels:?}");
    assert_eq!(
        *kernels[1],
        Kernel::Reduce {
            x: Loc::Buf(0),
            outer: 6,
            len: 9,
            inner: 1,
            f: ReduceFn::Mean,
        }
    );
    assert!(matches!(
        kernels[2],
        Kernel::Unary {
            n: 6,
            f: UnaryFn::Sigmoid,
            ..
        }
    ));
    // The gate is the broadcast operand: the full-size conv output becomes `a`.
    assert_eq!(
        *kernels[3],
        Kernel::Binary {
            a: Loc::Buf(0),
            b: Operand::Act(Loc::Buf(2)),
            n: 54,
            bcast: Broadcast { len: 6, inner: 9 },
            f: BinaryFn::Mul,
        }
    );
    assert!(matches!(
        kernels[4],
        Kernel::Binary {
            b: Operand::Const(0),
            bcast: Broadcast { len: 1, inner: 1 },
            f: BinaryFn::SubFrom,
            ..
        }
    ));
    assert!(matches!(
        kernels[5],
        Kernel::Gather { base: 0, dims, strides, .. } if dims == &[1, 3, 3, 6] && strides == &[54, 3, 1, 9]
    ));
    assert!(matches!(
        kernels[6],
        Kernel::Softmax {
            outer: 9,
            len: 6,
            inner: 1,
            ..
        }
    ));
    // A Transpose that only moves unit axes is a view.
    let mut g = Graph::new("view");
    let x = g.add_input("x", TensorType::known(DType::F32, &[1, 4, 1, 6]));
    let mut ins = vec![x];
    ins.extend(layer_consts(&mut g, "fc", 3, 24));
    let t = op(
        &mut g,
        "t",
        Op::Transpose {
            perm: vec![2, 0, 1, 3],
        },
        &[x],
    );
    let f = op(&mut g, "flat", Op::Flatten { axis: 1 }, &[t]);
    ins[0] = f;
    let fc = Bitplane {
        kernel: BitplaneKernel::Linear,
        spec: spec(3, 24),
    };
    let y = op(&mut g, "fc", Op::Bitplane(fc), &ins);
    g.set_outputs(vec![y]);
    let l = lower(&g, &options(4, WeightLayout::Codes)).unwrap();
    assert_eq!(l.steps.len(), 1);
    assert_eq!(l.aliases[0].kind, AliasKind::View);
}
