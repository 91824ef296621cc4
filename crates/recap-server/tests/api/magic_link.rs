//! Magic-link sign-in, with a real SMTP listener on loopback that records every message.

use std::sync::{Arc, Mutex};

use axum::Router;
use recap_server::{Settings, accounts::tokens::sha256_hex, config::Environment, mail::SmtpTls};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

use crate::{
    engine_tests,
    helpers::{Engine, PASSWORD, TestApp, assert_envelope, spawn_with},
};

// ----- a minimal SMTP server -----

#[derive(Debug, Clone)]
struct Mail {
    from: String,
    to: Vec<String>,
    /// Headers and body as received, dot-unstuffed.
    data: String,
}

#[derive(Clone, Default)]
struct SmtpSink {
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    /// Listens on 127.0.0.1 (any free port) until the test ends.
    async fn start() -> (SmtpSink, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = SmtpSink::default();
        let mails = sink.mails.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(smtp_session(stream, mails.clone()));
            }
        });
        (sink, port)
    }

    fn mails(&self) -> Vec<Mail> {
        self.mails.lock().unwrap().clone()
    }

    fn last(&self) -> Mail {
        self.mails().pop().expect("a mail was sent")
    }
}

async fn smtp_session(stream: TcpStream, mails: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    write.write_all(b"220 sink.test ESMTP ready\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250 sink.test\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = command["MAIL FROM:".len()..].trim().to_owned();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(command["RCPT TO:".len()..].trim().to_owned());
            b"250 OK\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n").await?;
            let mut data = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                // "\r\n.\r\n": the previous line ended the line, this one is the lone dot.
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').filter(|_| line.starts_with("..")).unwrap_or(&line));
            }
            mails.lock().unwrap().push(Mail { from: std::mem::take(&mut from), to: std::mem::take(&mut to), data });
            b"250 OK queued\r\n"
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            b"502 Command not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// The body with quoted-printable undone (soft breaks and `=XX`), should the mail use it.
fn decoded(mail: &Mail) -> String {
    let (headers, body) = mail.data.split_once("\r\n\r\n").expect("headers, blank line, body");
    if !headers.to_ascii_lowercase().contains("content-transfer-encoding: quoted-printable") {
        return body.to_owned();
    }
    let body = body.replace("=\r\n", "");
    let mut out = Vec::new();
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&body[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

const LINK: &str = "http://localhost:3000/auth/verify?token=";

/// The token of the mail's link.
fn link_token(mail: &Mail) -> String {
    let body = decoded(mail);
    let start = body.find(LINK).unwrap_or_else(|| panic!("no link in {body}")) + LINK.len();
    let token: String =
        body[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    assert_eq!(token.len(), 43, "32 random bytes, base64url: {token}");
    token
}

// ----- helpers -----

async fn spawn_mailing(engine: Engine, configure: impl FnOnce(&mut Settings)) -> Option<(TestApp, SmtpSink)> {
    let (sink, port) = SmtpSink::start().await;
    let app = spawn_with(
        engine,
        |s| {
            s.mail.host = Some("127.0.0.1".into());
            s.mail.port = port;
            s.mail.tls = SmtpTls::None;
            configure(s);
        },
        Router::new(),
    )
    .await?;
    Some((app, sink))
}

async fn ask(app: &TestApp, email: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app.client.post(app.url("/api/v1/auth/magic-link")).json(&json!({ "email": email }));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

/// Asks for a link (asserting the documented 200) and returns the raw answer body.
async fn ask_ok(app: &TestApp, email: &str) -> String {
    let response = ask(app, email, None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    let normalised = email.trim().to_lowercase();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body, json!({ "message": format!("Magic link sent to {normalised}"), "expires_in": 900 }));
    text
}

async fn verify(app: &TestApp, token: &str) -> reqwest::Response {
    app.client.get(app.url("/api/v1/auth/verify")).query(&[("token", token)]).send().await.unwrap()
}

/// Verifies (asserting 200 and the token shape) and returns the answer.
async fn verify_ok(app: &TestApp, token: &str) -> Value {
    let response = verify(app, token).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains(token), "the magic token is never answered");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["token_type"], "bearer", "{body}");
    assert_eq!(body["expires_in"], 1800, "{body}");
    assert!(body["access_token"].as_str().unwrap().len() > 20, "{body}");
    assert!(body["refresh_token"].as_str().unwrap().len() > 20, "{body}");
    body
}

/// Asserts a 401 envelope with `detail` and that it does not echo the token.
async fn assert_refused(response: reqwest::Response, status: u16, code: &str, detail: &str, token: &str) {
    let body = assert_envelope(response, status, code).await;
    assert_eq!(body["detail"], detail, "{body}");
    assert!(!body.to_string().contains(token) || token.is_empty(), "{body}");
}

async fn set_expiry(app: &TestApp, token: &str, at: OffsetDateTime) {
    let hash = sha256_hex(token);
    let updated = recap_server::on_db!(&app.state.db, |pool| sqlx::query(
        "UPDATE magic_links SET expires_at = $1 WHERE token_hash = $2"
    )
    .bind(at)
    .bind(&hash)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))
    .unwrap();
    assert_eq!(updated, 1);
}

/// `(email, used)` of the row stored under the token's hash.
async fn stored(app: &TestApp, token: &str) -> Option<(String, bool)> {
    let row: Option<(String, Option<OffsetDateTime>)> = recap_server::on_db!(&app.state.db, |pool| sqlx::query_as(
        "SELECT email, used_at FROM magic_links WHERE token_hash = $1"
    )
    .bind(sha256_hex(token))
    .fetch_optional(pool)
    .await)
    .unwrap();
    row.map(|(email, used_at)| (email, used_at.is_some()))
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    recap_server::on_db!(&app.state.db, |pool| sqlx::query_scalar::<_, String>(
        "SELECT action FROM audit_log ORDER BY created_at"
    )
    .fetch_all(pool)
    .await)
    .unwrap()
}

// ----- tests -----

engine_tests!(
    a_mailed_link_signs_in_once,
    known_and_unknown_addresses_get_the_same_answer,
    expired_unknown_and_malformed_tokens_are_refused,
    requests_are_limited_per_address_and_per_ip,
    pending_and_disabled_accounts_do_not_sign_in,
    a_failed_or_refused_delivery_does_not_change_the_answer,
);

async fn a_mailed_link_signs_in_once(engine: Engine) {
    let Some((app, sink)) = spawn_mailing(engine, |_| {}).await else { return };
    let answer = ask_ok(&app, "  Ada@Example.COM ").await;

    let mails = sink.mails();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.to, vec!["<ada@example.com>".to_owned()]);
    assert_eq!(mail.from, "<no-reply@localhost>");
    for header in ["To: ada@example.com", "From: Recap <no-reply@localhost>", "Subject: Your Recap sign-in link"] {
        assert!(mail.data.contains(header), "{header} in {}", mail.data);
    }
    assert!(mail.data.contains("Content-Transfer-Encoding: 7bit"), "{}", mail.data);
    let token = link_token(mail);
    assert!(!answer.contains(&token));

    // Only the hash is stored.
    assert_eq!(stored(&app, &token).await, Some(("ada@example.com".into(), false)));
    let raw: i64 = recap_server::on_db!(&app.state.db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM magic_links WHERE token_hash = $1 OR email = $1"
    )
    .bind(&token)
    .fetch_one(pool)
    .await)
    .unwrap();
    assert_eq!(raw, 0);

    // The first account of the instance is its admin; no password, display name from the address.
    let body = verify_ok(&app, &token).await;
    let user = &body["user"];
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!((user["role"].as_str(), user["status"].as_str()), (Some("admin"), Some("approved")));
    assert_eq!(user["display_name"], "ada");
    assert_eq!(stored(&app, &token).await, Some(("ada@example.com".into(), true)));
    let me = app.get_as("/api/v1/auth/me", body["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["id"], user["id"]);
    // There is no password to log in with.
    let login = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "ada@example.com", "password": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);

    // Single use.
    assert_refused(verify(&app, &token).await, 401, "AUTHENTICATION_ERROR", "Token already used or invalid", &token)
        .await;

    // Later accounts are members; a second link of the same account signs the same user in.
    ask_ok(&app, "bob@example.com").await;
    let bob = verify_ok(&app, &link_token(&sink.last())).await;
    assert_eq!((bob["user"]["role"].as_str(), bob["user"]["status"].as_str()), (Some("member"), Some("approved")));
    ask_ok(&app, "ADA@example.com").await;
    let again = verify_ok(&app, &link_token(&sink.last())).await;
    assert_eq!(again["user"]["id"], user["id"]);
    assert_eq!(sink.mails().len(), 3);

    let actions = audit_actions(&app).await;
    for action in ["magic_link_request", "magic_link_signup", "magic_link_login"] {
        assert!(actions.iter().any(|a| a == action), "{action} in {actions:?}");
    }
}

