use super::*;

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='example.com' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

fn events(parser: &mut StreamParser) -> Result<Vec<StreamEvent>, XmlError> {
    let mut out = Vec::new();
    while let Some(ev) = parser.next_event()? {
        out.push(ev);
    }
    Ok(out)
}

fn parse_all(input: &[u8], limits: Limits) -> Result<Vec<StreamEvent>, XmlError> {
    let mut p = StreamParser::new(limits);
    p.feed(input);
    events(&mut p)
}

fn err_condition(body: &str) -> &'static str {
    let input = format!("{HEADER}{body}");
    match parse_all(input.as_bytes(), Limits::default()) {
        Err(e) => e.condition(),
        Ok(evs) => panic!("accepted {body:?}: {evs:?}"),
    }
}

fn render(evs: &[StreamEvent]) -> Vec<String> {
    evs.iter()
        .map(|e| match e {
            StreamEvent::Header(h) => format!("header {h:?}"),
            StreamEvent::Element(el) => {
                String::from_utf8(element_to_bytes(el, "jabber:client").to_vec()).unwrap()
            }
            StreamEvent::End => "end".into(),
        })
        .collect()
}

const STREAM: &str = concat!(
    "<?xml version='1.0'?><stream:stream to='example.com' version='1.0' xml:lang='en' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>",
    "  \n ",
    "<message to='a@b' type='chat' id='1'><body>hi &amp; &lt;there&gt; &#x1F600;</body><x xmlns='urn:x'><y a='1'>t</y></x></message>",
    "\t<iq type='get' id='2'><query xmlns='jabber:iq:roster' xml:lang='de'/></iq>",
    "</stream:stream>"
);

#[test]
fn header_and_stanzas() {
    let evs = parse_all(STREAM.as_bytes(), Limits::default()).unwrap();
    let StreamEvent::Header(h) = &evs[0] else {
        panic!()
    };
    assert_eq!(h.name, "stream");
    assert_eq!(h.ns, NS_STREAM);
    assert_eq!(h.default_ns.as_deref(), Some("jabber:client"));
    assert_eq!(h.to.as_deref(), Some("example.com"));
    assert_eq!(h.version.as_deref(), Some("1.0"));
    assert_eq!(h.lang.as_deref(), Some("en"));
    let StreamEvent::Element(features) = &evs[1] else {
        panic!()
    };
    assert!(features.is("features", NS_STREAM));
    let StreamEvent::Element(msg) = &evs[2] else {
        panic!()
    };
    assert!(msg.is("message", "jabber:client"));
    assert_eq!(
        msg.get_child("body", "jabber:client").unwrap().text(),
        "hi & <there> 😀"
    );
    assert!(matches!(evs.last(), Some(StreamEvent::End)));
    assert_eq!(evs.len(), 5);
}

#[test]
fn any_chunking_gives_the_same_events() {
    let whole = render(&parse_all(STREAM.as_bytes(), Limits::default()).unwrap());
    for chunk in [1, 2, 3, 7, 13, 64] {
        let mut p = StreamParser::new(Limits::default());
        let mut got = Vec::new();
        for part in STREAM.as_bytes().chunks(chunk) {
            p.feed(part);
            got.extend(events(&mut p).unwrap());
        }
        assert_eq!(render(&got), whole, "chunk size {chunk}");
    }
}

#[test]
fn serialiser_round_trips_and_escapes() {
    let evs = parse_all(STREAM.as_bytes(), Limits::default()).unwrap();
    let StreamEvent::Element(msg) = &evs[2] else {
        panic!()
    };
    let bytes = element_to_bytes(msg, "jabber:client");
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.starts_with("<message "), "{text}");
    assert!(
        !text.starts_with("<message xmlns"),
        "default namespace omitted: {text}"
    );
    assert!(text.contains("hi &amp; &lt;there&gt; 😀"), "{text}");
    assert!(
        text.contains("<x xmlns='urn:x'><y a='1'>t</y></x>"),
        "{text}"
    );
    let again = parse_all(format!("{HEADER}{text}").as_bytes(), Limits::default()).unwrap();
    let StreamEvent::Element(back) = &again[1] else {
        panic!()
    };
    assert_eq!(back, msg);
    let StreamEvent::Element(iq) = &evs[3] else {
        panic!()
    };
    let text = String::from_utf8(element_to_bytes(iq, "jabber:client").to_vec()).unwrap();
    assert!(
        text.contains("<query xmlns='jabber:iq:roster' xml:lang='de'/>"),
        "{text}"
    );
    let mut quoted = Element::bare("message", "jabber:client");
    quoted.set_attr(
        rxml::Namespace::NONE,
        rxml::NcName::try_from("id").unwrap(),
        "a'b\"c<",
    );
    let text = String::from_utf8(element_to_bytes(&quoted, "jabber:client").to_vec()).unwrap();
    assert_eq!(text, "<message id='a&apos;b&quot;c&lt;'/>");
}

#[test]
fn restricted_xml_is_refused() {
    assert_eq!(err_condition("<!-- comment -->"), "restricted-xml");
    assert_eq!(
        err_condition("<message><body>&lol;</body></message>"),
        "restricted-xml"
    );
    let pi = err_condition("<?php evil() ?>");
    assert!(pi == "restricted-xml" || pi == "not-well-formed", "{pi}");
    let dtd = parse_all(
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><stream:stream/>",
        Limits::default(),
    )
    .unwrap_err();
    assert!(
        matches!(dtd.condition(), "restricted-xml" | "not-well-formed"),
        "{dtd:?}"
    );
    let bomb = concat!(
        "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;'>",
        "<!ENTITY lol2 '&lol1;&lol1;&lol1;&lol1;'>]><lolz>&lol2;</lolz>"
    );
    assert!(parse_all(bomb.as_bytes(), Limits::default()).is_err());
}

