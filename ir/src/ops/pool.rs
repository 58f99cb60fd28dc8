//! Pooling ops: windowed max/average and global pooling.

use super::check::{self, Inferred};
use super::conv::{check_window_attrs, effective_kernel, spatial_dims};
use crate::text::fields::attr_fields;
use crate::text::{Attrs, ParseError};
use crate::Op;
use crate::{DType, Dim, InferError, Shape, TensorType};

/// Windowed pooling parameters shared by MaxPool and AveragePool. Input `x [N, C, spatial…]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pool {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    /// `[begin_0, …, end_0, …]`, resolved from `auto_pad` by the frontend.
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub ceil_mode: bool,
    /// AveragePool only: whether padded positions count in the divisor.
    pub count_include_pad: bool,
}

/// Which reduction a global pool applies over all spatial positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlobalPoolKind {
    Average,
    Max,
}

impl Pool {
    /// ONNX pooling output size. Floor mode: `floor((in + pb + pe - ek) / s) + 1`. Ceil mode
    /// rounds up, then drops the last window if it would start past the input and the left
    /// padding (`(out - 1)·s >= in + pb`), so every window sees at least one real element.
    ///
    /// `is_max` admits int8/uint8 inputs, as ONNX MaxPool does.
    pub fn infer(&self, inputs: &[&TensorType], is_max: bool) -> Inferred {
        let x = check::sole(inputs)?;
        if !(is_max && matches!(x.dtype, DType::I8 | DType::U8)) {
            check::float(0, x)?;
        }
        check::rank_at_least(0, x, 3)?;
        let spatial = x.rank() - 2;
        check_window_attrs(
            spatial,
            &self.kernel,
            &self.strides,
            &self.pads,
            &self.dilations,
        )?;
        let ins = spatial_dims(x)?;
        let mut out = vec![x.shape.0[0], x.shape.0[1]];
        for (i, &in_i) in ins.iter().enumerate() {
            let ek = effective_kernel(self.kernel[i], self.dilations[i])? as u128;
            let s = self.strides[i] as u128;
            let pb = self.pads[i] as u128;
            let padded = in_i as u128 + pb + self.pads[spatial + i] as u128;
            if padded < ek {
                return Err(InferError::ShapeMismatch {
                    input: 0,
                    shape: x.shape.clone(),
                    reason: format!(
                        "spatial axis {i}: padded size {padded} is smaller than the window {ek}"
                    ),
                });
            }
            let span = padded - ek;
            let mut n = if self.ceil_mode {
                span.div_ceil(s) + 1
            } else {
                span / s + 1
            };
            if self.ceil_mode && (n - 1) * s >= in_i as u128 + pb {
                n -= 1;
            }
            out.push(Dim::Known(n as usize));
        }
        Ok(vec![TensorType::new(x.dtype, Shape(out))])
    }
}

impl GlobalPoolKind {
    /// `[N, C, spatial…]` → `[N, C, 1, …]`.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let x = check::sole(inputs)?;
        check::float(0, x)?;
        check::rank_at_least(0, x, 3)?;
        for (i, &d) in x.shape.0[2..].iter().enumerate() {
            check::known(d, &format!("spatial dimension {i} of input 0"))?;
        }
        let mut out = vec![x.shape.0[0], x.shape.0[1]];
        out.extend(std::iter::repeat_n(Dim::Known(1), x.rank() - 2));
        Ok(vec![TensorType::new(x.dtype, Shape(out))])
    }
}

// Text form of the windowed pools: their attributes are their fields, in field order.
attr_fields!(Pool {
    kernel,
    strides,
    pads,
    dilations,
    ceil_mode,
    count_include_pad
});

/// Rebuilds a pooling op from its mnemonic and attributes; `None` for other mnemonics.
pub(crate) fn from_text(mnemonic: &str, a: &mut Attrs) -> Option<Result<Op, ParseError>> {
    Some(match mnemonic {
        "max_pool" => Pool::from_attrs(a).map(Op::MaxPool),
        "average_pool" => Pool::from_attrs(a).map(Op::AveragePool),
        "global_average_pool" => Ok(Op::GlobalPool(GlobalPoolKind::Average)),
        "global_max_pool" => Ok(Op::GlobalPool(GlobalPoolKind::Max)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::run;
    use crate::Op;

    fn pool(kernel: &[usize], strides: &[usize], pads: &[usize], ceil: bool) -> Pool {
        Pool {
            kernel: kernel.to_vec(),
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: vec![1; kernel.len()],
            ceil_mode: ceil,
            count_include_pad: false,
        }
    }

    #[test]
    fn floor_and_ceil_modes() {
        let p = pool(&[3, 3], &[2, 2], &[0, 0, 0, 0], false);
        assert_eq!(
            run(&Op::MaxPool(p), &["f32[N,3,32,32]"]).unwrap(),
            ["f32[N,3,15,15]"]
        );
        let p = pool(&[3, 3], &[2, 2], &[0, 0, 0, 0], true);
        assert_eq!(
            run(&Op::MaxPool(p), &["f32[N,3,32,32]"]).unwrap(),
            ["f32[N,3,16,16]"]
        );
        // ONNX test_maxpool_2d_ceil: 4x4, kernel 3, stride 2 → 2x2
        let p = pool(&[3, 3], &[2, 2], &[0, 0, 0, 0], true);
        assert_eq!(
            run(&Op::AveragePool(p), &["f32[1,1,4,4]"]).unwrap(),
            ["f32[1,1,2,2]"]
        );
        // ceil would start a window inside the right padding only: dropped.
        // in 5, pad 1/1, k 2, s 2: span = 5, ceil(5/2)+1 = 4, (4-1)*2 = 6 >= 5+1 → 3
        let p = pool(&[2], &[2], &[1, 1], true);
        assert_eq!(
            run(&Op::MaxPool(p), &["f32[1,1,5]"]).unwrap(),
            ["f32[1,1,3]"]
        );
        let p = pool(&[2], &[2], &[1, 1], false);
        assert_eq!(
            run(&Op::MaxPool(p), &["f32[1,1,5]"]).unwrap(),
            ["f32[1,1,3]"]
        );
    }

    #[test]
    fn dtypes_and_errors() {
        let p = pool(&[2, 2], &[2, 2], &[0, 0, 0, 0], false);
        assert_eq!(
            run(&Op::MaxPool(p.clone()), &["u8[1,1,4,4]"]).unwrap(),
            ["u8[1,1,2,2]"]
        );
        assert!(matches!(
            run(&Op::AveragePool(p.clone()), &["u8[1,1,4,4]"]),
            Err(InferError::DType { .. })
        ));
        assert!(matches!(
            run(&Op::MaxPool(p.clone()), &["f32[1,1,1,4]"]),
            Err(InferError::ShapeMismatch { .. })
        ));
        assert!(matches!(
            run(&Op::MaxPool(p.clone()), &["f32[1,4,4]"]),
            Err(InferError::Attribute { attr: "kernel", .. })
        ));
        assert!(matches!(
            run(&Op::MaxPool(p), &["f32[4,4]"]),
            Err(InferError::Rank { .. })
        ));
    }

    #[test]
    fn global_pool() {
        let op = Op::GlobalPool(GlobalPoolKind::Average);
        assert_eq!(run(&op, &["f32[N,64,7,7]"]).unwrap(), ["f32[N,64,1,1]"]);
        assert!(matches!(
            run(&op, &["f32[N,64]"]),
            Err(InferError::Rank { .. })
        ));
        assert!(matches!(
            run(&op, &["i64[N,64,2]"]),
            Err(InferError::DType { .. })
        ));
    }
}
