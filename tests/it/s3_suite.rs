//! The shared storage-driver suite against the `s3` driver on a real
//! S3-compatible server (moto): once with each case in a fresh bucket at the
//! bucket root, once with each case under a fresh `rootdirectory` of one
//! shared bucket.

use disco::storage::s3::S3Driver;
use disco::storage::testsuite::Fixture;

use crate::support::s3server::S3Server;

/// Each case in its own new bucket, keys at the bucket root.
mod bucket_root {
    use super::*;

    async fn fixture() -> Fixture {
        let server = S3Server::shared();
        let bucket = server.create_bucket().await;
        let driver = S3Driver::connect(server.config(&bucket))
            .await
            .expect("connect");
        Fixture::new(driver, server)
    }

    disco::storage_driver_suite!(fixture());
}

/// Each case under its own `rootdirectory` in one bucket.
mod rootdirectory {
    use super::*;

    async fn fixture() -> Fixture {
        let server = S3Server::shared();
        let bucket = server.create_bucket().await;
        // A sibling root with content that must stay invisible and intact.
        let neighbour = S3Driver::connect(disco::storage::s3::S3Config {
            rootdirectory: "/neighbour".into(),
            ..server.config(&bucket)
        })
        .await
        .expect("connect neighbour");
        use disco::storage::StorageDriver;
        neighbour
            .put_content("/l/a", bytes::Bytes::from_static(b"other root"))
            .await
            .expect("neighbour put");
        let driver = S3Driver::connect(disco::storage::s3::S3Config {
            rootdirectory: "/nested/root/".into(),
            ..server.config(&bucket)
        })
        .await
        .expect("connect");
        Fixture::new(driver, server)
    }

    disco::storage_driver_suite!(fixture());
}
