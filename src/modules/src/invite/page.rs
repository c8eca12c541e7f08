//! The landing page of an invitation (XEP-0379 §3.3, XEP-0401 §4.2): `GET /invite/{token}`,
//! one self-contained HTML page (no scripts, no outside assets) that tells the invitee which
//! app to install, then offers the `xmpp:` link as a button and as a QR code. An invitation
//! that cannot be used any more gets a page saying why (404 unknown, 410 expired, used up or
//! revoked). The token is in the URL, so the page is neither cached nor indexed, and its
//! outgoing links send no referrer.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hearth_core::server::Server;
use hearth_store::Invitation;
use qrcode::QrCode;
use qrcode::render::{svg, unicode};

use super::{Standing, plausible_token, uri};

pub(super) fn router() -> Router<Arc<Server>> {
    Router::new().route("/invite/{token}", get(landing))
}

/// The QR code of `text` as an inline SVG element (no XML declaration), black on white.
pub fn qr_svg(text: &str) -> String {
    match QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let image = code
                .render::<svg::Color>()
                .min_dimensions(240, 240)
                .dark_color(svg::Color("#000000"))
                .light_color(svg::Color("#ffffff"))
                .build();
            match image.find("<svg") {
                Some(start) => image[start..].to_string(),
                None => image,
            }
        }
        // Only for data beyond a QR code's capacity (about 2.9 kB), far above any link.
        Err(e) => {
            tracing::warn!(error = %e, "no QR code for an invitation link");
            String::new()
        }
    }
}

/// The QR code of `text` drawn with block characters, light on dark as terminals usually are.
pub fn qr_terminal(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<unicode::Dense1x2>()
            .dark_color(unicode::Dense1x2::Light)
            .light_color(unicode::Dense1x2::Dark)
            .build(),
    )
}

async fn landing(State(server): State<Arc<Server>>, Path(token): Path<String>) -> Response {
    let found = match plausible_token(&token) {
        true => server.store.invitation(&token).await,
        false => Ok(None),
    };
    let domain = server.domain();
    let (status, body) = match found {
        Ok(Some(invitation)) => match Standing::of(&invitation, SystemTime::now()) {
            Standing::Valid => (StatusCode::OK, invitation_page(&invitation, domain)),
            standing => (StatusCode::GONE, unusable_page(domain, standing)),
        },
        Ok(None) => (
            StatusCode::NOT_FOUND,
            page(
                &format!("No such invitation — {}", escape(domain)),
                "<h1>This invitation does not exist</h1>\
                 <p>Check that the link is complete, or ask the person who invited you for a new one.</p>",
            ),
        ),
        Err(e) => {
            tracing::error!(error = %e, "invitation page: the database failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                page(
                    "Error",
                    "<h1>Something went wrong</h1><p>Please try again later.</p>",
                ),
            )
        }
    };
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'",
            ),
            (header::HeaderName::from_static("x-robots-tag"), "noindex"),
        ],
        body,
    )
        .into_response()
}

fn unusable_page(domain: &str, standing: Standing) -> String {
    let why = match standing {
        Standing::Expired => "This invitation has expired.",
        Standing::UsedUp => "This invitation has already been used.",
        Standing::Revoked | Standing::Valid => "This invitation was withdrawn.",
    };
    page(
        &format!("Invitation no longer valid — {}", escape(domain)),
        &format!(
            "<h1>{why}</h1><p>Ask the person who invited you to {} for a new invitation.</p>",
            escape(domain)
        ),
    )
}

fn invitation_page(invitation: &Invitation, domain: &str) -> String {
    let link = uri(domain, invitation);
    let domain_html = escape(domain);
    let from = match &invitation.inviter {
        Some(inviter) => format!(" by <b>{}@{domain_html}</b>", escape(inviter)),
        None => String::new(),
    };
    let address = match &invitation.username {
        Some(user) if invitation.reset => format!(
            "<p>With it you choose a new password for <b>{}@{domain_html}</b>.</p>",
            escape(user)
        ),
        Some(user) => format!(
            "<p>Your address will be <b>{}@{domain_html}</b>.</p>",
            escape(user)
        ),
        None => "<p>You choose your own username.</p>".to_string(),
    };
    let expires = hearth_core::datetime::format(invitation.expires);
    let body = format!(
        r#"<h1>You are invited to chat on {domain_html}</h1>
<p>You have been invited{from} to join <b>{domain_html}</b>, a chat server that uses XMPP, the open standard for messaging. It takes two steps.</p>
{address}
<h2>1. Install an app</h2>
<ul>
<li><b>Android:</b> Conversations, from <a href="https://f-droid.org/packages/eu.siacs.conversations/">F-Droid</a> or <a href="https://play.google.com/store/apps/details?id=eu.siacs.conversations">Google Play</a></li>
<li><b>iPhone and iPad:</b> <a href="https://monal-im.org/">Monal</a> or <a href="https://siskin.im/">Siskin IM</a>, from the App Store</li>
<li><b>Computer:</b> <a href="https://gajim.org/download/">Gajim</a> (Windows, Linux) or <a href="https://dino.im/">Dino</a> (Linux)</li>
</ul>
<h2>2. Join</h2>
<p>On the device where you installed the app, tap the button; the app opens and asks you to choose a password that only you will know.</p>
<p><a class="join" href="{link_html}">Join {domain_html}</a></p>
<p>Or scan this code with the app (in Conversations: “Scan QR code”):</p>
<div class="qr">{qr}</div>
<p class="small">If nothing happens, copy this link into the app: <code>{link_html}</code></p>
<p class="small">This invitation is valid until {expires_html}.</p>"#,
        link_html = escape(&link),
        qr = qr_svg(&link),
        expires_html = escape(&readable(&expires)),
    );
    page(&format!("Join {domain_html}"), &body)
}

/// `2026-05-01T12:00:00Z` as `2026-05-01 12:00 UTC`.
fn readable(datetime: &str) -> String {
    match (datetime.get(..10), datetime.get(11..16)) {
        (Some(date), Some(time)) => format!("{date} {time} UTC"),
        _ => datetime.to_string(),
    }
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 36em; margin: 2em auto; padding: 0 1em; line-height: 1.5; color: #222; }}
a.join {{ display: inline-block; padding: .7em 1.6em; background: #1a73e8; color: #fff; border-radius: .4em; text-decoration: none; font-size: 1.2em; }}
.qr svg {{ width: 240px; height: 240px; }}
.small {{ font-size: .9em; color: #555; }}
code {{ word-break: break-all; }}
</style>
</head>
<body>
{body}
</body>
</html>
"#
    )
}

/// Text safe inside HTML elements and quoted attributes.
fn escape(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    hearth_xml::escape_attr(text, &mut out);
    String::from_utf8(out).expect("escaping keeps UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_render() {
        let svg = qr_svg("xmpp:example.org?register;preauth=abc");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.ends_with("</svg>"));
        let text = qr_terminal("xmpp:example.org?register;preauth=abc").unwrap();
        assert!(text.lines().count() > 10);
    }

    #[test]
    fn dates_read_plainly_and_text_is_escaped() {
        assert_eq!(readable("2026-05-01T12:00:00Z"), "2026-05-01 12:00 UTC");
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
    }
}
