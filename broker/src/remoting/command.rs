//! `RemotingCommand`: one request or response, and its two header encodings (JSON and ROCKETMQ
//! binary). Frames are cut by [`super::codec`]; this file only turns header bytes into a command
//! and back.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde::de::{self, Visitor};

use super::Error;

/// The `version` every 4.9.4 program puts in its requests and responses (`MQVersion.V4_9_4`).
pub const VERSION_4_9_4: i32 = 401;

/// Flag bit 0: this command is a response.
pub const FLAG_RESPONSE: i32 = 1;
/// Flag bit 1: this request expects no response.
pub const FLAG_ONEWAY: i32 = 2;

/// How the header of a frame is encoded (top byte of the second frame word).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerializeType {
    #[default]
    Json,
    RocketMq,
}

impl SerializeType {
    fn code(self) -> u8 {
        match self {
            SerializeType::Json => 0,
            SerializeType::RocketMq => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            SerializeType::Json => "JSON",
            SerializeType::RocketMq => "ROCKETMQ",
        }
    }
}

/// Names of RocketMQ's `LanguageCode` values, indexed by their code byte.
const LANGUAGE_NAMES: [&str; 14] = [
    "JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY", "OTHER", "HTTP", "GO", "PHP", "OMS", "RUST",
    "NODE_JS",
];
const LANGUAGE_OTHER: u8 = 7;
const LANGUAGE_JAVA: u8 = 0;

/// Custom header fields: a short list of string pairs (numbers travel as text, as Java sends them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtFields(Vec<(String, String)>);

impl ExtFields {
    pub fn new() -> ExtFields {
        ExtFields(Vec::new())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Sets `key` (replacing an existing value).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// One remoting request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemotingCommand {
    pub code: i32,
    /// The sender's `LanguageCode` byte (7 = OTHER for names we do not know).
    pub language: u8,
    pub version: i32,
    pub opaque: i32,
    pub flag: i32,
    pub remark: Option<String>,
    pub ext_fields: ExtFields,
    pub serialize_type: SerializeType,
    pub body: Bytes,
}

impl RemotingCommand {
    /// A request with `code`; the client fills in `opaque`.
    pub fn request(code: i32) -> RemotingCommand {
        RemotingCommand {
            code,
            language: LANGUAGE_JAVA,
            version: VERSION_4_9_4,
            opaque: 0,
            flag: 0,
            remark: None,
            ext_fields: ExtFields::new(),
            serialize_type: SerializeType::Json,
            body: Bytes::new(),
        }
    }

    /// A response with `code`; the server fills in `opaque` and the encoding of the request.
    pub fn response(code: i32) -> RemotingCommand {
        RemotingCommand { flag: FLAG_RESPONSE, ..RemotingCommand::request(code) }
    }

    /// A response with `code` and an explanation in `remark`.
    pub fn error(code: i32, remark: impl Into<String>) -> RemotingCommand {
        RemotingCommand { remark: Some(remark.into()), ..RemotingCommand::response(code) }
    }

    pub fn with_field(mut self, key: &str, value: impl ToString) -> RemotingCommand {
        self.ext_fields.insert(key, value.to_string());
        self
    }

    pub fn with_body(mut self, body: impl Into<Bytes>) -> RemotingCommand {
        self.body = body.into();
        self
    }

    pub fn with_remark(mut self, remark: impl Into<String>) -> RemotingCommand {
        self.remark = Some(remark.into());
        self
    }

    pub fn is_response(&self) -> bool {
        self.flag & FLAG_RESPONSE != 0
    }

    pub fn is_oneway(&self) -> bool {
        self.flag & FLAG_ONEWAY != 0
    }

    pub fn mark_oneway(&mut self) {
        self.flag |= FLAG_ONEWAY;
    }

    pub fn field(&self, key: &str) -> Option<&str> {
        self.ext_fields.get(key)
    }

    /// The sender's language by name (`"JAVA"`, `"RUST"`, ...).
    pub fn language_name(&self) -> &'static str {
        LANGUAGE_NAMES.get(self.language as usize).copied().unwrap_or("OTHER")
    }

    /// Encodes the header in this command's serialize type.
    pub fn encode_header(&self) -> Vec<u8> {
        match self.serialize_type {
            SerializeType::Json => self.encode_json_header(),
            SerializeType::RocketMq => self.encode_binary_header(),
        }
    }

