//! Print one generated hostile request, to reproduce a differential or
//! soak failure: `cargo run -p ringway-tests --example hostile_case -- SEED INDEX`
//! (the differential test's seed is 0x5eed0000, +1 on epoll).

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("SEED INDEX (decimal)"))
        .collect();
    let [seed, i] = args[..] else {
        eprintln!("usage: hostile_case SEED INDEX");
        std::process::exit(2);
    };
    let bytes = ringway_tests::hostile::request(
        &mut ringway_tests::hostile::Rng::new(seed + i),
        "/d",
        i as usize,
    );
    println!("{:?}", String::from_utf8_lossy(&bytes));
}
