//! A small namespace-aware XML tree over `quick-xml`: the one representation of EWS messages that the
//! client writes and reads and the emulator parses and answers with.
//!
//! Elements and attributes are identified by **namespace URI + local name**, never by prefix: Exchange
//! mixes `s:`/`soap:`, `h:`/`t:` and default namespaces, and a reader matching prefixes breaks on the
//! next server. The writer gives the four EWS namespaces fixed prefixes (`soap`, `t`, `m`, `e`) declared
//! once on the root, and children are written in the order they were added (the builders in
//! [`crate::request`] add them in the schema's `xs:sequence` order).

use std::borrow::Cow;

use quick_xml::NsReader;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;

/// SOAP 1.1 envelope namespace (the `http://` one; the `https://` spelling in Microsoft's docs is an
/// artefact and is not a SOAP namespace).
pub const SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// EWS types namespace (`t:`).
pub const TYPES: &str = "http://schemas.microsoft.com/exchange/services/2006/types";
/// EWS messages namespace (`m:`).
pub const MESSAGES: &str = "http://schemas.microsoft.com/exchange/services/2006/messages";
/// EWS errors namespace (`e:`), used in SOAP fault details.
pub const ERRORS: &str = "http://schemas.microsoft.com/exchange/services/2006/errors";

/// One XML element: namespace URI (empty when unbound), local name, attributes, child elements and the
/// element's own character data (concatenated; EWS has no mixed content).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// Namespace URI; empty when the name is not in a namespace (e.g. SOAP 1.1 `faultcode`).
    pub ns: String,
    /// Local name.
    pub name: String,
    /// Attributes in document order.
    pub attrs: Vec<Attr>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Character data directly inside this element (entities resolved).
    pub text: String,
}

/// One attribute. EWS attributes are unqualified; `ns` is set only for prefixed ones (e.g. `xml:lang`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Namespace URI of a prefixed attribute, else empty.
    pub ns: String,
    /// Local name.
    pub name: String,
    /// Value (entities resolved).
    pub value: String,
}

/// Why a document could not be read as XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not well-formed XML ({reason}); the peer sent something that is not a SOAP document")]
pub struct XmlError {
    /// What the parser reported.
    pub reason: String,
}

fn xml_err(reason: impl ToString) -> XmlError {
    XmlError { reason: reason.to_string() }
}

impl Element {
    /// A new element `name` in namespace `ns`.
    pub fn new(ns: &str, name: &str) -> Self {
        Self { ns: ns.to_owned(), name: name.to_owned(), ..Self::default() }
    }

    /// Adds an (unqualified) attribute.
    #[must_use]
    pub fn attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.attrs.push(Attr { ns: String::new(), name: name.to_owned(), value: value.into() });
        self
    }

    /// Adds a child element.
    #[must_use]
    pub fn child(mut self, child: Element) -> Self {
        self.children.push(child);
        self
    }

    /// Adds a child element if there is one.
    #[must_use]
    pub fn child_opt(mut self, child: Option<Element>) -> Self {
        if let Some(child) = child {
            self.children.push(child);
        }
        self
    }

    /// Adds several child elements.
    #[must_use]
    pub fn children(mut self, children: impl IntoIterator<Item = Element>) -> Self {
        self.children.extend(children);
        self
    }

    /// Sets the character data.
    #[must_use]
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = text.into();
        self
    }

    /// Whether this element is `name` in namespace `ns`.
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The first child `name` in namespace `ns`.
    pub fn find(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    /// Every child `name` in namespace `ns`.
    pub fn find_all<'a>(&'a self, ns: &'a str, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// The child reached by following `path` (each step namespace + local name).
    pub fn path(&self, path: &[(&str, &str)]) -> Option<&Element> {
        path.iter().try_fold(self, |el, (ns, name)| el.find(ns, name))
    }

    /// The text of the first child `name` in `ns`, if present.
    pub fn child_text(&self, ns: &str, name: &str) -> Option<&str> {
        self.find(ns, name).map(|c| c.text.as_str())
    }

    /// The value of the unqualified attribute `name`.
    pub fn get_attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.ns.is_empty() && a.name == name).map(|a| a.value.as_str())
    }

    /// Every element of the tree (this one first, depth first).
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = vec![self];
        let mut i = 0;
        while i < out.len() {
            let el = out[i];
            out.extend(el.children.iter());
            i += 1;
        }
        out
    }

    /// The element's shape: its name and its children's shapes, recursively, as
    /// `{namespace}local` paths in document order. Used to hold emulator answers to the reference.
    pub fn shape(&self) -> Vec<String> {
        fn walk(el: &Element, prefix: &str, out: &mut Vec<String>) {
            let here = format!("{prefix}/{{{}}}{}", el.ns, el.name);
            out.push(here.clone());
            for c in &el.children {
                walk(c, &here, out);
            }
        }
        let mut out = Vec::new();
        walk(self, "", &mut out);
        out
    }

    /// Serialises as a UTF-8 document with an XML declaration.
    pub fn to_document(&self) -> String {
        let mut writer = quick_xml::Writer::new(Vec::new());
        // Writing to a Vec cannot fail.
        let _ = writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)));
        write_element(&mut writer, self, true, "");
        String::from_utf8(writer.into_inner()).unwrap_or_default()
    }
}