    /// Writes the whole frame: length, header-length word, header, body.
    pub fn encode_frame(&self, out: &mut BytesMut) {
        let header = self.encode_header();
        out.reserve(8 + header.len() + self.body.len());
        out.put_u32((4 + header.len() + self.body.len()) as u32);
        out.put_u32((u32::from(self.serialize_type.code()) << 24) | header.len() as u32);
        out.put_slice(&header);
        out.put_slice(&self.body);
    }

    /// The frame without its body: callers that hold the body as separate `Bytes` write both.
    pub fn encode_frame_head(&self) -> Bytes {
        let header = self.encode_header();
        let mut out = BytesMut::with_capacity(8 + header.len());
        out.put_u32((4 + header.len() + self.body.len()) as u32);
        out.put_u32((u32::from(self.serialize_type.code()) << 24) | header.len() as u32);
        out.put_slice(&header);
        out.freeze()
    }

    /// fastjson's shape: keys in alphabetical order, null members left out, every extFields value
    /// a string. The language is always written as `JAVA` (older Java peers reject names they do
    /// not know, such as `RUST`).
    fn encode_json_header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.ext_fields.len() * 32);
        out.extend_from_slice(b"{\"code\":");
        out.extend_from_slice(self.code.to_string().as_bytes());
        if !self.ext_fields.is_empty() {
            out.extend_from_slice(b",\"extFields\":{");
            let mut fields: Vec<&(String, String)> = self.ext_fields.0.iter().collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            for (i, (k, v)) in fields.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(&mut out, k);
                out.push(b':');
                write_json_string(&mut out, v);
            }
            out.push(b'}');
        }
        out.extend_from_slice(b",\"flag\":");
        out.extend_from_slice(self.flag.to_string().as_bytes());
        out.extend_from_slice(b",\"language\":\"JAVA\",\"opaque\":");
        out.extend_from_slice(self.opaque.to_string().as_bytes());
        if let Some(remark) = &self.remark {
            out.extend_from_slice(b",\"remark\":");
            write_json_string(&mut out, remark);
        }
        out.extend_from_slice(b",\"serializeTypeCurrentRPC\":\"");
        out.extend_from_slice(self.serialize_type.name().as_bytes());
        out.extend_from_slice(b"\",\"version\":");
        out.extend_from_slice(self.version.to_string().as_bytes());
        out.push(b'}');
        out
    }

    fn encode_binary_header(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.ext_fields.len() * 32);
        out.put_i16(self.code as i16);
        out.put_u8(self.language);
        out.put_i16(self.version as i16);
        out.put_i32(self.opaque);
        out.put_i32(self.flag);
        match &self.remark {
            Some(r) => {
                out.put_i32(r.len() as i32);
                out.put_slice(r.as_bytes());
            }
            None => out.put_i32(0),
        }
        let ext_len: usize = self.ext_fields.iter().map(|(k, v)| 2 + k.len() + 4 + v.len()).sum();
        out.put_i32(ext_len as i32);
        for (k, v) in self.ext_fields.iter() {
            out.put_i16(k.len() as i16);
            out.put_slice(k.as_bytes());
            out.put_i32(v.len() as i32);
            out.put_slice(v.as_bytes());
        }
        out
    }

    /// Decodes a header of `serialize_type`; the body is attached by the caller.
    pub fn decode_header(serialize_type: SerializeType, header: &[u8]) -> Result<RemotingCommand, Error> {
        match serialize_type {
            SerializeType::Json => decode_json_header(header),
            SerializeType::RocketMq => decode_binary_header(header),
        }
    }

    pub(crate) fn serialize_type_from_byte(b: u8) -> Result<SerializeType, Error> {
        match b {
            0 => Ok(SerializeType::Json),
            1 => Ok(SerializeType::RocketMq),
            other => Err(Error::BadHeader(format!("unknown serialize type {other}"))),
        }
    }
}

fn write_json_string(out: &mut Vec<u8>, s: &str) {
    // A &str always serialises; writing into a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).unwrap_or_default();
}

/// An extFields value: Java sends strings, ali-ons sends numbers and booleans too.
struct LooseString(String);