#[test]
fn malformed_xml_is_refused() {
    assert_eq!(
        err_condition("<message><body></message>"),
        "not-well-formed"
    );
    assert_eq!(err_condition("<message id='1' id='2'/>"), "not-well-formed");
    assert_eq!(
        err_condition("<message><p:x/></message>"),
        "not-well-formed"
    );
    assert_eq!(err_condition("<message>\u{0}</message>"), "not-well-formed");
    assert_eq!(
        err_condition("text between stanzas<message/>"),
        "bad-format"
    );
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER.as_bytes());
    p.feed(&[b'<', b'a', 0xff, b'>']);
    assert!(events(&mut p).is_err());
    let after_end = format!("{HEADER}</stream:stream><message/>");
    assert!(parse_all(after_end.as_bytes(), Limits::default()).is_err());
}

#[test]
fn limits_give_policy_violation() {
    let limits = Limits {
        max_stanza_size: 1000,
        max_depth: 4,
        max_attributes: 3,
    };
    let big = format!(
        "{HEADER}<message><body>{}</body></message>",
        "x".repeat(2000)
    );
    assert_eq!(
        parse_all(big.as_bytes(), limits).unwrap_err().condition(),
        "policy-violation"
    );
    let deep = format!("{HEADER}{}{}", "<a xmlns='x'>".repeat(5), "</a>".repeat(5));
    assert_eq!(
        parse_all(deep.as_bytes(), limits).unwrap_err().condition(),
        "policy-violation"
    );
    let ok_deep = format!("{HEADER}{}{}", "<a xmlns='x'>".repeat(4), "</a>".repeat(4));
    assert!(parse_all(ok_deep.as_bytes(), limits).is_ok());
    let attrs = format!("{HEADER}<message a='1' b='2' c='3' d='4'/>");
    assert_eq!(
        parse_all(attrs.as_bytes(), limits).unwrap_err().condition(),
        "policy-violation"
    );
    let long_attr = format!("{HEADER}<message a='{}'/>", "v".repeat(10_000));
    assert_eq!(
        parse_all(long_attr.as_bytes(), Limits::default())
            .unwrap_err()
            .condition(),
        "policy-violation"
    );
    // A stanza that never ends is cut off once it passes the limit, without waiting for its end.
    let mut p = StreamParser::new(limits);
    p.feed(HEADER.as_bytes());
    p.feed(b"<message><body>");
    assert!(events(&mut p).is_ok());
    p.feed(&vec![b'x'; 1500]);
    assert_eq!(events(&mut p).unwrap_err().condition(), "policy-violation");
    // Many small stanzas, each under the limit, are fine; so is whitespace between them.
    let many = format!(
        "{HEADER}{}",
        "<message><body>hello</body></message>\n".repeat(100)
    );
    assert_eq!(parse_all(many.as_bytes(), limits).unwrap().len(), 101);
}

#[test]
fn reset_keeps_pipelined_header() {
    let mut p = StreamParser::new(Limits::default());
    p.feed(HEADER.as_bytes());
    p.feed(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>");
    let evs = events(&mut p).unwrap();
    assert_eq!(evs.len(), 2);
    p.reset();
    p.feed(HEADER.as_bytes());
    let evs = events(&mut p).unwrap();
    assert!(matches!(evs.as_slice(), [StreamEvent::Header(_)]));
    // STARTTLS check: nothing left over.
    assert!(!p.has_buffered());
}

#[test]
fn header_writer() {
    let h = StreamHeader {
        name: "stream".into(),
        ns: NS_STREAM.into(),
        default_ns: Some("jabber:client".into()),
        from: Some("example.com".into()),
        id: Some("abc".into()),
        version: Some("1.0".into()),
        lang: Some("en".into()),
        ..Default::default()
    };
    let text = stream_header(&h);
    let evs = parse_all(text.as_bytes(), Limits::default()).unwrap();
    let StreamEvent::Header(back) = &evs[0] else {
        panic!()
    };
    assert_eq!(back, &h);
}

#[test]
fn garbage_never_panics() {
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let alphabet = b"<>/='\"&;:! ?-[]abcxmlns\n\x00\xff";
    for _ in 0..2000 {
        let mut p = StreamParser::new(Limits {
            max_stanza_size: 4096,
            max_depth: 8,
            max_attributes: 8,
        });
        p.feed(HEADER.as_bytes());
        let mut input = Vec::new();
        for _ in 0..64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            input.push(alphabet[(seed % alphabet.len() as u64) as usize]);
        }
        p.feed(&input);
        let _ = events(&mut p);
    }
}

#[test]
#[ignore = "micro-benchmark: cargo test -p hearth-xml --release -- --ignored --nocapture"]
fn bench_parse_and_serialise() {
    let stanza = "<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' type='chat' id='a1b2c3d4'><body>Wherefore art thou, Romeo? Deny thy father and refuse thy name.</body><active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>";
    let n = 100_000;
    let input = format!("{HEADER}{}", stanza.repeat(n));
    let start = std::time::Instant::now();
    let mut p = StreamParser::new(Limits::default());
    let mut out = Vec::new();
    for chunk in input.as_bytes().chunks(4096) {
        p.feed(chunk);
        while let Some(ev) = p.next_event().unwrap() {
            if let StreamEvent::Element(el) = ev {
                out.clear();
                write_element(&el, "jabber:client", &mut out);
            }
        }
    }
    let per = start.elapsed().as_nanos() / n as u128;
    println!(
        "parse + serialise: {per} ns per {}-byte stanza",
        stanza.len()
    );
}
