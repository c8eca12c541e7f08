use super::*;
use crate::{Limits, NS_STREAM, StreamEvent, StreamHeader, StreamParser};
use rxml::NcName;

const CLIENT: &str = "jabber:client";

/// Parses `stanza` as the only element of a stream whose default namespace is `stream_ns`.
fn parse(stanza: &[u8], stream_ns: &str) -> Element {
    let mut p = StreamParser::new(Limits::default());
    p.feed(format!("<stream:stream xmlns='{stream_ns}' xmlns:stream='{NS_STREAM}'>").as_bytes());
    p.feed(stanza);
    assert!(matches!(p.next_event(), Ok(Some(StreamEvent::Header(_)))));
    match p.next_event() {
        Ok(Some(StreamEvent::Element(el))) => el,
        other => panic!("{other:?} for {:?}", String::from_utf8_lossy(stanza)),
    }
}

fn written(el: &Element, stream_ns: &str) -> String {
    let mut out = Vec::new();
    write_element(el, stream_ns, &mut out);
    String::from_utf8(out).unwrap()
}

fn name(s: &str) -> NcName {
    NcName::try_from(s).unwrap()
}

#[test]
fn namespaces_are_declared_only_where_they_change() {
    let el = parse(
        b"<message to='a@b' id='1'><body>x</body><x xmlns='urn:x'><y/><body xmlns='jabber:client'/><z xmlns=''/></x></message>",
        CLIENT,
    );
    assert_eq!(
        written(&el, CLIENT),
        "<message id='1' to='a@b'><body>x</body><x xmlns='urn:x'><y/><body xmlns='jabber:client'/><z xmlns=''/></x></message>"
    );
    // In another stream (s2s), the top-level element declares its namespace.
    assert!(written(&el, "jabber:server").starts_with("<message xmlns='jabber:client' "));
    // A stream-namespace element is written with its namespace declared, not a prefix.
    let features = Element::bare("features", NS_STREAM);
    assert_eq!(
        written(&features, CLIENT),
        "<features xmlns='http://etherx.jabber.org/streams'/>"
    );
    assert_eq!(
        parse(written(&features, CLIENT).as_bytes(), CLIENT),
        features
    );
}

#[test]
fn text_and_attributes_are_escaped() {
    let mut el = Element::bare("message", CLIENT);
    el.set_attr(Namespace::NONE, name("id"), "a'b\"c<d>e&f\tg\nh\ri");
    el.set_attr(Namespace::XML, name("lang"), "en");
    let mut body = Element::bare("body", CLIENT);
    body.append_text("<script>&amp; 'q' \"d\" ]]> \r\n\t ünï 😀");
    el.append_child(body);
    let text = written(&el, CLIENT);
    assert_eq!(
        text,
        "<message id='a&apos;b&quot;c&lt;d&gt;e&amp;f&#x9;g&#xA;h&#xD;i' xml:lang='en'><body>&lt;script&gt;&amp;amp; 'q' \"d\" ]]&gt; &#xD;\n\t ünï 😀</body></message>"
    );
    assert_eq!(parse(text.as_bytes(), CLIENT), el);
}

#[test]
fn namespaced_attributes_get_a_prefix() {
    let el = parse(
        b"<iq xmlns:a='urn:a' xmlns:b='urn:b' a:x='1' b:x='2' x='3' xml:lang='de'><q xmlns='urn:q' a:y='4'/></iq>",
        CLIENT,
    );
    let text = written(&el, CLIENT);
    assert!(text.contains(" xml:lang='de'"), "{text}");
    assert!(text.contains(" xmlns:ns1='urn:a' ns1:x='1'"), "{text}");
    assert!(text.contains(" xmlns:ns2='urn:b' ns2:x='2'"), "{text}");
    assert!(
        text.contains("<q xmlns='urn:q' xmlns:ns1='urn:a' ns1:y='4'/>"),
        "{text}"
    );
    assert_eq!(parse(text.as_bytes(), CLIENT), el);
    let mut out = Vec::new();
    write_prefix(&mut out, 1207);
    assert_eq!(out, b"ns1207");
}

#[test]
fn element_to_bytes_matches_write_element() {
    let el = parse(b"<presence><show>dnd</show></presence>", CLIENT);
    assert_eq!(
        &element_to_bytes(&el, CLIENT)[..],
        written(&el, CLIENT).as_bytes()
    );
}

/// Random trees (names, namespaces equal to or different from the parent's or empty, plain,
/// `xml:` and namespaced attributes, text with everything that needs escaping) survive a
/// write/parse round trip.
#[test]
fn random_elements_round_trip() {
    let mut seed: u64 = 0xdead_beef_cafe_f00d;
    let mut rng = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    const NAMESPACES: [&str; 5] = [CLIENT, "urn:x", "", "jabber:iq:roster", "urn:a&b'c"];
    const NAMES: [&str; 5] = ["message", "body", "x", "item", "a-b.c_d"];
    const TEXTS: [&str; 6] = ["", "plain", "<&>'\"", "\r\n\t ", "ünï 😀", "]]>"];
    fn build(rng: &mut impl FnMut(usize) -> usize, depth: usize, parent_ns: &str) -> Element {
        let ns = if rng(2) == 0 {
            parent_ns
        } else {
            NAMESPACES[rng(NAMESPACES.len())]
        };
        let mut el = Element::bare(NAMES[rng(NAMES.len())], ns);
        for (i, attr) in ["id", "to", "type"].iter().enumerate() {
            if rng(2) == 0 {
                el.set_attr(Namespace::NONE, name(attr), TEXTS[rng(TEXTS.len())]);
            }
            if rng(4) == 0 {
                let attr_ns = match i {
                    0 => Namespace::XML,
                    1 => Namespace::from("urn:attr"),
                    _ => Namespace::from("urn:x"),
                };
                el.set_attr(attr_ns, name(attr), TEXTS[rng(TEXTS.len())]);
            }
        }
        let mut last_was_text = false;
        for _ in 0..rng(4) {
            if depth < 4 && rng(2) == 0 {
                el.append_child(build(rng, depth + 1, ns));
                last_was_text = false;
            } else if !last_was_text {
                // Adjacent text nodes are merged by a parser; empty ones vanish.
                let text = TEXTS[1 + rng(TEXTS.len() - 1)];
                el.append_text_node(text);
                last_was_text = true;
            }
        }
        el
    }
    for _ in 0..500 {
        let mut el = build(&mut rng, 0, CLIENT);
        if el.ns().is_empty() {
            // Top-level elements need a namespace (the parser refuses them otherwise).
            el = Element::builder("wrapper", "urn:w").append(el).build();
        }
        let text = written(&el, CLIENT);
        assert_eq!(parse(text.as_bytes(), CLIENT), el, "{text}");
    }
}

#[test]
fn stream_header_round_trips_with_present_fields_only() {
    let h = StreamHeader {
        name: "stream".into(),
        ns: NS_STREAM.into(),
        default_ns: Some(CLIENT.into()),
        from: Some("example.com".into()),
        id: Some("a'b&c".into()),
        version: Some("1.0".into()),
        lang: Some("en".into()),
        ..Default::default()
    };
    let text = stream_header(&h);
    assert_eq!(
        text,
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='a&apos;b&amp;c' version='1.0' xml:lang='en'>"
    );
    let mut p = StreamParser::new(Limits::default());
    p.feed(text.as_bytes());
    let Ok(Some(StreamEvent::Header(back))) = p.next_event() else {
        panic!()
    };
    assert_eq!(back, h);
}
