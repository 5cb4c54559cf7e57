//! HTTP plumbing that both front-ends (galley-api and galley-admin) use, so that neither
//! imports the other: the client IP as `trustedProxy` says, multipart file
//! spooling, and the headers and CORS every response gets.
//!
//! Architecture invariant: no routes, no pages, no business rule; everything here is
//! shared by the API and the dashboard, and the `galley` crate composes it around both.

mod client_ip;
mod headers;
mod note;
mod spool;

pub use client_ip::{client_ip, is_proxy_header, peer, ClientIp};
pub use headers::{cors, security_headers, AllowFraming};
pub use note::ErrorNote;
pub use spool::{spool_file, SpoolError};
