//! Token authentication through the gate: Distribution 2.8 configured for bearer tokens, a
//! token service started by the test, a realm rewritten by the gate, and oras logging in and
//! pushing through it.

mod support;

use std::convert::Infallible;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;
use support::{Registry, find_tool};
use wasmgate::body::full;

const SERVICE: &str = "wasmgate-tests";
const ISSUER: &str = "wasmgate-test-token-service";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse";
/// The realm the registry announces: a name clients cannot resolve, as an internal token
/// service address often is. Only the gate's `--rewrite-realm` makes login possible.
const INTERNAL_REALM: &str = "http://token.internal.invalid/token";

/// A token service that signs Distribution-style JWTs (ES256, with the signing certificate
/// in the `x5c` header) for the user and password above.
struct TokenService {
    key: EcdsaKeyPair,
    chain: Vec<String>,
}

impl TokenService {
    /// Creates the signing key, a CA and a certificate for the key; returns the service and
    /// the CA in PEM, which the registry trusts.
    fn new() -> (Self, String) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("signing key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("key");

        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let signer = KeyPair::try_from(pkcs8.as_ref()).expect("rcgen key");
        let leaf = CertificateParams::new(vec!["token-signer".to_owned()])
            .expect("leaf params")
            .signed_by(&signer, &issuer)
            .expect("leaf certificate");

        let chain = vec![STANDARD.encode(leaf.der()), STANDARD.encode(ca.der())];
        (Self { key, chain }, ca.pem())
    }

    /// Issues a token for the requested `scope`, as Distribution's token specification asks.
    fn token(&self, scope: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let access: Vec<_> = scope
            .split(' ')
            .filter_map(|item| {
                let mut parts = item.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let header = json!({"alg": "ES256", "typ": "JWT", "x5c": self.chain});
        let claims = json!({
            "iss": ISSUER, "sub": USER, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
            "iat": now, "jti": format!("{now}-{}", scope.len()), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .expect("sign");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }

    fn answer(&self, request: &Request<Incoming>) -> Response<wasmgate::body::Body> {
        let expected = format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")));
        let authorized = request
            .headers()
            .get("authorization")
            .is_some_and(|value| value == expected.as_str());
        if !authorized {
            let mut response =
                Response::new(full(&b"{\"details\":\"wrong user or password\"}"[..]));
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            return response;
        }
        let query = request.uri().query().unwrap_or_default();
        let scope: String = query
            .split('&')
            .filter_map(|pair| pair.strip_prefix("scope="))
            .map(|scope| {
                scope
                    .replace("%3A", ":")
                    .replace("%2C", ",")
                    .replace("%2F", "/")
                    .replace('+', " ")
            })
            .collect::<Vec<_>>()
            .join(" ");
        let token = self.token(&scope);
        Response::new(full(
            json!({"token": token, "access_token": token, "expires_in": 300}).to_string(),
        ))
    }
}

async fn start_token_service(service: TokenService) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind token service");
    let url = format!("http://{}/token", listener.local_addr().expect("address"));
    let service = std::sync::Arc::new(service);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service.clone();
            let handler = service_fn(move |request: Request<Incoming>| {
                let response = service.answer(&request);
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), handler),
            );
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oras_logs_in_through_a_rewritten_realm() {
    let Some(oras) = find_tool("oras") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "oras is missing; run scripts/install-test-tools.sh"
        );
        eprintln!("SKIPPED: oras is missing; run scripts/install-test-tools.sh");
        return;
    };
    let (service, ca_pem) = TokenService::new();
    let token_url = start_token_service(service).await;
    let work = tempfile::tempdir().expect("temporary directory");
    std::fs::write(work.path().join("ca.pem"), ca_pem).expect("root bundle");
    let registry = Registry::start_with_token_auth(
        INTERNAL_REALM,
        SERVICE,
        ISSUER,
        &work.path().join("ca.pem"),
    );
    let mut settings = support::settings(&registry.url());
    settings.realm_rewrites = vec![(INTERNAL_REALM.to_owned(), token_url.clone())];
    let gate = support::start_gate(settings).await;
    let host = gate.trim_start_matches("http://").to_owned();
    std::fs::write(
        work.path().join("artifact.txt"),
        b"pushed with a bearer token",
    )
    .expect("artifact");

    let challenge = support::get(&format!("{gate}/v2/")).await;
    let run = |args: Vec<String>| {
        let output = std::process::Command::new(&oras)
            .args(&args)
            .current_dir(work.path())
            .env("HOME", work.path())
            .env("DOCKER_CONFIG", work.path().join("docker"))
            .output()
            .expect("run oras");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let login = ["login", "--plain-http", &host, "-u", USER, "-p", PASSWORD]
        .map(String::from)
        .to_vec();
    let (logged_in, login_error) = tokio::task::block_in_place(|| run(login));
    let push = [
        "push",
        "--plain-http",
        &format!("{host}/secure/app:1"),
        "artifact.txt",
    ]
    .map(String::from)
    .to_vec();
    let (pushed, push_error) = tokio::task::block_in_place(|| run(push));

    assert_eq!(challenge.status, StatusCode::UNAUTHORIZED);
    let realm = challenge.header("www-authenticate").expect("challenge");
    assert!(realm.contains(&format!("realm=\"{token_url}\"")), "{realm}");
    assert!(realm.contains(&format!("service=\"{SERVICE}\"")), "{realm}");
    assert!(logged_in, "oras login failed: {login_error}");
    assert!(pushed, "oras push failed: {push_error}");
    assert!(registry.stored_tag("secure/app", "1").is_some());
}
