//! TLS to PostgreSQL: a throwaway server with `ssl=on` and a certificate from a throwaway
//! CA; `taskhive serve` (alone and as a cluster node) over `sslmode=verify-full`, a wrong CA
//! refused at start-up, and `verify-full` against `verify-ca` on a name the certificate lacks.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use common::child::{client_at, serve_fails, spawn_server};
use common::pg::{give_to_server, Cluster};
use common::{job, Worker};
use taskhive::store::pg_tls::pg_config;
use tempfile::TempDir;
use tonic::transport::Channel;

/// A PostgreSQL that speaks TLS with a certificate for `localhost` and `127.0.0.1`.
struct TlsPg {
    _pg: Cluster,
    _dir: TempDir,
    port: u16,
    /// The CA that signed the server's certificate.
    ca: PathBuf,
    /// A CA that did not.
    wrong_ca: PathBuf,
    admin: String,
}

/// A CA named `name` (distinct names: a CA of the same name would be taken for the issuer,
/// and the error would be a bad signature, not an unknown issuer).
fn new_ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

fn tls_postgres() -> TlsPg {
    let dir = tempfile::tempdir().unwrap();
    let ca = new_ca("taskhive test CA");
    let key = rcgen::KeyPair::generate().unwrap();
    let server = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let path = |f: &str| dir.path().join(f);
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("wrong-ca.pem"), new_ca("another CA").pem()).unwrap();
    std::fs::write(path("server.pem"), server.pem()).unwrap();
    std::fs::write(path("server.key"), key.serialize_pem()).unwrap();
    // PostgreSQL refuses a key others can read.
    std::fs::set_permissions(path("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    for f in [
        dir.path().to_path_buf(),
        path("server.pem"),
        path("server.key"),
    ] {
        give_to_server(&f);
    }
    let cert = format!("ssl_cert_file={}", path("server.pem").display());
    let key = format!("ssl_key_file={}", path("server.key").display());
    let pg = Cluster::start(&["fsync=off", "ssl=on", &cert, &key]);
    let admin = pg.url("postgres");
    let port = admin
        .rsplit_once(':')
        .and_then(|(_, p)| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    TlsPg {
        _pg: pg,
        port,
        ca: path("ca.pem"),
        wrong_ca: path("wrong-ca.pem"),
        admin,
        _dir: dir,
    }
}

impl TlsPg {
    /// Creates database `name` (over a plain connection; the server takes both).
    fn create_db(&self, name: &str) {
        let mut c = ::postgres::Client::connect(&self.admin, ::postgres::NoTls).unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    }

    /// A store URL of database `db` at `host` (connecting to 127.0.0.1 whatever the name).
    fn url(&self, host: &str, db: &str, params: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/{db}?hostaddr=127.0.0.1&{params}",
            self.port
        )
    }

    /// `sslmode=verify-full&sslrootcert=CA` for `ca`.
    fn verify_full(&self, ca: &std::path::Path) -> String {
        format!("sslmode=verify-full&sslrootcert={}", ca.display())
    }

    /// taskhive's sessions on database `db`: (encrypted, not encrypted).
    fn sessions(&self, db: &str) -> (i64, i64) {
        let mut c = ::postgres::Client::connect(&self.admin, ::postgres::NoTls).unwrap();
        let r = c
            .query_one(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
                 FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid
                 WHERE a.datname = $1 AND a.application_name = 'taskhive'",
                &[&db],
            )
            .unwrap();
        (r.get(0), r.get(1))
    }

    fn count_jobs(&self, db: &str) -> i64 {
        let url = format!("postgres://postgres@127.0.0.1:{}/{db}", self.port);
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        c.query_one("SELECT count(*) FROM jobs", &[])
            .unwrap()
            .get(0)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stores_jobs_over_verify_full_tls_alone_and_as_a_cluster_node() {
    let pg = std::sync::Arc::new(blocking(tls_postgres).await);
    let tmp = tempfile::tempdir().unwrap();

    // One node: the sync store connections.
    let p = pg.clone();
    blocking(move || p.create_db("single")).await;
    let url = pg.url("localhost", "single", &pg.verify_full(&pg.ca));
    let (_single, addr) = spawn_server(&tmp.path().join("single"), &["--store", &url]).await;
    let mut c = client_at(addr).await;
    c.submit_job(job("tls", "one")).await.unwrap();
    let p = pg.clone();
    let (jobs, (tls, plain)) =
        blocking(move || (p.count_jobs("single"), p.sessions("single"))).await;
    assert_eq!(jobs, 1, "the acknowledged submit is in the database");
    assert!(
        tls >= 1 && plain == 0,
        "sessions: {tls} encrypted, {plain} not"
    );

    // Cluster mode opens async connections of its own (submits, claims, LISTEN, exec lock).
    let p = pg.clone();
    blocking(move || p.create_db("cluster")).await;
    let url = pg.url("127.0.0.1", "cluster", &pg.verify_full(&pg.ca));
    let (_node, addr) = spawn_server(
        &tmp.path().join("node-a"),
        &["--store", &url, "--node-id", "a"],
    )
    .await;
    let mut c = client_at(addr).await;
    let id = c
        .submit_job(job("tls", "two"))
        .await
        .unwrap()
        .into_inner()
        .job_id;
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut w = Worker::connect(ch, &["tls"], 1).await;
    let j = w.next_job().await;
    assert_eq!((j.id, j.name.as_str()), (id, "two"));
    w.done(j.lease_id, b"ok").await;
    let p = pg.clone();
    let (jobs, (tls, plain)) =
        blocking(move || (p.count_jobs("cluster"), p.sessions("cluster"))).await;
    assert_eq!(jobs, 0, "the done job is deleted");
    // 4 submit connections, the claimer, the listener, the exec lock, the store's writer.
    assert!(
        tls >= 8 && plain == 0,
        "sessions: {tls} encrypted, {plain} not"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_stops_serve_at_start_up_naming_the_tls_error() {
    let pg = std::sync::Arc::new(blocking(tls_postgres).await);
    let p = pg.clone();
    blocking(move || p.create_db("wrong")).await;
    let tmp = tempfile::tempdir().unwrap();
    for (name, extra) in [("alone", &[][..]), ("node", &["--node-id", "a"][..])] {
        let dir = tmp.path().join(name);
        let url = pg.url("localhost", "wrong", &pg.verify_full(&pg.wrong_ca));
        let mut args = vec!["--store", url.as_str()];
        args.extend_from_slice(extra);
        let log = serve_fails(&dir, &args).await;
        let expected = format!(
            "store: postgres: TLS handshake failed: invalid peer certificate: UnknownIssuer \
             (sslmode=verify-full, sslrootcert={})",
            pg.wrong_ca.display()
        );
        assert!(log.contains(&expected), "{name}: stderr was: {log}");
    }
    let p = pg.clone();
    assert_eq!(blocking(move || p.sessions("wrong")).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_checks_the_host_name_and_verify_ca_only_the_chain() {
    let pg = std::sync::Arc::new(blocking(tls_postgres).await);
    let p = pg.clone();
    blocking(move || p.create_db("names")).await;
    let ca = pg.ca.display().to_string();
    let wrong = pg.wrong_ca.display().to_string();
    // (host, params, connects, encrypted)
    let cases = [
        (
            "localhost",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            true,
            true,
        ),
        (
            "127.0.0.1",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            true,
            true,
        ),
        (
            "db.invalid",
            format!("sslmode=verify-full&sslrootcert={ca}"),
            false,
            true,
        ),
        (
            "db.invalid",
            format!("sslmode=verify-ca&sslrootcert={ca}"),
            true,
            true,
        ),
        (
            "localhost",
            format!("sslmode=verify-ca&sslrootcert={wrong}"),
            false,
            true,
        ),
        // `require` takes any certificate; with a root file it verifies the chain (libpq).
        ("db.invalid", "sslmode=require".to_string(), true, true),
        (
            "localhost",
            format!("sslmode=require&sslrootcert={wrong}"),
            false,
            true,
        ),
        ("localhost", "sslmode=prefer".to_string(), true, true),
        ("localhost", "sslmode=disable".to_string(), true, false),
    ];
    for (host, params, connects, encrypted) in cases {
        let url = pg.url(host, "names", &params);
        let u = url.clone();
        let sync = blocking(move || {
            let mut c = pg_config(&u)?.connect_sync()?;
            Ok::<bool, taskhive::store::StoreError>(
                c.query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )
                .unwrap()
                .get(0),
            )
        })
        .await;
        // The async connections (cluster mode) decide the same way.
        let asynchronous = async {
            let (client, conn) = pg_config(&url)?.connect().await?;
            tokio::spawn(conn);
            Ok::<bool, taskhive::store::StoreError>(
                client
                    .query_one(
                        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0),
            )
        }
        .await;
        for (how, got) in [("sync", sync), ("async", asynchronous)] {
            match got {
                Ok(ssl) => {
                    assert!(connects, "{how} {host} {params}: connected");
                    assert_eq!(ssl, encrypted, "{how} {host} {params}: encryption");
                }
                Err(e) => {
                    assert!(!connects, "{how} {host} {params}: {e}");
                    let e = e.to_string();
                    assert!(
                        e.starts_with("postgres: TLS handshake failed: invalid peer certificate"),
                        "{how} {host} {params}: {e}"
                    );
                    if host == "db.invalid" {
                        assert!(e.contains("db.invalid"), "{e}");
                    }
                }
            }
        }
    }
}
