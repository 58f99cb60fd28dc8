//! Cast between every element type. Conversions are Rust `as` casts: float → int truncates
//! toward zero and saturates (ONNX leaves out-of-range values undefined), int → int wraps,
//! anything → bool is `!= 0`, bool → number is 0/1.

use strata_ir::{DType, Tensor, TensorData};

/// Converts `t` to element type `to`. Never fails: every pair of types is defined.
pub fn cast(t: &Tensor, to: DType) -> Tensor {
    macro_rules! convert {
        ($src:expr, $x:ident => $num:expr, $boolexpr:expr) => {{
            let src = $src;
            match to {
                DType::F32 => TensorData::F32(src.iter().map(|&$x| ($num) as f32).collect()),
                DType::F64 => TensorData::F64(src.iter().map(|&$x| ($num) as f64).collect()),
                DType::I8 => TensorData::I8(src.iter().map(|&$x| ($num) as i8).collect()),
                DType::U8 => TensorData::U8(src.iter().map(|&$x| ($num) as u8).collect()),
                DType::I32 => TensorData::I32(src.iter().map(|&$x| ($num) as i32).collect()),
                DType::I64 => TensorData::I64(src.iter().map(|&$x| ($num) as i64).collect()),
                DType::Bool => TensorData::Bool(src.iter().map(|&$x| $boolexpr).collect()),
            }
        }};
    }
    let data = match t.data() {
        TensorData::F32(v) => convert!(v, x => x, x != 0.0),
        TensorData::F64(v) => convert!(v, x => x, x != 0.0),
        TensorData::I8(v) => convert!(v, x => x, x != 0),
        TensorData::U8(v) => convert!(v, x => x, x != 0),
        TensorData::I32(v) => convert!(v, x => x, x != 0),
        TensorData::I64(v) => convert!(v, x => x, x != 0),
        TensorData::Bool(v) => convert!(v, x => x as u8, x),
    };
    // Same element count, so the shape still fits.
    match Tensor::new(t.shape().to_vec(), data) {
        Ok(out) => out,
        Err(_) => t.clone(),
    }
}