/// Whether `s` holds only characters XML 1.0 allows in text and attribute values: no control character
/// but tab, line feed and carriage return, no U+FFFE / U+FFFF. The writer escapes markup but cannot write
/// these; Exchange would refuse the whole request (`ErrorSchemaValidation`), so builders' callers check
/// first.
pub fn is_xml_text(s: &str) -> bool {
    s.chars().all(|c| matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}'))
}

/// The fixed prefix the writer uses for a namespace.
fn prefix_of(ns: &str) -> Option<&'static str> {
    match ns {
        SOAP => Some("soap"),
        TYPES => Some("t"),
        MESSAGES => Some("m"),
        ERRORS => Some("e"),
        _ => None,
    }
}

fn write_element(writer: &mut quick_xml::Writer<Vec<u8>>, el: &Element, root: bool, default_ns: &str) {
    // `default_ns` is the default namespace in scope. An element in it needs no declaration; any other
    // unprefixed element declares its own, `xmlns=""` included, so an unqualified child of an element in
    // a default namespace stays unqualified (found by fuzzing).
    let (qname, own_decl): (Cow<'_, str>, Option<(String, String)>) = match prefix_of(&el.ns) {
        Some(p) => (Cow::Owned(format!("{p}:{}", el.name)), None),
        None if el.ns == default_ns => (Cow::Borrowed(el.name.as_str()), None),
        None => (Cow::Borrowed(el.name.as_str()), Some(("xmlns".to_owned(), el.ns.clone()))),
    };
    let child_default = if prefix_of(&el.ns).is_some() { default_ns } else { el.ns.as_str() };
    let mut start = BytesStart::new(qname.as_ref());
    if root {
        for ns in [SOAP, TYPES, MESSAGES, ERRORS] {
            if let Some(p) = prefix_of(ns) {
                start.push_attribute((format!("xmlns:{p}").as_str(), ns));
            }
        }
    }
    if let Some((k, v)) = &own_decl {
        start.push_attribute((k.as_str(), v.as_str()));
    }
    // An attribute in a namespace without a fixed prefix gets a prefix declared on this element
    // (`n0`, `n1`, …), so it keeps its namespace (found by fuzzing).
    let mut extra: Vec<&str> = Vec::new();
    for a in &el.attrs {
        let key = match prefix_of(&a.ns) {
            Some(p) => format!("{p}:{}", a.name),
            None if a.ns == "http://www.w3.org/XML/1998/namespace" => format!("xml:{}", a.name),
            None if a.ns.is_empty() => a.name.clone(),
            None => {
                let i = extra.iter().position(|ns| *ns == a.ns).unwrap_or_else(|| {
                    extra.push(a.ns.as_str());
                    extra.len() - 1
                });
                format!("n{i}:{}", a.name)
            }
        };
        start.push_attribute((key.as_str(), a.value.as_str()));
    }
    for (i, ns) in extra.iter().enumerate() {
        start.push_attribute((format!("xmlns:n{i}").as_str(), *ns));
    }
    if el.children.is_empty() && el.text.is_empty() {
        let _ = writer.write_event(Event::Empty(start));
        return;
    }
    let _ = writer.write_event(Event::Start(start));
    if !el.text.is_empty() {
        let _ = writer.write_event(Event::Text(BytesText::new(&el.text)));
    }
    for c in &el.children {
        write_element(writer, c, false, child_default);
    }
    let _ = writer.write_event(Event::End(BytesEnd::new(qname.as_ref())));
}

