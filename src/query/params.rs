//! Query parameters: `${name}` placeholders in saved queries, declared in the query's header
//! (`-- @param name type = default  description`) and set with `--param name=value`.
//!
//! Values are substituted as SQL *literals* of the declared type — a text value is quoted (with
//! `'` doubled), a number must parse as one — so a parameter can never inject SQL. `NULL` is a
//! typed null (`CAST(NULL AS …)`), which saved queries use for "no filter".

use std::collections::BTreeMap;
use std::fmt;

use super::suggest::closest;

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Text,
    Number,
    Integer,
}

impl ParamType {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "text" => Some(Self::Text),
            "number" => Some(Self::Number),
            "integer" => Some(Self::Integer),
            _ => None,
        }
    }
    fn sql_type(self) -> &'static str {
        match self {
            Self::Text => "VARCHAR",
            Self::Number => "DOUBLE",
            Self::Integer => "BIGINT",
        }
    }
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Number => "number",
            Self::Integer => "integer",
        })
    }
}

/// A declared parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDecl {
    pub name: String,
    pub ty: ParamType,
    /// The default as written (unquoted text, a number, or `NULL`).
    pub default: String,
    pub description: String,
}

/// Errors in parameter declarations or values.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParamError {
    #[error("bad `@param` line `{line}`: write `-- @param NAME text|number|integer = DEFAULT  description`")]
    BadDecl { line: String },
    #[error("parameter `{name}` is declared twice with different types or defaults ({first} vs {second})")]
    Conflict { name: String, first: String, second: String },
    #[error("bad --param `{arg}`: write NAME=VALUE")]
    BadArg { arg: String },
    #[error("unknown parameter `{name}`{hint}; parameters: {known}")]
    Unknown { name: String, hint: String, known: String },
    #[error("parameter `{name}` is a {ty}, but `{value}` is not one")]
    BadValue { name: String, ty: ParamType, value: String },
    #[error("unterminated `${{` in `{context}`: write ${{name}}")]
    Unterminated { context: String },
}

impl ParamDecl {
    /// Parses the text after `@param`.
    pub fn parse(rest: &str) -> Result<Self, ParamError> {
        let bad = || ParamError::BadDecl { line: format!("@param {rest}") };
        let (head, tail) = rest.split_once('=').ok_or_else(bad)?;
        let mut words = head.split_whitespace();
        let (Some(name), Some(ty), None) = (words.next(), words.next(), words.next()) else {
            return Err(bad());
        };
        let ty = ParamType::parse(ty).ok_or_else(bad)?;
        let tail = tail.trim_start();
        let (default, description) = if let Some(quoted) = tail.strip_prefix('\'') {
            let end = quoted.find('\'').ok_or_else(bad)?;
            (quoted[..end].to_string(), quoted[end + 1..].trim().to_string())
        } else {
            let (d, rest) = tail.split_once(char::is_whitespace).unwrap_or((tail, ""));
            (d.to_string(), rest.trim().to_string())
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || default.is_empty() {
            return Err(bad());
        }
        let decl = ParamDecl { name: name.into(), ty, default, description };
        decl.literal(&decl.default).map_err(|_| bad())?;
        Ok(decl)
    }

    /// `value` as a SQL literal of this parameter's type.
    pub fn literal(&self, value: &str) -> Result<String, ParamError> {
        let bad = || ParamError::BadValue { name: self.name.clone(), ty: self.ty, value: value.into() };
        if value.eq_ignore_ascii_case("null") {
            return Ok(format!("CAST(NULL AS {})", self.ty.sql_type()));
        }
        match self.ty {
            ParamType::Text => Ok(format!("'{}'", value.replace('\'', "''"))),
            ParamType::Number => {
                let v: f64 = value.trim().parse().map_err(|_| bad())?;
                if !v.is_finite() {
                    return Err(bad());
                }
                Ok(format!("CAST({v:?} AS DOUBLE)"))
            }
            ParamType::Integer => {
                let v: i64 = value.trim().parse().map_err(|_| bad())?;
                Ok(format!("CAST({v} AS BIGINT)"))
            }
        }
    }
}

/// Declarations merged from every saved query, plus the values given for this run.
#[derive(Debug, Clone, Default)]
pub struct Params {
    decls: BTreeMap<String, ParamDecl>,
    values: BTreeMap<String, String>,
}

impl Params {
    /// Adds a declaration; the same name may be declared by several queries if they agree.
    pub fn declare(&mut self, d: &ParamDecl) -> Result<(), ParamError> {
        match self.decls.get(&d.name) {
            Some(old) if old.ty != d.ty || old.default != d.default => Err(ParamError::Conflict {
                name: d.name.clone(),
                first: format!("{} = {}", old.ty, old.default),
                second: format!("{} = {}", d.ty, d.default),
            }),
            Some(_) => Ok(()),
            None => {
                self.decls.insert(d.name.clone(), d.clone());
                Ok(())
            }
        }
    }