async fn known_and_unknown_addresses_get_the_same_answer(engine: Engine) {
    let Some((app, sink)) = spawn_mailing(engine, |_| {}).await else { return };
    let known = app.register("known@example.com", PASSWORD).await;

    let known_answer = ask(&app, "known@example.com", None).await;
    let unknown_answer = ask(&app, "nobody@example.com", None).await;
    assert_eq!(known_answer.status(), unknown_answer.status());
    assert_eq!(known_answer.headers()["content-type"], unknown_answer.headers()["content-type"]);
    let known_text = known_answer.text().await.unwrap();
    let unknown_text = unknown_answer.text().await.unwrap();
    // Byte for byte the same, but for the address itself.
    assert_eq!(
        known_text.replace("known@example.com", "<email>"),
        unknown_text.replace("nobody@example.com", "<email>")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&unknown_text).unwrap(),
        json!({"message": "Magic link sent to nobody@example.com", "expires_in": 900})
    );

    // Both addresses get a link.
    let mails = sink.mails();
    assert_eq!(
        mails.iter().map(|m| m.to[0].as_str()).collect::<Vec<_>>(),
        ["<known@example.com>", "<nobody@example.com>"]
    );
    let known_token = link_token(&mails[0]);
    let unknown_token = link_token(&mails[1]);
    assert_ne!(known_token, unknown_token);
    for text in [&known_text, &unknown_text] {
        assert!(!text.contains(&known_token) && !text.contains(&unknown_token));
    }

    // The known address signs in as the existing account (its password still works too).
    let body = verify_ok(&app, &known_token).await;
    assert_eq!(body["user"]["id"], known["id"]);
    assert_eq!(body["user"]["role"], "admin");
    app.login("known@example.com", PASSWORD).await;
    // The unknown one becomes a new member.
    let body = verify_ok(&app, &unknown_token).await;
    assert_ne!(body["user"]["id"], known["id"]);
    assert_eq!(body["user"]["role"], "member");
    assert_eq!(body["user"]["email"], "nobody@example.com");
}

