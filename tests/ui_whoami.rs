//! `GET /ui/whoami`: the dashboard learns its token's role (auth on), or that everything is
//! allowed (auth off); a missing or unknown token is 401.

mod common;

use common::TestServer;

#[tokio::test]
async fn whoami_reports_the_role_of_the_token_or_401() {
    let keep = tempfile::tempdir().unwrap();
    let file = keep.path().join("tokens");
    std::fs::write(
        &file,
        format!(
            "client {} viewer\nadmin {} ops\n",
            taskhive::auth::hash_hex("c-secret"),
            taskhive::auth::hash_hex("a-secret")
        ),
    )
    .unwrap();
    let s = TestServer::start_with(|c| c.auth = Some(file)).await;
    let http = reqwest::Client::new();
    let url = format!("{}/ui/whoami", s.url());
    for (token, role, name) in [
        ("c-secret", "client", "viewer"),
        ("a-secret", "admin", "ops"),
    ] {
        let v: serde_json::Value = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["auth"], true);
        assert_eq!(v["role"], role);
        assert_eq!(v["name"], name);
    }
    for r in [
        http.get(&url).send().await.unwrap(),
        http.get(&url).bearer_auth("nope").send().await.unwrap(),
    ] {
        assert_eq!(r.status(), 401);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["code"], "UNAUTHENTICATED", "{v}");
    }

    let open = TestServer::start().await;
    let v: serde_json::Value = http
        .get(format!("{}/ui/whoami", open.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (v["auth"].clone(), v["role"].clone()),
        (false.into(), "admin".into())
    );
}
