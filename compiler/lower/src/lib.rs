//! The backend-neutral lowering: a quantized graph (batch 1) becomes a [`Lowered`] program —
//! bit-plane layers with their weights in a chosen [`WeightLayout`], typed kernel [`Step`]s
//! over planned arena buffers, and every size a device budget needs — before anything is
//! printed. Every decision that does not depend on the output language is taken here: which
//! plane count each layer keeps, which Relus fuse into a layer's epilogue, which values alias
//! another's storage, where each buffer lives in the arena, how the weights are laid out and
//! how much scratch the kernels need. A backend (the C printer, later MLIR) only prints it,
//! and byte counts (the manifest, the mixed-precision budget) are read from it without
//! printing (as Cranelift lowers to machine instructions before `emit`).

mod copy_ops;
mod error;
mod float_ops;
mod geometry;
mod layer;
mod matmul;
#[cfg(test)]
mod ops_tests;
pub mod planner;
mod recurrent;
#[cfg(test)]
mod tests;
mod walk;

pub use error::LowerError;
pub use geometry::{ConvGeometry, PoolGeometry, Window2d};
pub use layer::{CodeBlocks, Layer, PaddedInput, Weights};
pub use planner::{Buffer, Plan};
pub use recurrent::{GruStep, LstmStep};
pub use strata_ir::ops::elementwise::CompareOp;
pub use walk::lower;

/// A graph input or output as the generated code sees it: its ONNX name and batch-1 shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub shape: Vec<usize>,
}

impl Port {
    /// Elements.
    pub fn size(&self) -> usize {
        self.shape.iter().product()
    }
}

/// How bit-plane weights are stored; both hold exactly planes `0..k` of each layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightLayout {
    /// The planes themselves as little-endian `u64` words (`k/8` bytes per weight): the
    /// size is the information kept.
    Planes,
    /// The `k`-plane codes rebuilt from the planes, in blocks of 16 output channels × 2 input
    /// channels per kernel tap (fast SIMD dot products), at the widths of [`CodeBits`]
    /// ([`CodeBlocks`]).
    Codes,
}

impl WeightLayout {
    /// Whether a layer's kernel can apply a following Relu in its epilogue. The code-layout
    /// kernels take a flag; the packed-plane kernels do not.
    pub fn fuses_relu(self) -> bool {
        matches!(self, WeightLayout::Codes)
    }
}

/// What to lower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowerOptions {
    /// `K`: planes kept in the weights and the default plane count of every layer.
    pub planes: u8,
    /// Mixed precision: the plane count of each bit-plane layer (in [`layer_names`] order),
    /// each `<= planes`; layer `i` keeps only its first `k_i` planes.
    pub layer_planes: Option<Vec<u8>>,
    /// How the weights are stored.
    pub layout: WeightLayout,
    /// Bits a code takes in [`WeightLayout::Codes`] (ignored for planes).
    pub code_bits: CodeBits,
}

/// How many bits a code takes in [`WeightLayout::Codes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CodeBits {
    /// The fewest of 2, 4 and 8 bits that hold `K` planes: the widths the kernels read
    /// fastest (one shift and mask per group of codes, or none), so `K` = 3 stores 4 bits a
    /// weight and `K` = 5..7 store 8.
    #[default]
    Fast,
    /// `K` bits a weight at every `K` (2 at `K` = 1): the weights grow by one bit a weight
    /// per plane. Widths 3, 5, 6 and 7 are split into 4-, 2- and 1-bit parts that the
    /// kernels reassemble, which costs time on the SIMD targets (README: C backend).
    Exact,
    /// For weights read from memory on every call (a model larger than the caches, batch
    /// 1): fully connected layers, which read each weight once per call, store the widths
    /// whose kernel streams the fewest bytes at memory speed; convolutions, which reuse each
    /// weight across positions, keep the [`CodeBits::Fast`] widths. In the lowering that is
    /// exact 5- and 6-bit codes at `K` = 5 and 6 (x86-64-v3's split-part kernel ran a
    /// 4096 × 4096 GEMV from memory at 0.80 and 0.87 of `K` = 8 in interleaved rounds where
    /// the 8-bit codes took 1.01 and 1.00; at 3 and 7 the split kernel is slower than 4 and 8
    /// bits, and with the weights in cache all split widths are). A C target without such a
    /// kernel lowers this as `Fast` (`strata_backend_c`).
    Stream,
}

