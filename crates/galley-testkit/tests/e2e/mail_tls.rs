//! SMTP transport security: with `smtp.tls` the connection is TLS from the first byte; without
//! it, STARTTLS is used whenever the server offers it. A scripted SMTP server on loopback
//! looks at what the client sends (the TLS handshake itself cannot finish: the server has no
//! certificate the web PKI trusts).

use galley_testkit::{both_engines, Method, TestServer};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Points SMTP at a new listener and asks for a test mail; returns the listener.
async fn send_test_mail(srv: &TestServer, tls: bool) -> TcpListener {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let r = srv
        .su(
            Method::PATCH,
            "/api/settings",
            Some(
                json!({"smtp": {"enabled": true, "host": "127.0.0.1", "port": port, "tls": tls},
                        "meta": {"senderAddress": "noreply@acme.test"}}),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = srv
        .su(
            Method::POST,
            "/api/settings/test/email",
            Some(json!({"email": "someone@example.com", "template": "verification"})),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    listener
}

/// A TLS handshake record (ClientHello) starts with 0x16 0x03.
fn is_client_hello(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] == 0x16 && b[1] == 0x03
}

both_engines! {
    async fn implicit_tls_speaks_tls_first(srv) {
        let listener = send_test_mail(&srv, true).await;
        let (mut sock, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("the mailer connects")
            .expect("accept");
        // No greeting from us: a TLS client talks first.
        let mut buf = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(10), sock.read_exact(&mut buf))
            .await
            .expect("client bytes")
            .expect("read");
        assert!(is_client_hello(&buf), "expected a TLS ClientHello, got {buf:?}");
    }

    async fn starttls_when_the_server_offers_it(srv) {
        let listener = send_test_mail(&srv, false).await;
        let (sock, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
            .await
            .expect("the mailer connects")
            .expect("accept");
        let (r, mut w) = sock.into_split();
        let mut r = BufReader::new(r);
        w.write_all(b"220 sink ESMTP\r\n").await.expect("greet");
        let mut line = String::new();
        r.read_line(&mut line).await.expect("ehlo");
        assert!(line.to_ascii_uppercase().starts_with("EHLO"), "{line:?}");
        w.write_all(b"250-sink\r\n250-STARTTLS\r\n250 8BITMIME\r\n").await.expect("caps");
        line.clear();
        r.read_line(&mut line).await.expect("starttls");
        assert_eq!(line.trim_end().to_ascii_uppercase(), "STARTTLS", "the mailer upgrades before sending");
        w.write_all(b"220 go ahead\r\n").await.expect("go");
        let mut buf = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(10), r.read_exact(&mut buf))
            .await
            .expect("client bytes")
            .expect("read");
        assert!(is_client_hello(&buf), "expected a TLS ClientHello, got {buf:?}");
    }
}