async fn expired_unknown_and_malformed_tokens_are_refused(engine: Engine) {
    // Behind a trusted proxy, so the many malformed requests below come from distinct clients.
    let Some((app, sink)) = spawn_mailing(engine, |s| s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await
    else {
        return;
    };
    ask_ok(&app, "ada@example.com").await;
    let token = link_token(&sink.last());

    set_expiry(&app, &token, OffsetDateTime::now_utc() - time::Duration::seconds(1)).await;
    assert_refused(verify(&app, &token).await, 401, "AUTHENTICATION_ERROR", "Token has expired", &token).await;
    // Still expired (and unspent) the second time; no account was created.
    assert_refused(verify(&app, &token).await, 401, "AUTHENTICATION_ERROR", "Token has expired", &token).await;
    assert_eq!(stored(&app, &token).await, Some(("ada@example.com".into(), false)));
    let users: i64 = recap_server::on_db!(&app.state.db, |pool| sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(pool)
        .await)
    .unwrap();
    assert_eq!(users, 0);

    // Just inside the window it still works.
    ask_ok(&app, "ada@example.com").await;
    let fresh = link_token(&sink.last());
    set_expiry(&app, &fresh, OffsetDateTime::now_utc() + time::Duration::seconds(30)).await;
    verify_ok(&app, &fresh).await;

    let unknown = recap_server::accounts::tokens::random_token(32);
    for garbage in ["not-a-token", unknown.as_str(), "", "   ", "'; DROP TABLE magic_links; --", &"x".repeat(4000)] {
        assert_refused(verify(&app, garbage).await, 401, "AUTHENTICATION_ERROR", "Invalid or expired token", garbage)
            .await;
    }
    // The query parameter is required.
    let body = assert_envelope(app.get("/api/v1/auth/verify").await, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["loc"], json!(["query", "token"]), "{body}");

    // A malformed address is a 422 and sends nothing.
    let sent = sink.mails().len();
    for (i, bad) in ["", "ada", "ada@example", "a b@example.com", "<ada@example.com>"].into_iter().enumerate() {
        let body = assert_envelope(ask(&app, bad, Some(&format!("10.0.1.{i}"))).await, 422, "VALIDATION_ERROR").await;
        assert_eq!(body["detail"][0]["loc"], json!(["body", "email"]), "{bad}: {body}");
    }
    let empty = app
        .client
        .post(app.url("/api/v1/auth/magic-link"))
        .header("x-forwarded-for", "10.0.2.1")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let body = assert_envelope(empty, 422, "VALIDATION_ERROR").await;
    assert_eq!(body["detail"][0]["loc"], json!(["body", "email"]), "{body}");
    assert_eq!(sink.mails().len(), sent);
}

async fn requests_are_limited_per_address_and_per_ip(engine: Engine) {
    let Some((app, sink)) = spawn_mailing(engine, |s| s.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await
    else {
        return;
    };
    // Five per address per minute, whatever the client.
    for i in 0..5 {
        let response = ask(&app, "ada@example.com", Some(&format!("10.0.0.{i}"))).await;
        assert_eq!(response.status(), 200, "request {i}");
    }
    for (email, ip) in [("ada@example.com", "10.0.0.50"), (" ADA@Example.com", "10.0.0.51")] {
        let response = ask(&app, email, Some(ip)).await;
        let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
        let body = assert_envelope(response, 429, "RATE_LIMIT_EXCEEDED").await;
        assert_eq!(body["error"]["details"]["retry_after"], retry_after);
    }
    assert_eq!(sink.mails().len(), 5);

    // Five per client IP per minute, whatever the address.
    for i in 0..5 {
        let response = ask(&app, &format!("user{i}@example.com"), Some("10.9.9.9")).await;
        assert_eq!(response.status(), 200, "request {i}");
    }
    assert_envelope(ask(&app, "user5@example.com", Some("10.9.9.9")).await, 429, "RATE_LIMIT_EXCEEDED").await;
    // Malformed requests spend the IP budget too.
    assert_envelope(ask(&app, "not-an-email", Some("10.9.9.9")).await, 429, "RATE_LIMIT_EXCEEDED").await;
    assert_eq!(sink.mails().len(), 10);
    // Another client and another address are unaffected.
    assert_eq!(ask(&app, "user5@example.com", Some("10.8.8.8")).await.status(), 200);
}

async fn pending_and_disabled_accounts_do_not_sign_in(engine: Engine) {
    let Some((app, sink)) = spawn_mailing(engine, |s| s.auth.signup_requires_approval = true).await else { return };
    // The first account is admin and approved even when sign-ups need approval.
    ask_ok(&app, "admin@example.com").await;
    let admin = verify_ok(&app, &link_token(&sink.last())).await;
    assert_eq!((admin["user"]["role"].as_str(), admin["user"]["status"].as_str()), (Some("admin"), Some("approved")));
    let admin_token = admin["access_token"].as_str().unwrap();

    ask_ok(&app, "pat@example.com").await;
    let token = link_token(&sink.last());
    assert_refused(verify(&app, &token).await, 403, "AUTHORIZATION_ERROR", "User account is pending approval", &token)
        .await;
    // The account exists, pending; the token is spent.
    let users: Value = app.get_as("/api/v1/users", admin_token).send().await.unwrap().json().await.unwrap();
    let pat = users["items"].as_array().unwrap().iter().find(|u| u["email"] == "pat@example.com").unwrap().clone();
    assert_eq!((pat["role"].as_str(), pat["status"].as_str()), (Some("member"), Some("pending")));
    assert_refused(verify(&app, &token).await, 401, "AUTHENTICATION_ERROR", "Token already used or invalid", &token)
        .await;
    // Asking again changes nothing until an admin approves.
    ask_ok(&app, "pat@example.com").await;
    let token = link_token(&sink.last());
    assert_refused(verify(&app, &token).await, 403, "AUTHORIZATION_ERROR", "User account is pending approval", &token)
        .await;
    let pat_id = pat["id"].as_str().unwrap();
    let approved = app.post_as(&format!("/api/v1/users/{pat_id}/approve"), admin_token).send().await.unwrap();
    assert_eq!(approved.status(), 200);
    ask_ok(&app, "pat@example.com").await;
    let body = verify_ok(&app, &link_token(&sink.last())).await;
    assert_eq!((body["user"]["id"].as_str(), body["user"]["status"].as_str()), (Some(pat_id), Some("approved")));

    // A disabled account gets a link (the answer must not differ) but cannot use it.
    let disabled = app
        .patch_as(&format!("/api/v1/users/{pat_id}"), admin_token)
        .json(&json!({"is_active": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200);
    ask_ok(&app, "pat@example.com").await;
    let token = link_token(&sink.last());
    assert_refused(verify(&app, &token).await, 401, "AUTHENTICATION_ERROR", "User account is disabled", &token).await;
}

async fn a_failed_or_refused_delivery_does_not_change_the_answer(engine: Engine) {
    // An SMTP server that is down: the link is stored, the failure logged, the answer unchanged.
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let Some(app) = spawn_with(
        engine,
        |s| {
            s.mail.host = Some("127.0.0.1".into());
            s.mail.port = closed_port;
            s.mail.tls = SmtpTls::None;
        },
        Router::new(),
    )
    .await
    else {
        return;
    };
    ask_ok(&app, "ada@example.com").await;
    let rows: i64 = recap_server::on_db!(&app.state.db, |pool| sqlx::query_scalar(
        "SELECT COUNT(*) FROM magic_links WHERE email = 'ada@example.com'"
    )
    .fetch_one(pool)
    .await)
    .unwrap();
    assert_eq!(rows, 1);

    // No SMTP host: development and test log the link; production refuses to send. Same answer.
    for environment in [Environment::Test, Environment::Development, Environment::Production] {
        let Some(app) = spawn_with(engine, |s| s.environment = environment, Router::new()).await else { return };
        assert!(app.state.settings.mail.host.is_none());
        ask_ok(&app, "ada@example.com").await;
        ask_ok(&app, "nobody@example.com").await;
    }
}
