//! A real registry on 127.0.0.1:0 over a store in a temporary directory,
//! a reqwest client, and helpers that push the pieces of an image.

use std::path::Path;

use registry::{Config, Registry};
use reqwest::{Client, Response, StatusCode};
use sha2::{Digest as _, Sha256, Sha512};
use store::{Namespace, Store};
use tokio::sync::oneshot;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

pub struct Server {
    pub url: String,
    pub addr: std::net::SocketAddr,
    pub store: Store,
    pub registry: Registry,
    pub client: Client,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// A writable registry on a fresh store.
    pub async fn start() -> Server {
        Server::start_with(|c| c).await
    }

    pub async fn start_with(configure: impl FnOnce(Config) -> Config) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Server::on_store(dir.path(), configure).await;
        server._dir = Some(dir);
        server
    }

    /// A registry over the store at `root` (which the caller keeps).
    pub async fn on_store(root: &Path, configure: impl FnOnce(Config) -> Config) -> Server {
        let store = Store::open(root).expect("open store");
        let namespace = Namespace::new("registry-test").expect("namespace");
        let registry =
            Registry::open(configure(Config::new(store.clone(), namespace))).expect("registry");
        Server::serve(store, registry.clone(), registry.router()).await
    }

    pub async fn serve(store: Store, registry: Registry, router: axum::Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(registry::serve(listener, router, async {
            let _ = stopped.await;
        }));
        Server {
            url: format!("http://{addr}"),
            addr,
            store,
            registry,
            client: Client::new(),
            stop: Some(stop),
            task: Some(task),
            _dir: None,
        }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.at(path)).send().await.expect("GET")
    }

    /// `GET` with an `Accept` header.
    pub async fn get_accepting(&self, path: &str, accept: &str) -> Response {
        self.client
            .get(self.at(path))
            .header("Accept", accept)
            .send()
            .await
            .expect("GET")
    }

    pub async fn head(&self, path: &str) -> Response {
        self.client.head(self.at(path)).send().await.expect("HEAD")
    }

    /// `POST` with no body.
    pub async fn post(&self, path: &str) -> Response {
        self.client.post(self.at(path)).send().await.expect("POST")
    }

    /// `PUT` with no body.
    pub async fn put(&self, path: &str) -> Response {
        self.client.put(self.at(path)).send().await.expect("PUT")
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.client
            .delete(self.at(path))
            .send()
            .await
            .expect("DELETE")
    }

    /// Stops the server and waits until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server");
        }
    }

    /// Pushes `bytes` as one blob with a single POST.
    pub async fn push_blob(&self, name: &str, bytes: &[u8]) -> String {
        self.push_blob_as(name, bytes, digest_of(bytes)).await
    }

    /// Pushes `bytes` as one blob with a single POST naming `digest`.
    pub async fn push_blob_as(&self, name: &str, bytes: &[u8], digest: String) -> String {
        let r = self
            .client
            .post(self.at(&format!("/v2/{name}/blobs/uploads/?digest={digest}")))
            .header("Content-Type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("push blob");
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap_or_default()
        );
        digest
    }

    /// `POST ?mount=` of `digest` into `name` from repository `from`.
    pub async fn mount(&self, name: &str, digest: &str, from: &str) -> Response {
        self.post(&format!(
            "/v2/{name}/blobs/uploads/?mount={digest}&from={from}"
        ))
        .await
    }

    pub async fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Response {
        self.client
            .put(self.at(&format!("/v2/{name}/manifests/{reference}")))
            .header("Content-Type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .expect("put manifest")
    }

    /// Pushes a one-layer image (config, layer, manifest) under `tag`;
    /// returns the manifest's bytes and digest.
    pub async fn push_image(&self, name: &str, tag: &str, seed: &str) -> (Vec<u8>, String) {
        self.push_image_as(name, Some(tag), seed, digest_of).await
    }

    /// Pushes a one-layer image whose every digest `digest` makes, under
    /// `tag` or, with none, by its own digest; returns the manifest's
    /// bytes and digest.
    pub async fn push_image_as(
        &self,
        name: &str,
        tag: Option<&str>,
        seed: &str,
        digest: fn(&[u8]) -> String,
    ) -> (Vec<u8>, String) {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{"Env":["SEED={seed}"]}}}}"#,
            digest(seed.as_bytes())
        );
        let config_digest = self
            .push_blob_as(name, config.as_bytes(), digest(config.as_bytes()))
            .await;
        let layer_digest = self
            .push_blob_as(name, seed.as_bytes(), digest(seed.as_bytes()))
            .await;
        let manifest = manifest_json(
            OCI_MANIFEST,
            OCI_CONFIG,
            &config_digest,
            config.len(),
            &[(layer_digest, seed.len())],
            None,
        );
        let manifest_digest = digest(manifest.as_bytes());
        let r = self
            .put_manifest(
                name,
                tag.unwrap_or(&manifest_digest),
                OCI_MANIFEST,
                manifest.as_bytes(),
            )
            .await;
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap_or_default()
        );
        (manifest.into_bytes(), manifest_digest)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Runs skopeo; its standard output.
pub async fn skopeo(args: &[&str]) -> String {
    let out = tokio::process::Command::new("skopeo")
        .args(args)
        .output()
        .await
        .expect("skopeo (apt-get install -y skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn sha512_of(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(bytes)))
}

/// A manifest document; `extra` is spliced in as further top-level fields.
pub fn manifest_json(
    media_type: &str,
    config_type: &str,
    config: &str,
    config_size: usize,
    layers: &[(String, usize)],
    extra: Option<&str>,
) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, s)| format!(r#"{{"mediaType":"{OCI_LAYER}","digest":"{d}","size":{s}}}"#))
        .collect();
    let extra = extra.map(|e| format!(",{e}")).unwrap_or_default();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{media_type}","config":{{"mediaType":"{config_type}","digest":"{config}","size":{config_size}}},"layers":[{}]{extra}}}"#,
        layers.join(",")
    )
}

/// The spec error code of an error response.
pub async fn error_code(response: Response) -> String {
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .unwrap_or_else(|e| panic!("error body of a {status} is not JSON: {e}"));
    let errors = body["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), 1, "{body}");
    assert!(errors[0]["message"].is_string(), "{body}");
    assert!(errors[0].get("detail").is_some(), "{body}");
    errors[0]["code"].as_str().expect("code").to_owned()
}

/// Sends raw bytes and returns the raw answer (for paths a URL library
/// would normalise, and bodies that break off).
pub async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}
