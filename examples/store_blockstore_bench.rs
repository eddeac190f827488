//! Blockstore choice: flatfs (disco's `FlatFs`) vs `redb`, puts and gets of
//! small (100-byte) and 256 KiB blocks, commits batched as the store does.
//! `store_blockstore_bench <dir>`; see `bench/README-store.md`.

use std::time::Instant;

use bytes::Bytes;
use disco::ipfs::block::raw_cid;
use disco::ipfs::embedded::blockstore::FlatFs;
use redb::{Database, Durability, TableDefinition};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("blocks");

fn blocks(n: usize, size: usize) -> Vec<(cid::Cid, Bytes)> {
    (0..n)
        .map(|i| {
            let mut d = vec![(i % 251) as u8; size];
            d[..8].copy_from_slice(&(i as u64).to_le_bytes());
            (raw_cid(&d), Bytes::from(d))
        })
        .collect()
}

fn rate(label: &str, n: usize, size: usize, secs: f64) {
    println!(
        "{label:<28} {n:>6} x {size:>6} B: {:>8.0} blocks/s {:>7.0} MB/s",
        n as f64 / secs,
        (n * size) as f64 / secs / 1e6
    );
}

fn main() {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: store_blockstore_bench <dir>"),
    );
    for (n, size) in [(20_000usize, 100usize), (2_000, 262_144)] {
        let set = blocks(n, size);
        // flatfs: one file per block, one syncfs per batch of 1000.
        let fdir = dir.join(format!("flatfs-{size}"));
        let fs = FlatFs::open(&fdir, true).expect("flatfs");
        let t = Instant::now();
        for (i, (c, d)) in set.iter().enumerate() {
            fs.put_sync(c, d).expect("put");
            if i % 1000 == 999 {
                fs.sync().expect("sync");
            }
        }
        fs.sync().expect("sync");
        rate("flatfs put", n, size, t.elapsed().as_secs_f64());
        let t = Instant::now();
        for (c, _) in &set {
            fs.get_sync(c).expect("get").expect("present");
        }
        rate("flatfs get (verified)", n, size, t.elapsed().as_secs_f64());

        // redb: non-durable commit per block, durable commit per 1000.
        let rpath = dir.join(format!("redb-{size}.redb"));
        let db = Database::create(&rpath).expect("redb");
        let t = Instant::now();
        for (i, (c, d)) in set.iter().enumerate() {
            let mut tx = db.begin_write().expect("tx");
            if i % 1000 != 999 && i != n - 1 {
                tx.set_durability(Durability::None);
            }
            {
                let mut tbl = tx.open_table(TABLE).expect("table");
                tbl.insert(c.hash().to_bytes().as_slice(), d.as_ref())
                    .expect("insert");
            }
            tx.commit().expect("commit");
        }
        rate("redb put", n, size, t.elapsed().as_secs_f64());
        let t = Instant::now();
        let tx = db.begin_read().expect("read tx");
        let tbl = tx.open_table(TABLE).expect("table");
        for (c, _) in &set {
            let v = tbl
                .get(c.hash().to_bytes().as_slice())
                .expect("get")
                .expect("present");
            disco::ipfs::block::verify(c, v.value()).expect("verify");
        }
        rate("redb get (verified)", n, size, t.elapsed().as_secs_f64());
    }
}
