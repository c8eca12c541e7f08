//! The data forms (XEP-0004) commands exchange: forms to fill in and results, built typed and
//! turned into XML, or into the control socket's JSON; and submitted forms, parsed.

use std::collections::BTreeMap;

use hearth_core::stanza::{Condition, StanzaError, ncname, set_attr};
use minidom::Element;
use serde::{Deserialize, Serialize};

pub const NS_DATA: &str = "jabber:x:data";

/// A form to fill in or a result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataForm {
    pub kind: FormKind,
    pub title: Option<String>,
    pub instructions: Option<String>,
    /// The hidden `FORM_TYPE` field, such as `http://jabber.org/protocol/admin`.
    pub form_type: Option<&'static str>,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    /// To fill in (`type='form'`).
    Form,
    /// Data returned (`type='result'`).
    Result,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    pub var: String,
    /// The XEP-0004 field type: `text-single`, `text-multi`, `text-private`, `jid-single`,
    /// `jid-multi`, `list-single`, `hidden`.
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    #[serde(default)]
    pub values: Vec<String>,
    /// (label, value) of each choice of a `list-single`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<(String, String)>,
}

impl Field {
    pub fn new(type_: &str, var: &str, label: &str) -> Self {
        Field {
            var: var.into(),
            type_: type_.into(),
            label: Some(label.into()),
            required: false,
            values: Vec::new(),
            options: Vec::new(),
        }
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn value(mut self, value: impl Into<String>) -> Self {
        self.values.push(value.into());
        self
    }

    pub fn values(mut self, values: impl IntoIterator<Item = String>) -> Self {
        self.values.extend(values);
        self
    }

    /// A text as the lines of a `text-multi` field (XEP-0004 §3.3: one value per line).
    pub fn text(mut self, text: &str) -> Self {
        self.values.extend(text.lines().map(str::to_string));
        self
    }

    pub fn option(mut self, label: &str, value: &str) -> Self {
        self.options.push((label.into(), value.into()));
        self
    }
}

impl DataForm {
    pub fn new(kind: FormKind, form_type: &'static str) -> Self {
        DataForm {
            kind,
            title: None,
            instructions: None,
            form_type: Some(form_type),
            fields: Vec::new(),
        }
    }

    pub fn title(mut self, title: &str) -> Self {
        self.title = Some(title.into());
        self
    }

    pub fn instructions(mut self, instructions: &str) -> Self {
        self.instructions = Some(instructions.into());
        self
    }

    pub fn field(mut self, field: Field) -> Self {
        self.fields.push(field);
        self
    }

    pub fn to_element(&self) -> Element {
        let kind = match self.kind {
            FormKind::Form => "form",
            FormKind::Result => "result",
        };
        let text = |name: &str, t: &str| Element::builder(name, NS_DATA).append(t).build();
        let mut x = Element::builder("x", NS_DATA)
            .attr(ncname("type"), kind)
            .build();
        if let Some(title) = &self.title {
            x.append_child(text("title", title));
        }
        if let Some(instructions) = &self.instructions {
            x.append_child(text("instructions", instructions));
        }
        let hidden = self
            .form_type
            .map(|t| Field::new("hidden", "FORM_TYPE", "").value(t));
        for f in hidden.iter().chain(&self.fields) {
            let mut el = Element::builder("field", NS_DATA)
                .attr(ncname("var"), f.var.as_str())
                .attr(ncname("type"), f.type_.as_str())
                .build();
            set_attr(&mut el, "label", f.label.clone().filter(|l| !l.is_empty()));
            if f.required {
                el.append_child(Element::bare("required", NS_DATA));
            }
            for v in &f.values {
                el.append_child(text("value", v));
            }
            for (label, value) in &f.options {
                el.append_child(
                    Element::builder("option", NS_DATA)
                        .attr(ncname("label"), label.as_str())
                        .append(text("value", value))
                        .build(),
                );
            }
            x.append_child(el);
        }
        x
    }
}

/// The values a requester submitted, by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Submitted(BTreeMap<String, Vec<String>>);

impl Submitted {
    pub fn new(fields: BTreeMap<String, Vec<String>>) -> Self {
        Submitted(fields)
    }

