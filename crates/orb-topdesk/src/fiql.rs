//! FIQL, TOPdesk's query language for `query=`: a builder that renders correctly quoted text, a parser, and
//! an evaluator (used by the TOPdesk emulator to answer queries the way TOPdesk does).
//!
//! Grammar (reference §2.2): constraints `selector op value` with `==`, `!=`, `=gt=`, `=ge=`, `=lt=`,
//! `=le=`, `=sw=`, `=in=(a,b)`, `=out=(a,b)`; `==null` / `!=null`; `;` is AND, `,` is OR, AND binds tighter,
//! parentheses group. Values are quoted with `'…'` or `"…"` (backslash escapes a quote or a backslash).
//!
//! Invariant: [`Fiql`]'s `Display` quotes every value that is not a plain token (letters, digits and
//! `. _ : -`), so e-mail addresses (`@`) and base64-like ids (`=`, `+`, `/`) are always quoted, and a
//! rendered query parses back to the same tree.

use std::fmt;

use chrono::{DateTime, Utc};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `=gt=`
    Gt,
    /// `=ge=`
    Ge,
    /// `=lt=`
    Lt,
    /// `=le=`
    Le,
    /// `=sw=` (starts with)
    Sw,
    /// `=in=(…)`
    In,
    /// `=out=(…)`
    Out,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
            Self::Gt => "=gt=",
            Self::Ge => "=ge=",
            Self::Lt => "=lt=",
            Self::Le => "=le=",
            Self::Sw => "=sw=",
            Self::In => "=in=",
            Self::Out => "=out=",
        }
    }
}

/// A value in a constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// The unquoted keyword `null`.
    Null,
    /// Any other value (already unquoted and unescaped).
    Text(String),
}

/// One `selector op value(s)` constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// Field path, e.g. `reservedFacilities.location.id`.
    pub selector: String,
    /// Operator.
    pub op: Op,
    /// One value, or several for `=in=` / `=out=`.
    pub values: Vec<Value>,
}

/// A FIQL expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fiql {
    /// All must hold (`;`).
    And(Vec<Fiql>),
    /// Any must hold (`,`).
    Or(Vec<Fiql>),
    /// A single constraint.
    Constraint(Constraint),
}

fn one(selector: &str, op: Op, value: Value) -> Fiql {
    Fiql::Constraint(Constraint { selector: selector.to_owned(), op, values: vec![value] })
}

impl Fiql {
    /// `selector==value`.
    pub fn eq(selector: &str, value: impl Into<String>) -> Self {
        one(selector, Op::Eq, Value::Text(value.into()))
    }
    /// `selector!=value`.
    pub fn ne(selector: &str, value: impl Into<String>) -> Self {
        one(selector, Op::Ne, Value::Text(value.into()))
    }
    /// `selector=gt=value`.
    pub fn gt(selector: &str, value: impl Into<String>) -> Self {
        one(selector, Op::Gt, Value::Text(value.into()))
    }
    /// `selector=ge=value`.
    pub fn ge(selector: &str, value: impl Into<String>) -> Self {
        one(selector, Op::Ge, Value::Text(value.into()))
    }
    /// `selector=lt=value`.
    pub fn lt(selector: &str, value: impl Into<String>) -> Self {
        one(selector, Op::Lt, Value::Text(value.into()))
    }
    /// `selector=le=value`.
    pub fn le(selector: &str, value: impl Into<String>) -> Self {
        one(selector, Op::Le, Value::Text(value.into()))
    }
    /// `selector=sw=value`.
    pub fn starts_with(selector: &str, value: impl Into<String>) -> Self {
        one(selector, Op::Sw, Value::Text(value.into()))
    }
    /// `selector=in=(values…)`.
    pub fn is_in<I: IntoIterator<Item = S>, S: Into<String>>(selector: &str, values: I) -> Self {
        let values = values.into_iter().map(|v| Value::Text(v.into())).collect();
        Fiql::Constraint(Constraint { selector: selector.to_owned(), op: Op::In, values })
    }
    /// `selector=out=(values…)`.
    pub fn out<I: IntoIterator<Item = S>, S: Into<String>>(selector: &str, values: I) -> Self {
        let values = values.into_iter().map(|v| Value::Text(v.into())).collect();
        Fiql::Constraint(Constraint { selector: selector.to_owned(), op: Op::Out, values })
    }
    /// `selector==null`.
    pub fn is_null(selector: &str) -> Self {
        one(selector, Op::Eq, Value::Null)
    }
    /// `selector!=null`.
    pub fn not_null(selector: &str) -> Self {
        one(selector, Op::Ne, Value::Null)
    }
    /// A date-time comparison value in FIQL's `yyyy-MM-ddTHH:mm:ssZ` form.
    pub fn date(at: &DateTime<Utc>) -> String {
        crate::datetime::format_fiql(at)
    }

