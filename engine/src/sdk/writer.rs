//! Postcard's encoding, written straight into its output.
//!
//! [`Writer`] is a `serde::Serializer` that writes exactly the bytes `postcard` writes — the
//! same varints, zigzag, lengths and variant numbers — so `postcard` decodes them (the tests
//! compare the two over generated values). It exists for speed: postcard encodes each
//! integer into a varint buffer of its own and copies that buffer into the output, a copy
//! that costs more than the integer on the hot path, where every record, key and output is
//! encoded. Here a varint's bytes go to the output as they are made.

use serde::ser::{self, Serialize};

use super::blob::copy_short;

/// The errors are postcard's, so that a failure reads the same from either encoder.
pub type Error = postcard::Error;

/// Where a [`Writer`] puts its bytes.
pub trait Out {
    fn put(&mut self, byte: u8) -> Result<(), Error>;
    fn put_all(&mut self, bytes: &[u8]) -> Result<(), Error>;
}

impl Out for Vec<u8> {
    #[inline(always)]
    fn put(&mut self, byte: u8) -> Result<(), Error> {
        self.push(byte);
        Ok(())
    }

    /// Pieces are mostly a few bytes (a short string): a call to `memcpy` for each costs more
    /// than copying them a byte at a time.
    #[inline(always)]
    fn put_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if bytes.len() <= 16 {
            bytes.iter().for_each(|&b| self.push(b));
        } else {
            self.extend_from_slice(bytes);
        }
        Ok(())
    }
}

/// A fixed buffer that fails when full: for values tried inline first.
pub struct Fixed<'a> {
    pub buffer: &'a mut [u8],
    pub len: usize,
}

impl Out for Fixed<'_> {
    #[inline(always)]
    fn put(&mut self, byte: u8) -> Result<(), Error> {
        let slot = self.buffer.get_mut(self.len).ok_or(Error::SerializeBufferFull)?;
        *slot = byte;
        self.len += 1;
        Ok(())
    }

    #[inline(always)]
    fn put_all(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self.len + bytes.len();
        let out = self.buffer.get_mut(self.len..end).ok_or(Error::SerializeBufferFull)?;
        if bytes.len() <= 32 {
            copy_short(out, bytes);
        } else {
            out.copy_from_slice(bytes);
        }
        self.len = end;
        Ok(())
    }
}

/// Appends `value`'s postcard encoding to `out`.
pub fn write<T: Serialize + ?Sized, O: Out>(value: &T, out: &mut O) -> Result<(), Error> {
    value.serialize(&mut Writer { out })
}

/// The serializer: postcard's format into an [`Out`].
pub struct Writer<'a, O> {
    out: &'a mut O,
}

impl<O: Out> Writer<'_, O> {
    /// An unsigned LEB128 varint, as postcard writes every integer wider than a byte.
    #[inline(always)]
    fn varint(&mut self, mut v: u64) -> Result<(), Error> {
        while v >= 0x80 {
            self.out.put(v as u8 | 0x80)?;
            v >>= 7;
        }
        self.out.put(v as u8)
    }

    fn varint_u128(&mut self, mut v: u128) -> Result<(), Error> {
        while v >= 0x80 {
            self.out.put(v as u8 | 0x80)?;
            v >>= 7;
        }
        self.out.put(v as u8)
    }

    #[inline(always)]
    fn len(&mut self, len: usize) -> Result<(), Error> {
        self.varint(len as u64)
    }

    /// An enum variant's number, before whatever it holds.
    #[inline(always)]
    fn variant(&mut self, index: u32) -> Result<(), Error> {
        self.varint(u64::from(index))
    }
}

/// Zigzag: small magnitudes of either sign become small unsigned numbers.
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn zigzag_i128(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

impl<O: Out> ser::Serializer for &mut Writer<'_, O> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    #[inline]
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.put(u8::from(v))
    }

    #[inline]
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.out.put(v as u8)
    }

    #[inline]
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.varint(zigzag(i64::from(v)))
    }

    #[inline]
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.varint(zigzag(i64::from(v)))
    }

    #[inline]
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.varint(zigzag(v))
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.varint_u128(zigzag_i128(v))
    }

    #[inline]
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.out.put(v)
    }

    #[inline]
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.varint(u64::from(v))
    }

    #[inline]
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.varint(u64::from(v))
    }

    #[inline]
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.varint(v)
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.varint_u128(v)
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.out.put_all(&v.to_bits().to_le_bytes())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.out.put_all(&v.to_bits().to_le_bytes())
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.serialize_str(v.encode_utf8(&mut [0u8; 4]))
    }

    #[inline]
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.serialize_bytes(v.as_bytes())
    }

    #[inline]
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        self.len(v.len())?;
        self.out.put_all(v)
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.out.put(0)
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        self.out.put(1)?;
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
    ) -> Result<(), Error> {
        self.variant(index)
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.variant(index)?;
        value.serialize(self)
    }

    #[inline]
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, Error> {
        self.len(len.ok_or(Error::SerializeSeqLengthUnknown)?)?;
        Ok(self)
    }

    #[inline]
    fn serialize_tuple(self, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    #[inline]
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.variant(index)?;
        Ok(self)
    }

    #[inline]
    fn serialize_map(self, len: Option<usize>) -> Result<Self, Error> {
        self.len(len.ok_or(Error::SerializeSeqLengthUnknown)?)?;
        Ok(self)
    }

    #[inline]
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Error> {
        Ok(self)
    }

    #[inline]
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self, Error> {
        self.variant(index)?;
        Ok(self)
    }

    /// As postcard: the text is formatted twice, once to count its length and once to write it.
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result<(), Error> {
        use std::fmt::Write;
        struct Count(usize);
        impl Write for Count {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0 += s.len();
                Ok(())
            }
        }
        struct Put<'b, O>(&'b mut O);
        impl<O: Out> Write for Put<'_, O> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0.put_all(s.as_bytes()).map_err(|_| std::fmt::Error)
            }
        }
        let mut count = Count(0);
        write!(count, "{value}").map_err(|_| Error::CollectStrError)?;
        self.len(count.0)?;
        write!(Put(&mut *self.out), "{value}").map_err(|_| Error::CollectStrError)
    }
}

