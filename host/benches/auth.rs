//! What authentication costs a request: the middleware of `paddock serve`
//! deciding who calls, through the whole router (a trivial handler behind
//! it), with API keys (1,000 keys in the ring) and without them
//! (`serve.auth = "none"`), with and without the per-key request rate; and
//! the keyring's lookup alone.
//!
//! `cargo bench -p paddock --bench auth`

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::routing::get;
use criterion::{Criterion, criterion_group, criterion_main};
use paddock::cli::auth::{Auth, authenticate};
use paddock::config::RequestLimits;
use paddock::core::clock::SystemClock;
use paddock::keys::{Keyring, MemoryKeys, NewKey, Role};
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

/// A ring of 1,000 keys over 10 tenants, and the token of one of them.
fn ring() -> (Arc<Keyring>, String) {
    let ring = Keyring::open(Arc::new(MemoryKeys::default()), Arc::new(SystemClock)).unwrap();
    let mut token = String::new();
    for n in 0..1000 {
        let new = NewKey { tenant: format!("tenant-{}", n % 10), role: Role::Run, name: None, expires_in: None };
        token = ring.create(new).unwrap().token;
    }
    (Arc::new(ring), token)
}

fn app(auth: Auth) -> Router {
    Router::new()
        .route("/v1/runs", get(|| async { "ok" }))
        .route_layer(axum::middleware::from_fn_with_state(auth, authenticate))
}

fn request(header: (&str, &str)) -> Request<Body> {
    let mut request = Request::get("/v1/runs").header(header.0, header.1).body(Body::empty()).unwrap();
    request.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    request
}

fn bench(c: &mut Criterion) {
    let (ring, token) = ring();
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let bearer = format!("Bearer {token}");
    let mut group = c.benchmark_group("auth");
    group.bench_function("keyring lookup", |b| b.iter(|| ring.authenticate(&token).unwrap()));
    let none = RequestLimits { per_key_rate: 0, per_tenant_rate: 0, per_key_concurrent: 0, per_tenant_concurrent: 0 };
    let keyed = app(Auth::keys(ring.clone(), none));
    group.bench_function("request, keys", |b| {
        b.to_async(&tokio).iter(|| keyed.clone().oneshot(request(("authorization", &bearer))))
    });
    // Every limiter on (rates per key and tenant, counts in flight), at
    // figures the loop never reaches: each sample stays on the allowed path,
    // as a caller under its limits does.
    let high = RequestLimits {
        per_key_rate: u32::MAX,
        per_tenant_rate: u32::MAX,
        per_key_concurrent: u32::MAX,
        per_tenant_concurrent: u32::MAX,
    };
    let limited = app(Auth::keys(ring.clone(), high));
    group.bench_function("request, keys and every request limit", |b| {
        b.to_async(&tokio).iter(|| limited.clone().oneshot(request(("authorization", &bearer))))
    });
    let open = app(Auth::open("acme", none));
    group.bench_function("request, auth = none", |b| {
        b.to_async(&tokio).iter(|| open.clone().oneshot(request(("x-paddock-tenant", "acme"))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
