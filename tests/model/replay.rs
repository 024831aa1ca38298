//! Reads a case back from the way failures print it, to run it again by
//! hand (`MEDIAFS_MODEL_REPLAY=FILE`): the first line may say
//! `wb: true, page: 2`, then one op a line as the trace or the minimal
//! failing case shows it (`#3 ` prefixes and ` -> ...` answers are dropped).

use crate::backend::Call;
use crate::ops::{Case, Op, Path, Remote, P, REMOTE_NAMES};

/// A value in Debug syntax: `Name`, `Name { k: v, .. }`, `Name(v)`, or a word.
#[derive(Debug)]
enum V {
    Word(String),
    Struct(String, Vec<(String, V)>),
    Tuple(String, Vec<V>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A word: anything up to a delimiter (paths like `dir#3/a.png` too), or a quoted string.
    fn word(&mut self) -> Result<String, String> {
        self.ws();
        if self.eat(b'"') {
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i] != b'"' {
                self.i += 1;
            }
            let w = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
            self.i += 1;
            return Ok(w);
        }
        let start = self.i;
        while self.i < self.s.len() && !b"{}(),: ".contains(&self.s[self.i]) {
            self.i += 1;
        }
        if start == self.i {
            return Err(format!("a word expected at {}", self.i));
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    fn value(&mut self) -> Result<V, String> {
        let name = self.word()?;
        if self.eat(b'{') {
            let mut fields = Vec::new();
            while !self.eat(b'}') {
                let k = self.word()?;
                if !self.eat(b':') {
                    return Err(format!("':' expected after {k}"));
                }
                fields.push((k, self.value()?));
                self.eat(b',');
            }
            return Ok(V::Struct(name, fields));
        }
        if self.eat(b'(') {
            let mut items = Vec::new();
            while !self.eat(b')') {
                items.push(self.value()?);
                self.eat(b',');
            }
            return Ok(V::Tuple(name, items));
        }
        Ok(V::Word(name))
    }
}

fn field<'a>(fields: &'a [(String, V)], k: &str) -> Result<&'a V, String> {
    fields
        .iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v)
        .ok_or(format!("field {k} missing"))
}

fn word(v: &V) -> Result<&str, String> {
    match v {
        V::Word(w) => Ok(w),
        other => Err(format!("a word expected, not {other:?}")),
    }
}

fn num<T: std::str::FromStr>(fields: &[(String, V)], k: &str) -> Result<T, String> {
    word(field(fields, k)?)?
        .parse()
        .map_err(|_| format!("{k} is not a number"))
}

fn flag(fields: &[(String, V)], k: &str) -> Result<bool, String> {
    Ok(word(field(fields, k)?)? == "true")
}

/// Pool names are `&'static str` in ops: leaked, for a replay only.
fn leaf(s: &str) -> &'static str {
    REMOTE_NAMES
        .iter()
        .find(|n| **n == s)
        .copied()
        .unwrap_or_else(|| Box::leak(s.to_owned().into_boxed_str()))
}

fn path(fields: &[(String, V)], k: &str) -> Result<Path, String> {
    let w = word(field(fields, k)?)?;
    if let Some(i) = w.strip_prefix("entry#") {
        return Ok(Path::Entry(i.parse().map_err(|_| "entry#N")?));
    }
    if let Some(rest) = w.strip_prefix("dir#") {
        let (i, l) = rest.split_once('/').ok_or("dir#N/leaf")?;
        return Ok(Path::In(i.parse().map_err(|_| "dir#N")?, leaf(l)));
    }
    Ok(Path::At(P(w.split('/').map(str::to_owned).collect())))
}

fn call(name: &str) -> Result<Call, String> {
    Call::ALL
        .iter()
        .find(|c| format!("{c:?}") == name)
        .copied()
        .ok_or(format!("no call {name}"))
}