/// The compound forms: each element in turn, nothing around them.
macro_rules! compound {
    ($trait:ident, $method:ident $(, $key:ident)?) => {
        impl<O: Out> ser::$trait for &mut Writer<'_, O> {
            type Ok = ();
            type Error = Error;

            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, $($key: &'static str,)? value: &T) -> Result<(), Error> {
                $(let _ = $key;)?
                value.serialize(&mut **self)
            }

            #[inline]
            fn end(self) -> Result<(), Error> {
                Ok(())
            }
        }
    };
}

compound!(SerializeSeq, serialize_element);
compound!(SerializeTuple, serialize_element);
compound!(SerializeTupleStruct, serialize_field);
compound!(SerializeTupleVariant, serialize_field);
compound!(SerializeStruct, serialize_field, key);
compound!(SerializeStructVariant, serialize_field, key);

impl<O: Out> ser::SerializeMap for &mut Writer<'_, O> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        key.serialize(&mut **self)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut **self)
    }

    fn end(self) -> Result<(), Error> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Serialize;

    use super::*;

    fn ours<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        write(value, &mut out).expect("encodes");
        out
    }

    fn postcards<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        postcard::to_allocvec(value).expect("postcard encodes")
    }

    #[derive(Clone, Debug, Serialize)]
    enum Shape {
        Unit,
        Newtype(i32),
        Tuple(u8, i16),
        Struct { a: u128, b: i128, c: Option<String> },
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Wrapper(u64);

    #[derive(Serialize)]
    struct Many {
        flag: bool,
        small: i8,
        float: f32,
        double: f64,
        letter: char,
        bytes: serde_bytes_like::Bytes,
        list: Vec<Shape>,
        map: BTreeMap<String, Vec<i64>>,
        unit: (),
        unit_struct: Unit,
        wrapper: Wrapper,
        pair: (u16, u32),
        shown: Shown,
    }

    /// Written with `collect_str`.
    struct Shown(u64);

    impl Serialize for Shown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&format_args!("#{}", self.0))
        }
    }

    mod serde_bytes_like {
        /// A byte string written with `serialize_bytes`.
        pub struct Bytes(pub Vec<u8>);

        impl serde::Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Unit),
            any::<i32>().prop_map(Shape::Newtype),
            (any::<u8>(), any::<i16>()).prop_map(|(a, b)| Shape::Tuple(a, b)),
            (any::<u128>(), any::<i128>(), proptest::option::of(".{0,20}"))
                .prop_map(|(a, b, c)| Shape::Struct { a, b, c }),
        ]
    }

    proptest! {
        #[test]
        fn integers_encode_as_postcard_does(
            a in any::<u64>(), b in any::<i64>(), c in any::<u32>(), d in any::<i32>(),
            e in any::<u16>(), f in any::<i16>(), g in any::<usize>(), h in any::<isize>(),
        ) {
            prop_assert_eq!(ours(&(a, b, c, d, e, f, g, h)), postcards(&(a, b, c, d, e, f, g, h)));
        }

        #[test]
        fn every_form_encodes_as_postcard_does(
            flag in any::<bool>(), small in any::<i8>(), float in any::<f32>(), double in any::<f64>(),
            letter in any::<char>(), bytes in proptest::collection::vec(any::<u8>(), 0..300),
            list in proptest::collection::vec(shape(), 0..5),
            map in proptest::collection::btree_map(".{0,8}", proptest::collection::vec(any::<i64>(), 0..4), 0..4),
            wrapper in any::<u64>(), pair in any::<(u16, u32)>(), shown in any::<u64>(),
        ) {
            let many = Many {
                flag, small, float, double, letter, bytes: serde_bytes_like::Bytes(bytes), list, map,
                unit: (), unit_struct: Unit, wrapper: Wrapper(wrapper), pair, shown: Shown(shown),
            };
            prop_assert_eq!(ours(&many), postcards(&many));
        }
    }

    #[test]
    fn a_sequence_of_unknown_length_is_refused_as_postcard_refuses_it() {
        struct Unknown;
        impl Serialize for Unknown {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                s.serialize_seq(None)?.end()
            }
        }
        assert_eq!(write(&Unknown, &mut Vec::new()), Err(Error::SerializeSeqLengthUnknown));
        assert_eq!(postcard::to_allocvec(&Unknown), Err(Error::SerializeSeqLengthUnknown));
    }

    #[test]
    fn a_fixed_buffer_fails_when_full_and_holds_what_fits() {
        let mut buffer = [0u8; 4];
        let mut fixed = Fixed { buffer: &mut buffer, len: 0 };
        assert_eq!(write(&300u64, &mut fixed), Ok(()));
        assert_eq!(fixed.len, 2);
        assert_eq!(write(&"long", &mut fixed), Err(Error::SerializeBufferFull));
        assert_eq!(&buffer[..2], &postcards(&300u64)[..]);
    }
}
