//! Images over HTTP. On a 3-node cluster: an image uploaded on one node is served with the same
//! bytes by another (ETag, immutable Cache-Control, 304 on `If-None-Match`), reaches the third
//! node's disk without anyone asking for it, gets thumbnails there, is fetched again by a node
//! whose copy was damaged, and is still served by the third node after the other two are killed. On one node: refusals (not an image, too large, not
//! multipart, no `file` field, undecodable, anonymous, customer) in the one error shape.
//!
//! Uploads go through `client::Client::raw` with a multipart body built here; image GETs use a
//! plain reqwest client because their bodies are bytes, not JSON.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::client::{Client, Reply};
use crate::harness::{eventually, sign_in, Cluster, STARTUP_TIMEOUT};

const BOUNDARY: &str = "ecommerce-media-test-3f9a27";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The default `media.max_upload_bytes`.
const MAX_UPLOAD: usize = 10 << 20;

/// A `width` × `height` PNG with a gradient, so every size gives other bytes.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode test PNG");
    out.into_inner()
}

/// A `width` × `height` PNG of pseudo-random pixels: it does not compress.
fn noise_png(width: u32, height: u32) -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    let image = image::RgbImage::from_fn(width, height, |_, _| {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        };
        image::Rgb([next(), next(), next()])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode test PNG");
    out.into_inner()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A multipart/form-data body with one file part per `(field, bytes)`.
fn multipart(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (field, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; \
                 filename=\"upload.bin\"\r\nContent-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload_parts(client: &Client, parts: &[(&str, &[u8])]) -> Reply {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    client
        .raw(
            Method::POST,
            "/api/v1/media",
            &[("content-type", &content_type)],
            multipart(parts),
        )
        .await
        .expect("POST /api/v1/media")
}

pub async fn upload(client: &Client, bytes: &[u8]) -> Reply {
    upload_parts(client, &[("file", bytes)]).await
}

/// A GET whose body is kept as bytes.
struct Fetched {
    status: StatusCode,
    headers: HeaderMap,
    bytes: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn fetch(base: &str, path: &str, if_none_match: Option<&str>) -> Fetched {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("reqwest client");
    let mut request = http.get(format!("{base}{path}"));
    if let Some(etag) = if_none_match {
        request = request.header("if-none-match", etag);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    Fetched {
        status: response.status(),
        headers: response.headers().clone(),
        bytes: response.bytes().await.expect("image body").to_vec(),
    }
}

/// Where node `data_dir` keeps blob `hash`.
fn blob_path(data_dir: PathBuf, hash: &str) -> PathBuf {
    data_dir
        .join("blobs/sha256")
        .join(&hash[..2])
        .join(&hash[2..4])
        .join(hash)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_uploaded_on_one_node_is_served_by_every_node() {
    let mut cluster = Cluster::start(3).await;
    let (vendor, vendor_id) = sign_in(&cluster.client(1), "vendor", "v1").await;
    let bytes = png(300, 200);
    let hash = sha256(&bytes);

    let created = upload(&vendor, &bytes).await;
    assert_eq!(created.status, StatusCode::CREATED, "upload: {created}");
    let media = &created.body;
    assert_eq!(media["hash"], hash.as_str(), "{media}");
    assert_eq!(
        media["content_type"], "image/png",
        "type comes from the bytes"
    );
    assert_eq!(
        (&media["width"], &media["height"], &media["size"]),
        (
            &Value::from(300),
            &Value::from(200),
            &Value::from(bytes.len())
        )
    );
    assert_eq!(media["uploaded_by"], vendor_id.as_str());
    assert_eq!(media["origin_node"], 1);
    let url = format!("/api/v1/media/{hash}");
    assert_eq!(media["url"], url.as_str());
    assert_eq!(created.header("location"), Some(url.as_str()));
    assert_eq!(
        media["thumbnails"][0]["url"],
        format!("{url}/thumbnail?size=64").as_str()
    );

    let (admin, _) = sign_in(&cluster.client(2), "admin", "root").await;
    let again = upload(&admin, &bytes).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "re-upload is a no-op success: {again}"
    );
    assert_eq!(
        again.body["uploaded_by"],
        vendor_id.as_str(),
        "the first registration stays"
    );

    // Node 2 serves the same bytes (its own copy, or fetched from node 1 on the spot).
    let node2 = cluster.node(2).url();
    let got = fetch(&node2, &url, None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.bytes == bytes, "node 2 served other bytes");
    let etag = format!("\"{hash}\"");
    assert_eq!(got.header("etag"), etag);
    assert_eq!(got.header("cache-control"), IMMUTABLE);
    assert_eq!(got.header("content-type"), "image/png");
    let cached = fetch(&node2, &url, Some(&etag)).await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.bytes.is_empty());
    assert_eq!(cached.header("etag"), etag);
    assert_eq!(cached.header("cache-control"), IMMUTABLE);
    let other = fetch(&node2, &url, Some("\"someotherhash\"")).await;
    assert_eq!(other.status, StatusCode::OK);

    let meta = cluster
        .client(2)
        .get(&format!("{url}/meta"))
        .await
        .expect("GET meta")
        .ok("meta on node 2");
    assert_eq!(meta["hash"], hash.as_str());
    assert_eq!(meta["width"], 300);

    // Node 3 gets the bytes in the background, with no request for them.
    let on_disk = blob_path(cluster.node(3).data_dir(), &hash);
    eventually(
        "node 3 to fetch the blob by itself",
        STARTUP_TIMEOUT,
        || {
            let (on_disk, hash) = (on_disk.clone(), hash.clone());
            async move {
                match std::fs::read(&on_disk) {
                    Ok(b) if sha256(&b) == hash => Ok(()),
                    Ok(_) => Err("a file with other bytes".to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
        },
    )
    .await;

    // A copy damaged on node 2's disk is noticed when read and fetched again from a peer.
    let on_disk_2 = blob_path(cluster.node(2).data_dir(), &hash);
    eventually("node 2 to have the blob on disk", STARTUP_TIMEOUT, || {
        let on_disk_2 = on_disk_2.clone();
        async move {
            std::fs::metadata(&on_disk_2)
                .map(drop)
                .map_err(|e| e.to_string())
        }
    })
    .await;
    std::fs::write(&on_disk_2, b"bit rot").expect("damage node 2's copy");
    let repaired = fetch(&node2, &url, None).await;
    assert_eq!(repaired.status, StatusCode::OK);
    assert!(repaired.bytes == bytes, "node 2 served its damaged copy");
    assert!(std::fs::read(&on_disk_2).expect("node 2's copy") == bytes);

    // A thumbnail from node 3: the image scaled to fit 64 × 64.
    let node3 = cluster.node(3).url();
    let thumb = fetch(&node3, &format!("{url}/thumbnail?size=64"), None).await;
    assert_eq!(thumb.status, StatusCode::OK);
    assert_eq!(thumb.header("content-type"), "image/png");
    assert_eq!(thumb.header("cache-control"), IMMUTABLE);
    let thumb_etag = format!("\"{hash}-64\"");
    assert_eq!(thumb.header("etag"), thumb_etag);
    let decoded = image::load_from_memory(&thumb.bytes).expect("thumbnail decodes");
    assert_eq!(decoded.width(), 64);
    assert!(
        (42..=43).contains(&decoded.height()),
        "{}",
        decoded.height()
    );
    let thumb_cached = fetch(
        &node3,
        &format!("{url}/thumbnail?size=64"),
        Some(&thumb_etag),
    )
    .await;
    assert_eq!(thumb_cached.status, StatusCode::NOT_MODIFIED);
    let bad_size = cluster
        .client(3)
        .get(&format!("{url}/thumbnail?size=100"))
        .await
        .expect("GET thumbnail");
    bad_size.expect_error(422, "validation_failed", "a thumbnail size not offered");

    // With the origin and the other node gone, node 3 still serves the image from its disk.
    cluster.kill(1);
    cluster.kill(2);
    let alone = fetch(&node3, &url, None).await;
    assert_eq!(alone.status, StatusCode::OK, "node 3 alone");
    assert!(alone.bytes == bytes, "node 3 alone served other bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_that_are_not_acceptable_images_are_refused_in_the_error_shape() {
    let cluster = Cluster::start(1).await;
    let anonymous = cluster.client(1);
    let (customer, _) = sign_in(&anonymous, "customer", "ann").await;
    let (vendor, _) = sign_in(&anonymous, "vendor", "v1").await;
    let image = png(8, 8);

    upload(&anonymous, &image)
        .await
        .expect_error(401, "unauthenticated", "anonymous upload");
    upload(&customer, &image)
        .await
        .expect_error(403, "forbidden", "customer upload");

    let text = upload(&vendor, b"just some text, whatever the part says").await;
    text.expect_error(415, "unsupported_media_type", "a text file");
    assert_eq!(text.body["details"]["accepted"][0], "image/jpeg", "{text}");
    let svg = upload(&vendor, b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>").await;
    svg.expect_error(415, "unsupported_media_type", "an SVG");

    // PNG magic bytes, then more than the limit: refused by size, not type.
    let mut big = image.clone();
    big.resize(MAX_UPLOAD + 1000, 0);
    let too_large = upload(&vendor, &big).await;
    too_large.expect_error(413, "payload_too_large", "an 11 MiB upload");
    assert_eq!(
        too_large.body["details"]["max_bytes"], MAX_UPLOAD,
        "{too_large}"
    );

    // Larger than the JSON routes' 1 MiB limit but within the upload limit: accepted.
    let noisy = noise_png(700, 700);
    assert!(noisy.len() > 1 << 20, "{} bytes", noisy.len());
    let big_ok = upload(&vendor, &noisy).await;
    assert_eq!(
        big_ok.status,
        StatusCode::CREATED,
        "a {} byte image: {big_ok}",
        noisy.len()
    );

    let truncated = upload(&vendor, &image[..20]).await;
    truncated.expect_error(422, "media_undecodable", "a PNG cut after its magic bytes");

    upload_parts(&vendor, &[("picture", &image)])
        .await
        .expect_error(400, "invalid_body", "a part not named `file`");
    upload_parts(&vendor, &[("file", &image), ("file", &image)])
        .await
        .expect_error(400, "invalid_body", "two files");
    vendor
        .raw(
            Method::POST,
            "/api/v1/media",
            &[("content-type", "application/json")],
            b"{\"file\": \"aGVsbG8=\"}".to_vec(),
        )
        .await
        .expect("POST JSON")
        .expect_error(415, "unsupported_media_type", "a JSON body");

    let unknown = format!("/api/v1/media/{}", "0".repeat(64));
    let missing = anonymous.get(&unknown).await.expect("GET unknown");
    missing.expect_error(404, "media_not_found", "an unknown hash");
    assert_eq!(missing.body["details"]["hash"], "0".repeat(64));
    anonymous
        .get("/api/v1/media/not-a-hash")
        .await
        .expect("GET bad hash")
        .expect_error(400, "invalid_path", "a malformed hash");

    // Nothing refused left a trace, and the node still takes a good upload.
    let ok = upload(&vendor, &image).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{ok}");
    let events = cluster.admin_client(1).all_events().await.expect("events");
    let registered: Vec<_> = events
        .iter()
        .filter(|e| e["type"] == "MediaRegistered")
        .map(|e| e["data"]["hash"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(registered, [sha256(&noisy), sha256(&image)], "{events:?}");
}

/// A blob file no registered image names (an upload whose registration was
/// refused or lost) is removed once older than `media.orphan_grace_secs`;
/// registered images stay.
#[tokio::test]
async fn blobs_without_a_registered_image_are_removed_after_the_grace() {
    let (_dir, config) = crate::harness::config_file(
        "[media]\norphan_grace_secs = 1\nreconcile_interval_secs = 1\n",
    );
    let cluster = Cluster::start_with(1, &["--config", &config]).await;
    let (vendor, _) = sign_in(&cluster.client(1), "vendor", "v-orphans").await;
    let kept = png(40, 30);
    let created = upload(&vendor, &kept).await;
    assert_eq!(created.status, StatusCode::CREATED, "upload: {created}");

    let orphan_bytes = noise_png(20, 20);
    let orphan = blob_path(cluster.node(1).data_dir(), &sha256(&orphan_bytes));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, &orphan_bytes).unwrap();

    crate::harness::eventually(
        "the orphan removed",
        std::time::Duration::from_secs(15),
        || async {
            if orphan.exists() {
                Err("still there".to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    let registered = blob_path(cluster.node(1).data_dir(), &sha256(&kept));
    assert!(registered.exists(), "a registered image's blob stays");
    let served = fetch(
        cluster.client(1).base(),
        &format!("/api/v1/media/{}", sha256(&kept)),
        None,
    )
    .await;
    assert_eq!(served.status, StatusCode::OK);
}

/// A vendor uploads within its quota (images and bytes in all); an image it
/// registered already does not count again; admins have no quota.
#[tokio::test]
async fn a_vendor_uploads_within_its_quota() {
    let (_dir, config) = crate::harness::config_file(
        "[media]\nvendor_max_images = 2\nvendor_max_bytes = 10000000\n",
    );
    let cluster = Cluster::start_with(1, &["--config", &config]).await;
    let (vendor, _) = sign_in(&cluster.client(1), "vendor", "v-quota").await;
    let (first, second, third) = (png(11, 11), png(12, 12), png(13, 13));
    for bytes in [&first, &second] {
        let created = upload(&vendor, bytes).await;
        assert_eq!(created.status, StatusCode::CREATED, "{created}");
    }
    let again = upload(&vendor, &first).await;
    assert_eq!(again.status, StatusCode::OK, "a known image: {again}");

    let refused = upload(&vendor, &third).await;
    refused.expect_error(409, "upload_quota_exceeded", "a third image");
    assert_eq!(refused.body["details"]["images"], 2, "{refused}");
    assert_eq!(refused.body["details"]["max_images"], 2, "{refused}");
    let stored = blob_path(cluster.node(1).data_dir(), &sha256(&third));
    assert!(!stored.exists(), "refused before its bytes were stored");

    let (admin, _) = sign_in(&cluster.client(1), "admin", "root-quota").await;
    let by_admin = upload(&admin, &third).await;
    assert_eq!(by_admin.status, StatusCode::CREATED, "{by_admin}");
}