    /// `self;other` (flattened).
    pub fn and(self, other: Fiql) -> Self {
        let mut parts = match self {
            Fiql::And(parts) => parts,
            single => vec![single],
        };
        match other {
            Fiql::And(more) => parts.extend(more),
            single => parts.push(single),
        }
        Fiql::And(parts)
    }

    /// `self,other` (flattened).
    pub fn or(self, other: Fiql) -> Self {
        let mut parts = match self {
            Fiql::Or(parts) => parts,
            single => vec![single],
        };
        match other {
            Fiql::Or(more) => parts.extend(more),
            single => parts.push(single),
        }
        Fiql::Or(parts)
    }

    /// Parses FIQL text.
    pub fn parse(text: &str) -> Result<Self, FiqlError> {
        let mut parser = Parser { chars: text.chars().collect(), pos: 0 };
        let expr = parser.or_expr()?;
        if parser.pos != parser.chars.len() {
            return Err(parser.error("unexpected character"));
        }
        Ok(expr)
    }

    /// Every selector used, in order (for checking them against an endpoint's allowed fields).
    pub fn selectors(&self) -> Vec<&str> {
        match self {
            Fiql::And(parts) | Fiql::Or(parts) => parts.iter().flat_map(Fiql::selectors).collect(),
            Fiql::Constraint(c) => vec![c.selector.as_str()],
        }
    }

    /// Evaluates the expression; `lookup` gives every value of a selector on the subject (several for
    /// list fields such as `reservedFacilities.location.id`; a constraint holds if any value satisfies it,
    /// except `!=` and `=out=`, which must hold for all). `text_case_sensitive` chooses how text compares.
    pub fn eval(&self, lookup: &dyn Fn(&str) -> Vec<Field>, text_case_sensitive: bool) -> bool {
        match self {
            Fiql::And(parts) => parts.iter().all(|p| p.eval(lookup, text_case_sensitive)),
            Fiql::Or(parts) => parts.iter().any(|p| p.eval(lookup, text_case_sensitive)),
            Fiql::Constraint(c) => c.eval(&lookup(&c.selector), text_case_sensitive),
        }
    }
}

/// A field value of the subject a query is evaluated against.
#[derive(Debug, Clone, PartialEq)]
pub enum Field {
    /// No value (matches `==null`).
    Null,
    /// Text.
    Text(String),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A date-time.
    Date(DateTime<Utc>),
}

impl Constraint {
    fn eval(&self, fields: &[Field], case_sensitive: bool) -> bool {
        let null_only = fields.iter().all(|f| *f == Field::Null);
        match self.op {
            Op::Ne | Op::Out => {
                let positive = Op::Eq;
                let as_eq = |f: &Field| self.values.iter().any(|v| matches(f, positive, v, case_sensitive));
                if self.values == [Value::Null] {
                    return !null_only;
                }
                !fields.iter().any(as_eq)
            }
            _ if self.values == [Value::Null] => null_only && self.op == Op::Eq,
            op => fields.iter().any(|f| self.values.iter().any(|v| matches(f, op, v, case_sensitive))),
        }
    }
}

