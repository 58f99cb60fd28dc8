//! Typed pieces of MLIR text: tensor types, bit-exact float literals and constants. Floats
//! are printed as their IEEE bits (`0x3F800000 : f32`) and constant arrays as little-endian
//! hex blobs (`dense<"0x…">`), so nothing is rounded on the way through text and large
//! weight tensors parse quickly.

use std::fmt::Write as _;

/// An MLIR element type the kernels use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Elem {
    F32,
    I32,
    I16,
    I8,
    F64,
}

impl Elem {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Elem::F32 => "f32",
            Elem::I32 => "i32",
            Elem::I16 => "i16",
            Elem::I8 => "i8",
            Elem::F64 => "f64",
        }
    }
}

/// `tensor<d0xd1x…xT>` (`tensor<T>` for rank 0).
pub(crate) fn tensor(dims: &[usize], e: Elem) -> String {
    let mut s = String::from("tensor<");
    for d in dims {
        let _ = write!(s, "{d}x");
    }
    s.push_str(e.name());
    s.push('>');
    s
}

/// `memref<NxT>`: the flat buffers of the C API.
pub(crate) fn memref(n: usize, e: Elem) -> String {
    format!("memref<{n}x{}>", e.name())
}

/// An f32 literal by its bits: exact for every value, NaN and infinities included.
pub(crate) fn f32_lit(v: f32) -> String {
    format!("0x{:08X}", v.to_bits())
}

/// `dense<"0x…"> : tensor<dims x f32>` from `values` (row-major).
pub(crate) fn dense_f32(values: &[f32], dims: &[usize]) -> String {
    let mut hex = String::with_capacity(2 + 8 * values.len());
    for v in values {
        for b in v.to_le_bytes() {
            let _ = write!(hex, "{b:02X}");
        }
    }
    format!("dense<\"0x{hex}\"> : {}", tensor(dims, Elem::F32))
}

/// `dense<"0x…"> : tensor<dims x i8>` from `values` (row-major).
pub(crate) fn dense_i8(values: &[i8], dims: &[usize]) -> String {
    let mut hex = String::with_capacity(2 + 2 * values.len());
    for v in values {
        let _ = write!(hex, "{:02X}", *v as u8);
    }
    format!("dense<\"0x{hex}\"> : {}", tensor(dims, Elem::I8))
}

/// `dense<"0x…"> : tensor<dims x i32>` from `values` (row-major).
pub(crate) fn dense_i32(values: &[i32], dims: &[usize]) -> String {
    let mut hex = String::with_capacity(2 + 8 * values.len());
    for v in values {
        for b in v.to_le_bytes() {
            let _ = write!(hex, "{b:02X}");
        }
    }
    format!("dense<\"0x{hex}\"> : {}", tensor(dims, Elem::I32))
}

/// `dense<"0x…"> : tensor<dims x f64>` from `values` (row-major).
pub(crate) fn dense_f64(values: &[f64], dims: &[usize]) -> String {
    let mut hex = String::with_capacity(2 + 16 * values.len());
    for v in values {
        for b in v.to_le_bytes() {
            let _ = write!(hex, "{b:02X}");
        }
    }
    format!("dense<\"0x{hex}\"> : {}", tensor(dims, Elem::F64))
}

/// The extent `[hp, wp]` of a window's input padded at the start by `[ph, pw]`: large
/// enough for every tap the output positions read (end padding included).
pub(crate) fn padded_extent(w: &strata_lower::Window2d, [ph, pw]: [usize; 2]) -> [usize; 2] {
    let [_, h, wd] = w.input;
    let [oh, ow] = w.output;
    let [kh, kw] = w.kernel;
    let [sh, sw] = w.strides;
    let [dh, dw] = w.dilations;
    [
        (h + ph).max((oh.max(1) - 1) * sh + (kh - 1) * dh + 1),
        (wd + pw).max((ow.max(1) - 1) * sw + (kw - 1) * dw + 1),
    ]
}

/// `affine_map<(d0, …) -> (results)>` over `dims` loop dimensions.
pub(crate) fn map(dims: usize, results: &[String]) -> String {
    let d: Vec<String> = (0..dims).map(|i| format!("d{i}")).collect();
    format!("affine_map<({}) -> ({})>", d.join(", "), results.join(", "))
}

/// The identity map over `dims` dimensions.
pub(crate) fn identity(dims: usize) -> String {
    let d: Vec<String> = (0..dims).map(|i| format!("d{i}")).collect();
    map(dims, &d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_and_constants_print_their_bits() {
        assert_eq!(f32_lit(1.0), "0x3F800000");
        assert_eq!(f32_lit(-0.0), "0x80000000");
        assert_eq!(f32_lit(f32::NEG_INFINITY), "0xFF800000");
        assert_eq!(
            dense_f32(&[1.0, -2.0], &[2]),
            "dense<\"0x0000803F000000C0\"> : tensor<2xf32>"
        );
        assert_eq!(
            dense_i8(&[-1, 2, -128], &[1, 3]),
            "dense<\"0xFF0280\"> : tensor<1x3xi8>"
        );
        assert_eq!(tensor(&[], Elem::I32), "tensor<i32>");
        assert_eq!(map(2, &["d1".into()]), "affine_map<(d0, d1) -> (d1)>");
    }
}
