//! The serde machinery behind the wire types: zero-copy strings, kept unknown fields, and the
//! `wire_struct!` macro that derives both directions for a struct of known fields plus `extra`.
//!
//! serde's `flatten` would keep unknown fields too, but it buffers every object into an
//! intermediate tree and cannot hold borrowed raw JSON; parsing straight into borrowed fields
//! is what lets a receiver parse a megabyte of events in about a millisecond.

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

/// Fields of an object that this version of the types does not know, kept as raw JSON in arrival
/// order so that they are re-serialized unchanged (forward compatibility within schema v1).
#[derive(Debug, Clone, Default)]
pub struct Extra<'a>(pub Vec<(Cow<'a, str>, Cow<'a, RawValue>)>);

impl PartialEq for Extra<'_> {
    /// Same names with the same JSON text, in the same order.
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|((ka, va), (kb, vb))| ka == kb && va.get() == vb.get())
    }
}

impl<'a> Extra<'a> {
    /// Whether there are no unknown fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The raw JSON of the unknown field `name`, if present.
    pub fn get(&self, name: &str) -> Option<&RawValue> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| &**v)
    }

    /// Adds an unknown field (used by producers that forward fields they do not model).
    pub fn push(&mut self, name: impl Into<Cow<'a, str>>, value: Box<RawValue>) {
        self.0.push((name.into(), Cow::Owned(value)));
    }
}

/// Turns a borrowed wire value into one that owns its data.
pub trait IntoOwned {
    /// The same type with the `'static` lifetime.
    type Owned;
    /// Copies whatever is still borrowed.
    fn into_owned(self) -> Self::Owned;
}

impl IntoOwned for Cow<'_, str> {
    type Owned = Cow<'static, str>;
    fn into_owned(self) -> Cow<'static, str> {
        Cow::Owned(Cow::into_owned(self))
    }
}

impl IntoOwned for i64 {
    type Owned = i64;
    fn into_owned(self) -> i64 {
        self
    }
}

impl IntoOwned for u64 {
    type Owned = u64;
    fn into_owned(self) -> u64 {
        self
    }
}

impl IntoOwned for Extra<'_> {
    type Owned = Extra<'static>;
    fn into_owned(self) -> Extra<'static> {
        Extra(
            self.0
                .into_iter()
                .map(|(k, v)| (IntoOwned::into_owned(k), Cow::Owned(Cow::into_owned(v))))
                .collect(),
        )
    }
}

impl<T: IntoOwned> IntoOwned for Vec<T> {
    type Owned = Vec<T::Owned>;
    fn into_owned(self) -> Self::Owned {
        self.into_iter().map(IntoOwned::into_owned).collect()
    }
}

/// How one field's value is read: strings borrow from the input when they hold no escapes.
pub(crate) trait WireValue<'de>: Sized {
    fn deserialize_wire<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// `DeserializeSeed` adapter so a `MapAccess` can read a [`WireValue`].
pub(crate) struct Seed<T>(PhantomData<T>);

impl<T> Seed<T> {
    pub(crate) fn new() -> Self {
        Self(PhantomData)
    }
}

impl<'de, T: WireValue<'de>> DeserializeSeed<'de> for Seed<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize_wire(d)
    }
}

struct CowStrVisitor;

impl<'de> Visitor<'de> for CowStrVisitor {
    type Value = Cow<'de, str>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

impl<'de> WireValue<'de> for Cow<'de, str> {
    fn deserialize_wire<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CowStrVisitor)
    }
}

impl<'de> WireValue<'de> for i64 {
    fn deserialize_wire<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

impl<'de> WireValue<'de> for u64 {
    fn deserialize_wire<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::Deserialize::deserialize(d)
    }
}

/// Reads the next key of a map, borrowing it when possible.
pub(crate) fn next_key<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Option<Cow<'de, str>>, A::Error> {
    map.next_key_seed(Seed::<Cow<'de, str>>::new())
}

