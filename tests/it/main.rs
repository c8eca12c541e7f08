//! Integration tests: the real `hearth` binary over real sockets on 127.0.0.x.

mod harness;

mod abuse;
mod auth;
mod blocking;
mod carbons;
mod cli;
mod component;
mod fast;
mod federation;
mod im;
mod mam;
mod monitoring;
mod muc;
mod pep;
mod presence;
mod push;
mod sasl2;
mod sm;
mod streams;
mod vcard;
mod web;
