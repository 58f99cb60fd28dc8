//! Crafted Strata IR text (`.sir`), read by `strata inspect`: declared types too large to
//! hold, counts that overflow, attributes at the ends of their ranges, text that is not text.

use std::path::Path;

use crate::harness::{scratch, Case, Format};

/// A graph with input `%x: X` whose body is `body` and which returns `%y`.
fn graph(x: &str, body: &str) -> String {
    format!("graph @crafted(%x: {x}) {{\n{body}\n  return %y\n}}\n")
}

/// A graph of one op `%y = OP(%x) {ATTRS} : TY` on `%x: X`.
fn one_op(x: &str, op: &str, attrs: &str, ty: &str) -> String {
    graph(x, &format!("  %y = {op}(%x) {{{attrs}}} : {ty}"))
}

/// 17 convolutions of 2^60 MACs each (a 1×1 input padded to a 2^15 × 2^15 window): every
/// value is within the limits, the total MAC count is not within 64 bits.
fn mac_overflow() -> String {
    let conv = |i: usize| {
        format!(
            "  %y{i} = conv(%x, %w) {{kernel=[32768, 32768], strides=[1, 1], \
             pads=[32767, 32767, 32767, 32767], dilations=[1, 1], group=1, has_bias=false}} \
             : f32[1,1,32768,32768]"
        )
    };
    let body: Vec<String> = (0..17).map(conv).collect();
    format!(
        "graph @crafted(%x: f32[1,1,1,1], %w: f32[1,1,32768,32768]) {{\n{}\n  return %y0\n}}\n",
        body.join("\n")
    )
}

pub fn cases() -> Vec<Case> {
    let dir = scratch("ir_text");
    let inspect =
        |name: &'static str, path: &Path| Case::new(Format::IrText, name, &[&"inspect", &path]);
    let file = |name: &'static str, text: &[u8]| {
        let p = dir.join(format!("{name}.sir"));
        std::fs::write(&p, text).unwrap();
        inspect(name, &p)
    };
    let text = |name: &'static str, text: String| file(name, text.as_bytes());
    let x4 = "f32[N,4]";

    vec![
        text("input_dims_overflow", one_op("f32[N,18446744073709551615,2]", "relu", "", "f32[N,18446744073709551615,2]")
            .replace(" {}", ""))
            .says(&["input `x`", "more elements than fit in 64 bits"]),
        text("input_16gib_per_sample", graph("f32[N,4294967296]", "  %y = relu(%x) : f32[N,4294967296]"))
            .says(&["input `x`", "17179869184 bytes, more than the limit"]),
        text("constant_dims_overflow", graph(x4, "  %c = const f32[4294967296,4294967296,4294967296] hex\"00\"\n  %y = add(%x, %c) : f32[N,4]"))
            .says(&["constant %c", "is too large"]),
        text("constant_2pow40_one_literal", graph(x4, "  %c = const u8[1099511627776] [1]\n  %y = relu(%x) : f32[N,4]"))
            .says(&["constant %c", "1 elements given"]),
        // Nothing to read (an empty reduction axis), 16 GiB to write.
        text("gemm_empty_reduction_2pow32_outputs", graph(
            "f32[1,0]",
            "  %b = const f32[0,4294967296] []\n  %y = gemm(%x, %b) {alpha=1.0, beta=1.0, trans_a=false, trans_b=false, has_c=false} : f32[1,4294967296]",
        ))
        .says(&["node `y` (gemm)", "output 0", "17179869184 bytes, more than the limit"]),
        text("total_macs_overflow", mac_overflow()).says(&["total_macs_overflow.sir: the total MAC count overflows 64 bits"]),
        text("pad_by_2pow62", one_op(x4, "pad", "pads=[0, 0, 0, 4611686018427387904], value=0.0", "f32[N,4611686018427387908]"))
            .says(&["node `y` (pad)"]),
        text("pad_by_i64_max", one_op(x4, "pad", "pads=[0, 0, 0, 9223372036854775807], value=0.0", "f32[N,4]"))
            .says(&["node `y` (pad)"]),
        text("reshape_to_2pow64", one_op(x4, "reshape", "shape=[4294967296, 4294967296], allow_zero=false", "f32[4294967296,4294967296]"))
            .says(&["node `y` (reshape)"]),
        text("split_sizes_overflow", graph(x4, "  %y, %z = split(%x) {axis=1, sizes=[9223372036854775807, 9223372036854775807]} : f32[N,1], f32[N,3]"))
            .says(&["node `y` (split)"]),
        text("slice_extreme_bounds", one_op(x4, "slice", "starts=[-9223372036854775808], ends=[9223372036854775807], axes=[1], steps=[-9223372036854775808]", x4))
            .says(&["node `y` (slice)"]),
        text("transpose_perm_past_rank", one_op(x4, "transpose", "perm=[0, 18446744073709551615]", x4))
            .says(&["node `y` (transpose)"]),
        text("concat_axis_past_rank", graph(x4, "  %y = concat(%x, %x) {axis=18446744073709551615} : f32[N,8]"))
            .says(&["node `y` (concat)"]),
        text("flatten_axis_past_rank", one_op(x4, "flatten", "axis=18446744073709551615", "f32[N,4]"))
            .says(&["node `y` (flatten)"]),
        text("conv_dilation_i64_max", graph(
            "f32[N,1,4,4]",
            "  %w = const f32[1,1,2,2] [1.0, 1.0, 1.0, 1.0]\n  %y = conv(%x, %w) {kernel=[2, 2], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[9223372036854775807, 1], group=1, has_bias=false} : f32[N,1,3,3]",
        ))
        .says(&["node `y` (conv)", "smaller than the dilated kernel"]),
        text("max_pool_stride_zero", one_op("f32[N,1,4,4]", "max_pool", "kernel=[2, 2], strides=[0, 0], pads=[0, 0, 0, 0], dilations=[1, 1], ceil_mode=false, count_include_pad=false", "f32[N,1,2,2]"))
            .says(&["node `y` (max_pool)"]),
        text("attribute_nesting_too_deep", one_op(x4, "relu", "k=[[[[[[1]]]]]]", x4))
            .says(&["nesting deeper than 4 levels"]),
        text("dimension_past_64_bits", graph("f32[N,99999999999999999999]", "  %y = relu(%x) : f32[N,4]"))
            .says(&["invalid number `99999999999999999999`"]),
        text("unterminated_string", graph(x4, "  %c = const u8[1] hex\"00\n  %y = relu(%x) : f32[N,4]"))
            .says(&["unterminated string"]),
        text("undefined_value", graph(x4, "  %y = relu(%nope) : f32[N,4]")).says(&["value %nope is not defined"]),
        text("unknown_op_1mb", graph(x4, &format!("  %y = {}(%x) : f32[N,4]", "a".repeat(1 << 20))))
            .says(&["unknown op", "more bytes"]),
        file("invalid_utf8", b"graph @g(%x: f32[N,4]) { \xff\xfe }").says(&["invalid utf-8"]),
        inspect("a_directory", &{
            let d = dir.join("dir.sir");
            std::fs::create_dir_all(&d).unwrap();
            d
        })
        .says(&["is a directory, not a regular file"]),
    ]
}
