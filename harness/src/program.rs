//! A program to start: the argv template, environment and files of a node (`[start]`) or
//! of an auxiliary process (`[[aux]]`), one struct shared by both tables.
//!
//! Both tables hold the program's keys (`program`, `args`, `env`, `files`) beside keys of
//! their own (`[start]`: `peer_format`, `peer_separator`; `[[aux]]`: `name`, `count`,
//! `port`). [`WithProgram<T>`] is such a table: its deserializer takes the program's keys
//! itself and hands every other key to `T`'s derived deserializer, so each key is
//! declared once, a value of the wrong type is reported at its own line, and an unknown
//! key is refused at its line with a message naming it and every accepted key.
//! (`#[serde(flatten)]` would split the table too, but cannot refuse unknown keys.)

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::nodes::{Launch, NodeInfo};
use crate::template::{NODE_PLACEHOLDERS, check_placeholders, render};

/// A program to start, its placeholders unrendered.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Program {
    pub program: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Files rendered into the process's data directory before its first start (name ->
    /// template), kept across restarts.
    pub files: BTreeMap<String, String>,
}

/// The program's keys, in the order error messages list them.
const KEYS: [&str; 4] = ["program", "args", "env", "files"];

impl Program {
    /// Checks what the TOML types cannot: a program, known placeholders, plain file
    /// names. `label` names the table in messages (`start`, `aux.sentinel`). On error
    /// returns text to locate in the spec and a one-line message.
    pub fn check(&self, label: &str) -> Result<(), (Option<String>, String)> {
        if self.program.trim().is_empty() {
            return Err((
                Some("program".into()),
                format!("{label}.program must not be empty"),
            ));
        }
        let templates = std::iter::once(("program", &self.program))
            .chain(self.args.iter().map(|a| ("args", a)))
            .chain(self.env.values().map(|v| ("env", v)))
            .chain(self.files.values().map(|v| ("files", v)));
        for (field, t) in templates {
            check_placeholders(t, &NODE_PLACEHOLDERS).map_err(|p| {
                (
                    Some(t.clone()),
                    format!(
                        "{label}.{field}: unknown placeholder {{{p}}} (known: {})",
                        NODE_PLACEHOLDERS.join(", ")
                    ),
                )
            })?;
        }
        for name in self.files.keys() {
            check_file_name(name)
                .map_err(|m| (Some(name.clone()), format!("{label}.files: {m}")))?;
        }
        Ok(())
    }

    /// The launch command of process `me`, every template rendered with `vars`.
    pub fn launch(&self, me: &NodeInfo, vars: &[(&str, String)]) -> Launch {
        Launch {
            program: render(&self.program, vars).into(),
            args: self.args.iter().map(|a| render(a, vars)).collect(),
            env: self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), render(v, vars)))
                .collect(),
            files: self
                .files
                .iter()
                .map(|(name, t)| (me.data_dir().join(name), render(t, vars)))
                .collect(),
        }
    }
}

/// A file name for `files`: one plain path component.
fn check_file_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "file name {name:?} must be a plain name inside the data directory"
        ))
    }
}

/// A table holding a [`Program`]'s keys beside keys of its own, `T` (a struct deriving
/// `Deserialize`). Serialized flat, as written.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WithProgram<T> {
    #[serde(flatten)]
    pub run: Program,
    #[serde(flatten)]
    pub own: T,
}

impl<T> std::ops::Deref for WithProgram<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.own
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for WithProgram<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(TableVisitor(PhantomData))
    }
}

struct TableVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for TableVisitor<T> {
    type Value = WithProgram<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a table")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let mut parts = Parts::default();
        let own = T::deserialize(OwnKeys {
            map,
            parts: &mut parts,
        })?;
        Ok(WithProgram {
            run: parts.finish()?,
            own,
        })
    }
}

/// The program's keys read so far.
#[derive(Default)]
struct Parts {
    program: Option<String>,
    args: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    files: Option<BTreeMap<String, String>>,
}

impl Parts {
    /// Reads the value of the program's key `key` (one of [`KEYS`]).
    fn read<'de, A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "program" => self.program = Some(map.next_value()?),
            "args" => self.args = Some(map.next_value()?),
            "env" => self.env = Some(map.next_value()?),
            _ => self.files = Some(map.next_value()?),
        }
        Ok(())
    }

    fn finish<E: de::Error>(self) -> Result<Program, E> {
        Ok(Program {
            program: self.program.ok_or_else(|| E::missing_field("program"))?,
            args: self.args.unwrap_or_default(),
            env: self.env.unwrap_or_default(),
            files: self.files.unwrap_or_default(),
        })
    }
}

/// The table as `T` sees it: every key but the program's.
struct OwnKeys<'a, A> {
    map: A,
    parts: &'a mut Parts,
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for OwnKeys<'_, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_map(OwnMap {
            map: self.map,
            parts: self.parts,
            own: None,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(OwnMap {
            map: self.map,
            parts: self.parts,
            own: Some(fields),
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
        byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
        identifier ignored_any
    }
}

