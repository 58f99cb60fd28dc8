//! A function body being printed: fresh SSA names, cached scalar constants, and the
//! `linalg.generic`/`linalg.fill`/`tensor.empty` forms every kernel is built from.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::text::{f32_lit, tensor, Elem};

/// The text of one region (a function body or a `linalg.generic` body) with the SSA counter
/// shared across nested regions, so names never clash with the values a region captures.
pub(crate) struct Body {
    pub(crate) text: String,
    next: usize,
    /// Nesting depth of the lines printed next (raised inside `scf.for` regions).
    pub(crate) indent: usize,
    /// Scalar constants already defined in this region, by their printed form.
    consts: HashMap<String, String>,
    /// The module's symbol prefix (`PREFIX`), for the helper functions kernels call: every
    /// exported symbol of an object starts with it, so objects of several models link.
    pub(crate) prefix: String,
}

/// One operand of a `linalg.generic`: the value, its type and its indexing map.
pub(crate) struct Operand {
    pub value: String,
    pub ty: String,
    pub map: String,
}

impl Operand {
    pub(crate) fn new(value: &str, ty: String, map: String) -> Operand {
        Operand {
            value: value.to_string(),
            ty,
            map,
        }
    }
}

impl Body {
    pub(crate) fn new(indent: usize) -> Body {
        Body {
            text: String::new(),
            next: 0,
            indent,
            consts: HashMap::new(),
            prefix: String::new(),
        }
    }

    /// A fresh SSA name.
    pub(crate) fn fresh(&mut self) -> String {
        self.next += 1;
        format!("%v{}", self.next)
    }

