//! Shared helpers for the integration tests: start an emulator on an ephemeral loopback port,
//! fetch a token through its token endpoint, send raw HTTP, check Graph error bodies.
#![allow(dead_code)]

use partnersync_graph_emulator::{Emulator, EmulatorConfig, EmulatorHandle};
use serde_json::{json, Value};

pub struct Env {
    pub emu: EmulatorHandle,
    pub http: reqwest::Client,
    pub token: String,
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

pub fn config() -> EmulatorConfig {
    EmulatorConfig::default()
}

pub async fn start() -> Env {
    start_with(config()).await
}

pub async fn start_with(config: EmulatorConfig) -> Env {
    let emu = Emulator::start(config).await.expect("emulator starts");
    let http = reqwest::Client::new();
    let token = fetch_token(
        &http,
        &emu.token_url(),
        &emu.client_id(),
        &emu.client_secret(),
    )
    .await;
    Env { emu, http, token }
}

pub async fn fetch_token(
    http: &reqwest::Client,
    token_url: &str,
    client_id: &str,
    secret: &str,
) -> String {
    let form = format!(
        "grant_type=client_credentials&client_id={client_id}&client_secret={}&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default",
        secret.replace('~', "%7E")
    );
    let resp = http
        .post(token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.expect("token JSON");
    v["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

impl Env {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.emu.graph_url(), path)
    }

    pub async fn send_raw(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        token: Option<&str>,
    ) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut rb = self.http.request(m, url);
        if let Some(t) = token {
            rb = rb.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = rb.send().await.expect("request");
        Resp {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            text: resp.text().await.expect("body"),
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        self.send_raw(method, &self.url(path), body, headers, Some(&self.token))
            .await
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None, &[]).await
    }

    pub async fn get_adv(&self, path: &str) -> Resp {
        self.send("GET", path, None, &[("ConsistencyLevel", "eventual")])
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, Some(body), &[]).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Resp {
        self.send("PATCH", path, Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, None, &[]).await
    }

    /// Creates a user through the API and returns its id.
    pub async fn create(&self, body: &Value) -> String {
        let r = self.post("/users", body).await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()["id"].as_str().expect("id").to_string()
    }
}

/// A valid `POST /users` body in the managed domain.
pub fn user(alias: &str) -> Value {
    json!({
        "accountEnabled": true,
        "displayName": format!("User {alias}"),
        "mailNickname": alias,
        "userPrincipalName": format!("{alias}@contoso.com"),
        "passwordProfile": {"forceChangePasswordNextSignIn": true, "password": "Xy12345!abcD"}
    })
}

/// Checks a Graph error response field by field.
pub fn assert_error(r: &Resp, status: u16, code: &str, message: &str) {
    assert_eq!(r.status, status, "status; body: {}", r.text);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(ct.starts_with("application/json"), "content-type {ct}");
    let v = r.json();
    let e = &v["error"];
    assert_eq!(e["code"], code, "code; body: {}", r.text);
    assert_eq!(e["message"], message, "message; body: {}", r.text);
    let inner = &e["innerError"];
    let date = inner["date"].as_str().expect("innerError.date");
    assert!(chrono_like(date), "date {date}");
    let rid = inner["request-id"].as_str().expect("innerError.request-id");
    assert_eq!(r.header("request-id").as_deref(), Some(rid));
    let crid = inner["client-request-id"]
        .as_str()
        .expect("innerError.client-request-id");
    assert_eq!(r.header("client-request-id").as_deref(), Some(crid));
}

fn chrono_like(s: &str) -> bool {
    s.len() == 19 && &s[4..5] == "-" && &s[10..11] == "T"
}