impl CodeBits {
    /// The names `--code-bits` takes.
    pub const NAMES: [&'static str; 3] = ["fast", "exact", "stream"];

    pub fn name(self) -> &'static str {
        match self {
            CodeBits::Fast => "fast",
            CodeBits::Exact => "exact",
            CodeBits::Stream => "stream",
        }
    }
}

impl std::str::FromStr for CodeBits {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fast" => Ok(CodeBits::Fast),
            "exact" => Ok(CodeBits::Exact),
            "stream" => Ok(CodeBits::Stream),
            _ => Err(format!(
                "unknown code width `{s}` (valid: fast, exact, stream)"
            )),
        }
    }
}

/// Where a value lives at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    /// The caller's input buffer `i` (read-only), in graph input order.
    Input(usize),
    /// An arena buffer (an index into [`Lowered::buffers`]).
    Buf(usize),
}

/// One kernel invocation, writing the fresh buffer `y`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The graph node it computes.
    pub node: String,
    pub kernel: Kernel,
    /// The output buffer (an index into [`Lowered::buffers`]).
    pub y: usize,
}

/// What a step computes, with its operands.
#[derive(Debug, Clone, PartialEq)]
pub enum Kernel {
    /// Bit-plane layer `layer` (a 2-D convolution), with a Relu fused into its epilogue
    /// when `relu`.
    BitplaneConv { layer: usize, x: Loc, relu: bool },
    /// Bit-plane layer `layer` (a linear layer), likewise.
    BitplaneLinear { layer: usize, x: Loc, relu: bool },
    /// `y = max(x, 0)` over `n` elements.
    Relu { x: Loc, n: usize },
    /// 2-D max (`max`) or average pooling.
    Pool {
        x: Loc,
        geometry: PoolGeometry,
        max: bool,
    },
    /// A reduction over `len` elements `inner` apart, for each of `outer × inner` outputs
    /// (global pooling; ReduceMean, ReduceSum, ReduceMax over contiguous axes).
    Reduce {
        x: Loc,
        outer: usize,
        len: usize,
        inner: usize,
        f: ReduceFn,
    },
    /// `y = f(a, b)` over `n` elements; `b` broadcasts as `bcast` says.
    Binary {
        a: Loc,
        b: Operand,
        n: usize,
        bcast: Broadcast,
        f: BinaryFn,
    },
    /// `y = f(x)` over `n` elements.
    Unary { x: Loc, n: usize, f: UnaryFn },
    /// Softmax over `len` elements `inner` apart, in `outer` blocks of `len × inner`.
    Softmax {
        x: Loc,
        outer: usize,
        len: usize,
        inner: usize,
    },
    /// Concatenation: for each of `outer` blocks, every part's `chunk` elements in turn.
    Concat {
        parts: Vec<(Loc, usize)>,
        outer: usize,
    },
    /// A strided copy (Transpose, Slice, Split, Expand, Gather of one index; rank 1..=8):
    /// output element at index `(i_0, …)` (row-major over `dims`) reads
    /// `x[base + Σ i_d · strides[d]]`. Strides are negative for a reversed Slice and 0 on the
    /// axes an Expand repeats.
    Gather {
        x: Loc,
        base: usize,
        dims: Vec<usize>,
        strides: Vec<isize>,
    },
    /// A copy through an index table (Pad, nearest Resize, Gather): `y[i] = idx[i] < 0 ? fill
    /// : x[idx[i]]` over the table's length, `idx` being [`Lowered::tables`]`[table]`.
    Take { x: Loc, table: usize, fill: f32 },
    /// numpy MatMul with at least one activation operand (attention's `Q·Kᵀ` and `P·V`):
    /// for every index of the output's leading `batch` dims, `[m×k]·[k×n]` with each output
    /// element summed from +0 over `p = 0..k` in order, one rounded multiply and add per term
    /// (the runtime's `matmul`). `a_batch`/`b_batch` are the operands' leading dims, padded
    /// with 1s to `batch`'s rank; an axis of length 1 there is broadcast (numpy rules).
    MatMul {
        a: Operand,
        b: Operand,
        batch: Vec<usize>,
        a_batch: Vec<usize>,
        b_batch: Vec<usize>,
        m: usize,
        k: usize,
        n: usize,
    },
    /// Linear Resize (rank 1..=8): every output element interpolates, axis by axis in
    /// increasing order and in f64 as the runtime does, between the taps
    /// [`Lowered::taps`]`[taps]` give for its index on each axis; `strides` are the input's.
    ResizeLinear {
        x: Loc,
        dims: Vec<usize>,
        strides: Vec<usize>,
        taps: usize,
    },
    /// An LSTM over the whole sequence (the runtime's `recurrent` kernel): writes `y` (the
    /// step's buffer) and the final states into their own buffers.
    Lstm(Box<LstmStep>),
    /// A GRU over the whole sequence (the runtime's `recurrent` kernel): writes `y` (the
    /// step's buffer) and the final state into its own buffer.
    Gru(Box<GruStep>),
    /// `y[i] = cmp(l, r) ? a : b` over `n` elements, every operand (`[l, r, a, b]`) read at
    /// `(i / inner) % len` of its broadcast: a Where whose condition compares f32 values
    /// (PyTorch's Softplus threshold as the dynamo exporter writes it, masks computed from
    /// activations).
    Select {
        n: usize,
        cmp: CompareOp,
        operands: [(Operand, Broadcast); 4],
    },
    /// Stored constant `constant` (`n` values) copied into the step's buffer: an op reads a
    /// constant where it takes an activation (a ViT's class token concatenated to the patch
    /// embeddings, which cannot fold because the other part is computed).
    Fill { constant: usize, n: usize },
}

