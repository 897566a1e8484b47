//! How the zome reads its callers' payloads. `#[hdk_extern]` decodes a
//! payload straight into the function's input type and answers a bad one
//! with `Deserialize([222, 0, 21, ...])`, the payload's bytes: useless to a
//! Doorway developer. Every extern here takes [`Checked`] instead, which
//! never fails to decode; the function then refuses a bad payload with the
//! path of the offending field and what was expected.

use hdk::prelude::*;
use serde::de::DeserializeOwned;

/// A zome input decoded as far as it would go: the value, or why not.
#[derive(Debug)]
pub struct Checked<T>(Result<T, String>);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Checked<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Any msgpack value at all (only bytes that are not msgpack fail
        // here), then the input type from it, keeping the path of a failure.
        let value = rmpv::Value::deserialize(d)?;
        Ok(Checked(serde_path_to_error::deserialize(value).map_err(
            |e| {
                let path = e.path().to_string();
                let inner = e.inner().to_string();
                // rmpv wraps every message in the same words.
                let inner = inner
                    .strip_prefix("error while decoding value: ")
                    .unwrap_or(&inner);
                if path == "." {
                    inner.to_string()
                } else {
                    format!("at `{path}`: {inner}")
                }
            },
        )))
    }
}

impl<T> Checked<T> {
    /// The input, or a guest error naming `function` and what is wrong.
    pub fn decode(self, function: &str) -> ExternResult<T> {
        self.0
            .map_err(|e| crate::guest(format!("{function}: invalid input {e}")))
    }
}

/// Declares the zome's externs: each `Marker: name(Wire) -> Out` exports
/// `name`, which decodes its payload as `Wire` through [`Checked`] and calls
/// the Rust function `name` with it (converted by `From`, so a function can
/// take a narrower type than the shapes its callers may send). `Marker` is
/// the function's type in `node_registry_integrity::zome_fns`: the build
/// fails unless it names the same function and answers the same type.
macro_rules! externs {
    ($($marker:ident: $name:ident($input:ty) -> $output:ty;)*) => {
        $(
            const _: () = assert!(
                $crate::input::same_name(
                    <node_registry_integrity::zome_fns::$marker
                        as node_registry_integrity::zome_fns::ZomeFn>::NAME,
                    stringify!($name),
                ),
                concat!("zome_fns::", stringify!($marker), " does not name ", stringify!($name)),
            );
            hdk::prelude::hdi::paste::paste! {
                #[allow(dead_code)]
                fn [<__output_of_ $name>](
                    out: $output,
                ) -> <node_registry_integrity::zome_fns::$marker
                    as node_registry_integrity::zome_fns::ZomeFn>::Output {
                    out
                }
                fn [<__checked_ $name>](
                    input: $crate::input::Checked<$input>,
                ) -> ExternResult<$output> {
                    $name(input.decode(stringify!($name))?.into())
                }
                hdk::prelude::map_extern!(
                    $name,
                    [<__checked_ $name>],
                    $crate::input::Checked<$input>,
                    $output
                );
            }
        )*
    };
}
pub(crate) use externs;

/// Whether two names are the same, at compile time.
pub(crate) const fn same_name(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}
