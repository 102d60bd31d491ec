//! In-process benchmark (run by `bench/conf.sh`, not a test): time `conf::read` of each
//! given dkms.conf over many iterations and print the mean per read.
//! `conf_bench KERNEL ARCH ITERATIONS PATH...`

use std::path::Path;
use std::time::Instant;

use dkms::conf::{self, Reader, ResolveContext};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: conf_bench KERNEL ARCH ITERATIONS PATH...");
        std::process::exit(2);
    }
    let ctx = ResolveContext::new(&args[0], &args[1]);
    let iterations: u32 = args[2].parse().unwrap_or(1000);
    for path in &args[3..] {
        let path = Path::new(path);
        let native = conf::evaluate(path, &ctx, Reader::Native).is_ok();
        // Warm up the page cache and the os-release lookup.
        if let Err(e) = conf::read(path, &ctx) {
            eprintln!("{e}");
            std::process::exit(e.exit_code());
        }
        let timed = |label: &str, ctx: &ResolveContext, n: u32| {
            let start = Instant::now();
            for _ in 0..n {
                if conf::read(path, ctx).is_err() {
                    std::process::exit(1);
                }
            }
            let per = start.elapsed() / n;
            println!(
                "{:>12.1} us/read  {}  {label:<22} {}",
                per.as_secs_f64() * 1e6,
                if native { "native" } else { "bash  " },
                path.display()
            );
        };
        // As `conf show` reads (module unknown: two passes) and as build/install read it.
        timed("module from the file", &ctx, iterations);
        let (name, version) = match conf::read(path, &ctx) {
            Ok(c) => (c.package_name, c.package_version),
            Err(_) => std::process::exit(1),
        };
        timed(
            "module given (-m/-v)",
            &ctx.clone().with_module(&name, &version),
            iterations,
        );
    }
}