impl Kernel {
    /// The bit-plane layer a step runs, if any.
    pub fn layer(&self) -> Option<usize> {
        match *self {
            Kernel::BitplaneConv { layer, .. } | Kernel::BitplaneLinear { layer, .. } => {
                Some(layer)
            }
            Kernel::Relu { .. }
            | Kernel::Pool { .. }
            | Kernel::Reduce { .. }
            | Kernel::Binary { .. }
            | Kernel::Unary { .. }
            | Kernel::Softmax { .. }
            | Kernel::Concat { .. }
            | Kernel::Gather { .. }
            | Kernel::Take { .. }
            | Kernel::MatMul { .. }
            | Kernel::ResizeLinear { .. }
            | Kernel::Lstm(_)
            | Kernel::Gru(_)
            | Kernel::Select { .. }
            | Kernel::Fill { .. } => None,
        }
    }
}

/// The second operand of a binary step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Act(Loc),
    /// A constant (an index into [`Lowered::constants`]).
    Const(usize),
}

/// How the second operand of a binary step repeats over the output: element `i` reads
/// `b[(i / inner) % len]` (a scalar, a per-channel vector, a full tensor, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broadcast {
    pub len: usize,
    pub inner: usize,
}

impl Broadcast {
    /// The operand has the output's shape.
    pub fn full(n: usize) -> Self {
        Broadcast { len: n, inner: 1 }
    }
}

/// A binary step's function of `(a, b)`: the runtime's formula, in its operand order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryFn {
    Add,
    Mul,
    /// `a − b`.
    Sub,
    /// `b − a` (the graph's first operand is the broadcast one).
    SubFrom,
    /// `a / b`.
    Div,
    /// `b / a`.
    DivInto,
    /// `a < 0 ? b · a : a` (PRelu with slope `b`).
    PRelu,
    /// Max of the graph's operands `(a, b)` in that order: `a > b || a is NaN ? a : b` (on
    /// ties and signed zeros the second wins, as in the runtime's fold).
    Max,
    /// Max with the graph's operands the other way round: `(b, a)`.
    MaxRev,
    /// Min of `(a, b)`: `a < b || a is NaN ? a : b`.
    Min,
    /// Min of `(b, a)`.
    MinRev,
    /// `a` to the power `b`, as the runtime's `pow_f32` (exact sequences for the exponents 1,
    /// 2, 3, −1 and 0.5; the C library's `powf` otherwise).
    Pow,
    /// `b` to the power `a` (the graph's base is the broadcast operand).
    PowFrom,
}

