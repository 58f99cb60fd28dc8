//! Attribute structs' text form from one field list: [`attr_fields!`] derives both the
//! printer's `text_attrs` and the parser's `from_attrs`, so the two directions (and every op
//! family) spell a field type the same way and cannot drift apart.

use super::{AttrValue, Attrs, ParseError};
use crate::DType;

/// A field type an op attribute struct stores, with its one text spelling in each direction.
pub(crate) trait AttrField: Sized {
    /// The value as the printer writes it.
    fn to_attr(&self) -> AttrValue;
    /// Takes attribute `name` from `a` at this type.
    fn take(a: &mut Attrs, name: &'static str) -> Result<Self, ParseError>;
}

/// Implements [`AttrField`] for `$t` from an `AttrValue` constructor and an `Attrs` reader.
macro_rules! attr_field {
    ($t:ty, |$v:ident| $print:expr, $read:ident) => {
        impl AttrField for $t {
            fn to_attr(&self) -> AttrValue {
                let $v = self;
                $print
            }
            fn take(a: &mut Attrs, name: &'static str) -> Result<Self, ParseError> {
                a.$read(name)
            }
        }
    };
}

attr_field!(usize, |v| AttrValue::usize(*v), usize);
attr_field!(u8, |v| AttrValue::usize(*v as usize), u8);
attr_field!(bool, |v| AttrValue::Bool(*v), bool);
attr_field!(f32, |v| AttrValue::f32(*v), f32);
attr_field!(f64, |v| AttrValue::f64(*v), f64);
attr_field!(DType, |v| AttrValue::dtype(*v), dtype);
attr_field!(Vec<usize>, |v| AttrValue::usizes(v), usizes);
attr_field!(Vec<u8>, |v| AttrValue::u8s(v), u8s);
attr_field!(Vec<i64>, |v| AttrValue::i64s(v), i64s);
attr_field!(Vec<f32>, |v| AttrValue::f32s(v), f32s);

/// `attr_enum!(PadMode, "constant, edge or reflect", [Constant => "constant", …])`: an
/// enum attribute spelled as one identifier per variant, in both directions.
macro_rules! attr_enum {
    ($t:ty, $expected:literal, [$($var:ident => $name:literal),+ $(,)?]) => {
        impl $t {
            /// The identifier the text form spells this value with.
            pub fn name(self) -> &'static str {
                match self {
                    $(<$t>::$var => $name),+
                }
            }
        }
        impl $crate::text::fields::AttrField for $t {
            fn to_attr(&self) -> $crate::text::AttrValue {
                $crate::text::AttrValue::Ident(self.name().to_string())
            }
            fn take(
                a: &mut $crate::text::Attrs,
                name: &'static str,
            ) -> Result<Self, $crate::text::ParseError> {
                const ALL: &[$t] = &[$(<$t>::$var),+];
                let i = a.choice(name, &[$($name),+], $expected)?;
                Ok(ALL[i])
            }
        }
    };
}
pub(crate) use attr_enum;

/// `attr_fields!(Conv { kernel, strides, … })`: `text_attrs` (fields in the order listed,
/// which is the printed order) and `from_attrs` for an attribute struct whose listed fields
/// are all of it. Attribute names are the field names.
///
/// `attr_fields!(S { a, b } optional { c })`: fields added after text was first written.
/// Each is printed (after the required ones) only when it differs from its type's
/// `Default`, and reads back as that default when absent, so older text parses unchanged.
macro_rules! attr_fields {
    ($ty:ident { $($field:ident),+ $(,)? } $(optional { $($opt:ident),+ $(,)? })?) => {
        impl $ty {
            /// Text-form attributes, in field order.
            pub(crate) fn text_attrs(&self) -> Vec<(&'static str, $crate::text::AttrValue)> {
                use $crate::text::fields::AttrField;
                #[allow(unused_mut)]
                let mut out = vec![$((stringify!($field), self.$field.to_attr())),+];
                $($(
                    if !$crate::text::fields::is_default(&self.$opt) {
                        out.push((stringify!($opt), self.$opt.to_attr()));
                    }
                )+)?
                out
            }

            /// Reads the struct back from text attributes (any order in the text).
            pub(crate) fn from_attrs(
                a: &mut $crate::text::Attrs,
            ) -> Result<$ty, $crate::text::ParseError> {
                use $crate::text::fields::AttrField;
                Ok($ty {
                    $($field: AttrField::take(a, stringify!($field))?,)+
                    $($($opt: if a.has(stringify!($opt)) {
                        AttrField::take(a, stringify!($opt))?
                    } else {
                        Default::default()
                    },)+)?
                })
            }
        }
    };
}
pub(crate) use attr_fields;

/// Whether an optional attribute holds its default (and is therefore not printed).
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