/// Whether `name` is an XML local name (an NCName: a letter or `_` first, then letters, digits, `_`, `-`,
/// `.`; no colon). quick-xml reads names leniently; a name outside this the writer could not write back
/// (found by fuzzing).
fn is_local_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '\u{B7}'))
}

fn ns_of(r: &ResolveResult<'_>) -> Result<String, XmlError> {
    match r {
        // The resolver binds the declaration's text as written; a URI is its unescaped value (otherwise an
        // `&amp;` in it would differ from what the writer declares; found by fuzzing).
        ResolveResult::Bound(ns) => {
            let raw: String = ns.as_ref().to_owned();
            quick_xml::escape::unescape(&raw).map(|uri| uri.into_owned()).map_err(xml_err)
        }
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(p) => Err(xml_err(format!("undeclared namespace prefix `{p}`"))),
    }
}

/// Parses a document into its root element. Whitespace-only text between elements is dropped; comments,
/// processing instructions and the declaration are skipped. A DOCTYPE is refused (no entity expansion).
pub fn parse(input: &str) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_str(input);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(xml_err)?;
        let ns = ns_of(&resolved);
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let mut el = Element::new(&ns?, e.local_name().as_ref());
                // Namespaces in XML: a local name has no colon (`t:A:b` is not namespace-well-formed; the
                // writer could not write it back; found by fuzzing).
                if !is_local_name(&el.name) {
                    return Err(xml_err(format!("`{}` is not an element name", el.name)));
                }
                for a in e.attributes() {
                    let a = a.map_err(xml_err)?;
                    let key: &str = a.key.as_ref();
                    if key == "xmlns" || key.starts_with("xmlns:") {
                        continue;
                    }
                    let (ans, local) = reader.resolver().resolve_attribute(a.key);
                    let ans = match ans {
                        _ if key.starts_with("xml:") => "http://www.w3.org/XML/1998/namespace".to_owned(),
                        other => ns_of(&other)?,
                    };
                    let value =
                        a.normalized_value(quick_xml::XmlVersion::Implicit1_0).map_err(xml_err)?.into_owned();
                    let name: String = local.as_ref().to_owned();
                    if !is_local_name(&name) {
                        return Err(xml_err(format!("`{key}` is not an attribute name")));
                    }
                    el.attrs.push(Attr { ns: ans, name, value });
                }
                if root.is_some() {
                    return Err(xml_err("content after the root element"));
                }
                if empty {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => root = Some(el),
                    }
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let mut el = stack.pop().ok_or_else(|| xml_err("unbalanced end tag"))?;
                if el.text.trim().is_empty() && !el.children.is_empty() {
                    el.text.clear();
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                } else if !t.xml10_content().trim().is_empty() {
                    return Err(xml_err("text outside the root element"));
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let resolved = if r.is_char_ref() {
                    r.resolve_char_ref().map_err(xml_err)?.map(String::from)
                } else {
                    quick_xml::escape::resolve_predefined_entity(&r.xml10_content()).map(str::to_owned)
                };
                let text =
                    resolved.ok_or_else(|| xml_err(format!("unknown entity `&{};`", r.xml10_content())))?;
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&text);
                }
            }
            Event::DocType(_) => return Err(xml_err("a DOCTYPE is not allowed in SOAP")),
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(xml_err("document ended inside an element"));
    }
    root.ok_or_else(|| xml_err("no root element"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzzing regression (`fuzz/regressions/ews_xml/`): a namespace URI with an entity in its declaration
    /// is the unescaped URI, so a tree written as a document parses back equal.
    #[test]
    fn namespace_uris_are_unescaped_and_survive_a_round_trip() {
        let tree = parse(r#"<a xmlns="urn:x&amp;y&lt;z&#10;"><b xmlns="urn:&quot;q"/></a>"#).unwrap();
        assert_eq!(tree.ns, "urn:x&y<z\n");
        assert_eq!(tree.children[0].ns, "urn:\"q");
        assert_eq!(parse(&tree.to_document()).unwrap(), tree);
    }

    /// Fuzzing regressions (`fuzz/regressions/ews_xml/`): an unqualified child of an element in another
    /// default namespace, and an attribute in a namespace without a fixed prefix, keep their namespaces
    /// through `to_document`.
    #[test]
    fn unqualified_children_and_namespaced_attributes_survive_a_round_trip() {
        for doc in [
            r#"<s:Envelope xmlns:s="urn:other"><s:Body><faultcode>x</faultcode></s:Body></s:Envelope>"#,
            r#"<a xmlns="urn:a"><b xmlns=""><c xmlns="urn:a"/></b></a>"#,
            r#"<a xmlns:x="urn:x" xmlns:y="urn:y" x:k="1" y:k="2" x:l="3"><b x:k="4"/></a>"#,
        ] {
            let tree = parse(doc).unwrap();
            assert_eq!(parse(&tree.to_document()).unwrap(), tree, "{doc}");
        }
        // A local name with a colon is not namespace-well-formed.
        assert!(parse(r#"<t:A:b xmlns:t="urn:t"/>"#).is_err());
        assert!(parse(r#"<a xmlns:t="urn:t" t:k:l="1"/>"#).is_err());
        assert!(parse("<a><b\u{1}c/></a>").is_err());
        assert!(parse("<a><-b/></a>").is_err());
        assert!(parse(r#"<a x.y-z_1="1"><_b.c-d/></a>"#).is_ok());
        let tree = parse(r#"<s:E xmlns:s="urn:other"><s:B><f>x</f></s:B></s:E>"#).unwrap();
        assert_eq!(parse(&tree.to_document()).unwrap().children[0].children[0].ns, "");
    }

    #[test]
    fn names_are_matched_by_namespace_not_prefix() {
        let docs = [
            r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><x:A xmlns:x="http://schemas.microsoft.com/exchange/services/2006/messages" K="v &amp; w"/></s:Body></s:Envelope>"#,
            r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><A xmlns="http://schemas.microsoft.com/exchange/services/2006/messages" K="v &amp; w"/></soap:Body></soap:Envelope>"#,
            r#"<Envelope xmlns="http://schemas.xmlsoap.org/soap/envelope/"><Body><m:A xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" K="v &amp; w"></m:A></Body></Envelope>"#,
        ];
        for doc in docs {
            let root = parse(doc).expect("parses");
            assert!(root.is(SOAP, "Envelope"), "{doc}");
            let a = root.path(&[(SOAP, "Body"), (MESSAGES, "A")]).expect("found by namespace");
            assert_eq!(a.get_attr("K"), Some("v & w"));
        }
        // The same local name in another namespace is not a match.
        let wrong = parse(r#"<s:Envelope xmlns:s="https://schemas.xmlsoap.org/soap/envelope/"/>"#).unwrap();
        assert!(!wrong.is(SOAP, "Envelope"));
    }

    #[test]
    fn written_documents_read_back_identically() {
        let el = Element::new(SOAP, "Envelope").child(
            Element::new(SOAP, "Body").child(
                Element::new(MESSAGES, "X")
                    .attr("A", "1 < 2 & \"q\"")
                    .child(Element::new(TYPES, "Subject").text("Tom & Jerry <3>"))
                    .child(Element::new(TYPES, "Empty")),
            ),
        );
        let doc = el.to_document();
        assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"));
        assert_eq!(parse(&doc).unwrap(), el);
    }

    #[test]
    fn malformed_input_is_an_error() {
        for bad in
            ["", "<a>", "<a></b>", "<a/><b/>", "<!DOCTYPE a><a/>", "<a>&bogus;</a>", "<p:a/>", "<html>oops"]
        {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn text_xml_cannot_carry_is_told_apart() {
        assert!(is_xml_text("Tom & Jerry <3>\r\n\tok ✓"));
        for bad in ["a\u{0}b", "\u{1}", "x\u{1b}[0m", "\u{FFFE}", "\u{FFFF}"] {
            assert!(!is_xml_text(bad), "{bad:?}");
        }
    }

    #[test]
    fn text_with_entities_and_char_refs_is_resolved() {
        let el = parse("<a>x &lt; y &#38; z&#x21;</a>").unwrap();
        assert_eq!(el.text, "x < y & z!");
    }
}
