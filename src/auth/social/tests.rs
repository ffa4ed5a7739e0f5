use super::*;

fn settings(authorize: Option<&str>) -> ProviderSettings {
    ProviderSettings {
        client_id: "client-1".into(),
        client_secret: SecretString("secret".into()),
        redirect_uri: "https://shop.example/callback".into(),
        authorize_url: authorize.map(str::to_string),
        token_url: None,
        userinfo_url: None,
        emails_url: None,
        jwks_url: None,
        issuer: None,
        scopes: None,
    }
}

#[test]
fn pkce_challenge_matches_rfc_7636_appendix_b() {
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

#[test]
fn authorization_url_carries_state_challenge_and_nonce() {
    let social = Social::new(&SocialSettings {
        google: Some(settings(None)),
        ..SocialSettings::default()
    })
    .expect("social");
    let google = social.provider("google").expect("google");
    let auth = google.authorization();
    let url = Url::parse(&auth.url).expect("url");
    assert_eq!(url.host_str(), Some("accounts.google.com"));
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "client-1");
    assert_eq!(q["redirect_uri"], "https://shop.example/callback");
    assert_eq!(q["state"], auth.state);
    assert_eq!(q["nonce"], auth.nonce);
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"], pkce_challenge(&auth.verifier));
    assert!(auth.verifier.len() >= 43, "RFC 7636 minimum length");
    assert_ne!(auth.state, google.authorization().state);
}

#[test]
fn unconfigured_providers_are_not_found() {
    let social = Social::new(&SocialSettings {
        github: Some(settings(Some("http://127.0.0.1:9/authorize"))),
        ..SocialSettings::default()
    })
    .expect("social");
    assert!(social.provider("github").is_ok());
    assert!(matches!(
        social.provider("google"),
        Err(SocialError::NotConfigured)
    ));
    assert!(matches!(
        social.provider("twitter"),
        Err(SocialError::NotConfigured)
    ));
}

#[test]
fn provider_error_codes_are_cut_and_cleaned() {
    assert_eq!(printable("invalid_grant"), "invalid_grant");
    assert_eq!(printable("bad\ncode\u{7}"), "badcode");
    assert_eq!(printable(&"x".repeat(500)).len(), 100);
}
