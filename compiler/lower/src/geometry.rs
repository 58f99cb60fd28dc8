//! 2-D convolution and pooling geometry of one batch-1 call, from the validated shapes and
//! attributes. Named fields instead of positional arrays, so a backend cannot swap two of
//! them unnoticed; each backend lays them out in its own kernel structs.

use strata_ir::ops::pool::Pool;
use strata_ir::ops::Conv;

/// The kernels index with 32-bit unsigned arithmetic; convolutions multiply a dimension by
/// at most this factor before it is checked again.
const CONV_HEADROOM: usize = 64;
const POOL_HEADROOM: usize = 4;

/// One 2-D convolution: input `[1, C, H, W]`, output `[1, M, OH, OW]`. Pairs are
/// `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_channels: usize,
    pub out_height: usize,
    pub out_width: usize,
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    /// Padding before the first row and column (the end padding is implied by the output
    /// size: taps past the input read zero).
    pub pads: [usize; 2],
    pub dilations: [usize; 2],
    pub group: usize,
}

impl ConvGeometry {
    /// The geometry of `c` from the batch-1 input and output shapes, or why it is not a
    /// 2-D convolution the kernels can index.
    pub fn new(c: &Conv, x: &[usize], y: &[usize]) -> Result<ConvGeometry, &'static str> {
        let pairs = [&c.kernel, &c.strides, &c.dilations];
        if x.len() != 4 || y.len() != 4 || pairs.iter().any(|v| v.len() != 2) || c.pads.len() != 4 {
            return Err("only 2-D convolutions ([1, C, H, W])");
        }
        let g = ConvGeometry {
            channels: x[1],
            height: x[2],
            width: x[3],
            out_channels: y[1],
            out_height: y[2],
            out_width: y[3],
            kernel: [c.kernel[0], c.kernel[1]],
            strides: [c.strides[0], c.strides[1]],
            pads: [c.pads[0], c.pads[1]],
            dilations: [c.dilations[0], c.dilations[1]],
            group: c.group,
        };
        let dims = g.values();
        if dims.iter().any(|&d| d > u32::MAX as usize / CONV_HEADROOM) {
            return Err("a dimension exceeds the C unsigned range");
        }
        let sizes = [g.kernel, g.strides, g.dilations];
        if g.group == 0 || sizes.iter().flatten().any(|&d| d == 0) {
            return Err("a zero kernel size, stride, dilation or group");
        }
        Ok(g)
    }

    /// Every field in declaration order (pairs height first): the order kernel structs
    /// take them in.
    pub fn values(&self) -> [usize; 15] {
        [
            self.channels,
            self.height,
            self.width,
            self.out_channels,
            self.out_height,
            self.out_width,
            self.kernel[0],
            self.kernel[1],
            self.strides[0],
            self.strides[1],
            self.pads[0],
            self.pads[1],
            self.dilations[0],
            self.dilations[1],
            self.group,
        ]
    }

    /// Input channels per group.
    pub fn group_channels(&self) -> usize {
        self.channels / self.group
    }

    /// Output positions `OH · OW`.
    pub fn positions(&self) -> usize {
        self.out_height * self.out_width
    }
}

/// One 2-D pooling window: input `[1, C, H, W]`, output `[1, C, OH, OW]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub out_height: usize,
    pub out_width: usize,
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    /// ONNX order: begin height, begin width, end height, end width.
    pub pads: [usize; 4],
    pub dilations: [usize; 2],
    /// Average pooling divides by the whole window, padding included.
    pub count_include_pad: bool,
}

impl PoolGeometry {
    /// The geometry of `p` from the batch-1 input and output shapes, or why it is not a
    /// 2-D pooling the kernels can index.
    pub fn new(p: &Pool, x: &[usize], y: &[usize]) -> Result<PoolGeometry, &'static str> {
        let pairs = [&p.kernel, &p.strides, &p.dilations];
        if x.len() != 4 || y.len() != 4 || pairs.iter().any(|v| v.len() != 2) || p.pads.len() != 4 {
            return Err("only 2-D pooling ([1, C, H, W])");
        }
        let g = PoolGeometry {
            channels: x[1],
            height: x[2],
            width: x[3],
            out_height: y[2],
            out_width: y[3],
            kernel: [p.kernel[0], p.kernel[1]],
            strides: [p.strides[0], p.strides[1]],
            pads: [p.pads[0], p.pads[1], p.pads[2], p.pads[3]],
            dilations: [p.dilations[0], p.dilations[1]],
            count_include_pad: p.count_include_pad,
        };
        let dims = g.values();
        if dims.iter().any(|&d| d > u32::MAX as usize / POOL_HEADROOM) {
            return Err("a dimension exceeds the C unsigned range");
        }
        Ok(g)
    }

    /// Every field in declaration order (`count_include_pad` as 0 or 1): the order kernel
    /// structs take them in.
    pub fn values(&self) -> [usize; 16] {
        [
            self.channels,
            self.height,
            self.width,
            self.out_height,
            self.out_width,
            self.kernel[0],
            self.kernel[1],
            self.strides[0],
            self.strides[1],
            self.pads[0],
            self.pads[1],
            self.pads[2],
            self.pads[3],
            self.dilations[0],
            self.dilations[1],
            self.count_include_pad as usize,
        ]
    }
}
