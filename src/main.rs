fn main() {
    println!("disco {}", env!("CARGO_PKG_VERSION"));
}
