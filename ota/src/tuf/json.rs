//! A strict JSON reader and the canonical JSON writer that TUF signatures are made over.
//!
//! The reader keeps object members in document order (TUF uses the first listed hash of
//! a target for consistent-snapshot file names), rejects duplicate member names (two
//! readers could otherwise disagree on what was signed), rejects non-integer numbers
//! (canonical JSON cannot encode them, so no signer could have signed them), bounds the
//! nesting depth, and reports the byte offset of every error.
//!
//! The writer produces OLPC canonical JSON as securesystemslib encodes it: no
//! whitespace, members sorted by name (code point order), strings quoted with only `"`
//! and `\` escaped, integers in decimal, UTF-8 output.

use std::fmt::Write as _;

/// Deepest nesting accepted; TUF metadata needs about six levels.
pub const MAX_DEPTH: usize = 64;

/// A parsed JSON value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// An integer; TUF metadata has no other numbers.
    Int(i64),
    /// A string.
    Str(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, members in document order, names unique.
    Object(Vec<(String, Json)>),
}

/// Why a document is not acceptable JSON, with the byte offset where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON at byte {offset}: {reason}")]
pub struct JsonError {
    /// Byte offset into the document.
    pub offset: usize,
    /// What was wrong there.
    pub reason: String,
}

impl Json {
    /// Parses one JSON document (surrounding whitespace allowed, nothing else after it).
    pub fn parse(bytes: &[u8]) -> Result<Json, JsonError> {
        let mut p = Parser { b: bytes, i: 0 };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.i != bytes.len() {
            return Err(p.err("trailing data after the document"));
        }
        Ok(v)
    }

    /// The member `name` of an object, if this is an object that has it.
    pub fn get(&self, name: &str) -> Option<&Json> {
        match self {
            Json::Object(m) => m.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Int(_) => "integer",
            Json::Str(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// The canonical JSON encoding of this value.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = String::new();
        self.write_canonical(&mut out);
        out.into_bytes()
    }

    fn write_canonical(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(true) => out.push_str("true"),
            Json::Bool(false) => out.push_str("false"),
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Str(s) => write_canonical_str(s, out),
            Json::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_canonical(out);
                }
                out.push(']');
            }
            Json::Object(members) => {
                let mut sorted: Vec<&(String, Json)> = members.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                out.push('{');
                for (i, (k, v)) in sorted.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_canonical_str(k, out);
                    out.push(':');
                    v.write_canonical(out);
                }
                out.push('}');
            }
        }
    }
}

impl From<&Json> for serde_json::Value {
    /// For reading `custom` target metadata with serde (member order is not kept).
    fn from(v: &Json) -> Self {
        match v {
            Json::Null => serde_json::Value::Null,
            Json::Bool(b) => serde_json::Value::Bool(*b),
            Json::Int(n) => serde_json::Value::from(*n),
            Json::Str(s) => serde_json::Value::String(s.clone()),
            Json::Array(a) => serde_json::Value::Array(a.iter().map(Into::into).collect()),
            Json::Object(m) => serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), v.into())).collect()),
        }
    }
}

fn write_canonical_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, reason: &str) -> JsonError {
        JsonError { offset: self.i, reason: reason.to_string() }
    }

    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.i) {
            if matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn lit(&mut self, word: &[u8], v: Json) -> Result<Json, JsonError> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("unknown literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting deeper than the limit"));
        }
        match self.b.get(self.i) {
            None => Err(self.err("unexpected end of document")),
            Some(b'n') => self.lit(b"null", Json::Null),
            Some(b't') => self.lit(b"true", Json::Bool(true)),
            Some(b'f') => self.lit(b"false", Json::Bool(false)),
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b']') {
                    self.i += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    self.ws();
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b']') => {
                            self.i += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return Err(self.err("expected ',' or ']' in array")),
                    }
                }
            }
            Some(b'{') => {
                self.i += 1;
                let mut members: Vec<(String, Json)> = Vec::new();
                self.ws();
                if self.b.get(self.i) == Some(&b'}') {
                    self.i += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    self.ws();
                    if self.b.get(self.i) != Some(&b'"') {
                        return Err(self.err("expected a member name"));
                    }
                    let at = self.i;
                    let k = self.string()?;
                    if members.iter().any(|(m, _)| *m == k) {
                        return Err(JsonError {
                            offset: at,
                            reason: format!("duplicate member name {k:?}"),
                        });
                    }
                    self.ws();
                    if self.b.get(self.i) != Some(&b':') {
                        return Err(self.err("expected ':' after member name"));
                    }
                    self.i += 1;
                    self.ws();
                    let v = self.value(depth + 1)?;
                    members.push((k, v));
                    self.ws();
                    match self.b.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {
                            self.i += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => return Err(self.err("expected ',' or '}' in object")),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.i;
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        let digits_start = self.i;
        while matches!(self.b.get(self.i), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        if self.i == digits_start {
            return Err(self.err("expected digits"));
        }
        if self.b[digits_start] == b'0' && self.i - digits_start > 1 {
            return Err(JsonError { offset: start, reason: "leading zero in number".into() });
        }
        if matches!(self.b.get(self.i), Some(b'.' | b'e' | b'E')) {
            return Err(JsonError {
                offset: start,
                reason: "non-integer number (canonical JSON has integers only)".into(),
            });
        }
        // Only ASCII digits and '-' were consumed.
        let text = std::str::from_utf8(&self.b[start..self.i]).unwrap_or("");
        text.parse::<i64>()
            .map(Json::Int)
            .map_err(|_| JsonError { offset: start, reason: "integer out of range".into() })
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let s = self.b.get(self.i..self.i + 4).ok_or_else(|| self.err("short \\u escape"))?;
        let mut v = 0u32;
        for &c in s {
            let d = (c as char).to_digit(16).ok_or_else(|| self.err("bad \\u escape"))?;
            v = v * 16 + d;
        }
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.i += 1; // opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.b.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            match c {
                b'"' => {
                    self.i += 1;
                    break;
                }
                b'\\' => {
                    self.i += 1;
                    let Some(&e) = self.b.get(self.i) else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return Err(self.err("lone high surrogate"));
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(self.err("bad low surrogate"));
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            char::from_u32(cp).ok_or_else(|| self.err("invalid code point"))?
                        }
                        _ => return Err(self.err("unknown escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(self.err("control character in string")),
                _ => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| self.err("string is not valid UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_and_escapes_minimally() {
        let v = Json::parse(br#" { "b": [1, -2, true, null], "a": "q\"\\\u00e9\n" } "#).unwrap();
        assert_eq!(
            String::from_utf8(v.canonical()).unwrap(),
            "{\"a\":\"q\\\"\\\\\u{e9}\n\",\"b\":[1,-2,true,null]}"
        );
    }

    #[test]
    fn rejects_duplicates_floats_depth_and_trailing() {
        assert!(Json::parse(br#"{"a":1,"a":2}"#).unwrap_err().reason.contains("duplicate"));
        assert!(Json::parse(b"1.5").unwrap_err().reason.contains("non-integer"));
        assert!(Json::parse(b"1e3").is_err());
        assert!(Json::parse(b"{} x").unwrap_err().reason.contains("trailing"));
        let deep = "[".repeat(MAX_DEPTH + 2);
        assert!(Json::parse(deep.as_bytes()).unwrap_err().reason.contains("nesting"));
        assert_eq!(Json::parse(b"\"\\ud83d\\ude00\"").unwrap(), Json::Str("\u{1F600}".into()));
        assert!(Json::parse(b"\"\\ud83d\"").is_err());
        assert!(Json::parse(b"01").is_err());
    }
}