fn matches(field: &Field, op: Op, value: &Value, case_sensitive: bool) -> bool {
    let Value::Text(text) = value else { return false };
    let ordering = match field {
        Field::Null => return false,
        Field::Text(have) => {
            let (have, want) = if case_sensitive {
                (have.clone(), text.clone())
            } else {
                (have.to_lowercase(), text.to_lowercase())
            };
            if op == Op::Sw {
                return have.starts_with(&want);
            }
            have.cmp(&want)
        }
        Field::Number(have) => match text.parse::<f64>() {
            Ok(want) => match have.partial_cmp(&want) {
                Some(o) => o,
                None => return false,
            },
            Err(_) => return false,
        },
        Field::Bool(have) => match text.as_str() {
            "true" => have.cmp(&true),
            "false" => have.cmp(&false),
            _ => return false,
        },
        Field::Date(have) => match crate::datetime::parse(text) {
            Some(want) => have.cmp(&want),
            None => return false,
        },
    };
    use std::cmp::Ordering::*;
    match op {
        Op::Eq | Op::In => ordering == Equal,
        Op::Ne | Op::Out => ordering != Equal,
        Op::Gt => ordering == Greater,
        Op::Ge => ordering != Less,
        Op::Lt => ordering == Less,
        Op::Le => ordering != Greater,
        Op::Sw => false,
    }
}

fn is_plain(value: &str) -> bool {
    !value.is_empty()
        && value != "null"
        && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
}

fn write_value(f: &mut fmt::Formatter<'_>, value: &Value) -> fmt::Result {
    match value {
        Value::Null => f.write_str("null"),
        Value::Text(text) if is_plain(text) => f.write_str(text),
        Value::Text(text) => {
            f.write_str("'")?;
            for c in text.chars() {
                if c == '\'' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("'")
        }
    }
}

impl fmt::Display for Fiql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fiql::And(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(";")?;
                    }
                    if matches!(part, Fiql::Or(p) if p.len() > 1) {
                        write!(f, "({part})")?;
                    } else {
                        write!(f, "{part}")?;
                    }
                }
                Ok(())
            }
            Fiql::Or(parts) => {
                for (i, part) in parts.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{part}")?;
                }
                Ok(())
            }
            Fiql::Constraint(c) => {
                write!(f, "{}{}", c.selector, c.op.as_str())?;
                if matches!(c.op, Op::In | Op::Out) {
                    f.write_str("(")?;
                    for (i, v) in c.values.iter().enumerate() {
                        if i > 0 {
                            f.write_str(",")?;
                        }
                        write_value(f, v)?;
                    }
                    f.write_str(")")
                } else {
                    match c.values.first() {
                        Some(v) => write_value(f, v),
                        None => Ok(()),
                    }
                }
            }
        }
    }
}

/// Why a FIQL text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid FIQL at character {position}: {message}")]
pub struct FiqlError {
    /// 0-based character position.
    pub position: usize,
    /// What was wrong.
    pub message: String,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

const RESERVED: &[char] = &['\'', '"', '(', ')', ';', ',', '=', '!', '~', '<', '>'];

impl Parser {
    fn error(&self, message: &str) -> FiqlError {
        FiqlError { position: self.pos, message: message.to_owned() }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    // Both fold with the builder's `and` / `or`, which flatten: `a;(b;c)` is `And[a, b, c]`, the same
    // query `Display` prints as `a;b;c`, so print → parse gives back an equal value (found by fuzzing).
    fn or_expr(&mut self) -> Result<Fiql, FiqlError> {
        let mut query = self.and_expr()?;
        while self.peek() == Some(',') {
            self.pos += 1;
            query = query.or(self.and_expr()?);
        }
        Ok(query)
    }

    fn and_expr(&mut self) -> Result<Fiql, FiqlError> {
        let mut query = self.primary()?;
        while self.peek() == Some(';') {
            self.pos += 1;
            query = query.and(self.primary()?);
        }
        Ok(query)
    }

    fn primary(&mut self) -> Result<Fiql, FiqlError> {
        if self.peek() == Some('(') {
            self.pos += 1;
            let inner = self.or_expr()?;
            if self.peek() != Some(')') {
                return Err(self.error("expected ')'"));
            }
            self.pos += 1;
            return Ok(inner);
        }
        self.constraint()
    }

    fn constraint(&mut self) -> Result<Fiql, FiqlError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if RESERVED.contains(&c) || c.is_whitespace() {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.error("expected a field name"));
        }
        let selector: String = self.chars[start..self.pos].iter().collect();
        let op = self.op()?;
        let values = if matches!(op, Op::In | Op::Out) {
            if self.peek() != Some('(') {
                return Err(self.error("expected '(' after =in= or =out="));
            }
            self.pos += 1;
            let mut values = vec![self.value()?];
            while self.peek() == Some(',') {
                self.pos += 1;
                values.push(self.value()?);
            }
            if self.peek() != Some(')') {
                return Err(self.error("expected ')' to close the value list"));
            }
            self.pos += 1;
            values
        } else {
            vec![self.value()?]
        };
        Ok(Fiql::Constraint(Constraint { selector, op, values }))
    }