/// Reads an unknown field's value as raw JSON.
pub(crate) fn raw_value<'de, A: MapAccess<'de>>(
    map: &mut A,
) -> Result<Cow<'de, RawValue>, A::Error> {
    // Borrowed when the input is a borrowed slice or str (the case on every hot path); owned
    // when the deserializer cannot lend (for example from a `serde_json::Value`).
    struct RawSeed;
    impl<'de> DeserializeSeed<'de> for RawSeed {
        type Value = Cow<'de, RawValue>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            <&'de RawValue as serde::Deserialize>::deserialize(d).map(Cow::Borrowed)
        }
    }
    map.next_value_seed(RawSeed)
}

pub(crate) fn serialize_extra<M: SerializeMap>(
    map: &mut M,
    extra: &Extra<'_>,
) -> Result<(), M::Error> {
    for (k, v) in &extra.0 {
        map.serialize_entry(k, &**v)?;
    }
    Ok(())
}

/// Counts the fields a serialized struct will have.
pub(crate) fn field_count(known: usize, extra: &Extra<'_>) -> Option<usize> {
    Some(known + extra.0.len())
}

/// Defines a wire struct: the listed known fields (all required), `extra` for unknown ones, a
/// `Deserialize` impl that rejects duplicate known fields, a `Serialize` impl that writes known
/// fields in declaration order and then the unknown ones, and `IntoOwned`.
macro_rules! wire_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident<$lt:lifetime> {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
        $( private { $( $(#[$pmeta:meta])* $pfield:ident : $pty:ty = $pinit:expr, )* } )?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name<$lt> {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// Fields this version does not know, kept verbatim and re-serialized.
            pub extra: $crate::wire::Extra<$lt>,
            $( $( $(#[$pmeta])* $pfield: $pty, )* )?
        }

        impl<$lt> serde::Deserialize<$lt> for $name<$lt> {
            fn deserialize<D: serde::Deserializer<$lt>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<$lt> serde::de::Visitor<$lt> for V {
                    type Value = $name<$lt>;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a ", stringify!($name), " object"))
                    }
                    fn visit_map<A: serde::de::MapAccess<$lt>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                        $( let mut $field: Option<$ty> = None; )*
                        let mut extra = $crate::wire::Extra::default();
                        while let Some(key) = $crate::wire::next_key(&mut map)? {
                            match &*key {
                                $( stringify!($field) => {
                                    if $field.is_some() {
                                        return Err(serde::de::Error::duplicate_field(stringify!($field)));
                                    }
                                    $field = Some(map.next_value_seed($crate::wire::Seed::<$ty>::new())?);
                                } )*
                                _ => {
                                    let value = $crate::wire::raw_value(&mut map)?;
                                    extra.0.push((key, value));
                                }
                            }
                        }
                        Ok($name {
                            $( $field: $field.ok_or_else(|| serde::de::Error::missing_field(stringify!($field)))?, )*
                            extra,
                            $( $( $pfield: $pinit, )* )?
                        })
                    }
                }
                d.deserialize_map(V)
            }
        }

        impl<$lt> $crate::wire::WireValue<$lt> for $name<$lt> {
            fn deserialize_wire<D: serde::Deserializer<$lt>>(d: D) -> Result<Self, D::Error> {
                <$name<$lt> as serde::Deserialize<$lt>>::deserialize(d)
            }
        }

        impl serde::Serialize for $name<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                const KNOWN: usize = [$( stringify!($field) ),*].len();
                let mut map = s.serialize_map($crate::wire::field_count(KNOWN, &self.extra))?;
                $( map.serialize_entry(stringify!($field), &self.$field)?; )*
                $crate::wire::serialize_extra(&mut map, &self.extra)?;
                map.end()
            }
        }

        impl $crate::wire::IntoOwned for $name<'_> {
            type Owned = $name<'static>;
            fn into_owned(self) -> $name<'static> {
                $name {
                    $( $field: $crate::wire::IntoOwned::into_owned(self.$field), )*
                    extra: $crate::wire::IntoOwned::into_owned(self.extra),
                    $( $( $pfield: $crate::wire::IntoOwned::into_owned(self.$pfield), )* )?
                }
            }
        }
    };
}

pub(crate) use wire_struct;
