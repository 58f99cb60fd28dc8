//! 2-D convolution and pooling geometry of one batch-1 call, from the validated shapes and
//! attributes. Named fields instead of positional arrays, so a backend cannot swap two of
//! them unnoticed; each backend lays them out in its own kernel structs.

use strata_ir::ops::pool::Pool;
use strata_ir::ops::Conv;

/// The kernels index with 32-bit unsigned arithmetic; convolutions multiply a dimension by
/// at most this factor before it is checked again.
const CONV_HEADROOM: usize = 64;
const POOL_HEADROOM: usize = 4;

/// What convolution and pooling windows share: a batch-1 `[1, C, H, W]` input, the
/// `[OH, OW]` output plane, and the window's size, strides and dilations. Pairs are
/// `[height, width]`. One struct, so both geometries are read and checked the same way.
///
/// A 1-D window over `[1, C, W]` (audio, sequences) is the 2-D window of height 1 over
/// `[1, C, 1, W]`: the same elements in the same order, so every backend's 2-D kernels run
/// it unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window2d {
    /// Input `[C, H, W]`.
    pub input: [usize; 3],
    /// Output `[OH, OW]`.
    pub output: [usize; 2],
    pub kernel: [usize; 2],
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
}

impl Window2d {
    /// The window of an op with these attributes over batch-1 shapes `x` and `y`, with its
    /// padding in ONNX 2-D order (begin height, begin width, end height, end width), or
    /// `None` when it is neither 2-D nor 1-D.
    fn new(
        [kernel, strides, dilations, pads]: [&[usize]; 4],
        x: &[usize],
        y: &[usize],
    ) -> Option<(Window2d, [usize; 4])> {
        let pair = |v: &[usize]| <[usize; 2]>::try_from(v).ok();
        // A 1-D attribute `[a]` is the 2-D `[1, a]`; its pads `[begin, end]` are `[0, begin,
        // 0, end]`.
        let widen = |v: &[usize]| -> Option<[usize; 2]> {
            match v {
                &[a] => Some([1, a]),
                _ => None,
            }
        };
        // One image: the kernels compute `[1, C, …]`. A pinned batch above 1 (or a leading
        // axis that is not a batch) would have every image after the first left uncomputed.
        if x.first() != Some(&1) || y.first() != Some(&1) {
            return None;
        }
        match (x.len(), y.len(), pads.len()) {
            (4, 4, 4) => Some((
                Window2d {
                    input: [x[1], x[2], x[3]],
                    output: [y[2], y[3]],
                    kernel: pair(kernel)?,
                    strides: pair(strides)?,
                    dilations: pair(dilations)?,
                },
                [pads[0], pads[1], pads[2], pads[3]],
            )),
            (3, 3, 2) => Some((
                Window2d {
                    input: [x[1], 1, x[2]],
                    output: [1, y[2]],
                    kernel: widen(kernel)?,
                    strides: widen(strides)?,
                    dilations: widen(dilations)?,
                },
                [0, pads[0], 0, pads[1]],
            )),
            _ => None,
        }
    }

    /// Whether every size stays below `u32::MAX / headroom` (the kernels' index range).
    fn fits(&self, extra: &[usize], headroom: usize) -> bool {
        let own = [
            self.input.as_slice(),
            &self.output,
            &self.kernel,
            &self.strides,
            &self.dilations,
        ];
        own.into_iter()
            .flatten()
            .chain(extra)
            .all(|&d| d <= u32::MAX as usize / headroom)
    }
}

/// One 2-D convolution: input `[1, C, H, W]`, output `[1, M, OH, OW]` (a 1-D one as height 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub window: Window2d,
    pub out_channels: usize,
    /// Padding before the first row and column (the end padding is implied by the output
    /// size: taps past the input read zero).
    pub pads: [usize; 2],
    pub group: usize,
}

impl ConvGeometry {
    /// The geometry of `c` from the batch-1 input and output shapes, or why it is not a
    /// 2-D convolution the kernels can index.
    pub fn new(c: &Conv, x: &[usize], y: &[usize]) -> Result<ConvGeometry, &'static str> {
        let (window, pads) = Window2d::new([&c.kernel, &c.strides, &c.dilations, &c.pads], x, y)
            .ok_or("only 1-D and 2-D convolutions of one image ([1, C, W], [1, C, H, W]; a batch pinned above 1 is not lowered)")?;
        let g = ConvGeometry {
            window,
            out_channels: y[1],
            pads: [pads[0], pads[1]],
            group: c.group,
        };
        if !window.fits(
            &[g.out_channels, g.pads[0], g.pads[1], g.group],
            CONV_HEADROOM,
        ) {
            return Err("a dimension exceeds the C unsigned range");
        }
        let sizes = [window.kernel, window.strides, window.dilations];
        if g.group == 0 || sizes.iter().flatten().any(|&d| d == 0) {
            return Err("a zero kernel size, stride, dilation or group");
        }
        Ok(g)
    }

    /// `C, H, W, M, OH, OW, kernel, strides, pads, dilations, group` (pairs height first):
    /// the order the kernel structs take them in.
    pub fn values(&self) -> [usize; 15] {
        let w = &self.window;
        let mut v = [0; 15];
        v[..3].copy_from_slice(&w.input);
        v[3] = self.out_channels;
        let pairs = [w.output, w.kernel, w.strides, self.pads, w.dilations];
        v[4..14].copy_from_slice(pairs.as_flattened());
        v[14] = self.group;
        v
    }

    /// Input channels per group.
    pub fn group_channels(&self) -> usize {
        self.window.input[0] / self.group
    }

    /// Output positions `OH · OW`.
    pub fn positions(&self) -> usize {
        self.window.output[0] * self.window.output[1]
    }
}

/// One 2-D pooling window: input `[1, C, H, W]`, output `[1, C, OH, OW]` (a 1-D one as
/// height 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    pub window: Window2d,
    /// ONNX order: begin height, begin width, end height, end width.
    pub pads: [usize; 4],
    /// Average pooling divides by the whole window, padding included.
    pub count_include_pad: bool,
}

impl PoolGeometry {
    /// The geometry of `p` from the batch-1 input and output shapes, or why it is not a
    /// 2-D pooling the kernels can index.
    pub fn new(p: &Pool, x: &[usize], y: &[usize]) -> Result<PoolGeometry, &'static str> {
        let (window, pads) = Window2d::new([&p.kernel, &p.strides, &p.dilations, &p.pads], x, y)
            .ok_or("only 1-D and 2-D pooling of one image ([1, C, W], [1, C, H, W]; a batch pinned above 1 is not lowered)")?;
        if !window.fits(&pads, POOL_HEADROOM) {
            return Err("a dimension exceeds the C unsigned range");
        }
        Ok(PoolGeometry {
            window,
            pads,
            count_include_pad: p.count_include_pad,
        })
    }

    /// `C, H, W, OH, OW, kernel, strides, pads (4), dilations, count_include_pad` (0 or 1):
    /// the order the kernel structs take them in.
    pub fn values(&self) -> [usize; 16] {
        let w = &self.window;
        let mut v = [0; 16];
        v[..3].copy_from_slice(&w.input);
        v[3..9].copy_from_slice([w.output, w.kernel, w.strides].as_flattened());
        v[9..13].copy_from_slice(&self.pads);
        v[13..15].copy_from_slice(&w.dilations);
        v[15] = self.count_include_pad as usize;
        v
    }
}