struct OwnMap<'a, A> {
    map: A,
    parts: &'a mut Parts,
    /// `T`'s keys (`None`: `T` takes any key).
    own: Option<&'static [&'static str]>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for OwnMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut seed = Some(seed);
        loop {
            let key = self.map.next_key_seed(KeySeed {
                seed: &mut seed,
                own: self.own,
            })?;
            match key {
                None => return Ok(None),
                Some(Key::Own(k)) => return Ok(Some(k)),
                Some(Key::Program(name)) => self.parts.read(name, &mut self.map)?,
            }
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

enum Key<K> {
    Program(&'static str),
    Own(K),
}

/// Reads one key: the program's, or `T`'s (then handed to `T`'s key seed), or unknown.
struct KeySeed<'s, K> {
    seed: &'s mut Option<K>,
    own: Option<&'static [&'static str]>,
}

impl<'de, K: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<'_, K> {
    type Value = Key<K::Value>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de, K: DeserializeSeed<'de>> Visitor<'de> for KeySeed<'_, K> {
    type Value = Key<K::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        if let Some(k) = KEYS.iter().find(|k| **k == v) {
            return Ok(Key::Program(k));
        }
        if let Some(own) = self.own
            && !own.contains(&v)
        {
            let all: Vec<String> = KEYS.iter().chain(own).map(|k| format!("`{k}`")).collect();
            return Err(E::custom(format!(
                "unknown field `{v}`, expected one of {}",
                all.join(", ")
            )));
        }
        match self.seed.take() {
            Some(seed) => seed.deserialize(v.into_deserializer()).map(Key::Own),
            None => Err(E::custom("a key read twice (internal error)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Own {
        name: String,
        #[serde(default)]
        count: u8,
    }

    fn parse(text: &str) -> Result<WithProgram<Own>, String> {
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start].matches('\n').count() + 1)
                .unwrap_or(0);
            format!("{line}: {}", e.message())
        })
    }

    #[test]
    fn program_keys_and_own_keys_split_in_any_order() {
        let t = parse(
            "args = [\"-v\", \"{id}\"]\nname = \"x\"\nprogram = \"p\"\ncount = 3\n[env]\nA = \"1\"\n[files]\n\"a.conf\" = \"port {client_port}\"\n",
        )
        .unwrap();
        assert_eq!(t.run.program, "p");
        assert_eq!(t.run.args, ["-v", "{id}"]);
        assert_eq!(t.run.env["A"], "1");
        assert_eq!(t.run.files["a.conf"], "port {client_port}");
        assert_eq!(
            t.own,
            Own {
                name: "x".into(),
                count: 3
            }
        );
        assert_eq!(t.name, "x");
        // Serialized flat, as written.
        let back: WithProgram<Own> = toml::from_str(&toml::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        let only = parse("program = \"p\"\nname = \"y\"\n").unwrap();
        assert!(only.run.args.is_empty() && only.run.files.is_empty() && only.count == 0);
    }

    #[test]
    fn unknown_keys_wrong_types_and_missing_keys_are_refused_at_their_line() {
        assert_eq!(
            parse("program = \"p\"\nname = \"x\"\nprogam = \"q\"\n").unwrap_err(),
            "3: unknown field `progam`, expected one of `program`, `args`, `env`, `files`, `name`, `count`"
        );
        let e = parse("program = \"p\"\nname = \"x\"\nargs = \"-v\"\n").unwrap_err();
        assert!(
            e.starts_with("3: invalid type: string \"-v\", expected a sequence"),
            "{e}"
        );
        let e = parse("program = \"p\"\nname = \"x\"\n\ncount = 300\n").unwrap_err();
        assert!(e.starts_with("4: "), "{e}");
        let e = parse("name = \"x\"\n").unwrap_err();
        assert!(e.contains("missing field `program`"), "{e}");
        let e = parse("program = \"p\"\n").unwrap_err();
        assert!(e.contains("missing field `name`"), "{e}");
    }

    #[test]
    fn checks_name_the_table_and_the_field() {
        let mut p = Program {
            program: "p".into(),
            args: vec!["{data_dir}/x".into()],
            ..Program::default()
        };
        p.check("start").unwrap();
        p.args.push("{primary}".into());
        let (at, msg) = p.check("aux.sentinel").unwrap_err();
        assert_eq!(at.as_deref(), Some("{primary}"));
        assert!(
            msg.starts_with("aux.sentinel.args: unknown placeholder {primary}"),
            "{msg}"
        );
        p.args.pop();
        p.files.insert("../x".into(), String::new());
        assert!(
            p.check("start")
                .unwrap_err()
                .1
                .contains("start.files: file name \"../x\"")
        );
        p.files.clear();
        p.program = " ".into();
        assert_eq!(
            p.check("start").unwrap_err().1,
            "start.program must not be empty"
        );
    }
}