    /// One line at this region's indentation.
    pub(crate) fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.text.push_str("  ");
        }
        self.text.push_str(s);
        self.text.push('\n');
    }

    /// `%v = rhs`; returns `%v`.
    pub(crate) fn bind(&mut self, rhs: &str) -> String {
        let v = self.fresh();
        self.line(&format!("{v} = {rhs}"));
        v
    }

    /// A scalar `arith.constant` (`lit : ty`), defined once per region.
    pub(crate) fn constant(&mut self, lit: &str, ty: &str) -> String {
        let key = format!("{lit} : {ty}");
        if let Some(v) = self.consts.get(&key) {
            return v.clone();
        }
        let v = self.bind(&format!("arith.constant {key}"));
        self.consts.insert(key, v.clone());
        v
    }

    pub(crate) fn index(&mut self, i: usize) -> String {
        self.constant(&i.to_string(), "index")
    }

    pub(crate) fn f32(&mut self, v: f32) -> String {
        self.constant(&f32_lit(v), "f32")
    }

    pub(crate) fn i32(&mut self, v: i32) -> String {
        self.constant(&v.to_string(), "i32")
    }

    /// A tensor of `dims` filled with the scalar `value` (of element type `e`). The fill is
    /// one flat loop, viewed as `dims` afterwards: LLVM turns a nest whose inner extent is
    /// short into scatters.
    pub(crate) fn filled(&mut self, dims: &[usize], e: Elem, value: &str) -> String {
        let n: usize = dims.iter().product();
        let flat_ty = tensor(&[n], e);
        let empty = self.bind(&format!("tensor.empty() : {flat_ty}"));
        let flat = self.bind(&format!(
            "linalg.fill ins({value} : {}) outs({empty} : {flat_ty}) -> {flat_ty}",
            e.name()
        ));
        match dims.len() {
            1 => flat,
            0 => self.bind(&format!(
                "tensor.collapse_shape {flat} [] : {flat_ty} into {}",
                tensor(dims, e)
            )),
            rank => {
                let all: Vec<String> = (0..rank).map(|d| d.to_string()).collect();
                let shape: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
                self.bind(&format!(
                    "tensor.expand_shape {flat} [[{}]] output_shape [{}] : {flat_ty} into {}",
                    all.join(", "),
                    shape.join(", "),
                    tensor(dims, e)
                ))
            }
        }
    }

    /// An uninitialised tensor of `dims` (for outputs every element of which is written).
    pub(crate) fn empty(&mut self, dims: &[usize], e: Elem) -> String {
        self.bind(&format!("tensor.empty() : {}", tensor(dims, e)))
    }

    /// `linalg.generic` with `iterators` (`parallel`/`reduction`), the operands `ins`, the
    /// output `out` (initial value) and a body: `body` gets the block arguments (one per
    /// input, then the output's current value) and returns the yielded value.
    pub(crate) fn generic(
        &mut self,
        iterators: &[&str],
        ins: &[Operand],
        out: Operand,
        out_elem: Elem,
        in_elems: &[Elem],
        body: impl FnOnce(&mut Body, &[String]) -> String,
    ) -> String {
        let mut region = Body {
            text: String::new(),
            next: self.next,
            indent: self.indent + 1,
            consts: HashMap::new(),
            prefix: self.prefix.clone(),
        };
        let args: Vec<String> = (0..=ins.len()).map(|_| region.fresh()).collect();
        let result = body(&mut region, &args);
        region.line(&format!("linalg.yield {result} : {}", out_elem.name()));
        self.next = region.next;
        let maps: Vec<&str> = ins
            .iter()
            .chain(std::iter::once(&out))
            .map(|o| o.map.as_str())
            .collect();
        let its: Vec<String> = iterators.iter().map(|i| format!("\"{i}\"")).collect();
        let mut head = format!(
            "linalg.generic {{indexing_maps = [{}], iterator_types = [{}]}}",
            maps.join(", "),
            its.join(", ")
        );
        if !ins.is_empty() {
            let vals: Vec<&str> = ins.iter().map(|o| o.value.as_str()).collect();
            let tys: Vec<&str> = ins.iter().map(|o| o.ty.as_str()).collect();
            let _ = write!(head, " ins({} : {})", vals.join(", "), tys.join(", "));
        }
        let _ = write!(head, " outs({} : {})", out.value, out.ty);
        let sig: Vec<String> = args
            .iter()
            .zip(in_elems.iter().chain(std::iter::once(&out_elem)))
            .map(|(a, e)| format!("{a}: {}", e.name()))
            .collect();
        let v = self.fresh();
        self.line(&format!("{v} = {head} {{"));
        self.line(&format!("^bb0({}):", sig.join(", ")));
        self.text.push_str(&region.text);
        self.line(&format!("}} -> {}", out.ty));
        v
    }

    /// `x` (`tensor<C x H x W>`) zero- or `fill`-padded to `[C, hp, wp]` with its pixel
    /// `(i, j)` at `(i + ph, j + pw)`: a filled tensor with `x` copied into a slice of it by
    /// `linalg.copy`, which bufferizes in place and lowers to loops (`tensor.pad` would
    /// bufferize to a strided `memref.copy`, a call into MLIR's runtime library).
    pub(crate) fn pad(
        &mut self,
        x: &str,
        [c, h, w]: [usize; 3],
        [hp, wp]: [usize; 2],
        [ph, pw]: [usize; 2],
        e: Elem,
        fill: &str,
    ) -> String {
        let full = self.filled(&[c, hp, wp], e, fill);
        let (full_ty, x_ty) = (tensor(&[c, hp, wp], e), tensor(&[c, h, w], e));
        let slice = self.bind(&format!(
            "tensor.extract_slice {full}[0, {ph}, {pw}] [{c}, {h}, {w}] [1, 1, 1] : {full_ty} to {x_ty}"
        ));
        let copied = self.bind(&format!(
            "linalg.copy ins({x} : {x_ty}) outs({slice} : {x_ty}) -> {x_ty}"
        ));
        self.bind(&format!(
            "tensor.insert_slice {copied} into {full}[0, {ph}, {pw}] [{c}, {h}, {w}] [1, 1, 1] : {x_ty} into {full_ty}"
        ))
    }
}