    fn op(&mut self) -> Result<Op, FiqlError> {
        match (self.peek(), self.chars.get(self.pos + 1).copied()) {
            (Some('='), Some('=')) => {
                self.pos += 2;
                Ok(Op::Eq)
            }
            (Some('!'), Some('=')) => {
                self.pos += 2;
                Ok(Op::Ne)
            }
            (Some('='), _) => {
                let start = self.pos + 1;
                let mut end = start;
                while self.chars.get(end).is_some_and(|c| c.is_ascii_alphabetic()) {
                    end += 1;
                }
                if self.chars.get(end) != Some(&'=') {
                    return Err(self.error("expected an operator such as ==, =gt= or =in="));
                }
                let name: String = self.chars[start..end].iter().collect();
                let op = match name.as_str() {
                    "gt" => Op::Gt,
                    "ge" => Op::Ge,
                    "lt" => Op::Lt,
                    "le" => Op::Le,
                    "sw" => Op::Sw,
                    "in" => Op::In,
                    "out" => Op::Out,
                    _ => return Err(self.error(&format!("unknown operator ={name}="))),
                };
                self.pos = end + 1;
                Ok(op)
            }
            _ => Err(self.error("expected an operator such as ==, =gt= or =in=")),
        }
    }

    fn value(&mut self) -> Result<Value, FiqlError> {
        match self.peek() {
            Some(quote @ ('\'' | '"')) => {
                self.pos += 1;
                let mut text = String::new();
                loop {
                    match self.peek() {
                        None => return Err(self.error("unterminated quoted value")),
                        Some('\\') => {
                            self.pos += 1;
                            match self.peek() {
                                Some(c) => text.push(c),
                                None => return Err(self.error("unterminated escape")),
                            }
                            self.pos += 1;
                        }
                        Some(c) if c == quote => {
                            self.pos += 1;
                            return Ok(Value::Text(text));
                        }
                        Some(c) => {
                            text.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            _ => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if RESERVED.contains(&c) {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(self.error("expected a value"));
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                Ok(if text == "null" { Value::Null } else { Value::Text(text) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzzing regression (`fuzz/regressions/fiql/`): a parenthesised group of the same kind was kept
    /// nested, while `Display` prints it flat, so the printed query parsed to a different value.
    #[test]
    fn groups_of_the_same_kind_are_flattened_so_print_then_parse_is_equal() {
        for (text, printed) in [
            ("a==1;(b==2;c==3)", "a==1;b==2;c==3"),
            ("(a==1;b==2);c==3", "a==1;b==2;c==3"),
            ("a==1,(b==2,c==3)", "a==1,b==2,c==3"),
            ("a==1;(b==2,c==3)", "a==1;(b==2,c==3)"),
            ("(a==1)", "a==1"),
            ("a==1;b==3;(d=='?ca';(d=='?c'))", "a==1;b==3;d=='?ca';d=='?c'"),
        ] {
            let query = Fiql::parse(text).unwrap();
            assert_eq!(query.to_string(), printed, "{text}");
            assert_eq!(Fiql::parse(printed).unwrap(), query, "{text}");
        }
        assert_eq!(
            Fiql::parse("a==1;(b==2;c==3)").unwrap(),
            Fiql::eq("a", "1").and(Fiql::eq("b", "2")).and(Fiql::eq("c", "3"))
        );
    }

    #[test]
    fn renders_with_quotes_where_needed_and_parses_back() {
        let cases: Vec<(Fiql, &str)> = vec![
            (Fiql::eq("email", "Jan.Jansen@contoso.com"), "email=='Jan.Jansen@contoso.com'"),
            (Fiql::eq("externalLinks.id", "AAMk+a/b=="), "externalLinks.id=='AAMk+a/b=='"),
            (Fiql::eq("externalLinks.type", "7"), "externalLinks.type==7"),
            (Fiql::eq("briefDescription", "it's \\ ok"), "briefDescription=='it\\'s \\\\ ok'"),
            (Fiql::eq("notes", "null"), "notes=='null'"),
            (Fiql::is_null("operator.id"), "operator.id==null"),
            (
                Fiql::is_in("status", ["planned", "request"]).and(Fiql::eq("archived", "false")),
                "status=in=(planned,request);archived==false",
            ),
            (Fiql::eq("a", "1").and(Fiql::eq("b", "2").or(Fiql::eq("c", "3"))), "a==1;(b==2,c==3)"),
            (Fiql::gt("plannedEndDate", "2025-03-10T00:00:00Z"), "plannedEndDate=gt=2025-03-10T00:00:00Z"),
        ];
        for (expr, text) in cases {
            assert_eq!(expr.to_string(), text);
            assert_eq!(Fiql::parse(text).unwrap(), expr, "{text}");
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let parsed = Fiql::parse("a==1;b==2,c==3").unwrap();
        assert_eq!(parsed, Fiql::eq("a", "1").and(Fiql::eq("b", "2")).or(Fiql::eq("c", "3")));
    }

    #[test]
    fn parse_errors_say_where() {
        for (text, position) in
            [("", 0), ("a=xx=1", 1), ("a==", 3), ("a=in=(1,2", 9), ("a=='x", 5), ("(a==1", 5)]
        {
            let err = Fiql::parse(text).unwrap_err();
            assert_eq!(err.position, position, "{text}: {err}");
        }
    }

    #[test]
    fn evaluates_like_topdesk() {
        let subject = |sel: &str| -> Vec<Field> {
            match sel {
                "email" => vec![Field::Text("Jan.Jansen@Contoso.com".into())],
                "n" => vec![Field::Number(6.0)],
                "archived" => vec![Field::Bool(false)],
                "when" => vec![Field::Date(crate::datetime::parse("2025-03-10T09:00:00Z").unwrap())],
                "rooms" => vec![Field::Text("r1".into()), Field::Text("r2".into())],
                _ => vec![Field::Null],
            }
        };
        let check = |text: &str, case_sensitive: bool, expected: bool| {
            let expr = Fiql::parse(text).unwrap();
            assert_eq!(
                expr.eval(&subject, case_sensitive),
                expected,
                "{text} (case sensitive {case_sensitive})"
            );
        };
        check("email=='jan.jansen@contoso.com'", false, true);
        check("email=='jan.jansen@contoso.com'", true, false);
        check("email=sw=jan", false, true);
        check("n=ge=6;n=lt=7", false, true);
        check("n=gt=6", false, false);
        check("archived==false", false, true);
        check("when=gt=2025-03-10T08:59:59Z;when=lt=2025-03-10T10:01:00+0100", false, true);
        check("rooms==r2", false, true);
        check("rooms=in=(r3,r1)", false, true);
        check("rooms=out=(r1)", false, false);
        check("rooms!=r3", false, true);
        check("other==null", false, true);
        check("other!=null", false, false);
        check("email==null", false, false);
    }
}