    /// Sets values from `NAME=VALUE` arguments, checking names and types.
    pub fn set_args<S: AsRef<str>>(&mut self, args: &[S]) -> Result<(), ParamError> {
        for arg in args {
            let arg = arg.as_ref();
            let (name, value) = arg.split_once('=').ok_or_else(|| ParamError::BadArg { arg: arg.into() })?;
            self.set(name.trim(), value)?;
        }
        Ok(())
    }

    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ParamError> {
        let decl = self.decl(name)?;
        decl.literal(value)?;
        self.values.insert(name.to_string(), value.to_string());
        Ok(())
    }

    fn decl(&self, name: &str) -> Result<&ParamDecl, ParamError> {
        self.decls.get(name).ok_or_else(|| ParamError::Unknown {
            name: name.into(),
            hint: closest(name, self.decls.keys().map(String::as_str)).map(|c| format!(" (did you mean `{c}`?)")).unwrap_or_default(),
            known: self.decls.keys().cloned().collect::<Vec<_>>().join(", "),
        })
    }

    /// The values in force: every declared parameter with its given or default value.
    pub fn resolved(&self) -> BTreeMap<String, String> {
        self.decls.iter().map(|(k, d)| (k.clone(), self.values.get(k).cloned().unwrap_or_else(|| d.default.clone()))).collect()
    }

    /// The values given explicitly (`--param`).
    pub fn given(&self) -> &BTreeMap<String, String> {
        &self.values
    }

    pub fn decls(&self) -> impl Iterator<Item = &ParamDecl> {
        self.decls.values()
    }

    /// Replaces every `${name}` in `sql` with the parameter's literal. `context` names the
    /// query in errors.
    pub fn substitute(&self, sql: &str, context: &str) -> Result<String, ParamError> {
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| ParamError::Unterminated { context: context.into() })?;
            let name = after[..end].trim();
            let decl = self.decl(name)?;
            let value = self.values.get(name).unwrap_or(&decl.default);
            out.push_str(&decl.literal(value)?);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        let mut p = Params::default();
        p.declare(&ParamDecl::parse("labeller text = NULL  only this labeller").unwrap()).unwrap();
        p.declare(&ParamDecl::parse("threshold number = 0.05 the set").unwrap()).unwrap();
        p.declare(&ParamDecl::parse("n integer = 14").unwrap()).unwrap();
        p.declare(&ParamDecl::parse("split text = 'train' the split").unwrap()).unwrap();
        p
    }

    #[test]
    fn declarations_parse() {
        let d = ParamDecl::parse("split text = 'train' the split to draw from").unwrap();
        assert_eq!(
            (d.name.as_str(), d.ty, d.default.as_str(), d.description.as_str()),
            ("split", ParamType::Text, "train", "the split to draw from")
        );
        assert!(ParamDecl::parse("n integer = x").is_err());
        assert!(ParamDecl::parse("n = 3").is_err());
        assert!(ParamDecl::parse("n float = 3").is_err());
    }

    #[test]
    fn substitution_quotes_and_types() {
        let mut p = params();
        let sql = "WHERE (${labeller} IS NULL OR labeller = ${labeller}) AND c <= ${threshold} LIMIT ${n} -- ${split}";
        assert_eq!(
            p.substitute(sql, "q").unwrap(),
            "WHERE (CAST(NULL AS VARCHAR) IS NULL OR labeller = CAST(NULL AS VARCHAR)) AND c <= CAST(0.05 AS DOUBLE) LIMIT CAST(14 AS BIGINT) -- 'train'"
        );
        p.set_args(&["labeller=o'brien", "threshold=0.1", "n=3"]).unwrap();
        let s = p.substitute("${labeller} ${threshold} ${n}", "q").unwrap();
        assert_eq!(s, "'o''brien' CAST(0.1 AS DOUBLE) CAST(3 AS BIGINT)");
    }

    #[test]
    fn bad_values_and_names_are_explained() {
        let mut p = params();
        assert_eq!(
            p.set("n", "1; DROP TABLE x"),
            Err(ParamError::BadValue { name: "n".into(), ty: ParamType::Integer, value: "1; DROP TABLE x".into() })
        );
        let e = p.set("treshold", "0.1").unwrap_err().to_string();
        assert!(e.contains("did you mean `threshold`"), "{e}");
        assert!(p.substitute("${nope}", "q").is_err());
        assert!(p.substitute("${n", "q").is_err());
        assert!(p.set_args(&["n"]).is_err());
        let mut q = Params::default();
        q.declare(&ParamDecl::parse("n integer = 14").unwrap()).unwrap();
        assert!(q.declare(&ParamDecl::parse("n integer = 7").unwrap()).is_err());
    }
}