fn op(v: &V) -> Result<Op, String> {
    let empty = Vec::new();
    let (name, f) = match v {
        V::Word(w) => (w.as_str(), &empty),
        V::Struct(n, f) => (n.as_str(), f),
        V::Tuple(n, items) if n == "Remote" => {
            let [V::Struct(r, f)] = &items[..] else {
                return Err("Remote(..) expected".into());
            };
            let remote = match r.as_str() {
                "Upload" => Remote::Upload {
                    dir: num(f, "dir")?,
                    name: leaf(word(field(f, "name")?)?),
                    len: num(f, "len")?,
                    seed: num(f, "seed")?,
                },
                "Rename" => Remote::Rename {
                    pick: num(f, "pick")?,
                    name: leaf(word(field(f, "name")?)?),
                },
                "Trash" => Remote::Trash {
                    pick: num(f, "pick")?,
                },
                "Cap" => Remote::Cap {
                    max: num(f, "max")?,
                },
                other => return Err(format!("no remote op {other}")),
            };
            return Ok(Op::Remote(remote));
        }
        other => return Err(format!("an op expected, not {other:?}")),
    };
    Ok(match name {
        "WriteFile" => Op::WriteFile {
            path: path(f, "path")?,
            len: num(f, "len")?,
            seed: num(f, "seed")?,
        },
        "Create" => Op::Create {
            path: path(f, "path")?,
            excl: flag(f, "excl")?,
        },
        "OpenWrite" => Op::OpenWrite {
            path: path(f, "path")?,
            trunc: flag(f, "trunc")?,
        },
        "Write" => Op::Write {
            h: num(f, "h")?,
            off: num(f, "off")?,
            len: num(f, "len")?,
            seed: num(f, "seed")?,
        },
        "Flush" => Op::Flush { h: num(f, "h")? },
        "Fsync" => Op::Fsync { h: num(f, "h")? },
        "Close" => Op::Close { h: num(f, "h")? },
        "Read" => Op::Read {
            path: path(f, "path")?,
        },
        "Truncate" => Op::Truncate {
            path: path(f, "path")?,
            len: num(f, "len")?,
        },
        "Rename" => Op::Rename {
            from: path(f, "from")?,
            to: path(f, "to")?,
            noreplace: flag(f, "noreplace")?,
        },
        "Mkdir" => Op::Mkdir {
            path: path(f, "path")?,
        },
        "Rmdir" => Op::Rmdir {
            path: path(f, "path")?,
        },
        "Unlink" => Op::Unlink {
            path: path(f, "path")?,
        },
        "Readdir" => Op::Readdir {
            path: path(f, "path")?,
            page: num(f, "page")?,
            plus: flag(f, "plus")?,
        },
        "Forget" => Op::Forget {
            pick: num(f, "pick")?,
        },
        "ForgetAll" => Op::ForgetAll,
        "Remount" => Op::Remount {
            crash: flag(f, "crash")?,
            wb: flag(f, "wb")?,
        },
        "Advance" => Op::Advance,
        "Arm" => Op::Arm {
            call: call(word(field(f, "call")?)?)?,
            after: flag(f, "after")?,
        },
        "RunPending" => Op::RunPending,
        "RaceUnlink" => Op::RaceUnlink {
            pick: num(f, "pick")?,
        },
        "RaceFsync" => Op::RaceFsync {
            pick: num(f, "pick")?,
            write: flag(f, "write")?,
            len: num(f, "len")?,
            seed: num(f, "seed")?,
        },
        "RaceClose" => Op::RaceClose {
            pick: num(f, "pick")?,
            len: num(f, "len")?,
            seed: num(f, "seed")?,
        },
        other => return Err(format!("no op {other}")),
    })
}

/// A case as `Case`'s Debug prints it (`Case { wb: false, page: 1, ops:
/// [..] }`), as `model.proptest-regressions` keeps it after "shrinks to".
pub fn parse_debug(text: &str) -> Result<Case, String> {
    let text = text.trim();
    let (head, rest) = text.split_once("ops: [").ok_or("no ops: [")?;
    let list = rest
        .trim_end()
        .strip_suffix('}')
        .map(str::trim_end)
        .and_then(|r| r.strip_suffix(']'))
        .ok_or("no closing ] }")?;
    let head = head
        .trim_start_matches("Case {")
        .trim()
        .trim_end_matches(',');
    let mut lines = vec![head.to_owned()];
    // One op a line: split at the commas outside braces and parentheses.
    let (mut depth, mut start) = (0i32, 0);
    let bytes = list.as_bytes();
    for (i, &c) in bytes.iter().enumerate() {
        match c {
            b'{' | b'(' => depth += 1,
            b'}' | b')' => depth -= 1,
            b',' if depth == 0 => {
                lines.push(list[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    lines.push(list[start..].trim().to_owned());
    parse(&lines.join("\n"))
}

/// The shrunk cases `model.proptest-regressions` keeps, after "shrinks to".
/// Its seeds make the same case only while the strategy is unchanged; these
/// are replayed as they were found.
pub fn kept_cases(file: &str) -> Vec<(String, Case)> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("cc "))
        .filter_map(|l| l.split_once("# shrinks to "))
        .map(|(cc, case)| {
            let name = cc
                .trim_start_matches("cc ")
                .trim()
                .chars()
                .take(12)
                .collect();
            let case = parse_debug(case).unwrap_or_else(|e| panic!("cannot read a kept case: {e}"));
            (name, case)
        })
        .collect()
}

/// The case in `text`.
pub fn parse(text: &str) -> Result<Case, String> {
    let mut case = Case {
        wb: false,
        page: 1,
        ops: Vec::new(),
    };
    for line in text.lines() {
        let mut line = line.trim();
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        if line.starts_with("wb:") || line.starts_with("page:") {
            for part in line.split(',') {
                match part.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
                    Some(("wb", v)) => case.wb = v == "true",
                    Some(("page", v)) => case.page = v.parse().map_err(|_| "page: N")?,
                    _ => return Err(format!("cannot read {part:?}")),
                }
            }
            continue;
        }
        if line.starts_with('#') {
            line = line.split_once(' ').map_or("", |(_, rest)| rest);
        }
        if let Some((op, _)) = line.split_once(" -> ") {
            line = op;
        }
        let mut p = Parser {
            s: line.as_bytes(),
            i: 0,
        };
        let v = p.value().map_err(|e| format!("{line:?}: {e}"))?;
        case.ops.push(op(&v).map_err(|e| format!("{line:?}: {e}"))?);
    }
    Ok(case)
}