/// A reduction's function, with the runtime's accumulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReduceFn {
    /// Summed in f64 in index order, divided by the count in f64, rounded once.
    Mean,
    /// Summed in f64 in index order, rounded once.
    Sum,
    /// From −∞, `v > m || v is NaN` replaces `m` (ReduceMax: NaN propagates).
    Max,
    /// From −∞, `v > m` replaces `m` (GlobalMaxPool: NaN is skipped).
    MaxNumber,
}

/// An element-wise float function, computed with the runtime's formula and operation order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryFn {
    Sigmoid,
    LeakyRelu {
        alpha: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    /// Clip to optional bounds: `min(max(x, lo), hi)` as comparisons (NaN passes).
    Clip {
        lo: Option<f32>,
        hi: Option<f32>,
    },
    /// `0 − x` (so `−0` gives `+0`, as the runtime's `ZERO.sub(x)`).
    Neg,
    /// The sign bit cleared.
    Abs,
    Floor,
    Ceil,
    /// IEEE square root (correctly rounded everywhere).
    Sqrt,
    /// `1 / x`.
    Reciprocal,
    /// The C library's `expf`, which Rust's `f32::exp` calls (glibc's gives the same bits on
    /// every ISA of the exactness matrix).
    Exp,
    /// The C library's `logf` (Rust's `f32::ln`), likewise.
    Log,
    /// `strata_ir::math::tanh_f32`: IEEE double operations only, the same bits everywhere.
    Tanh,
    /// `strata_ir::math::erf_f32`, likewise.
    Erf,
}

/// A constant operand, stored with the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    /// The node that reads it.
    pub node: String,
    pub values: Vec<f32>,
}

/// An index table of a [`Kernel::Take`], stored with the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexTable {
    /// The node that reads it.
    pub node: String,
    /// Per output element: the input element it copies, or −1 for the fill value.
    pub indices: Vec<i32>,
}

/// The per-axis interpolation taps of a [`Kernel::ResizeLinear`], stored with the weights.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearTaps {
    /// The node that reads them.
    pub node: String,
    /// Per axis (in order) and output index on it: the two input indices.
    pub indices: Vec<[i32; 2]>,
    /// The matching weights of the second index (0: the first index alone).
    pub weights: Vec<f64>,
}

impl LinearTaps {
    /// Bytes in the constant data.
    pub fn bytes(&self) -> usize {
        8 * self.indices.len() + 8 * self.weights.len()
    }
}

/// A value that shares another value's storage instead of getting a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasKind {
    /// Flatten, Reshape, Identity, Squeeze, Unsqueeze (and any copy that would keep every
    /// element in place): the same elements in the same order.
    View,
    /// A Relu applied in the epilogue of step `step`.
    FusedRelu { step: usize },
}

/// A node whose output aliases `of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub node: String,
    pub of: Loc,
    pub kind: AliasKind,
}

/// Static scratch the kernels need, in elements (the largest over the layers using it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scratch {
    /// Packed planes: the quantized input, int16.
    pub input: usize,
    /// Packed planes: one receptive field of a convolution, int16.
    pub column: usize,
    /// Code layout: the quantized input, int16.
    pub quantized: usize,
    /// Code layout: the padded channel-pair input or the im2col rows, int16.
    pub padded: usize,
    /// Code layout: per-pixel sums of the padded input, int32.
    pub pixel_sums: usize,
    /// Code layout: per-position sums of a receptive field, int32.
    pub position_sums: usize,
    /// Code layout: the widest layer's output channels (two float folded-scale rows).
    pub rows: usize,
    /// Code layout: one 16-row block of a convolution's codes as int8 at the run-time plane
    /// count (unpacked from 2 or 4 bits, shifted below K), prepared once per block so that
    /// the tiles that reuse it over every output position neither unpack nor shift.
    pub unpacked: usize,
}

