//! Server-side conversions between storage shapes that clients of different generations use:
//! bookmarks (XEP-0402 ⇄ XEP-0048 in PEP or Private XML, XEP-0411) and avatars (XEP-0084 ⇄
//! vCard-temp, XEP-0398).

pub mod avatar;
pub mod bookmarks;