impl<'de> Deserialize<'de> for LooseString {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LooseString;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LooseString, E> {
                Ok(LooseString(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<LooseString, E> {
                Ok(LooseString(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LooseString, E> {
                Ok(LooseString(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LooseString, E> {
                Ok(LooseString(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<LooseString, E> {
                Ok(LooseString(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<LooseString, E> {
                Ok(LooseString(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// `language` may be a name (JSON) or, from odd peers, a number.
struct Language(u8);

impl<'de> Deserialize<'de> for Language {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Language;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a language name or code")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Language, E> {
                let code = LANGUAGE_NAMES.iter().position(|n| *n == v).map(|p| p as u8).unwrap_or(LANGUAGE_OTHER);
                Ok(Language(code))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Language, E> {
                Ok(Language(u8::try_from(v).unwrap_or(LANGUAGE_OTHER)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Language, E> {
                Ok(Language(u8::try_from(v).unwrap_or(LANGUAGE_OTHER)))
            }
        }
        d.deserialize_any(V)
    }
}

fn decode_json_header(header: &[u8]) -> Result<RemotingCommand, Error> {
    // extFields is an object; read it as a map into pairs without a HashMap.
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Raw {
        code: i32,
        #[serde(default)]
        language: Option<Language>,
        #[serde(default)]
        version: Option<i32>,
        #[serde(default)]
        opaque: i32,
        #[serde(default)]
        flag: i32,
        #[serde(default)]
        remark: Option<String>,
        #[serde(default, deserialize_with = "ext_map")]
        ext_fields: Option<Vec<(String, Option<LooseString>)>>,
    }
    let raw: Raw = serde_json::from_slice(header).map_err(|e| Error::BadHeader(format!("JSON header: {e}")))?;
    let h = raw;
    let mut ext = ExtFields::new();
    for (k, v) in h.ext_fields.unwrap_or_default() {
        if let Some(v) = v {
            ext.insert(k, v.0);
        }
    }
    Ok(RemotingCommand {
        code: h.code,
        language: h.language.map(|l| l.0).unwrap_or(LANGUAGE_OTHER),
        version: h.version.unwrap_or(0),
        opaque: h.opaque,
        flag: h.flag,
        remark: h.remark,
        ext_fields: ext,
        serialize_type: SerializeType::Json,
        body: Bytes::new(),
    })
}

#[allow(clippy::type_complexity, reason = "serde deserialize_with signature")]
fn ext_map<'de, D: de::Deserializer<'de>>(d: D) -> Result<Option<Vec<(String, Option<LooseString>)>>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<Vec<(String, Option<LooseString>)>>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object of header fields")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8).min(64));
            while let Some((k, v)) = map.next_entry::<String, Option<LooseString>>()? {
                out.push((k, v));
            }
            Ok(Some(out))
        }
    }
    d.deserialize_any(V)
}

/// Reads the ROCKETMQ binary header, checking every length against what is left.
fn decode_binary_header(header: &[u8]) -> Result<RemotingCommand, Error> {
    let mut r = Reader { buf: header };
    let code = r.i16()? as i32;
    let language = r.u8()?;
    let version = r.i16()? as i32;
    let opaque = r.i32()?;
    let flag = r.i32()?;
    let remark_len = r.len_i32()?;
    let remark = if remark_len > 0 { Some(r.utf8(remark_len)?) } else { None };
    let ext_len = r.len_i32()?;
    let mut ext_bytes = Reader { buf: r.take(ext_len)? };
    let mut ext = ExtFields::new();
    while !ext_bytes.buf.is_empty() {
        let klen = ext_bytes.i16()?;
        let klen = usize::try_from(klen).map_err(|_| Error::BadHeader("negative key length".into()))?;
        let key = ext_bytes.utf8(klen)?;
        let vlen = ext_bytes.len_i32()?;
        let value = ext_bytes.utf8(vlen)?;
        ext.insert(key, value);
    }
    Ok(RemotingCommand {
        code,
        language,
        version,
        opaque,
        flag,
        remark,
        ext_fields: ext,
        serialize_type: SerializeType::RocketMq,
        body: Bytes::new(),
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if n > self.buf.len() {
            return Err(Error::BadHeader(format!("field of {n} bytes runs past the header ({} left)", self.buf.len())));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, Error> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, Error> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn len_i32(&mut self) -> Result<usize, Error> {
        let n = self.i32()?;
        usize::try_from(n).map_err(|_| Error::BadHeader(format!("negative length {n}")))
    }
    fn utf8(&mut self, n: usize) -> Result<String, Error> {
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| Error::BadHeader("header text is not UTF-8".into()))
    }
}