impl Scratch {
    /// Total bytes of all scratch arrays.
    pub fn bytes(&self) -> usize {
        2 * (self.input + self.column + self.quantized + self.padded)
            + 4 * (self.pixel_sums + self.position_sums + 2 * self.rows)
            + self.unpacked
    }

    /// The element-wise maximum: scratch is shared by all layers.
    pub(crate) fn max(self, o: Scratch) -> Scratch {
        Scratch {
            input: self.input.max(o.input),
            column: self.column.max(o.column),
            quantized: self.quantized.max(o.quantized),
            padded: self.padded.max(o.padded),
            pixel_sums: self.pixel_sums.max(o.pixel_sums),
            position_sums: self.position_sums.max(o.position_sums),
            rows: self.rows.max(o.rows),
            unpacked: self.unpacked.max(o.unpacked),
        }
    }
}

/// A graph lowered for one weight layout and one choice of plane counts (see the crate doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Lowered {
    /// The graph's name.
    pub graph: String,
    /// `K`: the largest plane count kept (and the default of every layer without
    /// `layer_planes`).
    pub planes: u8,
    /// The per-layer default plane counts of a mixed-precision lowering.
    pub layer_planes: Option<Vec<u8>>,
    pub layout: WeightLayout,
    /// The code widths of [`WeightLayout::Codes`].
    pub code_bits: CodeBits,
    /// The graph inputs, in order (the caller's input buffers).
    pub inputs: Vec<Port>,
    /// The graph outputs, in order, each with where it is when the last step has run (two
    /// outputs may share a location; an output may be an input).
    pub outputs: Vec<(Port, Loc)>,
    /// The bit-plane layers, in `planes_per_layer` order.
    pub layers: Vec<Layer>,
    pub constants: Vec<Constant>,
    pub tables: Vec<IndexTable>,
    pub taps: Vec<LinearTaps>,
    /// The kernels in execution order.
    pub steps: Vec<Step>,
    /// Arena buffers with their lifetimes (in graph steps), and where the planner put them.
    pub buffers: Vec<Buffer>,
    pub arena: Plan,
    pub aliases: Vec<Alias>,
    pub scratch: Scratch,
    /// Multiply-accumulates of the bit-plane layers per inference.
    pub macs: u64,
}

impl Lowered {
    /// Whether the graph has one input and one output (the `run(input, output)` form).
    pub fn single_io(&self) -> bool {
        self.inputs.len() == 1 && self.outputs.len() == 1
    }

    /// Constant data: every layer's weights and side tables, the constant operands, index
    /// tables and interpolation taps.
    pub fn weight_bytes(&self) -> u64 {
        let layers: u64 = self.layers.iter().map(Layer::weight_bytes).sum();
        let constants: usize = self.constants.iter().map(|c| 4 * c.values.len()).sum();
        let tables: usize = self.tables.iter().map(|t| 4 * t.indices.len()).sum();
        let taps: usize = self.taps.iter().map(LinearTaps::bytes).sum();
        layers + (constants + tables + taps) as u64
    }

    /// The static f32 activation arena.
    pub fn arena_bytes(&self) -> u64 {
        4 * self.arena.total as u64
    }

    /// The kernels' static scratch; RAM = arena + scratch.
    pub fn scratch_bytes(&self) -> u64 {
        self.scratch.bytes() as u64
    }

    /// Arena offset (in f32 elements) of buffer `b`.
    pub fn offset(&self, b: usize) -> usize {
        self.arena.offsets[b]
    }
}

/// The bit-plane layers in the order `planes_per_layer` indexes them (the graph's
/// topological order), so a per-layer choice by node name can be turned into
/// [`LowerOptions::layer_planes`].
pub fn layer_names(graph: &strata_ir::Graph) -> Result<Vec<String>, LowerError> {
    let mut names = Vec::new();
    for id in graph.topo_order()? {
        let node = graph.node(id)?;
        if let strata_ir::NodeKind::Op(strata_ir::Op::Bitplane(_)) = &node.kind {
            names.push(node.name.clone());
        }
    }
    Ok(names)
}