    /// The fields of `<x type='submit'/>`.
    pub fn parse(x: &Element) -> Self {
        let fields = x
            .children()
            .filter(|f| f.is("field", NS_DATA))
            .filter_map(|f| {
                let values = f
                    .children()
                    .filter(|v| v.is("value", NS_DATA))
                    .map(Element::text)
                    .collect();
                Some((f.attr("var")?.to_string(), values))
            })
            .collect();
        Submitted(fields)
    }

    /// The first value of a field, if it has a non-empty one.
    pub fn first(&self, var: &str) -> Option<&str> {
        self.all(var)
            .first()
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The values of a field, as submitted.
    pub fn all(&self, var: &str) -> &[String] {
        self.0.get(var).map(Vec::as_slice).unwrap_or_default()
    }

    /// A `text-multi` field as one text, its values as lines.
    pub fn text(&self, var: &str) -> Option<String> {
        let text = self.all(var).join("\n");
        (!text.trim().is_empty()).then_some(text)
    }

    /// A `text-multi` field the command cannot do without.
    pub fn required_text(&self, var: &str) -> Result<String, StanzaError> {
        self.text(var).ok_or_else(|| missing(var))
    }

    /// The first value of a field the command cannot do without (XEP-0050 `bad-payload`).
    pub fn required(&self, var: &str) -> Result<&str, StanzaError> {
        self.first(var).ok_or_else(|| missing(var))
    }

    /// The non-empty values of a multi-valued field that needs at least one.
    pub fn required_all(&self, var: &str) -> Result<Vec<&str>, StanzaError> {
        let values: Vec<&str> = self
            .all(var)
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .collect();
        if values.is_empty() {
            return Err(missing(var));
        }
        Ok(values)
    }
}

fn missing(var: &str) -> StanzaError {
    StanzaError::new(Condition::BadRequest)
        .with_text(format!("the field {var} is required"))
        .with_app(Element::bare("bad-payload", super::NS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submitted_fields() {
        let x: Element = "<x xmlns='jabber:x:data' type='submit'>\
            <field var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field>\
            <field var='accountjids'><value>a@example.org</value><value> </value><value>b@example.org</value></field>\
            <field var='announcement'><value>line one</value><value>line two</value></field>\
            <field var='empty'><value></value></field>\
            <field><value>no var</value></field></x>"
            .parse()
            .unwrap();
        let form = Submitted::parse(&x);
        assert_eq!(
            form.required_all("accountjids").unwrap(),
            ["a@example.org", "b@example.org"]
        );
        assert_eq!(form.text("announcement").unwrap(), "line one\nline two");
        assert_eq!(form.first("empty"), None);
        let err = form.required("empty").unwrap_err();
        assert_eq!(err.condition, Condition::BadRequest);
        assert!(err.app.unwrap().is("bad-payload", super::super::NS));
        assert!(form.required_all("missing").is_err());
        assert_eq!(form.text("missing"), None);
    }

    #[test]
    fn forms_serialise_with_form_type_first() {
        let form = DataForm::new(FormKind::Form, "urn:example")
            .title("T")
            .field(
                Field::new("text-multi", "motd", "Message")
                    .required()
                    .text("a\nb"),
            )
            .field(
                Field::new("list-single", "max_items", "Most")
                    .option("25", "25")
                    .option("None", "none"),
            );
        let x = form.to_element();
        assert_eq!(x.attr("type"), Some("form"));
        let fields: Vec<&Element> = x.children().filter(|c| c.name() == "field").collect();
        assert_eq!(fields[0].attr("var"), Some("FORM_TYPE"));
        assert_eq!(fields[0].attr("type"), Some("hidden"));
        assert_eq!(fields[0].attr("label"), None);
        assert!(fields[1].get_child("required", NS_DATA).is_some());
        assert_eq!(
            fields[1]
                .children()
                .filter(|v| v.name() == "value")
                .map(Element::text)
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(
            fields[2]
                .children()
                .filter(|o| o.name() == "option")
                .count(),
            2
        );
        let back = Submitted::parse(&x);
        assert_eq!(back.text("motd").unwrap(), "a\nb");
    }
}
